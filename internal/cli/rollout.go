package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	fnapi "fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// writeRollout shows a function's revisions and its rollout, as fn describe does.
func writeRollout(w io.Writer, f *v1alpha1.Function) {
	strategy := f.Spec.StrategyOf()
	desc := string(strategy)
	if r := f.Spec.Rollout; r != nil && strategy == v1alpha1.RolloutCanary {
		desc += fmt.Sprintf(", steps %v%%, pause %s", r.CanarySteps(), r.PauseOf(v1alpha1.DefaultCanaryPause*time.Second))
	}
	if r := f.Spec.Rollout; r != nil && strategy == v1alpha1.RolloutBatched {
		pause := "until fn rollout resume"
		if r.Pause != nil {
			pause = r.Pause.Duration.String()
		}
		desc += fmt.Sprintf(", batches of %s, pause %s", batchText(r), pause)
	}
	fmt.Fprintf(w, "Rollout:\t%s\n", desc)
	if ro := f.Status.Rollout; ro != nil {
		fmt.Fprintf(w, "Last rollout:\t%s of %s over %s: %s at %d%%", ro.Strategy, ro.Revision, ro.From, ro.Phase, ro.Percent)
		if ro.Reason != "" {
			fmt.Fprintf(w, " (%s)", ro.Reason)
		}
		fmt.Fprintln(w)
		if ro.Message != "" {
			fmt.Fprintf(w, "\t%s\n", ro.Message)
		}
	}
	if len(f.Status.Revisions) > 0 {
		fmt.Fprintln(w, "\nRevisions:\nNAME\tTRAFFIC\tIMAGE\tAGE")
		for _, r := range f.Status.Revisions {
			fmt.Fprintf(w, "%s\t%d%%\t%s\t%s\n", revisionLabel(f, r.Name), r.Percent, r.Image, age(r.Created))
		}
	}
}

func batchText(r *v1alpha1.Rollout) string {
	if r.BatchSize == nil {
		return "1"
	}
	return r.BatchSize.String()
}

// revisionLabel is a revision's name, marked when it is the stable or the latest one.
func revisionLabel(f *v1alpha1.Function, name string) string {
	var marks []string
	if name == f.Status.StableRevision {
		marks = append(marks, "stable")
	}
	if name == f.Status.LatestRevision && name != f.Status.StableRevision {
		marks = append(marks, "latest")
	}
	if len(marks) == 0 {
		return name
	}
	return name + " (" + strings.Join(marks, ", ") + ")"
}

func newRevisionsCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "revisions NAME",
		Short: "List a function's revisions, with their images and shares of traffic",
		Long: `List the revisions of a function, newest first: each change of what runs (image, env,
resources, timeout, concurrency) makes one, and the newest spec.revisionHistory (5) are kept.
The stable revision has the traffic a rollout has not given to a new one; fn rollback brings
back an earlier one at once, without a build.`,
		Example: `  fn revisions hello
  fn rollback hello            # the revision before the stable one
  fn rollback hello 3          # revision 3 (hello-00003)`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			f, err := getFunction(ctxOf(c), cl, args[0])
			if err != nil {
				return err
			}
			if out.structured() {
				return out.print(s.Out, f.Status.Revisions)
			}
			w := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REVISION\tTRAFFIC\tIMAGE\tAGE")
			for _, r := range f.Status.Revisions {
				fmt.Fprintf(w, "%s\t%d%%\t%s\t%s\n", revisionLabel(f, r.Name), r.Percent, r.Image, age(r.Created))
			}
			return w.Flush()
		},
	}
	out.add(c)
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

// revisionName resolves a revision given as a number or a name, of function name.
func revisionName(name, rev string) (string, error) {
	if n, err := strconv.ParseInt(rev, 10, 64); err == nil {
		if n < 1 {
			return "", &UsageError{fmt.Errorf("revision %q: revisions are numbered from 1", rev)}
		}
		return v1alpha1.RevisionName(name, n), nil
	}
	if !strings.HasPrefix(rev, name+"-") {
		return "", &UsageError{fmt.Errorf("revision %q is not one of %s's: give its number or its name (%s-NNNNN); fn revisions %s lists them", rev, name, name, name)}
	}
	return rev, nil
}

func newRollbackCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var wait time.Duration
	c := &cobra.Command{
		Use:   "rollback NAME [REVISION]",
		Short: "Run an earlier revision of a function again, at once and without a build",
		Long: `Set the function's spec back to what REVISION ran (its number or name; default the
revision before the stable one), and wait until it serves. A revision that had all traffic
before is rolled out at once, whatever spec.rollout says; any rollout under way stops.`,
		Example: `  fn rollback hello
  fn rollback hello 2`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := ctxOf(c)
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			name := args[0]
			f, err := getFunction(ctx, cl, name)
			if err != nil {
				return err
			}
			target := ""
			if len(args) == 2 {
				if target, err = revisionName(name, args[1]); err != nil {
					return err
				}
			} else if target, err = previousRevision(f); err != nil {
				return err
			}
			cr, err := cl.kube.AppsV1().ControllerRevisions(cl.namespace).Get(ctx, target, metav1.GetOptions{})
			if apierrs.IsNotFound(err) || (err == nil && cr.Labels[fnapi.FunctionLabelKey] != name) {
				return fmt.Errorf("function %s has no revision %s: fn revisions %s lists those kept", name, target, name)
			}
			if err != nil {
				return fmt.Errorf("reading revision %s: %w", target, err)
			}
			var t v1alpha1.Template
			if err := json.Unmarshal(cr.Data.Raw, &t); err != nil {
				return fmt.Errorf("revision %s holds no template fn reads: %w", target, err)
			}
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				f, err = getFunction(ctx, cl, name)
				if err != nil {
					return err
				}
				t.Apply(&f.Spec)
				f, err = cl.fns.FnkitV1alpha1().Functions(cl.namespace).Update(ctx, f, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				return fmt.Errorf("rolling %s back to %s: %w", name, target, err)
			}
			fmt.Fprintf(s.ErrOut, "Rolling %s back to %s (image %s).\n", name, target, t.Image)
			start := time.Now()
			if wait > 0 {
				if f, err = waitRevision(ctx, s, cl, f, target, wait); err != nil {
					return err
				}
				fmt.Fprintf(s.ErrOut, "Function %s runs %s (%s).\n", name, target, time.Since(start).Round(time.Millisecond))
			}
			return nil
		},
	}
	c.Flags().DurationVar(&wait, "wait", 3*time.Minute, "how long to wait for the revision to serve (0: do not wait)")
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

// previousRevision is the newest revision older than f's stable one.
func previousRevision(f *v1alpha1.Function) (string, error) {
	var stable int64
	for _, r := range f.Status.Revisions {
		if r.Name == f.Status.StableRevision {
			stable = r.Number
		}
	}
	for _, r := range f.Status.Revisions { // newest first
		if r.Number < stable {
			return r.Name, nil
		}
	}
	return "", fmt.Errorf("function %s has no revision before its stable one (%s): fn revisions %s lists them", f.Name, f.Status.StableRevision, f.Name)
}

// waitRevision waits until f's stable revision is rev and its Deployment runs it, ready.
func waitRevision(ctx context.Context, s IOStreams, cl *cluster, f *v1alpha1.Function, rev string, d time.Duration) (*v1alpha1.Function, error) {
	f, err := waitFunctionReady(ctx, s, cl, f, d)
	if err != nil {
		return nil, err
	}
	if f.Status.StableRevision != rev {
		return nil, fmt.Errorf("function %s: %s is not the stable revision (it is %s): see fn describe %s", f.Name, rev, f.Status.StableRevision, f.Name)
	}
	return f, nil
}

