package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"fnkit.dev/fn/internal/diskspace"
)

// Run registers the node and runs the pods scheduled to it until ctx is done; then it stops
// every pod's processes (SIGTERM, then SIGKILL after the pod's grace period), removes what it
// added to the network and returns.
//
// As root, each pod gets its own network namespace with a veth pair and an IP from PodCIDR, its
// own mount, UTS and IPC namespaces, and each container a root of its own (read-only when the
// container asks) that its process is chrooted into, running as the container's user.
//
// Without root, pods run in the host's network with the host's first global IPv4 address as
// their IP (so two pods listening on one port collide), and each container's entrypoint runs
// from its unpacked image tree as the agent's user, without chroot: absolute paths in the
// image's configuration (SSL_CERT_FILE, ...) refer to the host's files, and volumes are
// prepared but not visible at their mount paths.
func Run(ctx context.Context, o Options) error {
	if o.NodeName == "" || o.RESTConfig == nil || o.StateDir == "" {
		return errors.New("node agent: NodeName, RESTConfig and StateDir are required")
	}
	if o.PodCIDR == "" {
		o.PodCIDR = DefaultPodCIDR
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	stateDir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("node agent state directory: %w", err)
	}
	lock, err := lockStateDir(stateDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	root := geteuid() == 0
	_, cidr, err := net.ParseCIDR(o.PodCIDR)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", o.PodCIDR, err)
	}

	p := &provider{nodeName: o.NodeName, stateDir: stateDir, log: log, root: root, pods: map[string]*pod{}}
	cleanupState(stateDir, log)
	if root {
		if p.net, err = newPodNetwork(o.PodCIDR, stateDir); err != nil {
			return err
		}
		if err := p.net.cleanup(); err != nil {
			log.Warn("removing links left by a previous run", "error", err)
		}
		if err := p.net.claimRange(); err != nil {
			log.Warn("routing the pod range: requests to gone pods will take the default route", "error", err)
		} else {
			// An agent that stops removes it; one that is killed leaves it, as its node's range.
			defer func() { _ = p.net.releaseRange() }()
		}
		p.hostIP = p.net.gateway()
		p.warm = newWarmPool(p.net, log, 1)
		if p.hostNetIP, err = hostIPv4(cidr); err != nil {
			log.Warn("pods on the host's network will get no IP", "error", err)
		}
	} else {
		if p.hostNetIP, err = hostIPv4(cidr); err != nil {
			return fmt.Errorf("node agent without root: %w", err)
		}
		p.hostIP = p.hostNetIP
		log.Warn("the node agent runs without root: pods share the host's network and run without isolation")
	}
	if p.images, err = newImageStore(filepath.Join(stateDir, "images"), o.InsecureRegistries, root, log); err != nil {
		return err
	}
	p.allocatable = capacity(stateDir)

	cfg := rest.CopyConfig(o.RESTConfig)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cfg.UserAgent = "fn-agent/" + o.NodeName
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	p.kube = kube
	if err := p.startAPIService(ctx, o.RESTConfig.Host); err != nil {
		log.Warn("pods will not reach the API server", "error", err)
	}

	ctx = vklog.WithLogger(ctx, vkLogger{log.With("component", "virtual-kubelet")})
	// The controllers outlive ctx a little: the pod controller while pods stop, so that their
	// last statuses are written.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	ncCtx, stopNC := context.WithCancel(runCtx)
	defer stopNC()

	podInformers := informers.NewSharedInformerFactoryWithOptions(kube, time.Minute,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", o.NodeName).String()
		}))
	otherInformers := informers.NewSharedInformerFactory(kube, time.Minute)
	pods := podInformers.Core().V1().Pods()
	configMaps := otherInformers.Core().V1().ConfigMaps()
	secrets := otherInformers.Core().V1().Secrets()
	services := otherInformers.Core().V1().Services()
	p.podLister, p.configMaps, p.secrets = pods.Lister(), configMaps.Lister(), secrets.Lister()

	events := record.NewBroadcaster()
	defer events.Shutdown()
	events.StartRecordingToSink(laterSink{&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")}, eventDelay, time.Now, time.Sleep})
	p.recorder = events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "fn-agent", Host: o.NodeName})

	// The kubelet API (logs, port forwarding), on loopback.
	cert, err := selfSignedCert(o.NodeName)
	if err != nil {
		return err
	}
	clientCAs, err := clusterCAs(o.RESTConfig)
	if err != nil {
		return fmt.Errorf("kubelet API: %w", err)
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort(nodeAddress, "0"), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientCAs})
	if err != nil {
		return fmt.Errorf("kubelet API listener: %w", err)
	}
	auth := &apiAuth{kube: kube, node: o.NodeName, now: time.Now}
	srv := &http.Server{
		Handler: auth.wrap(api.PodHandler(api.PodHandlerConfig{
			GetContainerLogs: p.GetContainerLogs,
			RunInContainer:   p.RunInContainer,
			GetPods:          p.GetPods,
			GetPodsFromKubernetes: func(context.Context) ([]*corev1.Pod, error) {
				return pods.Lister().List(labels.Everything())
			},
			PortForward:           p.PortForward,
			GetMetricsResource:    newResourceMetrics(p).collect,
			StreamIdleTimeout:     4 * time.Hour,
			StreamCreationTimeout: 30 * time.Second,
		}, false)),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	nodeObj := nodeObject(o.NodeName, o.PodCIDR, stateDir, int32(port))
	disk := &diskPressureNode{template: nodeObj.DeepCopy(), dir: stateDir, every: diskCheckInterval}
	disk.reserve.Store(diskspace.Reserve)
	nc, err := node.NewNodeController(disk, nodeObj, kube.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(kube.CoordinationV1().Leases(corev1.NamespaceNodeLease), cmp.Or(o.LeaseSeconds, node.DefaultLeaseDuration)),
		node.WithNodeStatusUpdateErrorHandler(func(ctx context.Context, err error) error {
			if !apierrors.IsNotFound(err) {
				return err
			}
			log.Warn("the node was deleted: registering it again")
			_, err = kube.CoreV1().Nodes().Create(ctx, nodeObject(o.NodeName, o.PodCIDR, stateDir, int32(port)), metav1.CreateOptions{})
			return err
		}))
	if err != nil {
		return err
	}
	pc, err := node.NewPodController(node.PodControllerConfig{
		PodClient:         soleStatusWriter{kube.CoreV1()},
		PodInformer:       pods,
		EventRecorder:     providerFailures{p.recorder},
		Provider:          p,
		ConfigMapInformer: configMaps,
		SecretInformer:    secrets,
		ServiceInformer:   services,
		// The agent resolves env itself, when a container starts: status.podIP is known then.
		SkipDownwardAPIResolution: true,
		// A new pod and a pod's new status go out at once, not after the default 5 ms; only
		// failures back off. The client's QPS bounds what the agent asks of the API server.
		SyncPodsFromKubernetesRateLimiter:    quickRetries(),
		SyncPodStatusFromProviderRateLimiter: quickRetries(),
	})
	if err != nil {
		return err
	}

	podInformers.Start(runCtx.Done())
	otherInformers.Start(runCtx.Done())
	defer podInformers.Shutdown()
	defer otherInformers.Shutdown()
	go func() { _ = pc.Run(runCtx, 4) }()
	go p.collectImages(runCtx)
	// Whatever happens next, pods stop before Run returns.
	ncStarted := false
	defer func() {
		if ncStarted {
			stopNC()
			<-nc.Done()
		}
		p.shutdown()
		p.warm.close()
		if ncStarted {
			p.reportStopped(nodeObj)
		}
		cancel()
		<-pc.Done()
		log.Info("node agent stopped")
	}()

	select {
	case <-ctx.Done():
		return nil
	case <-pc.Ready():
	case <-pc.Done():
		return fmt.Errorf("node agent: pod controller: %w", pc.Err())
	}
	go func() { _ = nc.Run(ncCtx) }()
	ncStarted = true
	select {
	case <-ctx.Done():
		return nil
	case <-nc.Ready():
	case <-nc.Done():
		return fmt.Errorf("node agent: registering node %s: %w", o.NodeName, nc.Err())
	}
	if err := clearStartupTaints(ctx, kube, o.NodeName); err != nil {
		log.Warn("removing the node's startup taints", "error", err)
	}
	p.deleteOrphans(pods.Lister())
	log.Info("node agent ready", "node", o.NodeName, "kubeletPort", port, "podCIDR", o.PodCIDR, "root", root)

	select {
	case <-ctx.Done():
		return nil
	case <-pc.Done():
		return fmt.Errorf("node agent: pod controller: %w", pc.Err())
	case <-nc.Done():
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("node agent: node controller: %w", nc.Err())
	}
}

