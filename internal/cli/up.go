package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"fnkit.dev/fn/install"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"fnkit.dev/fn/gitbuild"
	"fnkit.dev/fn/platform"
	"fnkit.dev/fn/platform/controlplane"
)

func newUpCommand(s IOStreams) *cobra.Command {
	out := outputFlag{yaml: true}
	nodes := 1
	var installMode bool
	var source string
	c := &cobra.Command{
		Use:   "up",
		Short: "Start the local platform: a real Kubernetes control plane, registry, gateway and node agent",
		Long: `Start fn's local platform on this machine, on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler (built from source once and cached), the embedded
registry, the fn controller, the gateway, the builder and node agents that run pods as processes
(--nodes of them, each a Node of its own). Its state lives in $FN_HOME (default ~/.fn). Running
it again when it is up changes nothing.

With --install the controller and gateway run as pods on the node agents instead, installed as
fn install does (images built from the checkout of fn at --source), the gateway reached through
a load balancer on the same address: the platform is then a cluster as any other.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if nodes < 1 || nodes > platform.MaxNodes {
				return &UsageError{fmt.Errorf("--nodes %d: want 1 to %d", nodes, platform.MaxNodes)}
			}
			var args []string
			if installMode {
				if source == "" {
					wd, _ := os.Getwd()
					source = install.FindSource(wd)
				}
				if err := install.CheckSource(source); err != nil {
					return err
				}
				source, _ = filepath.Abs(source)
				args = []string{"--install", "--source", source}
			}
			return runUp(c.Context(), s, out, nodes, c.Flags().Changed("nodes"), args)
		},
	}
	c.Flags().IntVar(&nodes, "nodes", 1, "how many node agents (Nodes) to run (unset: as many as the last fn up)")
	c.Flags().BoolVar(&installMode, "install", false, "run the controller and gateway as pods, installed as fn install does")
	c.Flags().StringVar(&source, "source", "", "with --install: a checkout of fn to build the images from (default: the one holding the working directory)")
	out.add(c)
	return c
}

func runUp(ctx context.Context, s IOStreams, out outputFlag, nodes int, nodesSet bool, extra []string) error {
	home, err := fnHome()
	if err != nil {
		return err
	}
	st, err := platform.ReadState(home)
	if err == nil {
		if nodesSet && len(st.Nodes) != nodes {
			return fmt.Errorf("the local platform is up with %d node(s), not %d: fn down, then fn up --nodes %d", len(st.Nodes), nodes, nodes)
		}
		if install := len(extra) > 0; install && !st.Install {
			return fmt.Errorf("the local platform is up with fn's components as its own processes, not as pods: fn down, then fn up --install")
		}
		fmt.Fprintln(s.ErrOut, "The local platform is already up.")
		if comps, err := platform.ReadStatus(home); err == nil {
			printStatus(s.ErrOut, comps.Components, time.Now())
		}
		return printPlatform(s, st, out)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// A platform still starting, or one that crashed: its pid file tells.
	if pid := readPID(platform.PIDPath(home)); platform.Alive(pid) {
		return fmt.Errorf("a platform (pid %d) is starting or stopping in %s: wait, or fn down", pid, home)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	// A platform brought down comes back as it was: with as many nodes as its last fn up.
	if n, ok := rememberedNodes(home); ok && !nodesSet && n != nodes {
		fmt.Fprintf(s.ErrOut, "Starting %d nodes, as the last fn up did (--nodes changes it).\n", n)
		nodes = n
	}
	if err := rememberNodes(home, nodes); err != nil {
		return err
	}
	start := time.Now()
	bin, err := controlplane.BinDir(ctx, s.ErrOut)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home+"/logs", 0o755); err != nil {
		return err
	}
	logPath := platform.LogPath(home)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"internal", "platform", "--home", home, "--bin", bin, "--nodes", strconv.Itoa(nodes)}, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives fn up, apart from the terminal
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the platform: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Show the platform's progress while waiting for it to be ready.
	follow, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go tail(follow, logPath, s.ErrOut)
	for {
		if st, err := platform.ReadState(home); err == nil {
			stopFollow()
			fmt.Fprintf(s.ErrOut, "The local platform is up (%s).\n", time.Since(start).Round(10*time.Millisecond))
			return printPlatform(s, st, out)
		}
		select {
		case err := <-exited:
			stopFollow()
			return fmt.Errorf("the platform stopped while starting (%v): %s (full log: %s)", err, lastLine(logPath), logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printPlatform(s IOStreams, st *platform.State, out outputFlag) error {
	if out.structured() {
		return out.print(s.Out, st)
	}
	fmt.Fprintf(s.Out, "kubeconfig: %s\nregistry:   %s\ngateway:    %s\n", st.Kubeconfig, st.Registry, st.Gateway)
	if st.Builder != "" {
		fmt.Fprintf(s.Out, "builder:    %s (git remotes: fn remote NAME)\n", st.Builder)
	}
	if len(st.Nodes) > 1 {
		fmt.Fprintf(s.Out, "nodes:      %s\n", strings.Join(st.Nodes, ", "))
	}
	fmt.Fprintf(s.ErrOut, "Use kubectl with: export KUBECONFIG=%s (kubectl is at %s)\nNext: fn deploy ./examples/hello && fn invoke hello\n", st.Kubeconfig, st.KubectlBin)
	return nil
}

// tail copies the lines appended to path to w until ctx is done.
func tail(ctx context.Context, path string, w io.Writer) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for ctx.Err() == nil {
		line, err := r.ReadString('\n')
		if len(line) > 0 && strings.HasSuffix(line, "\n") {
			fmt.Fprint(w, "  "+line)
			continue
		}
		if err != nil {
			time.Sleep(30 * time.Millisecond)
		}
	}
}

// lastLine returns the last non-empty line of the file at path: the error a platform that
// stopped while starting printed.
func lastLine(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "no log"
	}
	return strings.TrimPrefix(strings.TrimSpace(platform.LastLine(path)), "fn: ")
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func newDownCommand(s IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop the local platform and everything it runs",
		Long:  "Stop the local platform: functions, agent, gateway, controller, registry and control plane. Its data stays in $FN_HOME for the next fn up.",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			home, err := fnHome()
			if err != nil {
				return err
			}
			pid := readPID(platform.PIDPath(home))
			if !platform.Alive(pid) {
				_ = os.Remove(platform.StatePath(home))
				_ = os.Remove(platform.PIDPath(home))
				fmt.Fprintln(s.ErrOut, "The local platform is not running.")
				return nil
			}
			fmt.Fprintf(s.ErrOut, "Stopping the local platform (pid %d)...\n", pid)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(90 * time.Second)
			for platform.Alive(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if platform.Alive(pid) {
				fmt.Fprintln(s.ErrOut, "It did not stop within 90s: killing it (its components die with it).")
				_ = syscall.Kill(pid, syscall.SIGKILL)
				for i := 0; platform.Alive(pid) && i < 100; i++ {
					time.Sleep(50 * time.Millisecond)
				}
			}
			_ = os.Remove(platform.StatePath(home))
			fmt.Fprintln(s.ErrOut, "The local platform is down.")
			return nil
		},
	}
}

// newInternalCommand holds the commands fn runs itself, hidden from help.
func newInternalCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	c := &cobra.Command{Use: "internal", Hidden: true}
	var home, bin, source string
	var installMode bool
	nodes := 1
	p := &cobra.Command{
		Use:   "platform",
		Short: "Run the local platform in the foreground (fn up starts it)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg := platform.DefaultConfig(home)
			cfg.BinDir, cfg.Nodes, cfg.Install, cfg.Source = bin, nodes, installMode, source
			serveDebug(ctx, s, platform.DebugSocketPath(home, "platform"))
			return platform.Serve(ctx, cfg, s.ErrOut)
		},
	}
	p.Flags().StringVar(&home, "home", "", "state directory")
	p.Flags().StringVar(&bin, "bin", "", "Kubernetes binaries directory")
	p.Flags().IntVar(&nodes, "nodes", 1, "node agents")
	p.Flags().BoolVar(&installMode, "install", false, "run fn's components as pods")
	p.Flags().StringVar(&source, "source", "", "checkout of fn the components are built from")
	hook := &cobra.Command{
		Use:   "git-hook",
		Short: "The built-in git remote's pre-receive hook (git runs it)",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			os.Exit(gitbuild.RunHook(s.In, s.Out, os.Getenv))
		},
	}
	c.AddCommand(p, hook, newGitCredentialCommand(fa))
	for _, comp := range platform.Components() {
		c.AddCommand(newComponentCommand(s, comp))
	}
	return c
}

// newComponentCommand runs one component of the local platform as fn up runs it, a process
// of its own under the platform's supervision.
func newComponentCommand(s IOStreams, c platform.Component) *cobra.Command {
	var debug string
	cmd := &cobra.Command{
		Use:   c.Name(),
		Short: "Run the local platform's " + c.Name() + " (fn up starts it)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			serveDebug(ctx, s, debug)
			return c.Run(ctx)
		},
	}
	c.Bind(cmd.Flags())
	cmd.Flags().StringVar(&debug, "debug-socket", "", "serve Go's profiles on this unix socket")
	return cmd
}

// serveDebug serves the process's profiles on the unix socket at path, if given; without them
// it runs on, and says why.
func serveDebug(ctx context.Context, s IOStreams, path string) {
	if path == "" {
		return
	}
	if err := platform.ServeDebug(ctx, path); err != nil {
		fmt.Fprintf(s.ErrOut, "fn: no profiles: %v\n", err)
	}
}

// nodesFile holds the node count of the last fn up in FN_HOME.
func nodesFile(home string) string { return filepath.Join(home, "nodes") }

// rememberedNodes is the node count of the last fn up in home, if it left a valid one.
func rememberedNodes(home string) (int, bool) {
	b, err := os.ReadFile(nodesFile(home))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 || n > platform.MaxNodes {
		return 0, false
	}
	return n, true
}

// rememberNodes records n as the node count of the platform in home.
func rememberNodes(home string, n int) error {
	return os.WriteFile(nodesFile(home), []byte(strconv.Itoa(n)+"\n"), 0o644)
}
