package cli

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"

	fnapi "fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// structured prints v as JSON or YAML for -o json|yaml.

// getFunction reads a Function, saying clearly when there is none.
func getFunction(ctx context.Context, cl *cluster, name string) (*v1alpha1.Function, error) {
	f, err := cl.fns.FnkitV1alpha1().Functions(cl.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrs.IsNotFound(err) {
		return nil, fmt.Errorf("no function %q in namespace %q: fn list shows the deployed ones", name, cl.namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading function %s: %w", name, err)
	}
	return f, nil
}

// functionPods lists the pods of the function name in the cluster's namespace.
func (cl *cluster) functionPods(ctx context.Context, name string) (*corev1.PodList, error) {
	return cl.kube.CoreV1().Pods(cl.namespace).List(ctx, metav1.ListOptions{LabelSelector: fnapi.FunctionLabelKey + "=" + name})
}

func readyOf(f *v1alpha1.Function) (string, string) {
	c := f.Status.GetCondition(apis.ConditionReady)
	if c == nil {
		return "Unknown", ""
	}
	return string(c.Status), c.Reason
}

func age(t metav1.Time) string { return duration.HumanDuration(time.Since(t.Time)) }

func newListCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var output string
	var all bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the functions of a namespace (-A: of all)",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch output {
			case "", "wide", "name", "json", "yaml":
			default:
				return &UsageError{fmt.Errorf("unknown output format %q: use -o wide, name, json or yaml", output)}
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			ns := cl.namespace
			if all {
				ns = metav1.NamespaceAll
			}
			list, err := cl.fns.FnkitV1alpha1().Functions(ns).List(ctxOf(c), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("listing functions: %w", err)
			}
			sort.Slice(list.Items, func(i, j int) bool {
				a, b := list.Items[i], list.Items[j]
				return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
			})
			if output == "json" || output == "yaml" {
				items := make([]any, len(list.Items))
				for i := range list.Items {
					items[i] = forOutput(&list.Items[i])
				}
				return printAs(s.Out, output, map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{}, "items": items})
			}
			if len(list.Items) == 0 {
				if all {
					fmt.Fprintln(s.ErrOut, "No functions in any namespace.")
				} else {
					fmt.Fprintf(s.ErrOut, "No functions in namespace %s.\n", ns)
				}
				return nil
			}
			if output == "name" {
				for _, f := range list.Items {
					fmt.Fprintf(s.Out, "function.%s/%s\n", fnapi.GroupName, f.Name)
				}
				return nil
			}
			w := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
			cols := []string{"NAME", "READY", "REASON", "REPLICAS", "DESIRED", "SCALE", "URL", "AGE"}
			if all {
				cols = append([]string{"NAMESPACE"}, cols...)
			}
			if output == "wide" {
				cols = append(cols, "METRIC", "TARGET", "MIN", "MAX", "IMAGE")
			}
			fmt.Fprintln(w, strings.Join(cols, "\t"))
			for _, f := range list.Items {
				ready, reason := readyOf(&f)
				url := ""
				if f.Status.URL != nil {
					url = f.Status.URL.String()
				}
				row := []string{f.Name, ready, reason, fmt.Sprintf("%d/%d", f.Status.ReadyReplicas, f.Status.Replicas),
					fmt.Sprint(f.Status.DesiredReplicas), scaleReason(&f), url, age(f.CreationTimestamp)}
				if all {
					row = append([]string{f.Namespace}, row...)
				}
				if output == "wide" {
					sc := effectiveScale(&f)
					row = append(row, string(sc.Metric), fmt.Sprint(*sc.Target), fmt.Sprint(*sc.Min), fmt.Sprint(*sc.Max), f.Spec.Image)
				}
				fmt.Fprintln(w, strings.Join(row, "\t"))
			}
			return w.Flush()
		},
	}
	cf.add(c)
	cf.complete(c, fa, false)
	c.Flags().StringVarP(&output, "output", "o", "", "output format: wide, name, json or yaml (default: a table)")
	c.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the functions of every namespace")
	return c
}

