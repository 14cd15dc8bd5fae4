package agent

import (
	"log/slog"
	"path/filepath"

	"k8s.io/client-go/rest"
)

// Options configure the node agent.
type Options struct {
	// NodeName is the name of the Node the agent registers.
	NodeName string
	// RESTConfig reaches the API server.
	RESTConfig *rest.Config
	// StateDir holds the agent's state: the image cache, the pods' root directories and
	// volumes, and the containers' logs. Whatever a previous run left there is cleaned up on
	// start, except the image cache.
	StateDir string
	// PodCIDR is the range pod IPs are allocated from (default 10.244.0.0/16). Its first
	// address (.1) is the pods' gateway: the host as the pods see it.
	PodCIDR string
	// InsecureRegistries are registries (host:port) images may be pulled from over plain
	// HTTP. Loopback registries always may.
	InsecureRegistries []string
	// LeaseSeconds is the Node's lease duration (default 40, as a kubelet's); the agent renews
	// it every quarter of it. A control plane that notices a lost node sooner needs it shorter.
	LeaseSeconds int32
	// Logger receives the agent's logs (default: discarded).
	Logger *slog.Logger
}

// DefaultPodCIDR is the pod range used when Options.PodCIDR is empty.
const DefaultPodCIDR = "10.244.0.0/16"

// LogPath is the file holding the logs of the current (or last) instance of a container:
// its stdout and stderr, one line per entry in the CRI log format kubelets write:
//
//	2026-01-02T15:04:05.123456789Z stdout F the line
//
// where F marks a full line and P a part of a longer one. The previous instance's logs are
// beside it, in PreviousLogPath. Both are removed with the pod.
func LogPath(stateDir, namespace, pod, container string) string {
	return filepath.Join(stateDir, "logs", namespace, pod, container+".log")
}

// PreviousLogPath is the file holding the logs of the previous instance of a container, once
// it restarted.
func PreviousLogPath(stateDir, namespace, pod, container string) string {
	return filepath.Join(stateDir, "logs", namespace, pod, container+".previous.log")
}
