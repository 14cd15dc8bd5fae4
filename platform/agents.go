package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"fnkit.dev/fn/platform/agent"
)

// AgentSpec is one node agent of the platform, run as a process of its own (fn's "internal
// agent"), so that a node can be lost alone, as a kubelet can.
type AgentSpec struct {
	Node, Dir, PodCIDR, Kubeconfig, Registry, Log string
	// LeaseSeconds is the Node's lease duration (0: a kubelet's 40 s).
	LeaseSeconds int
}

// Args are the agent's command line after the executable.
func (a AgentSpec) Args() []string {
	return []string{"internal", "agent", "--node", a.Node, "--dir", a.Dir, "--pod-cidr", a.PodCIDR,
		"--kubeconfig", a.Kubeconfig, "--registry", a.Registry, "--log", a.Log, "--lease-seconds", strconv.Itoa(a.LeaseSeconds)}
}

// agentStopWait bounds how long a stopping agent may take to stop its pods.
const agentStopWait = 45 * time.Second

// runAgentProcess runs the agent's process until ctx is done, then stops it with SIGTERM (its
// pods stop gracefully), and SIGKILL past agentStopWait. It returns when the process has
// exited; an exit before ctx is done is an error. The process dies with the platform: it is
// started from a locked thread that lives until it exits, with SIGKILL as its parent-death
// signal.
func runAgentProcess(ctx context.Context, exe []string, a AgentSpec, started func(pid int)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // Pdeathsig is the forking thread's: it must outlive the child
		cmd := exec.Command(exe[0], append(exe[1:], a.Args()...)...)
		cmd.Env = os.Environ()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			errc <- fmt.Errorf("starting the agent of node %s: %w", a.Node, err)
			return
		}
		started(cmd.Process.Pid)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("exited")
			}
			errc <- fmt.Errorf("the agent of node %s stopped: %w (see %s)", a.Node, err, a.Log)
			return
		case <-ctx.Done():
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(agentStopWait):
			_ = cmd.Process.Kill()
			<-done
		}
		errc <- nil
	}()
	return <-errc
}

// RunAgent runs the node agent a describes until ctx is done: fn's "internal agent".
func RunAgent(ctx context.Context, a AgentSpec) error {
	if a.Node == "" || a.Dir == "" || a.Kubeconfig == "" || a.Log == "" {
		return errors.New("agent: --node, --dir, --kubeconfig and --log are required")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", a.Kubeconfig)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	lf, err := os.OpenFile(a.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	var insecure []string
	if a.Registry != "" {
		insecure = []string{a.Registry}
	}
	return agent.Run(ctx, agent.Options{NodeName: a.Node, RESTConfig: rc, StateDir: a.Dir, PodCIDR: a.PodCIDR, LeaseSeconds: int32(a.LeaseSeconds),
		InsecureRegistries: insecure, Logger: slog.New(slog.NewJSONHandler(lf, nil))})
}