// envSummary names the Function's variables and where each comes from, never a value: a value
// may be a secret someone pasted.
func envSummary(f *v1alpha1.Function) string {
	var parts []string
	for _, e := range f.Spec.Env {
		switch from := e.ValueFrom; {
		case from == nil:
			parts = append(parts, e.Name)
		case from.SecretKeyRef != nil:
			parts = append(parts, fmt.Sprintf("%s (secret %s/%s)", e.Name, from.SecretKeyRef.Name, from.SecretKeyRef.Key))
		case from.ConfigMapKeyRef != nil:
			parts = append(parts, fmt.Sprintf("%s (configmap %s/%s)", e.Name, from.ConfigMapKeyRef.Name, from.ConfigMapKeyRef.Key))
		default:
			parts = append(parts, e.Name+" (from the pod)")
		}
	}
	for _, ef := range f.Spec.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			parts = append(parts, "every key of secret "+ef.SecretRef.Name)
		case ef.ConfigMapRef != nil:
			parts = append(parts, "every key of configmap "+ef.ConfigMapRef.Name)
		}
	}
	return strings.Join(parts, ", ")
}

// podState is the state of a pod's first container in a word or two, with its reason.
func podState(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		switch st := cs.State; {
		case st.Waiting != nil:
			return "waiting: " + st.Waiting.Reason
		case st.Terminated != nil:
			return fmt.Sprintf("terminated: %s (exit %d)", st.Terminated.Reason, st.Terminated.ExitCode)
		case st.Running != nil && !cs.Ready:
			return "running, not ready"
		case st.Running != nil:
			return "running"
		}
	}
	return "pending"
}

