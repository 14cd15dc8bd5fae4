package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	fncontroller "fnkit.dev/fn/controller"
	"fnkit.dev/fn/controller/autoscaler"
	"fnkit.dev/fn/gitbuild"
	"fnkit.dev/fn/install"
	"fnkit.dev/fn/internal/diskspace"
	"fnkit.dev/fn/platform/agent"
	"fnkit.dev/fn/platform/controlplane"
	"fnkit.dev/fn/platform/supervise"
)

// Config is the local platform's configuration.
type Config struct {
	// Home holds all of the platform's state ($FN_HOME, default ~/.fn).
	Home string
	// Ports on 127.0.0.1.
	APIServerPort, EtcdPort, EtcdPeerPort, RegistryPort, GatewayPort, MetricsServerPort, BuilderPort int
	// GatewayInternalPort serves the gateway's own health and metrics, apart from functions;
	// AutoscalerPort takes the gateway's load reports.
	GatewayInternalPort, AutoscalerPort int
	// EventsPort is the event engine's (NATS clients'); EventsMonitorPort its monitoring's.
	EventsPort, EventsMonitorPort int
	// Domain is the domain of functions' host names at the gateway.
	Domain string
	// BinDir holds the Kubernetes binaries.
	BinDir string
	// Nodes is how many node agents run, each a Node of its own (default 1).
	Nodes int
	// Command runs a component given ComponentArgs (default: this executable, as fn has it).
	Command []string
	// Install runs fn's controller, gateway and builder as pods on the agents, installed as fn
	// install does from the checkout of fn at Source, instead of as the platform's processes; the
	// gateway is reached through a load balancer on GatewayPort, the builder (on the host's
	// network) at BuilderPort.
	Install bool
	Source  string
}

// DefaultConfig returns the configuration of a platform with its state in home.
func DefaultConfig(home string) Config {
	return Config{Home: home, APIServerPort: 16443, EtcdPort: 12379, EtcdPeerPort: 12380, RegistryPort: 15000, GatewayPort: 18088, MetricsServerPort: 14443, BuilderPort: 18089, GatewayInternalPort: 18090, AutoscalerPort: 18091, EventsPort: 14222, EventsMonitorPort: 18092, Domain: "fn.local"}
}

// NodeName is the name of the first agent's Node.
const NodeName = "fn-local"

// NodeNames are the Nodes of a platform of n agents: fn-local, fn-local-2, fn-local-3...
func NodeNames(n int) []string {
	names := []string{NodeName}
	for i := 2; i <= n; i++ {
		names = append(names, fmt.Sprintf("%s-%d", NodeName, i))
	}
	return names
}

// nodePodCIDR is the pod range of the i-th agent (from 0): 10.244.i.0/24, 254 pods each.
func nodePodCIDR(i int) string { return fmt.Sprintf("10.244.%d.0/24", i) }

// kubernetesServiceIP is the kubernetes Service's ClusterIP: the first of the control plane's
// service range (10.96.0.0/16), which the agents serve on loopback for pods.
var kubernetesServiceIP = net.IPv4(10, 96, 0, 1)

// NodeLossGrace is how soon the local platform notices a lost node (its agent stopped) and
// how long pods tolerate it before they are replaced elsewhere: 10 s each, where upstream
// waits 50 s and 300 s. Agents renew their lease every 2 s (agentLeaseSeconds / 4), so a
// node that lives is never taken for lost.
const NodeLossGrace = 10 * time.Second

const agentLeaseSeconds = 8

// MaxNodes bounds fn up --nodes (each node a /24 of 10.244.0.0/16).
const MaxNodes = 16

// State describes a running platform; Serve writes it to Home/platform.json once it is ready.
type State struct {
	PID        int    `json:"pid"`
	Kubeconfig string `json:"kubeconfig"`
	Registry   string `json:"registry"`
	Gateway    string `json:"gateway"`
	// GatewayMetrics is the gateway process's metrics URL; empty when gateways run as pods.
	GatewayMetrics string `json:"gatewayMetrics,omitempty"`
	// GatewayInternal is the gateway process's internal base URL (its /_gw/ endpoints);
	// empty when gateways run as pods.
	GatewayInternal string `json:"gatewayInternal,omitempty"`
	// Events is the event engine's URL.
	Events     string   `json:"events,omitempty"`
	Builder    string   `json:"builder"`
	KubectlBin string   `json:"kubectl"`
	AgentDir   string   `json:"agentDir"`
	Nodes      []string `json:"nodes"`
	// Install is set when fn's components run as pods (fn up --install).
	Install bool      `json:"install,omitempty"`
	Started time.Time `json:"started"`
}