func newRolloutCommand(fa *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Follow and steer a function's rollout: status, pause, resume, abort",
		Long: `A Function's spec.rollout says how a new revision replaces the running one: rolling (at
once, the default), canary (a share of traffic per step, judged against the running revision by
the gateway's figures, promoted or rolled back by itself) or batched (replicas replaced a batch
at a time, each batch waiting for resume or its pause).`,
		Args: cobra.NoArgs,
	}
	c.AddCommand(newRolloutStatusCommand(fa),
		newRolloutActionCommand(fa, "pause", "Hold a rollout at its step", func(f *v1alpha1.Function) (string, string, error) {
			return fnapi.PausedAnnotation, "true", nil
		}),
		newRolloutActionCommand(fa, "resume", "Let a paused rollout, or a batched one's batch, go on", func(f *v1alpha1.Function) (string, string, error) {
			ro := f.Status.Rollout
			if ro == nil || ro.Phase.Done() {
				return "", "", fmt.Errorf("function %s has no rollout under way: fn describe %s shows the last", f.Name, f.Name)
			}
			return fnapi.ResumedAnnotation, fmt.Sprintf("%s/%d", ro.Revision, ro.Step), nil
		}),
		newRolloutActionCommand(fa, "abort", "Stop a rollout: the stable revision gets all traffic back", func(f *v1alpha1.Function) (string, string, error) {
			ro := f.Status.Rollout
			if ro == nil || ro.Phase.Done() {
				return "", "", fmt.Errorf("function %s has no rollout under way: fn describe %s shows the last", f.Name, f.Name)
			}
			return fnapi.AbortedAnnotation, ro.Revision, nil
		}))
	return c
}

// newRolloutActionCommand makes a command that sets one of the rollout's annotations; resume
// also lifts a pause.
func newRolloutActionCommand(fa *Factory, verb, short string, set func(*v1alpha1.Function) (key, value string, err error)) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	c := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := ctxOf(c)
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			f, err := getFunction(ctx, cl, args[0])
			if err != nil {
				return err
			}
			k, v, err := set(f)
			if err != nil {
				return err
			}
			ann := map[string]any{k: v}
			if verb == "resume" {
				ann[fnapi.PausedAnnotation] = nil
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
			if _, err := cl.fns.FnkitV1alpha1().Functions(cl.namespace).Patch(ctx, f.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return fmt.Errorf("%s the rollout of %s: %w", verb, f.Name, err)
			}
			ro := f.Status.Rollout
			what := "its rollouts"
			if ro != nil && !ro.Phase.Done() {
				what = fmt.Sprintf("the rollout of %s at step %d", ro.Revision, ro.Step+1)
			}
			fmt.Fprintf(s.ErrOut, "Function %s: %s: %s.\n", f.Name, verb, what)
			return nil
		},
	}
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

func newRolloutStatusCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var watch bool
	var wait time.Duration
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a function's rollout; with --watch, follow it until it ends",
		Long: `Show the function's rollout: the revision rolled out, its phase, step and share of
traffic, and why. With --watch, print each change until the rollout ends: the exit status is 0
when the new revision took all traffic, 1 when it was rolled back or aborted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := ctxOf(c)
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			if wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			last := ""
			for {
				f, err := getFunction(ctx, cl, args[0])
				if err != nil {
					return err
				}
				ro := f.Status.Rollout
				if out.structured() && !watch {
					return out.print(s.Out, ro)
				}
				line := rolloutLine(f)
				if line != last {
					fmt.Fprintln(s.Out, line)
					last = line
				}
				if !watch || ro == nil || ro.Phase.Done() {
					if ro != nil && (ro.Phase == v1alpha1.RolloutRolledBack || ro.Phase == v1alpha1.RolloutAborted) && watch {
						how := "was rolled back"
						if ro.Phase == v1alpha1.RolloutAborted {
							how = "was aborted"
						}
						return fmt.Errorf("%s: the rollout of %s %s: %s", f.Name, ro.Revision, how, ro.Message)
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("the rollout of %s did not end within %s (last: %s)", f.Name, wait, line)
				case <-time.After(250 * time.Millisecond):
				}
			}
		},
	}
	c.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it ends")
	c.Flags().DurationVar(&wait, "timeout", 0, "with --watch, how long to follow it at most (0: no bound)")
	out.add(c)
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

// rolloutLine is a rollout in one line.
func rolloutLine(f *v1alpha1.Function) string {
	ro := f.Status.Rollout
	if ro == nil {
		return fmt.Sprintf("%s: no rollout yet; %s runs", f.Name, f.Status.StableRevision)
	}
	line := fmt.Sprintf("%s: %s of %s over %s: %s, step %d, %d%%", f.Name, ro.Strategy, ro.Revision, ro.From, ro.Phase, ro.Step+1, ro.Percent)
	if ro.Strategy == v1alpha1.RolloutBatched && ro.Total > 0 {
		line += fmt.Sprintf(" (%d of %d replicas)", ro.Replicas, ro.Total)
	}
	if ro.Message != "" {
		line += ": " + ro.Message
	}
	return line
}