// recentEvents are the newest n events of the Function and its pods, oldest first.
func recentEvents(ctx context.Context, cl *cluster, f *v1alpha1.Function, pods *corev1.PodList, n int) []corev1.Event {
	names := map[string]bool{"Function/" + f.Name: true}
	if pods != nil {
		for _, p := range pods.Items {
			names["Pod/"+p.Name] = true
		}
	}
	list, err := cl.kube.CoreV1().Events(f.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var evs []corev1.Event
	for _, e := range list.Items {
		if names[e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name] {
			evs = append(evs, e)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return eventTime(&evs[i]).Before(eventTime(&evs[j])) })
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return evs
}

func eventTime(e *corev1.Event) time.Time {
	t := e.LastTimestamp.Time
	if e.EventTime.After(t) {
		t = e.EventTime.Time
	}
	if t.IsZero() {
		t = e.CreationTimestamp.Time
	}
	return t
}

// forOutput is a Function as -o json|yaml prints it: with its kind, without managed fields.
func forOutput(f *v1alpha1.Function) *v1alpha1.Function {
	f = f.DeepCopy()
	f.APIVersion, f.Kind = v1alpha1.SchemeGroupVersion.String(), "Function"
	f.ManagedFields = nil
	return f
}

// printAs writes v as JSON or YAML.
func printAs(w io.Writer, format string, v any) error {
	if format == "json" {
		return printJSON(w, v)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// effectiveScale is the Function's scale with the defaults filled in.
func effectiveScale(f *v1alpha1.Function) v1alpha1.Scale {
	g := f.DeepCopy()
	g.SetDefaults(context.Background())
	sc := v1alpha1.Scale{}
	if g.Spec.Scale != nil {
		sc = *g.Spec.Scale
	}
	if sc.Min == nil {
		sc.Min = ptrInt32(0)
	}
	if sc.Max == nil {
		sc.Max = ptrInt32(0)
	}
	if sc.Target == nil {
		sc.Target = ptrInt32(0)
	}
	return sc
}

func ptrInt32(v int32) *int32 { return &v }

func newDescribeCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a function's spec, status, conditions and pods",
		Args:  cobra.ExactArgs(1),
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
				return out.print(s.Out, forOutput(f))
			}
			w := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
			ready, reason := readyOf(f)
			fmt.Fprintf(w, "Name:\t%s\nNamespace:\t%s\nImage:\t%s\nReady:\t%s %s\n", f.Name, f.Namespace, f.Spec.Image, ready, reason)
			if f.Status.URL != nil {
				fmt.Fprintf(w, "URL:\t%s\n", f.Status.URL)
			}
			if f.Status.Address != nil && f.Status.Address.URL != nil {
				fmt.Fprintf(w, "Address:\t%s\n", f.Status.Address.URL)
			}
			fmt.Fprintf(w, "Replicas:\t%d ready of %d, %d desired (%s)\nAge:\t%s\n", f.Status.ReadyReplicas, f.Status.Replicas,
				f.Status.DesiredReplicas, scaleReason(f), age(f.CreationTimestamp))
			eff := f.DeepCopy()
			eff.SetDefaults(ctxOf(c))
			concurrency := "unlimited"
			if n := *eff.Spec.Concurrency; n > 0 {
				concurrency = fmt.Sprint(n)
			}
			fmt.Fprintf(w, "Timeout:\t%s\nConcurrency:\t%s per replica\n", eff.Spec.Timeout.Duration, concurrency)
			access := "public"
			if f.Spec.Access == v1alpha1.AccessPrivate {
				access = "private (a token of Secret " + v1alpha1.AccessSecretName + ": fn token)"
			}
			fmt.Fprintf(w, "Access:\t%s\n", access)
			if r := f.Spec.RateLimit; r != nil {
				burst := r.RPS
				if r.Burst != nil {
					burst = *r.Burst
				}
				fmt.Fprintf(w, "Rate limit:\t%d requests/s, burst %d\n", r.RPS, burst)
			}
			if d := f.Spec.Delivery; d != nil || len(f.Spec.Schedules) > 0 {
				attempts, backoff, maxBackoff, maxAge, dead := v1alpha1.DefaultAttempts, v1alpha1.DefaultBackoff, v1alpha1.DefaultMaxBackoff, v1alpha1.DefaultMaxAge, true
				if d != nil {
					if d.Attempts != nil {
						attempts = *d.Attempts
					}
					if d.Backoff != nil {
						backoff = d.Backoff.Duration
					}
					if d.MaxBackoff != nil {
						maxBackoff = d.MaxBackoff.Duration
					}
					if d.MaxAge != nil {
						maxAge = d.MaxAge.Duration
					}
					if d.DeadLetters != nil {
						dead = *d.DeadLetters
					}
				}
				fmt.Fprintf(w, "Async delivery:\t%d attempts, backoff %s doubling to %s, max age %s, dead letters %v\n", attempts, backoff, maxBackoff, maxAge, dead)
			}
			for _, sch := range f.Spec.Schedules {
				tz := sch.TimeZone
				if tz == "" {
					tz = "UTC"
				}
				fmt.Fprintf(w, "Schedule %s:\t%s (%s)\n", sch.Name, sch.Cron, tz)
			}
			sc := effectiveScale(f)
			window := "the cluster's"
			if sc.Window != nil {
				window = sc.Window.Duration.String()
			}
			fmt.Fprintf(w, "Scale:\tmetric %s, target %d, min %d, max %d, window %s, scale-down delay %s", sc.Metric, *sc.Target, *sc.Min, *sc.Max, window, sc.ScaleDownDelay.Duration)
			if sc.Initial != nil {
				fmt.Fprintf(w, ", initial %d", *sc.Initial)
			}
			fmt.Fprintln(w)
			if len(f.Spec.Env) > 0 || len(f.Spec.EnvFrom) > 0 {
				fmt.Fprintf(w, "Env:\t%s\n", envSummary(f))
			}
			if f.Spec.Source != nil && f.Spec.Source.Git != nil {
				g := f.Spec.Source.Git
				fmt.Fprintf(w, "Source:\tgit %s, branch %s, path /%s (fn builds %s lists its builds)\n", g.URL, cmp.Or(g.Ref, "main"), strings.Trim(g.Path, "/"), f.Name)
			}
			writeRollout(w, f)
			fmt.Fprintln(w, "\nConditions:\nTYPE\tSTATUS\tREASON\tMESSAGE")
			for _, c := range f.Status.Conditions {
				// A compiler's message has lines of its own: one row per condition.
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, strings.ReplaceAll(strings.TrimSpace(c.Message), "\n", " | "))
			}
			pods, err := cl.functionPods(ctxOf(c), f.Name)
			if err == nil {
				fmt.Fprintln(w, "\nPods:\nNAME\tPHASE\tREADY\tRESTARTS\tIP\tNODE\tSTATE")
				for _, p := range pods.Items {
					readyN, restarts := 0, int32(0)
					for _, cs := range p.Status.ContainerStatuses {
						if cs.Ready {
							readyN++
						}
						restarts += cs.RestartCount
					}
					fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", p.Name, p.Status.Phase, readyN, len(p.Spec.Containers), restarts, p.Status.PodIP, p.Spec.NodeName, podState(&p))
				}
			}
			if pods != nil {
				for _, p := range pods.Items {
					for _, cs := range p.Status.ContainerStatuses {
						if wt := cs.State.Waiting; wt == nil || wt.Reason != "CrashLoopBackOff" {
							continue
						}
						if tail := lastLogLines(ctxOf(c), cl, p.Name, cs.Name, 5); tail != "" {
							fmt.Fprintf(w, "\nLast log lines of %s before it crashed:\n%s\n", p.Name, strings.ReplaceAll(tail, " | ", "\n"))
						}
					}
				}
			}
			if evs := recentEvents(ctxOf(c), cl, f, pods, 10); len(evs) > 0 {
				fmt.Fprintln(w, "\nEvents:\nAGE\tTYPE\tREASON\tOBJECT\tMESSAGE")
				for _, e := range evs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s/%s\t%s\n", age(metav1.NewTime(eventTime(&e))), e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Message)
				}
			}
			return w.Flush()
		},
	}
	cf.add(c)
	cf.complete(c, fa, true)
	out.add(c)
	return c
}

func newDeleteCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var wait time.Duration
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a function and everything it runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			ctx := ctxOf(c)
			if _, err := getFunction(ctx, cl, args[0]); err != nil {
				return err
			}
			fg := metav1.DeletePropagationForeground
			if err := cl.fns.FnkitV1alpha1().Functions(cl.namespace).Delete(ctx, args[0], metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
				return fmt.Errorf("deleting function %s: %w", args[0], err)
			}
			fmt.Fprintf(s.ErrOut, "Deleting %s...\n", args[0])
			deadline := time.Now().Add(wait)
			for wait > 0 {
				_, ferr := cl.fns.FnkitV1alpha1().Functions(cl.namespace).Get(ctx, args[0], metav1.GetOptions{})
				pods, perr := cl.functionPods(ctx, args[0])
				if apierrs.IsNotFound(ferr) && perr == nil && len(pods.Items) == 0 {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("function %s still has pods after %s", args[0], wait)
				}
				time.Sleep(100 * time.Millisecond)
			}
			fmt.Fprintf(s.ErrOut, "Deleted %s.\n", args[0])
			return nil
		},
	}
	c.Flags().DurationVar(&wait, "wait", 2*time.Minute, "wait until its pods are gone (0: do not wait)")
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

func newLogsCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var follow, requests bool
	var build string
	var tailLines int64
	c := &cobra.Command{
		Use:   "logs NAME [--build [ID]]",
		Short: "Print the logs of a function's pods, (--requests) the gateway's access lines for it, or (--build [ID]) a build's",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 2 { // fn logs NAME --build ID
				if build != "latest" {
					return &UsageError{fmt.Errorf("one function name, please; a build's id goes with --build (see %s --help)", c.CommandPath())}
				}
				build = args[1]
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			ctx := ctxOf(c)
			f, err := getFunction(ctx, cl, args[0])
			if err != nil {
				return err
			}
			if requests {
				return requestLines(ctx, s, cl, f, follow, tailLines)
			}
			if build != "" {
				return buildLog(ctx, s, cl, f, build, follow)
			}
			pods, err := cl.functionPods(ctx, f.Name)
			if err != nil {
				return err
			}
			if len(pods.Items) == 0 {
				return fmt.Errorf("function %s has no pods (scaled to zero?)", f.Name)
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			errs := make(chan error, len(pods.Items))
			for _, p := range pods.Items {
				opts := &corev1.PodLogOptions{Container: "function", Follow: follow}
				if tailLines >= 0 {
					opts.TailLines = &tailLines
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					rc, err := cl.kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts).Stream(ctx)
					if err != nil {
						errs <- fmt.Errorf("logs of pod %s: %w", p.Name, err)
						return
					}
					defer rc.Close()
					sc := bufio.NewScanner(rc)
					sc.Buffer(make([]byte, 64<<10), 1<<20)
					for sc.Scan() {
						mu.Lock()
						if len(pods.Items) > 1 {
							fmt.Fprintf(s.Out, "[%s] ", p.Name)
						}
						fmt.Fprintln(s.Out, sc.Text())
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			close(errs)
			return joinErrors(errs)
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "stream new lines")
	c.Flags().Int64Var(&tailLines, "tail", -1, "lines of the end of the log to show (-1: all)")
	c.Flags().BoolVar(&requests, "requests", false, "the gateway's access lines for the function: time, method, path, status, duration, pod")
	c.Flags().StringVar(&build, "build", "", "the log of a git build (fn builds NAME lists them; no value: the newest); -f follows it until it ends")
	c.Flags().Lookup("build").NoOptDefVal = "latest"
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

func ctxOf(c *cobra.Command) context.Context {
	if ctx := c.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// scaleReason is the autoscaler's reason for the function's replica count, or "-".
func scaleReason(f *v1alpha1.Function) string {
	if c := f.Status.GetCondition(v1alpha1.FunctionConditionAutoscalerReady); c != nil && c.Reason != "" {
		return c.Reason
	}
	return "-"
}