// StatePath is where a running platform's State is.
func StatePath(home string) string { return filepath.Join(home, "platform.json") }

// PIDPath holds the pid of the platform's process while it runs.
func PIDPath(home string) string { return filepath.Join(home, "platform.pid") }

// LogPath is the platform's log.
func LogPath(home string) string { return ComponentLogPath(home, "platform") }

// ComponentLogPath is the log of one of the platform's components: gateway, controller, agent...
// The gateway's holds its access lines.
func ComponentLogPath(home, name string) string { return filepath.Join(home, "logs", name+".log") }

// ReadState returns the state of the platform running with its state in home, or an error
// wrapping fs.ErrNotExist when none runs (a state left by a crashed platform is not running).
func ReadState(home string) (*State, error) {
	b, err := os.ReadFile(StatePath(home))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", StatePath(home), err)
	}
	if !Alive(s.PID) {
		return nil, fmt.Errorf("the platform of %s is not running (pid %d gone): %w", home, s.PID, fs.ErrNotExist)
	}
	return &s, nil
}

// Alive reports whether a process with pid runs. A zombie does not: a platform killed outright
// is reparented and, where nothing reaps orphans, stays a zombie that kill(pid, 0) still finds.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs: kill's answer stands
	}
	// The state follows the command name, which is in parentheses and may contain anything.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// Serve runs the platform until ctx is done, then stops everything in order: the agent (and so
