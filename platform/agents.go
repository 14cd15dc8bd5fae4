package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"fnkit.dev/fn/platform/agent"
	"fnkit.dev/fn/platform/supervise"
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

// startAgentProcess starts the agent's process under supervision: started again when it
// exits (its pods with it: it finds them on the API server and starts them again), once
// Supervise is called. The process dies with the platform (SIGKILL as its parent-death
// signal); Stop(agentStopWait) stops it with SIGTERM (its pods stop gracefully), and SIGKILL
// past that.
func startAgentProcess(exe []string, a AgentSpec, notify func(supervise.Status, string)) (*supervise.Process, error) {
	command := func() *exec.Cmd {
		cmd := exec.Command(exe[0], append(exe[1:], a.Args()...)...)
		cmd.Env = os.Environ()
		return cmd
	}
	p, err := supervise.Start("agent "+a.Node, command, supervise.DefaultPolicy, notify)
	if err != nil {
		return nil, fmt.Errorf("starting the agent of node %s: %w", a.Node, err)
	}
	return p, nil
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
