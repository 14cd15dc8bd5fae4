package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"fnkit.dev/fn/events"
)

// gatewayInternal calls one of the gateway's internal endpoints (/_gw/...): the local
// platform's gateway process, or a fn-gateway pod of a cluster through the API server's proxy
// (which its RBAC guards). Any gateway does: they share the event engine.
func gatewayInternal(ctx context.Context, cl *cluster, method, path string) ([]byte, error) {
	if cl.local != nil && cl.local.GatewayInternal != "" {
		req, err := http.NewRequestWithContext(ctx, method, cl.local.GatewayInternal+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("asking the gateway: %w", unwrapURLError(err))
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("the gateway answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		return b, nil
	}
	pods, err := cl.kube.CoreV1().Pods("fn-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=fn-gateway"})
	if err != nil {
		return nil, fmt.Errorf("listing the gateway's pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		b, err := cl.kube.CoreV1().RESTClient().Verb(method).Namespace(p.Namespace).Resource("pods").
			Name(p.Name + ":9090").SubResource("proxy").Suffix(path).DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("asking gateway pod %s: %w", p.Name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("no running fn-gateway pod in namespace fn-system: is fn installed?")
}

type callsOptions struct {
	cluster clusterFlags
	out     outputFlag
	dead    bool
	connect func(*clusterFlags) (*cluster, error)
}

func newCallsCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	o := &callsOptions{connect: fa.Connect, out: outputFlag{yaml: true}}
	c := &cobra.Command{
		Use:   "calls [NAME [ID]]",
		Short: "Show asynchronous calls: queued, retrying, done or dead, with their attempts",
		Long: `Show the asynchronous calls of a function (of every function of the namespace without NAME):
each call's state (queued, retrying, done, dead, failed, resent), attempts, last status and
age. REDELIVERED counts attempts whose outcome a gateway lost because it stopped mid-delivery:
the function may have had that call more than once (each delivery carries Fn-Call-Id, the same
on every attempt). With --dead, the dead letters: calls given up, with their last answer, which
fn calls retry sends again and fn calls purge removes.`,
		Example: `  fn invoke hello --async --key order-17
  fn calls hello
  fn calls hello 42 -o json
  fn calls hello --dead
  fn calls retry hello 42`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.out.validate(); err != nil {
				return err
			}
			if len(args) == 2 {
				if err := events.ParseID(args[1]); err != nil {
					return &UsageError{err}
				}
				if o.dead {
					return &UsageError{fmt.Errorf("--dead lists a function's dead letters: give NAME only")}
				}
			}
			cl, err := o.connect(&o.cluster)
			if err != nil {
				return err
			}
			return o.run(ctxOf(c), s, cl, args)
		},
	}
	c.Flags().BoolVar(&o.dead, "dead", false, "list the dead letters instead, with each one's last answer")
	o.out.add(c)
	o.cluster.add(c)
	o.cluster.complete(c, fa, true)
	c.AddCommand(newCallsRetryCommand(fa), newCallsPurgeCommand(fa))
	return c
}

func (o *callsOptions) run(ctx context.Context, s IOStreams, cl *cluster, args []string) error {
	path := "/_gw/calls/" + cl.namespace
	if o.dead {
		path = "/_gw/dead/" + cl.namespace
	}
	for _, a := range args {
		path += "/" + a
	}
	b, err := gatewayInternal(ctx, cl, http.MethodGet, path)
	if err != nil {
		return err
	}
	switch {
	case o.dead:
		var dls []events.DeadLetter
		if err := json.Unmarshal(b, &dls); err != nil {
			return fmt.Errorf("reading the gateway's answer: %w", err)
		}
		if o.out.structured() {
			return o.out.print(s.Out, dls)
		}
		return printDeadLetters(s.Out, dls, time.Now())
	case len(args) == 2:
		var r events.Record
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("reading the gateway's answer: %w", err)
		}
		if o.out.structured() {
			return o.out.print(s.Out, r)
		}
		return printCalls(s.Out, []events.Record{r}, time.Now())
	}
	var recs []events.Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return fmt.Errorf("reading the gateway's answer: %w", err)
	}
	if o.out.structured() {
		return o.out.print(s.Out, recs)
	}
	if len(recs) == 0 {
		fmt.Fprintf(s.ErrOut, "no asynchronous calls in namespace %s\n", cl.namespace)
		return nil
	}
	if err := printCalls(s.Out, recs, time.Now()); err != nil {
		return err
	}
	fmt.Fprintln(s.ErrOut, callsSummary(recs))
	return nil
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

func printCalls(w io.Writer, recs []events.Record, now time.Time) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFUNCTION\tSTATE\tATTEMPTS\tSTATUS\tREDELIVERED\tAGE\tNOTE")
	for _, r := range recs {
		status := "-"
		if r.Attempts > 0 {
			status = strconv.Itoa(r.Status)
			if r.Status == 0 {
				status = "unreachable"
			}
		}
		note := r.Reason
		switch {
		case r.State == events.StateRetrying && !r.Next.IsZero():
			note = "next in " + duration.HumanDuration(max(r.Next.Sub(now), 0))
		case r.State == events.StateResent:
			note = "sent again as " + r.ResentAs
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.ID, r.Function, r.State, r.Attempts, status, r.Redelivered, since(r.Accepted, now), note)
	}
	return tw.Flush()
}