// the functions), the gateway, the controller, the registry, the control plane. Progress lines go
// to progress; the components' logs go to Home/logs.
func Serve(ctx context.Context, cfg Config, progress io.Writer) (err error) {
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(progress, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	for _, d := range []string{cfg.Home, filepath.Join(cfg.Home, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	_ = os.Remove(StatePath(cfg.Home))
	if err := os.WriteFile(PIDPath(cfg.Home), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	defer os.Remove(PIDPath(cfg.Home))
	defer os.Remove(StatePath(cfg.Home))

	ports := []int{cfg.APIServerPort, cfg.EtcdPort, cfg.EtcdPeerPort, cfg.RegistryPort, cfg.GatewayPort, cfg.BuilderPort, cfg.GatewayInternalPort, cfg.AutoscalerPort, cfg.EventsPort, cfg.EventsMonitorPort}
	if cfg.MetricsServerPort != 0 {
		ports = append(ports, cfg.MetricsServerPort)
	}
	if err := waitPortsFree(ctx, ports, cfg.Home, platformExecutables(cfg), progress); err != nil {
		return err
	}
	_ = os.Remove(StatusPath(cfg.Home))
	defer os.Remove(StatusPath(cfg.Home))
	board := newStatusBoard(cfg.Home, step)
	step("starting the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)")
	cp, err := controlplane.Start(ctx, controlplane.Options{
		Dir: filepath.Join(cfg.Home, "cluster"), BinDir: cfg.BinDir, Controllers: []string{"*"}, Scheduler: true,
		APIServerPort: cfg.APIServerPort, EtcdPort: cfg.EtcdPort, EtcdPeerPort: cfg.EtcdPeerPort,
		NodeLossGrace: NodeLossGrace, GOGC: localGOGC(), Notify: board.update,
	})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the control plane")
		if serr := cp.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	for _, st := range cp.Statuses() {
		board.update(st, "")
	}
	rc := cp.RESTConfig()
	kube := kubernetes.NewForConfigOrDie(rc)
	// Pods of the default namespace need its service account; the controller manager's
	// service-account controller takes seconds to create it, so create it now.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}
	if _, err := kube.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrs.IsAlreadyExists(err) {
		return fmt.Errorf("creating the default service account: %w", err)
	}

	// Components run until stop is cancelled; they are stopped before the control plane.
	compCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var logs []io.Closer // closed once the components are stopped, so no line is lost
	defer func() {
		stop()
		wg.Wait()
		// The agents held the kubernetes Service's ClusterIP on loopback; none runs now.
		_ = agent.RemoveLoopbackAddr(kubernetesServiceIP)
		for i := len(logs) - 1; i >= 0; i-- {
			_ = logs[i].Close()
		}
	}()
	errs := make(chan error, 4+max(cfg.Nodes, 1))
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && compCtx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	exe := cfg.Command
	if len(exe) == 0 {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		exe = []string{self}
	}
	comps := &components{exe: exe, home: cfg.Home, notify: board.update, step: step}
	defer comps.stop()
	launch := func(name string, c Component, addr, url string) (func() error, error) {
		return comps.launch(ctx, compCtx, name, c, addr, url)
	}

	// The components start together (none needs another to start) and are waited for together.
	regAddr := fmt.Sprintf("127.0.0.1:%d", cfg.RegistryPort)
	step("starting the registry on %s", regAddr)
	registryServes, err := launch("registry", &RegistrySpec{Dir: filepath.Join(cfg.Home, "registry"), Addr: regAddr, ListenFD: 3}, regAddr, "http://"+regAddr+"/v2/")
	if err != nil {
		return err
	}
	serving := []func() error{registryServes}
	eventsURL := fmt.Sprintf("nats://127.0.0.1:%d", cfg.EventsPort)
	eventsMonitor := fmt.Sprintf("127.0.0.1:%d", cfg.EventsMonitorPort)
	step("starting the event engine on %s", eventsURL)
	eventsServes, err := launch("events", &EventsSpec{Dir: filepath.Join(cfg.Home, "events"), Addr: fmt.Sprintf("127.0.0.1:%d", cfg.EventsPort),
		MonitorAddr: eventsMonitor}, "", "http://"+eventsMonitor+"/healthz")
	if err != nil {
		return err
	}
	serving = append(serving, eventsServes)

	gatewayURL := fmt.Sprintf("http://127.0.0.1:%d", cfg.GatewayPort)
	step("installing fn's CRDs")
	if err := fncontroller.InstallCRD(ctx, rc); err != nil {
		return err
	}
	// The autoscaler's Lease and configuration live in fn-system; a platform restarted after a
	// crash takes its own lease back at once (same identity).
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: autoscaler.DefaultNamespace}}, metav1.CreateOptions{}); err != nil && !apierrs.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", autoscaler.DefaultNamespace, err)
	}
	builderURL := fmt.Sprintf("http://127.0.0.1:%d", cfg.BuilderPort)
	if !cfg.Install {
		autoscalerAddr := fmt.Sprintf("127.0.0.1:%d", cfg.AutoscalerPort)
		step("starting the fn controller (the autoscaler on %s)", autoscalerAddr)
		controllerServes, err := launch("controller", &ControllerSpec{Kubeconfig: cp.KubeconfigPath(), AutoscalerAddr: autoscalerAddr,
			Domain: cfg.Domain, GatewayURL: gatewayURL, Identity: "fn-up-" + NodeName}, "", "http://"+autoscalerAddr+"/")
		if err != nil {
			return err
		}
		step("starting the gateway on %s", gatewayURL)
		internal := fmt.Sprintf("127.0.0.1:%d", cfg.GatewayInternalPort)
		gatewayAddr := fmt.Sprintf("127.0.0.1:%d", cfg.GatewayPort)
		gatewayServes, err := launch("gateway", &GatewaySpec{Kubeconfig: cp.KubeconfigPath(), Addr: gatewayAddr, InternalAddr: internal, Domain: cfg.Domain,
			AutoscalerURL: "http://" + autoscalerAddr, ID: "fn-up", Events: eventsURL, ListenFD: 3}, gatewayAddr, "http://"+internal+"/_gw/health")
		if err != nil {
			return err
		}
		serving = append(serving, controllerServes, gatewayServes)
		step("starting the builder on %s (git remote %s/git/NAMESPACE/NAME.git, webhooks %s/hooks/)", builderURL, builderURL, builderURL)
		builderAddr := fmt.Sprintf("127.0.0.1:%d", cfg.BuilderPort)
		builderServes, err := launch("builder", &BuilderSpec{Kubeconfig: cp.KubeconfigPath(), Addr: builderAddr, Dir: filepath.Join(cfg.Home, "builder"),
			Registry: regAddr + "/fns", URL: builderURL, ListenFD: 3}, builderAddr, builderURL+"/")
		if err != nil {
			return err
		}
		serving = append(serving, func() error {
			if err := builderServes(); err != nil {
				// The rest of the platform serves without it (git is what it usually lacks).
				step("the builder is not running, so git push builds do not work: %v", err)
				builderURL = ""
			}
			return nil
		})
	}

	nodes := NodeNames(max(cfg.Nodes, 1))
	agentDir := filepath.Join(cfg.Home, "agent")
	var agents []*supervise.Process
	var agentLogs []string
	defer func() { // before the other components: the functions stop first
		var stopping sync.WaitGroup
		for _, p := range agents {
			stopping.Go(func() { _ = p.Stop(agentStopWait) })
		}
		stopping.Wait()
	}()
	for i, name := range nodes {
		step("starting the node agent (node %s, pods in %s)", name, nodePodCIDR(i))
		logName, dir := "agent", agentDir
		if i > 0 {
			logName, dir = fmt.Sprintf("agent-%d", i+1), fmt.Sprintf("%s-%d", agentDir, i+1)
		}
		a := &AgentSpec{Node: name, Dir: dir, PodCIDR: nodePodCIDR(i), Kubeconfig: cp.KubeconfigPath(), Registry: regAddr,
			Log: ComponentLogPath(cfg.Home, logName), LeaseSeconds: agentLeaseSeconds}
		p, err := comps.start("agent "+name, a, a.Log)
		if err != nil {
			return fmt.Errorf("starting the agent of node %s: %w", name, err)
		}
		agents, agentLogs = append(agents, p), append(agentLogs, a.Log)
	}
	for _, serves := range serving {
		if err := serves(); err != nil {
			return err
		}
	}
	if err := removeOtherNodes(ctx, kube, nodes); err != nil {
		return err
	}
	if err := waitNodesReady(ctx, kube, nodes, errs, agents); err != nil {
		return err
	}
	for i, p := range agents { // up: from now on an agent that exits is started again
		p.Supervise()
		// Given up after repeated crashes: a node lost is not the platform lost. Its Node goes
		// NotReady and its pods are replaced on the others, as on any cluster.
		watchGivenUp(compCtx, p, fmt.Sprintf("node %s is lost until the next fn up", nodes[i]), agentLogs[i], step)
	}
	if cfg.Install {
		step("installing fn's controller, gateway, builder and event engine as pods (fn install)")
		if err := installComponents(ctx, compCtx, cfg, rc, kube, regAddr, gatewayURL, progress, run); err != nil {
			return err
		}
	}
	if cfg.MetricsServerPort != 0 {
		ml, err := os.OpenFile(ComponentLogPath(cfg.Home, "metrics-server"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		logs = append(logs, ml)
		// In the background: the first start may build it (minutes); the platform serves meanwhile.
		wg.Add(1)
		go func() {
			defer wg.Done()
			bin, err := metricsServerBin(compCtx, ml)
			if err == nil {
				err = registerMetricsAPI(compCtx, rc, kube, cfg.MetricsServerPort)
			}
			if err == nil {
				err = runMetricsServer(compCtx, bin, cp.KubeconfigPath(), filepath.Join(cfg.Home, "metrics-server"), cfg.MetricsServerPort, ml)
			}
			if err != nil && compCtx.Err() == nil {
				fmt.Fprintf(ml, "fn: metrics-server is not running, so kubectl top and HorizontalPodAutoscalers (metric cpu) have no figures: %v\n", err)
			}
		}()
	}

	st := State{PID: os.Getpid(), Kubeconfig: cp.KubeconfigPath(), Registry: regAddr, Gateway: gatewayURL, Builder: builderURL,
		KubectlBin: filepath.Join(cfg.BinDir, "kubectl"), AgentDir: agentDir, Nodes: nodes, Started: time.Now(), Install: cfg.Install,
		Events: eventsURL}
	if !cfg.Install {
		st.GatewayMetrics = fmt.Sprintf("http://127.0.0.1:%d/_gw/metrics", cfg.GatewayInternalPort)
		st.GatewayInternal = fmt.Sprintf("http://127.0.0.1:%d", cfg.GatewayInternalPort)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(StatePath(cfg.Home), b, 0o644); err != nil {
		return err
	}
	step("ready")

	for {
		select {
		case <-ctx.Done():
			step("shutting down")
			return nil
		case err := <-errs:
			return err
		case err := <-cp.Failures():
			// Given up after repeated crashes: said loudly, and in fn status. What else runs
			// goes on (functions answer from the gateway's caches), for whoever looks.
			step("ERROR: %v; fn down and fn up start it again (its log: %s)", err, filepath.Join(cfg.Home, "cluster", "logs"))
		}
	}
}

// removeOtherNodes deletes the Nodes of agents this platform no longer runs (a previous fn up
// had more): their pods are then rescheduled at once, not after the node lifecycle's grace.
func removeOtherNodes(ctx context.Context, kube kubernetes.Interface, keep []string) error {
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "fnkit.dev/node-agent=true"})
	if err != nil {
		return fmt.Errorf("listing the Nodes: %w", err)
	}
	for _, n := range list.Items {
		if !slices.Contains(keep, n.Name) {
			if err := kube.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrs.IsNotFound(err) {
				return fmt.Errorf("removing Node %s, of an agent no longer run: %w", n.Name, err)
			}
		}
	}
	return nil
}

// waitNodesReady waits until the agents' Nodes are Ready and the default namespace's service
// account exists, so that a function deployed right after fn up gets its pods. An agent that
// exits meanwhile fails it.
func waitNodesReady(ctx context.Context, kube kubernetes.Interface, nodes []string, errs <-chan error, agents []*supervise.Process) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-errs:
			return false, err
		default:
		}
		for _, p := range agents {
			select {
			case <-p.Done():
				return false, p.Err()
			default:
			}
		}
		for _, name := range nodes {
			n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			ready := false
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if !ready {
				last = "node " + name + " not Ready"
				return false, nil
			}
		}
		if _, err := kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = "waiting for the default service account"
			return false, nil
		}
		return true, nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("the node agents did not become ready: %v (%s)", err, last)
	}
	return err
}

