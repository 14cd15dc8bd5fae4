package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"fnkit.dev/fn/platform"
	"fnkit.dev/fn/platform/supervise"
)

func newStatusCommand(s IOStreams) *cobra.Command {
	var out outputFlag
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the local platform's components: running or not, restarts, why they last exited",
		Long: `Show each component of the local platform: etcd, kube-apiserver, the controller manager
and scheduler (started again when they exit, with a growing delay, and given up after 5 exits in
2 minutes), the registry, controller, gateway and builder (processes of their own, supervised
the same way, unless installed as pods), and the node agents. Exits 1 when a component has
failed.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			home, err := fnHome()
			if err != nil {
				return err
			}
			st, err := platform.ReadState(home)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("the local platform is not up: fn up starts it")
			}
			if err != nil {
				return err
			}
			comps, err := platform.ReadStatus(home)
			if err != nil {
				return fmt.Errorf("the local platform (pid %d) reports no status: %w", st.PID, err)
			}
			if out.structured() {
				if err := out.print(s.Out, comps); err != nil {
					return err
				}
			} else {
				printStatus(s.Out, comps.Components, time.Now())
			}
			return failedComponents(comps.Components)
		},
	}
	out.add(c)
	out.yaml = true
	return c
}

// printStatus writes the components as a table.
func printStatus(w io.Writer, comps []supervise.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATE\tPID\tRESTARTS\tSINCE\tLAST EXIT")
	for _, c := range comps {
		pid := "-"
		if c.PID != 0 {
			pid = fmt.Sprint(c.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", c.Name, c.State, pid, c.Restarts, duration.HumanDuration(now.Sub(c.Since)), c.LastExit)
	}
	tw.Flush()
}

// failedComponents is an error naming the failed components, or nil.
func failedComponents(comps []supervise.Status) error {
	var failed []string
	for _, c := range comps {
		if c.State == supervise.Failed {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("failed: %s (see $FN_HOME/logs and $FN_HOME/cluster/logs; fn down and fn up start them again)", strings.Join(failed, ", "))
}
