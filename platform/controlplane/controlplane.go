package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"fnkit.dev/fn/platform/supervise"
)

// Options configure a control plane.
type Options struct {
	// Dir holds its state: certificates, etcd's data, logs, the kubeconfig. Reusing a Dir keeps
	// the cluster's data across restarts.
	Dir string
	// BinDir holds the etcd, kube-apiserver, kube-controller-manager and kube-scheduler binaries.
	BinDir string
	// Controllers is kube-controller-manager's --controllers list; empty runs no controller
	// manager. "*" runs them all.
	Controllers []string
	// Scheduler runs kube-scheduler.
	Scheduler bool
	// Ports, when set, are the apiserver's port and etcd's client and peer ports; otherwise free
	// ports are picked.
	APIServerPort, EtcdPort, EtcdPeerPort int
	// ServiceCIDR is the range of ClusterIPs (default 10.96.0.0/16).
	ServiceCIDR string
	// NodeLossGrace, when set, is how long a Node may go without a heartbeat before it is
	// NotReady (kube-controller-manager's --node-monitor-grace-period) and how long pods
	// tolerate a NotReady or unreachable node before they are evicted (kube-apiserver's
	// default toleration seconds); upstream's defaults are 50 s and 300 s.
	NodeLossGrace time.Duration
	// GOGC, when not 0, is the GOGC of its processes (Go's default is 100).
	GOGC int
	// Progress receives one line per step (default: discarded).
	Progress io.Writer
	// Notify, if set, is told of every change of a component's status once the control plane
	// is up: from then on a component that exits is started again (supervise.DefaultPolicy).
	Notify func(supervise.Status, string)
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	opts       Options
	pki        pki
	procs      []*supervise.Process
	apiPort    int
	kubeconfig string
	etcdURL    string
	failures   <-chan error
}