// callsSummary counts calls by state, and the attempts whose outcome was lost.
func callsSummary(recs []events.Record) string {
	counts := map[events.State]int{}
	redelivered := 0
	for _, r := range recs {
		counts[r.State]++
		redelivered += r.Redelivered
	}
	var parts []string
	for _, st := range []events.State{events.StateQueued, events.StateRetrying, events.StateDone, events.StateDead, events.StateFailed, events.StateResent} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	line := fmt.Sprintf("%d calls: %s", len(recs), strings.Join(parts, ", "))
	if redelivered > 0 {
		line += fmt.Sprintf("; %d redelivered (possible duplicates at the function)", redelivered)
	}
	if len(recs) >= events.MaxList {
		line += fmt.Sprintf(" (the first %d)", events.MaxList)
	}
	return line
}

func printDeadLetters(w io.Writer, dls []events.DeadLetter, now time.Time) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFUNCTION\tATTEMPTS\tSTATUS\tAGE\tREQUEST\tANSWER")
	for _, d := range dls {
		answer := strings.TrimSpace(string(d.Answer.Body))
		if i := strings.IndexByte(answer, '\n'); i >= 0 {
			answer = answer[:i]
		}
		if len(answer) > 60 {
			answer = answer[:57] + "..."
		}
		r := d.Record
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s %s\t%s\n", r.ID, r.Function, r.Attempts, d.Answer.Status, since(r.Accepted, now), d.Request.Method, d.Request.Path, answer)
	}
	return tw.Flush()
}

func newCallsRetryCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var all bool
	c := &cobra.Command{
		Use:   "retry NAME [ID...]",
		Short: "Send dead letters of a function again, as new calls",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name, ids := args[0], args[1:]
			if len(ids) == 0 && !all {
				return &UsageError{fmt.Errorf("name the dead letters to send again (fn calls %s --dead lists them), or give --all", name)}
			}
			for _, id := range ids {
				if err := events.ParseID(id); err != nil {
					return &UsageError{err}
				}
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			ctx := ctxOf(c)
			if all {
				b, err := gatewayInternal(ctx, cl, http.MethodGet, "/_gw/dead/"+cl.namespace+"/"+name)
				if err != nil {
					return err
				}
				var dls []events.DeadLetter
				if err := json.Unmarshal(b, &dls); err != nil {
					return fmt.Errorf("reading the gateway's answer: %w", err)
				}
				for _, d := range dls {
					ids = append(ids, d.Record.ID)
				}
			}
			for _, id := range ids {
				b, err := gatewayInternal(ctx, cl, http.MethodPost, "/_gw/dead/"+cl.namespace+"/"+name+"/"+id+"/resend")
				if err != nil {
					return fmt.Errorf("dead letter %s: %w", id, err)
				}
				var acc struct{ ID string }
				_ = json.Unmarshal(b, &acc)
				fmt.Fprintf(s.Out, "%s\t%s\n", id, acc.ID)
			}
			fmt.Fprintf(s.ErrOut, "sent %d dead letters again (old id, new id); fn calls %s shows them\n", len(ids), name)
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "send every dead letter of the function again")
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

func newCallsPurgeCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	c := &cobra.Command{
		Use:   "purge NAME",
		Short: "Remove a function's dead letters",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			b, err := gatewayInternal(ctxOf(c), cl, http.MethodDelete, "/_gw/dead/"+cl.namespace+"/"+args[0])
			if err != nil {
				return err
			}
			var n struct{ Purged uint64 }
			_ = json.Unmarshal(b, &n)
			fmt.Fprintf(s.Out, "%d\n", n.Purged)
			fmt.Fprintf(s.ErrOut, "removed %d dead letters of %s\n", n.Purged, args[0])
			return nil
		},
	}
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}