// installComponents installs fn's controller, gateway and builder on the platform's nodes as fn
// install does, waits until they are available, and serves the gateway's Service on
// GatewayPort.
func installComponents(ctx, compCtx context.Context, cfg Config, rc *rest.Config, kube kubernetes.Interface, regAddr, gatewayURL string,
	progress io.Writer, run func(string, func() error)) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.GatewayPort))
	if err != nil {
		return fmt.Errorf("gateway load balancer: %w", err)
	}
	if err := installOn(ctx, cfg, rc, kube, regAddr, gatewayURL, progress); err != nil {
		ln.Close()
		return err
	}
	run("gateway load balancer", func() error {
		return serveLoadBalancer(compCtx, kube, install.Namespace, "fn-gateway", "http", ln, io.Discard)
	})
	return nil
}

// indent prefixes each write (a line of progress) with two spaces.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(i.w, "  %s", p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hostGoEnv is this machine's Go settings that the local platform's builder pod shares: its
// caches and how it fetches modules.
func hostGoEnv() (map[string]string, error) {
	keys := []string{"GOCACHE", "GOMODCACHE", "GOPROXY", "GONOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE", "GOFLAGS"}
	out, err := exec.Command("go", append([]string{"env", "-json"}, keys...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w (the builder needs Go on this machine)", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	return env, nil
}

// InstallOptions are what fn up --install installs on the platform of home, whose registry,
// gateway and builder are at the addresses given (fn install on the local platform starts
// from them, so that it renders the same).
func InstallOptions(home, registry, gatewayURL, builderAddr string) (install.Options, error) {
	goEnv, err := hostGoEnv()
	if err != nil {
		return install.Options{}, err
	}
	cacheDir, err := CacheDir()
	if err != nil {
		return install.Options{}, err
	}
	return install.Options{Repo: registry + "/fn", FunctionRepo: registry + "/fns", GatewayURL: gatewayURL, CacheDir: cacheDir,
		Local: &install.LocalBuilder{Addr: builderAddr, StateDir: filepath.Join(home, "builder"), GoEnv: goEnv}}, nil
}

// CacheDir is where fn keeps what it builds once and reuses: $FN_CACHE_DIR, else the user's
// cache directory's fn/.
func CacheDir() (string, error) {
	if d := os.Getenv("FN_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache directory: %w (set FN_CACHE_DIR)", err)
	}
	return filepath.Join(d, "fn"), nil
}

// installOn renders and applies fn's components for the platform and waits for them.
func installOn(ctx context.Context, cfg Config, rc *rest.Config, kube kubernetes.Interface, regAddr, gatewayURL string, progress io.Writer) error {
	platforms, err := gitbuild.ClusterPlatforms(ctx, kube)
	if err != nil {
		return err
	}
	o, err := InstallOptions(cfg.Home, regAddr, gatewayURL, fmt.Sprintf("127.0.0.1:%d", cfg.BuilderPort))
	if err != nil {
		return err
	}
	o.Source, o.Platforms, o.Domain, o.Progress = cfg.Source, platforms, cfg.Domain, indent{progress}
	objs, err := install.Render(ctx, o)
	if err != nil {
		return err
	}
	if _, err := install.Apply(ctx, rc, objs, indent{progress}); err != nil {
		return err
	}
	return install.Wait(ctx, rc, objs, 3*time.Minute, indent{progress})
}

// CheckDiskSpace fails when a filesystem of the platform's state in home (etcd's data, the
// registry's store, the agents' pods, the rest of home) has less free than diskspace.Reserve:
// what writes more there (a build, a push) is refused before it starts, not half done.
func CheckDiskSpace(home string) error {
	dirs := []string{filepath.Join(home, "cluster"), filepath.Join(home, "registry")}
	agents, _ := filepath.Glob(filepath.Join(home, "agent*"))
	return diskspace.Check(diskspace.Reserve, append(append(dirs, agents...), home)...)
}
