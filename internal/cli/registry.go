package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"fnkit.dev/fn/registry"
)

type registryOptions struct {
	addr     string
	root     string
	htpasswd string
}

func newRegistryCommand(s IOStreams) *cobra.Command {
	o := &registryOptions{}
	c := &cobra.Command{
		Use:   "registry",
		Short: "Run an OCI registry in the foreground",
		Long: `Run a real OCI registry (CNCF distribution, filesystem storage) in the foreground. Images
survive restarts. On loopback (the default) it takes anyone; beyond it, --htpasswd is required:
every request then authenticates as one of the file's users (bcrypt entries: htpasswd -B), so
that nobody else may push what functions run. Put TLS in front of it: basic credentials travel
in the clear otherwise. Prints its address once it listens; Ctrl-C stops it.`,
		Example: `  fn registry --addr 127.0.0.1:5000 --root ~/.fn/registry
  fn build ./hello --registry 127.0.0.1:5000/fns`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, _, err := net.SplitHostPort(o.addr); err != nil {
				return &UsageError{fmt.Errorf("--addr %q: want HOST:PORT, e.g. 127.0.0.1:5000", o.addr)}
			}
			if !registry.IsLoopback(o.addr) && o.htpasswd == "" {
				return &UsageError{fmt.Errorf("--addr %s listens beyond loopback, where anyone could push what functions run: pass --htpasswd FILE (users made with htpasswd -B), or listen on 127.0.0.1", o.addr)}
			}
			if o.htpasswd != "" {
				if _, err := os.Stat(o.htpasswd); err != nil {
					return &UsageError{fmt.Errorf("--htpasswd %s: %v (make it with htpasswd -B -c FILE USER)", o.htpasswd, err)}
				}
			}
			return o.run(c.Context(), s)
		},
	}
	c.Flags().StringVar(&o.addr, "addr", "127.0.0.1:5000", "address to listen on")
	c.Flags().StringVar(&o.htpasswd, "htpasswd", "", "require authentication as a user of this htpasswd file (bcrypt); required beyond loopback")
	c.Flags().StringVar(&o.root, "root", "", "directory to store images in (default: $FN_HOME/registry, FN_HOME defaulting to ~/.fn)")
	return c
}

func (o *registryOptions) run(ctx context.Context, s IOStreams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := o.root
	if root == "" {
		home, err := fnHome()
		if err != nil {
			return err
		}
		root = filepath.Join(home, "registry")
	}
	var opts []registry.Option
	if o.htpasswd != "" {
		opts = append(opts, registry.WithHtpasswd(o.htpasswd))
	}
	reg, err := registry.New(ctx, root, opts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("registry cannot listen on %s: %v (pass a free --addr)", o.addr, err)
	}
	fmt.Fprintf(s.ErrOut, "Serving an OCI registry on http://%s, storing images in %s. Ctrl-C stops it.\n", ln.Addr(), root)
	fmt.Fprintln(s.Out, ln.Addr().String())
	return reg.Serve(ctx, ln)
}

// fnHome is the directory of fn's local state: $FN_HOME, else ~/.fn.
func fnHome() (string, error) {
	if h := os.Getenv("FN_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory: %w (set FN_HOME)", err)
	}
	return filepath.Join(home, ".fn"), nil
}
