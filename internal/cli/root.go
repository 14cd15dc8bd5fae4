package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"fnkit.dev/fn/builder"

	"fnkit.dev/fn/platform"
	"github.com/spf13/cobra"
)

// IOStreams are the command's standard streams; tests replace them.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer // results
	ErrOut io.Writer // progress, logs and errors
}

// SystemStreams are the process's standard streams.
func SystemStreams() IOStreams { return IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// Version reports fn's version.
func Version() string { return builder.Version() }

// Factory gives commands what they share: the streams, and the cluster their flags choose.
// Tests make one with fake clientsets.
type Factory struct {
	IOStreams
	// Connect finds the cluster and namespace the flags choose.
	Connect func(*clusterFlags) (*cluster, error)
}

// NewFactory is the Factory of a real run: clusters from the kubeconfig or the local platform.
func NewFactory(s IOStreams) *Factory {
	return &Factory{IOStreams: s, Connect: (*clusterFlags).connect}
}

// NewRootCommand returns the fn command.
func NewRootCommand(s IOStreams) *cobra.Command { return newRootCommand(NewFactory(s)) }

func newRootCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	root := &cobra.Command{
		Use:   "fn",
		Short: "Turn a Go function into a running, autoscaled service",
		Long: `fn turns a plain Go function into a running, autoscaled service on Kubernetes.

  fn init hello            write a new function
  fn run hello             serve it as a local process, no cluster
  fn up                    start the local platform (a real control plane, no Docker)
  fn deploy ./hello        build it with ko, push it, run it, print its URL
  fn invoke hello          call it over HTTP, or --cloudevent
  fn remote hello --add    git push fn main: build and deploy on push

fn finds its cluster by --kubeconfig/--context, else the local platform when it is up, else
$KUBECONFIG or ~/.kube/config.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(
		newInitCommand(s),
		newBuildCommand(s),
		newRunCommand(s),
		newRegistryCommand(s),
		newInvokeCommand(fa),
		newVersionCommand(s),
		newUpCommand(s),
		newDownCommand(s),
		newStatusCommand(s),
		newDeployCommand(fa),
		newRevisionsCommand(fa),
		newRollbackCommand(fa),
		newRolloutCommand(fa),
		newConfigCommand(s),
		newListCommand(fa),
		newDescribeCommand(fa),
		newLogsCommand(fa),
		newBuildsCommand(fa),
		newRemoteCommand(fa),
		newTokenCommand(fa),
		newTopCommand(fa),
		newCallsCommand(fa),
		newTriggersCommand(fa),
		newDeleteCommand(fa),
		newInstallCommand(fa),
		newUninstallCommand(fa),
		newInternalCommand(fa),
	)
	usageArgs(root)
	return root
}

// usageArgs makes a wrong number of arguments a UsageError (exit 2), in every command.
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return &UsageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// UsageError is a command line that cannot be run as given; fn exits 2 for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Main runs fn with args and returns the process exit code.
func Main(ctx context.Context, args []string, s IOStreams) int {
	return run(ctx, args, NewFactory(s))
}

// run runs fn with args and the factory's streams and clusters, and returns the exit code.
func run(ctx context.Context, args []string, fa *Factory) int {
	s := fa.IOStreams
	root := newRootCommand(fa)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if msg, ok := unknownCommand(err); ok {
		fmt.Fprintf(s.ErrOut, "fn: %s\n", msg)
		return 2
	}
	fmt.Fprintf(s.ErrOut, "fn: %v\n", err)
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// unknownCommand puts cobra's several lines for an unknown command (with its suggestions) on one.
func unknownCommand(err error) (string, bool) {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	if !strings.HasPrefix(lines[0], "unknown command ") {
		return "", false
	}
	var suggestions []string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "\t") {
			suggestions = append(suggestions, strings.TrimSpace(l))
		}
	}
	msg := strings.TrimSuffix(lines[0], ".")
	if len(suggestions) > 0 {
		return msg + " (did you mean " + strings.Join(suggestions, " or ") + "?)", true
	}
	return msg + " (see fn --help)", true
}

// cacheDir is where fn keeps generated build modules and unpacked runtime source.
func cacheDir() (string, error) { return platform.CacheDir() }

// outputFlag is the -o flag of commands with structured output: json, and yaml where the
// command sets yaml (commands that stream JSON lines do not).
type outputFlag struct {
	format string
	yaml   bool
}

func (o *outputFlag) add(c *cobra.Command) {
	formats := "json"
	if o.yaml {
		formats = "json or yaml"
	}
	c.Flags().StringVarP(&o.format, "output", "o", "", "output format: "+formats+" (default: human-readable)")
}

func (o *outputFlag) validate() error {
	switch {
	case o.format == "", o.format == "json", o.format == "yaml" && o.yaml:
		return nil
	case o.yaml:
		return &UsageError{fmt.Errorf("unknown output format %q: use -o json or -o yaml", o.format)}
	}
	return &UsageError{fmt.Errorf("unknown output format %q: use -o json", o.format)}
}

func (o *outputFlag) json() bool { return o.format == "json" }

// structured reports whether -o asks for JSON or YAML; print writes v so.
func (o *outputFlag) structured() bool { return o.format != "" }

func (o *outputFlag) print(w io.Writer, v any) error { return printAs(w, o.format, v) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newVersionCommand(s IOStreams) *cobra.Command {
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print fn's version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			v := map[string]string{"version": Version(), "go": goVersion()}
			if out.structured() {
				return out.print(s.Out, v)
			}
			fmt.Fprintf(s.Out, "fn %s (%s)\n", v["version"], v["go"])
			return nil
		},
	}
	out.add(c)
	return c
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}
