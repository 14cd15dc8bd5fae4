package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"fnkit.dev/fn/builder"
)

type runOptions struct {
	name        string
	address     string
	port        int
	env         []string
	timeout     time.Duration
	concurrency int
}

func newRunCommand(s IOStreams) *cobra.Command {
	o := &runOptions{}
	c := &cobra.Command{
		Use:   "run [DIR]",
		Short: "Build a function and serve it as a local process, in the foreground",
		Long: `Build the function in DIR (default: the current directory) and serve it on this machine with
the fn runtime, as it would run in its image. Prints the function's URL once it is ready;
Ctrl-C stops it, draining in-flight requests.`,
		Example: `  fn run ./hello --port 18080
  fn run . --env GREETING=hi --timeout 5s`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if net.ParseIP(o.address) == nil {
				return &UsageError{fmt.Errorf("--address %q is not an IP address: use e.g. 127.0.0.1, or 0.0.0.0 for every interface", o.address)}
			}
			if o.port < 1 || o.port > 65535 {
				return &UsageError{fmt.Errorf("--port %d is not a TCP port: use 1-65535", o.port)}
			}
			for _, kv := range o.env {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return &UsageError{fmt.Errorf("--env %q: want NAME=VALUE", kv)}
				}
			}
			return o.run(c.Context(), s, dir)
		},
	}
	c.Flags().StringVar(&o.name, "name", "", "function name (default: the directory's name)")
	c.Flags().StringVar(&o.address, "address", "127.0.0.1", "address to serve on (0.0.0.0: every interface, reachable from other machines)")
	c.Flags().IntVarP(&o.port, "port", "p", 8080, "port to serve on")
	c.Flags().StringArrayVarP(&o.env, "env", "e", nil, "environment variable NAME=VALUE for the function (repeatable)")
	c.Flags().DurationVar(&o.timeout, "timeout", 0, "per-request deadline (FN_TIMEOUT); 0 for none")
	c.Flags().IntVar(&o.concurrency, "concurrency", 0, "maximum in-flight requests (FN_CONCURRENCY); 0 for unlimited")
	return c
}

func (o *runOptions) run(ctx context.Context, s IOStreams, dir string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cache, err := cacheDir()
	if err != nil {
		return err
	}
	if err := portFree(o.address, o.port); err != nil {
		return err
	}
	fn, err := builder.Scaffold(dir, o.name, cache)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Building %s (%s function %s)...\n", fn.Name, fn.Signature.Kind, fn.Signature.Pos)
	start := time.Now()
	bin := filepath.Join(fn.MainDir, "bin", fn.Name)
	if err := fn.BuildBinary(ctx, bin); err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Built in %s. Starting on port %d...\n", time.Since(start).Round(10*time.Millisecond), o.port)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(o.port), "FN_ADDRESS="+o.address)
	if o.timeout > 0 {
		cmd.Env = append(cmd.Env, "FN_TIMEOUT="+o.timeout.String())
	}
	if o.concurrency > 0 {
		cmd.Env = append(cmd.Env, "FN_CONCURRENCY="+strconv.Itoa(o.concurrency))
	}
	cmd.Env = append(cmd.Env, o.env...)
	cmd.Stdout, cmd.Stderr = s.ErrOut, s.ErrOut
	// Its own process group, so a terminal's Ctrl-C reaches fn alone and fn stops the function
	// with SIGTERM; and SIGTERM when fn dies, so no function outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting function %s: %w", fn.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	host := o.address
	if ip := net.ParseIP(host); ip.IsUnspecified() {
		host = "localhost"
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(o.port))
	if err := waitReady(ctx, url+"/_fn/ready", exited); err != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return err
	}
	fmt.Fprintln(s.Out, url)

	select {
	case err := <-exited:
		return fmt.Errorf("function %s exited: %v", fn.Name, err)
	case <-ctx.Done():
	}
	// A second Ctrl-C stops the function at once, whatever it is still finishing.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	fmt.Fprintf(s.ErrOut, "Stopping %s (Ctrl-C again to stop it at once)...\n", fn.Name)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("function %s: %v", fn.Name, err)
		}
		return nil
	case <-again:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("function %s killed: stopped at once by a second interrupt", fn.Name)
	}
}

// portFree fails with a clear message when port is taken.
func portFree(address string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d is in use: stop what serves it or pass --port", port)
	}
	return ln.Close()
}

// waitReady polls url until it answers 200, the process exits, or ctx ends.
func waitReady(ctx context.Context, url string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("function exited before it was ready (%v): see its log above", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("function not ready after 2m: %s never answered 200", url)
		case <-tick.C:
		}
	}
}