// Start starts etcd and kube-apiserver, waits until the API server is ready, then starts the
// controller manager and scheduler asked for. On error, whatever started is stopped.
// auditPolicy records every write to the API (who, what, when, the answer; not the bodies),
// but for leases and events, which are renewed and sent all the time.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources:
  - {group: coordination.k8s.io, resources: [leases]}
  - {group: "", resources: [events]}
  - {group: events.k8s.io, resources: [events]}
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
`

// AuditLogPath is the API server's audit log of a control plane in dir: a JSON line per
// write (see auditPolicy), 100 MB of it at most, and one older file.
func AuditLogPath(dir string) string { return filepath.Join(dir, "logs", "audit.log") }

func Start(ctx context.Context, o Options) (cp *ControlPlane, err error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/16"
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing in %s: build them with hack/k8s-binaries.sh (make k8s)", b, o.BinDir)
		}
	}
	cp = &ControlPlane{opts: o, pki: pki{dir: filepath.Join(o.Dir, "pki")}}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "audit-policy.yaml"), []byte(auditPolicy), 0o644); err != nil {
		return nil, err
	}
	_, svcNet, err := net.ParseCIDR(o.ServiceCIDR)
	if err != nil || svcNet.IP.To4() == nil {
		return nil, fmt.Errorf("service CIDR %q: want an IPv4 range such as 10.96.0.0/16", o.ServiceCIDR)
	}
	// The kubernetes Service's ClusterIP: the range's first address, which pods dial.
	svcIP := slices.Clone(svcNet.IP.To4())
	svcIP[3]++
	if err := cp.pki.generate(svcIP); err != nil {
		return nil, fmt.Errorf("generating certificates: %w", err)
	}
	if err := cp.pki.generateKubeletClient(); err != nil {
		return nil, err
	}
	if err := cp.pki.generateEtcd(); err != nil {
		return nil, err
	}
	if err := cp.pki.generateFrontProxy(); err != nil {
		return nil, fmt.Errorf("generating the front proxy's certificates: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	pick := func(p, free int) int {
		if p != 0 {
			return p
		}
		return free
	}
	cp.apiPort = pick(o.APIServerPort, ports[0])
	etcdPort, peerPort := pick(o.EtcdPort, ports[1]), pick(o.EtcdPeerPort, ports[2])

	fmt.Fprintf(o.Progress, "starting etcd on 127.0.0.1:%d\n", etcdPort)
	// Clients need a certificate of etcd's own CA, which only the API server has.
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cp.etcdURL = etcdURL
	p := cp.pki.path
	if err := cp.start("etcd",
		"--cert-file="+p("etcd-server.crt"), "--key-file="+p("etcd-server.key"),
		"--client-cert-auth=true", "--trusted-ca-file="+p("etcd-ca.crt"),
		"--name=fn", "--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=fn="+peerURL, "--listen-metrics-urls=http://127.0.0.1:0",
		"--unsafe-no-fsync=true", "--quota-backend-bytes=4294967296", "--log-level=warn",
	); err != nil {
		return nil, err
	}

	fmt.Fprintf(o.Progress, "starting kube-apiserver on https://127.0.0.1:%d\n", cp.apiPort)
	apiArgs := []string{
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(cp.apiPort), "--etcd-servers=" + etcdURL,
		"--etcd-cafile=" + p("etcd-ca.crt"), "--etcd-certfile=" + p("apiserver-etcd-client.crt"), "--etcd-keyfile=" + p("apiserver-etcd-client.key"),
		"--tls-cert-file=" + p("apiserver.crt"), "--tls-private-key-file=" + p("apiserver.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p("sa.pub"), "--service-account-signing-key-file=" + p("sa.key"),
		"--authorization-mode=RBAC", "--service-cluster-ip-range=" + o.ServiceCIDR,
		"--allow-privileged=true", "--profiling=false", "--v=0",
		"--audit-policy-file=" + filepath.Join(o.Dir, "audit-policy.yaml"), "--audit-log-path=" + AuditLogPath(o.Dir),
		"--audit-log-format=json", "--audit-log-maxsize=100", "--audit-log-maxbackup=1",
	}
	if g := o.NodeLossGrace; g > 0 {
		secs := strconv.Itoa(int(max(g/time.Second, 1)))
		apiArgs = append(apiArgs, "--default-not-ready-toleration-seconds="+secs, "--default-unreachable-toleration-seconds="+secs)
	}
	apiArgs = append(apiArgs,
		// The aggregation layer, for metrics-server's metrics.k8s.io.
		"--requestheader-client-ca-file="+p("front-proxy-ca.crt"), "--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-", "--requestheader-uid-headers=X-Remote-Uid",
		"--proxy-client-cert-file="+p("front-proxy-client.crt"), "--proxy-client-key-file="+p("front-proxy-client.key"),
		// Node agents take only authenticated, authorized requests, as kubelets.
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"), "--kubelet-client-key="+p("apiserver-kubelet-client.key"),
	)
	if err := cp.start("kube-apiserver", apiArgs...); err != nil {
		return nil, err
	}
	if err := cp.writeKubeconfig(); err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx); err != nil {
		return nil, err
	}

	if len(o.Controllers) > 0 {
		port, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Progress, "starting kube-controller-manager (%s)\n", strings.Join(o.Controllers, ","))
		cmArgs := []string{"--kubeconfig=" + cp.kubeconfig, "--authentication-kubeconfig=" + cp.kubeconfig, "--authorization-kubeconfig=" + cp.kubeconfig,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port[0]),
			"--service-account-private-key-file=" + p("sa.key"), "--root-ca-file=" + p("ca.crt"),
			"--use-service-account-credentials=true",
			"--cluster-signing-cert-file=" + p("ca.crt"), "--cluster-signing-key-file=" + p("ca.key"),
			"--controllers=" + strings.Join(o.Controllers, ","), "--concurrent-gc-syncs=20", "--v=0",
			// Scaling from zero is a chain of writes (Deployment, ReplicaSet, Pod): no client-side
			// rate limit of 20 per second in its way.
			"--kube-api-qps=500", "--kube-api-burst=1000",
			// HorizontalPodAutoscalers (metric cpu) act within seconds, not 15.
			"--horizontal-pod-autoscaler-sync-period=5s",
		}
		if o.NodeLossGrace > 0 {
			cmArgs = append(cmArgs, "--node-monitor-grace-period="+o.NodeLossGrace.String(), "--node-monitor-period=1s")
		}
		if err := cp.start("kube-controller-manager", cmArgs...); err != nil {
			return nil, err
		}
	}
	if o.Scheduler {
		port, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(o.Progress, "starting kube-scheduler")
		if err := cp.start("kube-scheduler",
			"--kubeconfig="+cp.kubeconfig, "--authentication-kubeconfig="+cp.kubeconfig, "--authorization-kubeconfig="+cp.kubeconfig,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port[0]), "--v=0",
			"--kube-api-qps=500", "--kube-api-burst=1000",
		); err != nil {
			return nil, err
		}
	}
	// Up: from now on a component that exits is started again.
	for _, pr := range cp.procs {
		pr.Supervise()
	}
	cp.failures = cp.failed()
	return cp, nil
}

// start launches a component with its output in logs/NAME.log. It gets SIGKILL if this process
// dies, so no component outlives its parent; once supervised, it starts again when it exits.
func (cp *ControlPlane) start(name string, args ...string) error {
	logPath := filepath.Join(cp.opts.Dir, "logs", name+".log")
	command := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(cp.opts.BinDir, name), args...)
		if cp.opts.GOGC != 0 {
			cmd.Env = append(os.Environ(), "GOGC="+strconv.Itoa(cp.opts.GOGC))
		}
		if logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			cmd.Stdout, cmd.Stderr = logf, logf // closed by the supervisor once it exits
		}
		return cmd
	}
	pr, err := supervise.Start(name, command, supervise.DefaultPolicy, cp.opts.Notify)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, pr)
	return nil
}

// waitReady polls the API server's /readyz until it answers ok, a component exits, or a minute passes.
func (cp *ControlPlane) waitReady(ctx context.Context) error {
	cfg := cp.RESTConfig()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		for _, pr := range cp.procs {
			select {
			case <-pr.Done():
				name := pr.Status().Name
				return fmt.Errorf("%v during start: see %s", pr.Err(), filepath.Join(cp.opts.Dir, "logs", name+".log"))
			default:
			}
		}
		resp, err := client.Get(cfg.Host + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after 1m: see %s", filepath.Join(cp.opts.Dir, "logs", "kube-apiserver.log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (cp *ControlPlane) writeKubeconfig() error {
	cp.kubeconfig = filepath.Join(cp.opts.Dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fn"] = &clientcmdapi.Cluster{Server: cp.Host(), CertificateAuthority: cp.pki.path("ca.crt")}
	cfg.AuthInfos["fn-admin"] = &clientcmdapi.AuthInfo{ClientCertificate: cp.pki.path("admin.crt"), ClientKey: cp.pki.path("admin.key")}
	cfg.Contexts["fn"] = &clientcmdapi.Context{Cluster: "fn", AuthInfo: "fn-admin", Namespace: "default"}
	cfg.CurrentContext = "fn"
	return clientcmd.WriteToFile(*cfg, cp.kubeconfig)
}

// Host is the API server's URL.
func (cp *ControlPlane) Host() string { return fmt.Sprintf("https://127.0.0.1:%d", cp.apiPort) }

// KubeconfigPath is the path of an admin kubeconfig for the control plane.
func (cp *ControlPlane) KubeconfigPath() string { return cp.kubeconfig }

// RESTConfig is an admin client configuration for the control plane.
func (cp *ControlPlane) RESTConfig() *rest.Config {
	return &rest.Config{
		Host: cp.Host(),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: cp.pki.path("ca.crt"), CertFile: cp.pki.path("admin.crt"), KeyFile: cp.pki.path("admin.key"),
		},
		QPS: 200, Burst: 400,
	}
}

// Pids are the process ids of the running components.
func (cp *ControlPlane) Pids() map[string]int {
	m := map[string]int{}
	for _, st := range cp.Statuses() {
		if st.PID != 0 {
			m[st.Name] = st.PID
		}
	}
	return m
}

// Statuses are the components' statuses: running or not, restarts, last exit.
func (cp *ControlPlane) Statuses() []supervise.Status {
	out := make([]supervise.Status, len(cp.procs))
	for i, pr := range cp.procs {
		out[i] = pr.Status()
	}
	return out
}

// failed delivers the error of each component that ends other than by Stop.
func (cp *ControlPlane) failed() <-chan error {
	errc := make(chan error, len(cp.procs))
	for _, pr := range cp.procs {
		go func() {
			<-pr.Done()
			if err := pr.Err(); err != nil {
				errc <- err
			}
		}()
	}
	return errc
}

// Failures delivers the error of each component given up after repeated crashes.
func (cp *ControlPlane) Failures() <-chan error { return cp.failures }

// Stop stops the components in reverse order: SIGTERM, then SIGKILL after 10 seconds.
func (cp *ControlPlane) Stop() error {
	var errs []error
	for i := len(cp.procs) - 1; i >= 0; i-- {
		if err := cp.procs[i].Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	cp.procs = nil
	return errors.Join(errs...)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ClientCertificate issues a client certificate of the cluster's CA for user in groups (PEM):
// for tests of what an identity may do, and for components that authenticate so.
func (cp *ControlPlane) ClientCertificate(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	return cp.pki.clientCertPEM(user, groups)
}
