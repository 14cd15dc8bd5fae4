package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"

	"fnkit.dev/fn/platform/agent"
)

// AgentSpec is one node agent of the platform, a process of its own, so that a node can be
// lost alone, as a kubelet can. Started again, it finds its pods on the API server and starts
// them again.
type AgentSpec struct {
	Node, Dir, PodCIDR, Kubeconfig, Registry, Log string
	// LeaseSeconds is the Node's lease duration (0: a kubelet's 40 s).
	LeaseSeconds int
}

func (a *AgentSpec) Name() string { return "agent" }

func (a *AgentSpec) Bind(f *pflag.FlagSet) {
	f.StringVar(&a.Node, "node", a.Node, "the Node's name")
	f.StringVar(&a.Dir, "dir", a.Dir, "state directory")
	f.StringVar(&a.PodCIDR, "pod-cidr", a.PodCIDR, "pod IP range")
	f.StringVar(&a.Kubeconfig, "kubeconfig", a.Kubeconfig, "kubeconfig of the platform's API server")
	f.StringVar(&a.Registry, "registry", a.Registry, "the platform's registry (host:port), pulled from over plain HTTP")
	f.StringVar(&a.Log, "log", a.Log, "log file")
	f.IntVar(&a.LeaseSeconds, "lease-seconds", a.LeaseSeconds, "the Node's lease duration (0: 40 s, a kubelet's)")
}

// Run runs the node agent until ctx is done.
func (a *AgentSpec) Run(ctx context.Context) error {
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