// geteuid is os.Geteuid; tests make the agent believe it runs without root.
var geteuid = os.Geteuid

// deleteOrphans deletes from the API server the pods of this node that are marked for deletion
// but that the agent does not run (a previous run stopped them): nothing else would.
func (p *provider) deleteOrphans(lister interface {
	List(labels.Selector) ([]*corev1.Pod, error)
}) {
	list, err := lister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pod := range list {
		if pod.DeletionTimestamp != nil && p.lookup(pod.Namespace, pod.Name) == nil {
			p.log.Info("deleting a pod left terminating by a previous run", "pod", podKey(pod.Namespace, pod.Name))
			go p.forceDelete(pod.Namespace, pod.Name, pod.UID)
		}
	}
}

// lockStateDir makes sure one agent at a time uses a state directory.
func lockStateDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "agent.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("node agent state directory %s is in use by another agent", dir)
	}
	return f, nil
}

// cleanupState kills the processes a previous run left (if its agent died without stopping
// them) and removes its pods' directories and logs. The image cache stays.
func cleanupState(stateDir string, log *slog.Logger) {
	records, _ := filepath.Glob(filepath.Join(stateDir, "pods", "*", "pids", "*"))
	for _, r := range records {
		b, err := os.ReadFile(r)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		start, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil || pid <= 1 {
			continue
		}
		if st, err := processStartTime(pid); err == nil && st == start {
			log.Info("killing a process left by a previous run", "pid", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, d := range []string{"pods", "logs"} {
		if err := os.RemoveAll(filepath.Join(stateDir, d)); err != nil {
			log.Warn("removing state left by a previous run", "dir", d, "error", err)
		}
	}
}

// soleStatusWriter writes pod statuses without a resourceVersion precondition. The pod
// controller writes the whole status the agent reports over the Pod it last listed, with that
// Pod's resourceVersion: the second status of a starting pod (running, after the one with its
// IP) was refused with a conflict whenever the informer had not yet seen the first, and retried
// after a back-off, each time an API call while the pod starts. The agent is the status's sole
// writer, as the pod controller itself says; a kubelet patches it without a precondition too.
type soleStatusWriter struct{ typedcorev1.PodsGetter }

func (w soleStatusWriter) Pods(namespace string) typedcorev1.PodInterface {
	return soleStatusPods{w.PodsGetter.Pods(namespace)}
}

type soleStatusPods struct{ typedcorev1.PodInterface }

func (p soleStatusPods) UpdateStatus(ctx context.Context, pod *corev1.Pod, opts metav1.UpdateOptions) (*corev1.Pod, error) {
	unconditional := *pod
	unconditional.ResourceVersion = ""
	return p.PodInterface.UpdateStatus(ctx, &unconditional, opts)
}

// eventDelay is how long after what they report the agent's events are written. A starting
// pod's events (Pulled, Started) were API writes while its process started and the API server
// wrote its status, endpoints and ReplicaSet's: on a small machine they share its CPU. Events
// tell people what happened; nothing waits on them.
const eventDelay = 300 * time.Millisecond

// laterSink writes each event delay after its time (events are written one after another, in
// order, by the broadcaster).
type laterSink struct {
	record.EventSink
	delay time.Duration
	now   func() time.Time
	sleep func(time.Duration)
}

// hold is how long an event waits at now: until delay after its time, never longer than delay.
func hold(ev *corev1.Event, delay time.Duration, now time.Time) time.Duration {
	at := ev.LastTimestamp.Time
	if at.IsZero() {
		at = ev.EventTime.Time
	}
	return min(max(at.Add(delay).Sub(now), 0), delay)
}

func (s laterSink) wait(ev *corev1.Event) {
	if d := hold(ev, s.delay, s.now()); d > 0 {
		s.sleep(d)
	}
}

func (s laterSink) Create(ev *corev1.Event) (*corev1.Event, error) {
	s.wait(ev)
	return s.EventSink.Create(ev)
}

func (s laterSink) Update(ev *corev1.Event) (*corev1.Event, error) {
	s.wait(ev)
	return s.EventSink.Update(ev)
}

func (s laterSink) Patch(ev *corev1.Event, data []byte) (*corev1.Event, error) {
	s.wait(ev)
	return s.EventSink.Patch(ev, data)
}

// providerFailures passes on the pod controller's events of failures only. Its success events
// (ProviderCreateSuccess, ProviderDeleteSuccess, ProviderUpdateSuccess) say nothing a kubelet
// would say or the agent's own events (Pulled, Started, Killing) do not; each is an API write
// while a pod starts.
type providerFailures struct{ record.EventRecorder }

func (r providerFailures) Event(obj runtime.Object, typ, reason, msg string) {
	if typ != corev1.EventTypeNormal {
		r.EventRecorder.Event(obj, typ, reason, msg)
	}
}

func (r providerFailures) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	if typ != corev1.EventTypeNormal {
		r.EventRecorder.Eventf(obj, typ, reason, format, args...)
	}
}

func (r providerFailures) AnnotatedEventf(obj runtime.Object, annotations map[string]string, typ, reason, format string, args ...any) {
	if typ != corev1.EventTypeNormal {
		r.EventRecorder.AnnotatedEventf(obj, annotations, typ, reason, format, args...)
	}
}

// quickRetries is the rate limiter of the pod controller's queues: no delay to speak of for
// work that succeeds, exponential back-off (1 ms to 30 s) for a key that keeps failing.
func quickRetries() workqueue.TypedRateLimiter[any] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[any](time.Millisecond, 30*time.Second)
}
