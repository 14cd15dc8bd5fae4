package cli

import (
	"bufio"
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
type structuredFlag struct{ format string }

func (o *structuredFlag) add(c *cobra.Command) {
	c.Flags().StringVarP(&o.format, "output", "o", "", "output format: json or yaml (default: a table)")
}

func (o *structuredFlag) validate() error {
	switch o.format {
	case "", "json", "yaml":
		return nil
	}
	return &UsageError{fmt.Errorf("unknown output format %q: use -o json or -o yaml", o.format)}
}

// print writes v in the chosen format and reports whether it did.
func (o *structuredFlag) print(w io.Writer, v any) (bool, error) {
	switch o.format {
	case "json":
		return true, printJSON(w, v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	}
	return false, nil
}

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

func newListCommand(s IOStreams) *cobra.Command {
	var cf clusterFlags
	var out structuredFlag
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the functions of a namespace",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			cl, err := cf.connect()
			if err != nil {
				return err
			}
			list, err := cl.fns.FnkitV1alpha1().Functions(cl.namespace).List(ctxOf(c), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("listing functions: %w", err)
			}
			if ok, err := out.print(s.Out, list); ok {
				return err
			}
			sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
			w := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tREADY\tREASON\tREPLICAS\tDESIRED\tSCALE\tURL\tAGE")
			for _, f := range list.Items {
				ready, reason := readyOf(&f)
				url := ""
				if f.Status.URL != nil {
					url = f.Status.URL.String()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", f.Name, ready, reason, f.Status.ReadyReplicas, f.Status.Replicas,
					f.Status.DesiredReplicas, scaleReason(&f), url, age(f.CreationTimestamp))
			}
			return w.Flush()
		},
	}
	cf.add(c)
	out.add(c)
	return c
}

func newDescribeCommand(s IOStreams) *cobra.Command {
	var cf clusterFlags
	var out structuredFlag
	c := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a function's spec, status, conditions and pods",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			cl, err := cf.connect()
			if err != nil {
				return err
			}
			f, err := getFunction(ctxOf(c), cl, args[0])
			if err != nil {
				return err
			}
			if ok, err := out.print(s.Out, f); ok {
				return err
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
			if f.Spec.Timeout != nil {
				fmt.Fprintf(w, "Timeout:\t%s\n", f.Spec.Timeout.Duration)
			}
			if sc := f.Spec.Scale; sc != nil {
				fmt.Fprintf(w, "Scale:\tmetric %s", sc.Metric)
				if sc.Min != nil {
					fmt.Fprintf(w, ", min %d", *sc.Min)
				}
				if sc.Max != nil {
					fmt.Fprintf(w, ", max %d", *sc.Max)
				}
				if sc.Target != nil {
					fmt.Fprintf(w, ", target %d", *sc.Target)
				}
				if sc.Window != nil {
					fmt.Fprintf(w, ", window %s", sc.Window.Duration)
				}
				if sc.ScaleDownDelay != nil {
					fmt.Fprintf(w, ", scale-down delay %s", sc.ScaleDownDelay.Duration)
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, "\nConditions:\nTYPE\tSTATUS\tREASON\tMESSAGE")
			for _, c := range f.Status.Conditions {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
			}
			pods, err := cl.functionPods(ctxOf(c), f.Name)
			if err == nil {
				fmt.Fprintln(w, "\nPods:\nNAME\tPHASE\tREADY\tRESTARTS\tIP\tNODE")
				for _, p := range pods.Items {
					readyN, restarts := 0, int32(0)
					for _, cs := range p.Status.ContainerStatuses {
						if cs.Ready {
							readyN++
						}
						restarts += cs.RestartCount
					}
					fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d\t%s\t%s\n", p.Name, p.Status.Phase, readyN, len(p.Spec.Containers), restarts, p.Status.PodIP, p.Spec.NodeName)
				}
			}
			return w.Flush()
		},
	}
	cf.add(c)
	out.add(c)
	return c
}

func newDeleteCommand(s IOStreams) *cobra.Command {
	var cf clusterFlags
	var wait time.Duration
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a function and everything it runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := cf.connect()
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
	return c
}

func newLogsCommand(s IOStreams) *cobra.Command {
	var cf clusterFlags
	var follow bool
	var tailLines int64
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the logs of a function's pods",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := cf.connect()
			if err != nil {
				return err
			}
			ctx := ctxOf(c)
			f, err := getFunction(ctx, cl, args[0])
			if err != nil {
				return err
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
			var msgs []string
			for err := range errs {
				msgs = append(msgs, err.Error())
			}
			if len(msgs) > 0 {
				return fmt.Errorf("%s", strings.Join(msgs, "; "))
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "stream new lines")
	c.Flags().Int64Var(&tailLines, "tail", -1, "lines of the end of the log to show (-1: all)")
	cf.add(c)
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
