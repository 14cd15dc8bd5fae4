package cli

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

func newTriggersCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "triggers",
		Short: "List the Triggers that route events to functions, with their state",
		Long: `List the namespace's Triggers: each routes the CloudEvents published to the gateway's
/events/NAMESPACE that match its filter to a function, as asynchronous calls (fn calls shows
them). A Trigger is Ready when its function exists; REASON says why not.`,
		Example: `  fn triggers create orders --function ship --type order.created
  fn triggers
  curl -X POST http://127.0.0.1:18088/events/default -H 'ce-specversion: 1.0' -H 'ce-id: 1' \
    -H 'ce-source: shop' -H 'ce-type: order.created' -d '{"order":17}'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			list, err := cl.fns.FnkitV1alpha1().Triggers(cl.namespace).List(ctxOf(c), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("listing the Triggers: %w", err)
			}
			if out.structured() {
				for i := range list.Items {
					list.Items[i].ManagedFields = nil
				}
				return out.print(s.Out, list.Items)
			}
			if len(list.Items) == 0 {
				fmt.Fprintf(s.ErrOut, "no Triggers in namespace %s: fn triggers create makes one\n", cl.namespace)
				return nil
			}
			w := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tFUNCTION\tFILTER\tREADY\tREASON\tAGE")
			for _, t := range list.Items {
				ready, reason := "Unknown", ""
				if cond := t.Status.GetCondition("Ready"); cond != nil {
					ready, reason = string(cond.Status), cond.Message
					if reason == "" {
						reason = cond.Reason
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Spec.Function, filterText(t.Spec.Filter), ready, reason, age(t.CreationTimestamp))
			}
			return w.Flush()
		},
	}
	out.add(c)
	cf.add(c)
	cf.complete(c, fa, false)
	c.AddCommand(newTriggersCreateCommand(fa), newTriggersDeleteCommand(fa))
	return c
}

// filterText is a filter as fn triggers shows it: type=order.created source=shop/* ...
func filterText(f v1alpha1.TriggerFilter) string {
	var parts []string
	add := func(m map[string]string, format string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf(format, k, m[k]))
		}
	}
	add(f.Attributes, "%s=%s")
	add(f.Prefix, "%s=%s*")
	add(f.Suffix, "%s=*%s")
	if len(parts) == 0 {
		return "(every event)"
	}
	return strings.Join(parts, " ")
}

func newTriggersCreateCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var function, ceType, source string
	var exact, prefix, suffix []string
	c := &cobra.Command{
		Use:   "create NAME --function FUNCTION [--type TYPE] [--filter ATTR=VALUE]...",
		Short: "Make a Trigger: events matching its filter go to a function",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t := &v1alpha1.Trigger{ObjectMeta: metav1.ObjectMeta{Name: args[0]}, Spec: v1alpha1.TriggerSpec{Function: function}}
			parse := func(flag string, kvs []string) (map[string]string, error) {
				if len(kvs) == 0 {
					return nil, nil
				}
				m := map[string]string{}
				for _, kv := range kvs {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return nil, &UsageError{fmt.Errorf("--%s %q: want ATTRIBUTE=VALUE", flag, kv)}
					}
					m[k] = v
				}
				return m, nil
			}
			var err error
			if t.Spec.Filter.Attributes, err = parse("filter", exact); err != nil {
				return err
			}
			if t.Spec.Filter.Prefix, err = parse("prefix", prefix); err != nil {
				return err
			}
			if t.Spec.Filter.Suffix, err = parse("suffix", suffix); err != nil {
				return err
			}
			for k, v := range map[string]string{"type": ceType, "source": source} {
				if v != "" {
					if t.Spec.Filter.Attributes == nil {
						t.Spec.Filter.Attributes = map[string]string{}
					}
					t.Spec.Filter.Attributes[k] = v
				}
			}
			if function == "" {
				return &UsageError{fmt.Errorf("--function is required: the function that gets the events")}
			}
			if fe := t.Validate(ctxOf(c)); fe != nil {
				return &UsageError{fmt.Errorf("trigger %s: %s", t.Name, strings.ReplaceAll(fe.Error(), "\n", ": "))}
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			if _, err := cl.fns.FnkitV1alpha1().Triggers(cl.namespace).Create(ctxOf(c), t, metav1.CreateOptions{}); err != nil {
				if apierrs.IsAlreadyExists(err) {
					return fmt.Errorf("a Trigger %s exists in namespace %s: fn triggers delete %s first", t.Name, cl.namespace, t.Name)
				}
				return fmt.Errorf("creating Trigger %s: %w", t.Name, err)
			}
			if _, err := getFunction(ctxOf(c), cl, function); err != nil {
				fmt.Fprintf(s.ErrOut, "made Trigger %s, not Ready until there is a function %s: %v\n", t.Name, function, err)
				return nil
			}
			fmt.Fprintf(s.ErrOut, "made Trigger %s: events to /events/%s matching %s go to %s\n", t.Name, cl.namespace, filterText(t.Spec.Filter), function)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&function, "function", "", "the function that gets the matching events")
	f.StringVar(&ceType, "type", "", "match events of this type (the same as --filter type=TYPE)")
	f.StringVar(&source, "source", "", "match events of this source")
	f.StringArrayVar(&exact, "filter", nil, "ATTRIBUTE=VALUE the event's attribute must equal (repeatable)")
	f.StringArrayVar(&prefix, "prefix", nil, "ATTRIBUTE=VALUE the attribute must begin with (repeatable)")
	f.StringArrayVar(&suffix, "suffix", nil, "ATTRIBUTE=VALUE the attribute must end with (repeatable)")
	cf.add(c)
	cf.complete(c, fa, false)
	return c
}

func newTriggersDeleteCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a Trigger",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			if err := cl.fns.FnkitV1alpha1().Triggers(cl.namespace).Delete(ctxOf(c), args[0], metav1.DeleteOptions{}); err != nil {
				if apierrs.IsNotFound(err) {
					return fmt.Errorf("no Trigger %q in namespace %q: fn triggers lists them", args[0], cl.namespace)
				}
				return fmt.Errorf("deleting Trigger %s: %w", args[0], err)
			}
			fmt.Fprintf(s.ErrOut, "deleted Trigger %s\n", args[0])
			return nil
		},
	}
	cf.add(c)
	cf.complete(c, fa, false)
	return c
}
