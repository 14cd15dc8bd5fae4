package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/platform/controlplane"
	"fnkit.dev/fn/registry"
)

const testNode = "fn-agent-test"

// env is what the end-to-end test runs against: a real control plane, the embedded registry
// and a node agent.
type env struct {
	kube      kubernetes.Interface
	kubectl   []string // kubectl with the kubeconfig
	stateDir  string
	registry  string // host:port
	hello     string // the hello example's image reference
	net       *podNetwork
	rest      *rest.Config
	cp        *controlplane.ControlPlane
	logPath   string
	stopAgent func(t *testing.T) // stops the agent and checks that it left nothing
}

const testCIDR = "10.252.0.0/24"

// startAgent runs a node agent until stopAgent.
func (e *env) startAgent(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{NodeName: testNode, RESTConfig: e.rest, StateDir: e.stateDir, PodCIDR: testCIDR,
			Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}()
	stopped := false
	e.stopAgent = func(t *testing.T) {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		e.recordedPids()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(90 * time.Second):
			t.Errorf("the agent did not stop within 90 s")
		}
		logf.Close()
		e.checkNothingLeft(t)
	}
}

// waitFor polls cond every 100 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane, a registry and a node agent")
	}
	requireRoot(t)
	ctx := context.Background()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	// A service range of its own: its agent serves the kubernetes Service's ClusterIP on the
	// host's loopback, and must not share it with a local platform's agents (tests run
	// packages at once).
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir(), BinDir: bin, Controllers: []string{"*"}, Scheduler: true, ServiceCIDR: "10.97.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Stop()
		_ = RemoveLoopbackAddr(net.IPv4(10, 97, 0, 1)) // where the agent served the kubernetes Service
	})
	e := &env{kube: kubernetes.NewForConfigOrDie(cp.RESTConfig()), kubectl: []string{bin + "/kubectl", "--kubeconfig", cp.KubeconfigPath()}, cp: cp}

	// The registry, with the hello example in it.
	reg, err := registry.New(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Serve(regCtx, ln) }()
	t.Cleanup(func() { stopReg(); <-regDone })
	e.registry = ln.Addr().String()
	cache := t.TempDir()
	f, err := builder.Scaffold("../../examples/hello", "", cache)
	if err != nil {
		t.Fatal(err)
	}
	img, err := f.BuildImage(ctx, builder.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := img.Push(ctx, e.registry+"/fns", false)
	if err != nil {
		t.Fatal(err)
	}
	e.hello = ref.String()

	// The agent.
	e.stateDir = t.TempDir()
	if e.net, err = newPodNetwork(testCIDR, e.stateDir); err != nil {
		t.Fatal(err)
	}
	e.logPath = filepath.Join(t.TempDir(), "agent.log")
	e.rest = cp.RESTConfig()
	e.startAgent(t)
	t.Cleanup(func() {
		e.stopAgent(t)
		if t.Failed() {
			b, _ := os.ReadFile(e.logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("agent log (end):\n%s", b)
		}
	})
	waitFor(t, 60*time.Second, "the node to be Ready", func() (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return len(n.Spec.Taints) == 0, fmt.Errorf("taints %v", n.Spec.Taints)
			}
		}
		return false, nil
	})
	waitFor(t, 60*time.Second, "the default service account", func() (bool, error) {
		_, err := e.kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	return e
}

// checkNothingLeft checks that no process the agent started lives on, and that none of its
// links remains.
func (e *env) checkNothingLeft(t *testing.T) {
	t.Helper()
	for _, pid := range e.recordedPids() {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d outlived the agent", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, e.net.prefix) {
			t.Errorf("link %s outlived the agent", i.Name)
		}
	}
}

var seenPids = map[int]bool{}

// recordedPids are the processes the agent recorded (and those seen before).
func (e *env) recordedPids() []int {
	files, _ := filepath.Glob(filepath.Join(e.stateDir, "pods", "*", "pids", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if fields := strings.Fields(string(b)); len(fields) == 2 {
			if pid, err := strconv.Atoi(fields[0]); err == nil {
				seenPids[pid] = true
			}
		}
	}
	var out []int
	for pid := range seenPids {
		out = append(out, pid)
	}
	return out
}

// pidOf is the process of a pod's container, as the agent recorded it.
func (e *env) pidOf(t *testing.T, pod *corev1.Pod, container string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.stateDir, "pods", string(pod.UID), "pids", container))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	seenPids[pid] = true
	return pid
}

// checkProcess checks how the agent runs a function's process: its environment, its user,
// chrooted in a root of its own, read-only but for /tmp, in a network namespace of its own,
// with the service account's token.
func (e *env) checkProcess(t *testing.T, p *corev1.Pod) {
	t.Helper()
	pid := e.pidOf(t, p, "function")
	proc := fmt.Sprintf("/proc/%d/", pid)
	environ, err := os.ReadFile(proc + "environ")
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.Split(string(environ), "\x00")
	for _, want := range []string{"POD_IP=" + p.Status.PodIP, "POD_NAME=" + p.Name, "GREETING=hi", "SECRET=s3cret", "COMBINED=hi-hello",
		"CM_greeting=hi", "CM_other=x", "PORT=8080", "HOSTNAME=" + p.Name, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"} {
		if !slices.Contains(vars, want) {
			t.Errorf("pod %s: %s not in the process's environment %q", p.Name, want, vars)
		}
	}
	status, _ := os.ReadFile(proc + "status")
	if !strings.Contains(string(status), "\nUid:\t65532\t65532\t65532\t65532\n") || !strings.Contains(string(status), "\nNoNewPrivs:\t1\n") {
		t.Errorf("pod %s: process status:\n%s", p.Name, status)
	}
	// Pivoted into its root, in a mount and PID namespace of its own: the root is its mount
	// namespace's, where the host's files are not.
	root, err := os.Readlink(proc + "root")
	if err != nil || root != "/" {
		t.Errorf("pod %s: process root %q (%v), want its mount namespace's", p.Name, root, err)
	}
	if _, err := os.Stat(proc + "root" + e.stateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod %s: the agent's state directory %s is visible in the container (%v)", p.Name, e.stateDir, err)
	}
	for _, ns := range []string{"mnt", "pid"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		if theirs, _ := os.Readlink(proc + "ns/" + ns); theirs == mine || theirs == "" {
			t.Errorf("pod %s: %s namespace %q, the host's %q", p.Name, ns, theirs, mine)
		}
	}
	mine, _ := os.Readlink("/proc/self/ns/net")
	if theirs, _ := os.Readlink(proc + "ns/net"); theirs == mine || theirs == "" {
		t.Errorf("pod %s: network namespace %q, the host's %q", p.Name, theirs, mine)
	}
	mountinfo, _ := os.ReadFile(proc + "mountinfo")
	opts := map[string]string{}
	for _, l := range strings.Split(string(mountinfo), "\n") {
		if f := strings.Fields(l); len(f) > 5 {
			opts[f[4]] = f[5]
		}
	}
	if !strings.HasPrefix(opts["/"], "ro,") || !strings.HasPrefix(opts["/tmp"], "rw") {
		t.Errorf("pod %s: mounts %v, want / read-only and /tmp writable", p.Name, opts)
	}
	if tok, err := os.ReadFile(proc + "root/var/run/secrets/kubernetes.io/serviceaccount/token"); err != nil || len(tok) < 100 {
		t.Errorf("pod %s: service account token: %v", p.Name, err)
	}
	if hosts, _ := os.ReadFile(proc + "root/etc/hosts"); !strings.Contains(string(hosts), p.Status.PodIP+"\t"+p.Name) {
		t.Errorf("pod %s: /etc/hosts:\n%s", p.Name, hosts)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// TestAgent runs functions on the agent's node through a real control plane: a Deployment as
// fn's controller makes it, a Service's EndpointSlice, a killed process, logs, an image that
// cannot run, and deletion.
func TestAgent(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	kube := e.kube

	fn := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"}, Spec: v1alpha1.FunctionSpec{
		Image: e.hello,
		Env: []corev1.EnvVar{
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "hello-env"}, Key: "greeting"}}},
			{Name: "SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "hello-secret"}, Key: "token"}}},
			{Name: "COMBINED", Value: "$(GREETING)-$(FN_NAME)"},
		},
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "hello-env"}}}},
	}}
	if _, err := kube.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hello-env"},
		Data: map[string]string{"greeting": "hi", "other": "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hello-secret"},
		Data: map[string][]byte{"token": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep := resources.MakeDeployment(fn, resources.DefaultConfig)
	dep.OwnerReferences = nil // no Function in this cluster: the garbage collector would delete it
	dep.Spec.Replicas = ptr.To(int32(2))
	// Functions run without API credentials; the agent must still project them for pods that ask.
	dep.Spec.Template.Spec.AutomountServiceAccountToken = nil
	svc := resources.MakeService(fn)
	svc.OwnerReferences = nil

	var pods []corev1.Pod
	t.Run("deployment", func(t *testing.T) {
		start := time.Now()
		if _, err := kube.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		running, ready := map[string]time.Duration{}, map[string]time.Duration{}
		waitFor(t, 60*time.Second, "2 pods Running and Ready", func() (bool, error) {
			list, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "fnkit.dev/function=hello"})
			if err != nil {
				return false, err
			}
			n := 0
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning {
					if _, ok := running[p.Name]; !ok {
						running[p.Name] = time.Since(start)
					}
				}
				if podReady(&p) {
					if _, ok := ready[p.Name]; !ok {
						ready[p.Name] = time.Since(start)
					}
					n++
				}
			}
			pods = list.Items
			return n == 2 && len(list.Items) == 2, fmt.Errorf("%d of %d pods ready", n, len(list.Items))
		})
		for name := range ready {
			t.Logf("pod %s: Running %s, Ready %s after the Deployment's creation", name, running[name].Round(time.Millisecond), ready[name].Round(time.Millisecond))
		}
		_, cidr, _ := net.ParseCIDR(testCIDR)
		ips := map[string]bool{}
		for _, p := range pods {
			ip := net.ParseIP(p.Status.PodIP)
			if p.Spec.NodeName != testNode || ip == nil || ip.IsLoopback() || !cidr.Contains(ip) || ips[p.Status.PodIP] {
				t.Errorf("pod %s: node %q, IP %q", p.Name, p.Spec.NodeName, p.Status.PodIP)
			}
			ips[p.Status.PodIP] = true
			if !hostRoute(t, p.Status.PodIP) {
				t.Errorf("pod %s: no host route to %s", p.Name, p.Status.PodIP)
			}
			cs := p.Status.ContainerStatuses
			if len(cs) != 1 || !cs[0].Ready || cs[0].State.Running == nil || cs[0].ImageID == "" || cs[0].ContainerID == "" || cs[0].Started == nil || !*cs[0].Started {
				t.Errorf("pod %s: container status %+v", p.Name, cs)
			}
			if p.Status.HostIP == "" || p.Status.StartTime == nil || len(p.Status.PodIPs) != 1 {
				t.Errorf("pod %s: status %+v", p.Name, p.Status)
			}
			body, err := get("http://" + p.Status.PodIP + ":8080/")
			if err != nil || body != "Hello, world!\n" {
				t.Errorf("GET pod %s: %q, %v", p.Name, body, err)
			}
			e.checkProcess(t, &p)
		}
	})
	if len(pods) != 2 {
		t.FailNow()
	}

	t.Run("endpointslice", func(t *testing.T) {
		if _, err := kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := []string{pods[0].Status.PodIP, pods[1].Status.PodIP}
		slices.Sort(want)
		waitFor(t, 30*time.Second, "the Service's EndpointSlice to list both pods", func() (bool, error) {
			list, err := kube.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=hello"})
			if err != nil {
				return false, err
			}
			var got []string
			for _, s := range list.Items {
				for _, ep := range s.Endpoints {
					if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
						got = append(got, ep.Addresses...)
					}
				}
			}
			slices.Sort(got)
			return slices.Equal(got, want), fmt.Errorf("ready endpoints %v, want %v", got, want)
		})
	})

	t.Run("restart", func(t *testing.T) {
		p := pods[0]
		pid := e.pidOf(t, &p, "function")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, 30*time.Second, "the killed container to restart and be Ready", func() (bool, error) {
			cur, err := kube.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			cs := cur.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].RestartCount == 1 && podReady(cur), fmt.Errorf("status %+v", cs)
		})
		t.Logf("restarted and Ready again %s after SIGKILL", time.Since(start).Round(time.Millisecond))
		cur, _ := kube.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
		last := cur.Status.ContainerStatuses[0].LastTerminationState.Terminated
		if last == nil || last.ExitCode != 137 {
			t.Errorf("last termination %+v, want exit code 137", last)
		}
		if cur.Status.PodIP != p.Status.PodIP {
			t.Errorf("pod IP changed from %s to %s", p.Status.PodIP, cur.Status.PodIP)
		}
		if body, err := get("http://" + cur.Status.PodIP + ":8080/?name=again"); err != nil || body != "Hello, again!\n" {
			t.Errorf("GET after restart: %q, %v", body, err)
		}
		if newPid := e.pidOf(t, cur, "function"); newPid == pid {
			t.Errorf("same pid %d after restart", pid)
		}
	})

	t.Run("logs", func(t *testing.T) {
		p := pods[0]
		out, err := exec.Command(e.kubectl[0], append(e.kubectl[1:], "logs", "-n", "default", p.Name)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"msg":"listening"`) || !strings.Contains(string(out), `"msg":"ready"`) {
			t.Errorf("kubectl logs: %v\n%s", err, out)
		}
		out, err = exec.Command(e.kubectl[0], append(e.kubectl[1:], "logs", "--previous", "-n", "default", p.Name)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"msg":"listening"`) {
			t.Errorf("kubectl logs --previous: %v\n%s", err, out)
		}
		// Follow: the lines so far, then it keeps the stream open.
		fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		cmd := exec.CommandContext(fctx, e.kubectl[0], append(e.kubectl[1:], "logs", "-f", "--timestamps", "-n", "default", pods[1].Name)...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err = cmd.Run()
		if fctx.Err() == nil {
			t.Errorf("kubectl logs -f returned before its timeout: %v", err)
		}
		if !strings.Contains(buf.String(), `"msg":"ready"`) || !strings.HasPrefix(buf.String(), time.Now().UTC().Format("2006-01-02T")) {
			t.Errorf("kubectl logs -f --timestamps:\n%s", buf.String())
		}
		if b, err := os.ReadFile(LogPath(e.stateDir, "default", p.Name, "function")); err != nil || !strings.Contains(string(b), " stderr F ") {
			t.Errorf("LogPath: %v\n%s", err, b)
		}
	})

	t.Run("cannot-run", func(t *testing.T) {
		script := pushImage(t, e.registry+"/bad/script", "amd64", "/app/run", []byte("#!/bin/sh\necho hello\n"))
		arm := pushImage(t, e.registry+"/bad/arm", "amd64", "/app/run", elfHeader(183)) // EM_AARCH64
		armConfig := pushImage(t, e.registry+"/bad/armconfig", "arm64", "/app/run", elfHeader(183))
		for _, c := range []struct{ name, image, want string }{
			{"script", script, "/bin/sh"},
			{"arm64", arm, "arm64"},
			{"arm64-config", armConfig, "arm64"},
		} {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "bad-" + c.name, Namespace: "default"},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: c.image}}, TerminationGracePeriodSeconds: ptr.To(int64(1))},
			}
			if _, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "pod "+pod.Name+" to wait with reason CannotRun", func() (bool, error) {
				cur, err := kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				cs := cur.Status.ContainerStatuses
				if len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "CannotRun" {
					return false, fmt.Errorf("status %+v", cs)
				}
				if !strings.Contains(cs[0].State.Waiting.Message, c.want) || podReady(cur) || cur.Status.Phase != corev1.PodPending {
					t.Errorf("pod %s: phase %s, waiting %+v, want a message naming %s", pod.Name, cur.Status.Phase, cs[0].State.Waiting, c.want)
				}
				t.Logf("pod %s: %s: %s", pod.Name, cs[0].State.Waiting.Reason, cs[0].State.Waiting.Message)
				return true, nil
			})
			if err := kube.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
				t.Error(err)
			}
		}
	})

	// A pod asking for what the agent cannot give waits, saying so, and never runs.
	t.Run("refused", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: e.hello,
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}, TerminationGracePeriodSeconds: ptr.To(int64(1))},
		}
		if _, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = kube.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}) }()
		waitFor(t, 30*time.Second, "the privileged pod to wait with reason CreateContainerConfigError", func() (bool, error) {
			cur, err := kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			cs := cur.Status.ContainerStatuses
			if len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "CreateContainerConfigError" {
				return false, fmt.Errorf("status %+v", cs)
			}
			if !strings.Contains(cs[0].State.Waiting.Message, "privileged") || cs[0].State.Running != nil {
				t.Errorf("waiting %+v, want a message naming privileged", cs[0].State.Waiting)
			}
			return true, nil
		})
	})

	t.Run("exec", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "tool")
		build := exec.Command("go", "build", "-o", bin, "./testdata/tool")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the test tool: %v\n%s", err, out)
		}
		content, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		// The image has a setuid-root copy of the tool as well.
		image := pushImage(t, e.registry+"/tools/tool", runtime.GOARCH, "/app/tool", content,
			imageFile{tar.Header{Name: "app/suid", Mode: 0o4755}, content})
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "exec", Namespace: "default"},
			Spec: corev1.PodSpec{
				Containers:                    []corev1.Container{{Name: "tool", Image: image, Args: []string{"serve"}}},
				TerminationGracePeriodSeconds: ptr.To(int64(1)),
			},
		}
		if _, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = kube.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}) }()
		waitFor(t, 60*time.Second, "pod exec to be ready", func() (bool, error) {
			cur, err := kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			return err == nil && podReady(cur), err
		})
		kubectl := func(stdin string, args ...string) (string, string, error) {
			cmd := exec.CommandContext(ctx, e.kubectl[0], append(e.kubectl[1:], args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			return out.String(), errOut.String(), err
		}
		if out, errOut, err := kubectl("through the pod\n", "exec", "-i", "-n", "default", "exec", "--", "/app/tool", "cat"); err != nil || out != "through the pod\n" {
			t.Errorf("kubectl exec -i cat: %q %v\n%s", out, err, errOut)
		}
		_, errOut, err := kubectl("", "exec", "-n", "default", "exec", "--", "/app/tool", "fail", "on", "purpose")
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || !strings.Contains(errOut, "on purpose") || !strings.Contains(errOut, "exit code 3") {
			t.Errorf("kubectl exec of a failing command: %v, stderr %q, want its stderr and exit code 3", err, errOut)
		}
		if _, errOut, err := kubectl("", "exec", "-n", "default", "exec", "--", "/no/such/program"); err == nil || !strings.Contains(errOut, "/no/such/program") {
			t.Errorf("kubectl exec of a missing program: %v, stderr %q", err, errOut)
		}
		// The container has a /proc of its own, and reaches the API server at the kubernetes
		// Service, as in-cluster clients do.
		if out, errOut, err := kubectl("", "exec", "-n", "default", "exec", "--", "/app/tool", "self"); err != nil || out != "/app/tool <nil>\n" {
			t.Errorf("kubectl exec tool self: %q %v\n%s", out, err, errOut)
		}
		if out, errOut, err := kubectl("", "exec", "-n", "default", "exec", "--", "/app/tool", "api"); err != nil || !strings.Contains(out, "answers TLS") {
			t.Errorf("reaching the kubernetes Service from a pod: %q %v\n%s", out, err, errOut)
		}
		// The kubelet API itself takes no request without credentials, nor from a user
		// without the right to the node's proxy subresource: exec, logs and port forwarding are
		// the API server's (its client certificate) or an authorized user's.
		checkKubeletAPIAuth(t, e)
		// A program looked up on the container's PATH: the image sets none, so the default one.
		if _, errOut, err := kubectl("", "exec", "-n", "default", "exec", "--", "tool", "cat"); err == nil || !strings.Contains(errOut, `executable "tool" not found in the image's PATH`) {
			t.Errorf("kubectl exec of a program not on PATH: %v, stderr %q", err, errOut)
		}
		checkIsolation(t, e, image, kubectl)
	})

	t.Run("agent-restart", func(t *testing.T) {
		e.stopAgent(t) // checks that its processes and links are gone
		if entries, _ := os.ReadDir(filepath.Join(e.stateDir, "pods")); len(entries) != 0 {
			t.Errorf("pod directories left after the agent stopped: %v", entries)
		}
		survivor, err := kube.CoreV1().Pods("default").Get(ctx, pods[0].Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if podReady(survivor) || survivor.Status.ContainerStatuses[0].State.Terminated == nil {
			t.Errorf("pod %s after the agent stopped: %+v", survivor.Name, survivor.Status)
		}
		if n, err := kube.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{}); err != nil || n.Status.Conditions[0].Status != corev1.ConditionFalse {
			t.Errorf("node after the agent stopped: %v %+v", err, n.Status.Conditions)
		}
		// While no agent runs, one pod is deleted: it stays Terminating.
		gone := pods[1]
		if err := kube.CoreV1().Pods("default").Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if cur, err := kube.CoreV1().Pods("default").Get(ctx, gone.Name, metav1.GetOptions{}); err != nil || cur.DeletionTimestamp == nil {
			t.Fatalf("pod %s while no agent runs: %v, %v", gone.Name, cur, err)
		}
		start := time.Now()
		e.startAgent(t)
		waitFor(t, 30*time.Second, "the terminating pod to be deleted", func() (bool, error) {
			_, err := kube.CoreV1().Pods("default").Get(ctx, gone.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
		t.Logf("terminating pod deleted %s after the agent restarted", time.Since(start).Round(time.Millisecond))
		waitFor(t, 60*time.Second, "the surviving pod and a replacement to run again", func() (bool, error) {
			list, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "fnkit.dev/function=hello"})
			if err != nil {
				return false, err
			}
			n := 0
			for _, p := range list.Items {
				if !podReady(&p) || p.UID == survivor.UID && p.Status.ContainerStatuses[0].ContainerID == survivor.Status.ContainerStatuses[0].ContainerID {
					continue
				}
				if body, err := get("http://" + p.Status.PodIP + ":8080/"); err != nil || body != "Hello, world!\n" {
					return false, fmt.Errorf("pod %s: %q, %v", p.Name, body, err)
				}
				n++
			}
			return n == 2 && len(list.Items) == 2, fmt.Errorf("%d of %d pods ready", n, len(list.Items))
		})
		t.Logf("2 pods Ready %s after the agent restarted", time.Since(start).Round(time.Millisecond))
	})

	t.Run("probes", func(t *testing.T) {
		probe := func(port int32, delay int32) *corev1.Probe {
			return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/_fn/live", Port: intstr.FromInt32(port)}},
				InitialDelaySeconds: delay, PeriodSeconds: 1, FailureThreshold: 2}
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "probes", Namespace: "default"},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(1)), Containers: []corev1.Container{{
				Name: "function", Image: e.hello,
				Env:            []corev1.EnvVar{{Name: "PORT", Value: "8080"}},
				ReadinessProbe: probe(9999, 0), // nothing listens there: never ready
				LivenessProbe:  probe(9999, 1), // and restarted every few seconds
			}, {
				Name: "tcp", Image: e.hello,
				Env:            []corev1.EnvVar{{Name: "PORT", Value: "8081"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8081)}}, PeriodSeconds: 1},
			}}},
		}
		if _, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = kube.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}) }()
		waitFor(t, 60*time.Second, "the liveness probe to restart the container, and the TCP probe to make its container ready", func() (bool, error) {
			cur, err := kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			cs := cur.Status.ContainerStatuses
			if len(cs) != 2 {
				return false, fmt.Errorf("statuses %+v", cs)
			}
			if cs[0].Ready || podReady(cur) {
				t.Errorf("pod %s ready with a failing readiness probe: %+v", pod.Name, cur.Status)
			}
			return cs[0].RestartCount >= 1 && cs[1].Ready && cs[1].RestartCount == 0, fmt.Errorf("statuses %+v", cs)
		})
		// Events are written asynchronously, after what they report: wait for them to arrive.
		waitFor(t, 30*time.Second, "the pod's events", func() (bool, error) {
			evs, err := kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
			if err != nil {
				return false, err
			}
			var reasons []string
			for _, ev := range evs.Items {
				reasons = append(reasons, ev.Reason)
			}
			for _, want := range []string{"Pulled", "Started", "Unhealthy", "Killing"} {
				if !slices.Contains(reasons, want) {
					return false, fmt.Errorf("events %v, want %s among them", reasons, want)
				}
			}
			return true, nil
		})
	})

	t.Run("rootless", func(t *testing.T) {
		// A second agent that believes it runs without root: pods on the host's network, no
		// chroot, no namespaces.
		geteuid = func() int { return 1000 }
		defer func() { geteuid = os.Geteuid }()
		stateDir := t.TempDir()
		actx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- Run(actx, Options{NodeName: "fn-rootless", RESTConfig: e.rest, StateDir: stateDir,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		}()
		defer func() {
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(60 * time.Second):
				t.Error("the rootless agent did not stop")
			}
		}()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "rootless", Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "fn-rootless", TerminationGracePeriodSeconds: ptr.To(int64(5)), Containers: []corev1.Container{{
				Name: "function", Image: e.hello, Env: []corev1.EnvVar{{Name: "PORT", Value: "18080"}},
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 18080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/_fn/ready", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
			}}},
		}
		if _, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var cur *corev1.Pod
		waitFor(t, 60*time.Second, "the rootless pod to be Ready", func() (ok bool, err error) {
			cur, err = kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			return err == nil && podReady(cur), err
		})
		ip := net.ParseIP(cur.Status.PodIP)
		if ip == nil || ip.IsLoopback() || cur.Status.PodIP != cur.Status.HostIP {
			t.Errorf("rootless pod: IP %q, host IP %q", cur.Status.PodIP, cur.Status.HostIP)
		}
		if body, err := get("http://" + net.JoinHostPort(cur.Status.PodIP, "18080") + "/"); err != nil || body != "Hello, world!\n" {
			t.Errorf("GET the rootless pod: %q, %v", body, err)
		}
		if err := kube.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the rootless pod to be gone", func() (bool, error) {
			_, err := kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(cur.Status.PodIP, "18080"), time.Second); err == nil {
			c.Close()
			t.Error("the rootless pod's process still listens")
		}
	})

	t.Run("delete", func(t *testing.T) {
		list, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "fnkit.dev/function=hello"})
		if err != nil {
			t.Fatal(err)
		}
		var pids []int
		for _, p := range list.Items {
			pids = append(pids, e.pidOf(t, &p, "function"))
		}
		start := time.Now()
		if err := kube.AppsV1().Deployments("default").Delete(ctx, dep.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "the Deployment's pods to be gone", func() (bool, error) {
			l, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			return len(l.Items) == 0, fmt.Errorf("%d pods left", len(l.Items))
		})
		t.Logf("pods deleted %s after the Deployment", time.Since(start).Round(time.Millisecond))
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				t.Errorf("process %d still runs", pid)
			}
		}
		for _, p := range list.Items {
			if _, err := net.InterfaceByName(e.net.linkName(string(p.UID))); err == nil {
				t.Errorf("pod %s: its link is still there", p.Name)
			}
			if hostRoute(t, p.Status.PodIP) {
				t.Errorf("pod %s: %s is still routed", p.Name, p.Status.PodIP)
			}
			if _, err := os.Stat(filepath.Join(e.stateDir, "pods", string(p.UID))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pod %s: its directory is still there (%v)", p.Name, err)
			}
		}
	})
}

// hostRoute reports whether the host has a route to ip/32 (a pod's). Dialing a pod IP that
// lost its route is no test: it may reach whatever the default route leads to.
func hostRoute(t *testing.T, ip string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	ip4 := net.ParseIP(ip).To4()
	want := fmt.Sprintf("%02X%02X%02X%02X", ip4[3], ip4[2], ip4[1], ip4[0])
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 7 && f[1] == want && f[7] == "FFFFFFFF" {
			return true
		}
	}
	return false
}

// pushImage pushes a one-layer image whose entrypoint is a file holding content, with more
// files (headers and contents) in the same directory if given.
func pushImage(t *testing.T, repo, arch, entrypoint string, content []byte, more ...imageFile) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := filepath.Dir(entrypoint)[1:]
	_ = tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, f := range append([]imageFile{{tar.Header{Name: entrypoint[1:], Mode: 0o755}, content}}, more...) {
		f.Typeflag, f.Size = tar.TypeReg, int64(len(f.content))
		_ = tw.WriteHeader(&f.Header)
		_, _ = tw.Write(f.content)
	}
	_ = tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: arch, Config: v1.Config{Entrypoint: []string{entrypoint}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: mustDiffIDs(t, img)}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return repo + "@" + d.String()
}

// checkIsolation checks what a container's processes may do, run by kubectl exec: in the exec
// pod (nothing asked) a PID namespace of its own, whose PID 1 is the container's program, and
// the runtime's default capabilities; in a pod of two containers running as user 1000, one
// restricted (allowPrivilegeEscalation false, capabilities drop ALL, RuntimeDefault seccomp)
// and one not, a setuid-root binary makes a root process (with the default capabilities) only
// in the one that is not; a container given CAP_SYS_ADMIN makes a namespace unless it runs with
// the default seccomp filter.
func checkIsolation(t *testing.T, e *env, image string, kubectl func(string, ...string) (string, string, error)) {
	t.Helper()
	ctx := context.Background()
	security := func(pod, container, program string) string {
		t.Helper()
		out, errOut, err := kubectl("", "exec", "-n", "default", pod, "-c", container, "--", program, "security")
		if err != nil {
			t.Fatalf("kubectl exec %s security in %s/%s: %v\n%s", program, pod, container, err, errOut)
		}
		return strings.TrimSpace(out)
	}
	var defaultCaps uint64
	for _, c := range defaultCapabilities {
		defaultCaps |= 1 << capabilityNumbers[c]
	}
	got := security("exec", "tool", "/app/tool")
	for _, want := range []string{`init="/app/tool\x00serve"`, "euid=0", fmt.Sprintf("CapEff=%016x", defaultCaps), "NoNewPrivs=0", "Seccomp=0", "unshare=operation not permitted"} {
		if !strings.Contains(got, want) {
			t.Errorf("exec pod: %s, want %s", got, want)
		}
	}
	var pid, procs int
	if _, err := fmt.Sscanf(got, "pid=%d procs=%d", &pid, &procs); err != nil || pid == 1 || procs > 3 {
		t.Errorf("exec pod: %s, want a PID namespace of the container's own: its program PID 1, a few processes (%v)", got, err)
	}

	restricted := &corev1.SecurityContext{RunAsUser: ptr.To(int64(1000)), AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	admin := &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
	adminFiltered := admin.DeepCopy()
	adminFiltered.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "isolation", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Name: "restricted", Image: image, Args: []string{"serve"}, SecurityContext: restricted,
					VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared", SubPath: "sub", ReadOnly: true}}},
				{Name: "open", Image: image, Args: []string{"serve"}, SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To(int64(1000))}},
				{Name: "admin", Image: image, Args: []string{"serve"}, SecurityContext: admin,
					VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/vol"}}},
				{Name: "admin-filtered", Image: image, Args: []string{"serve"}, SecurityContext: adminFiltered},
			},
			Volumes:                       []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
		},
	}
	if _, err := e.kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.kube.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}) }()
	waitFor(t, 60*time.Second, "pod isolation to be ready", func() (bool, error) {
		cur, err := e.kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && podReady(cur), err
	})
	const denied = "unshare=operation not permitted"
	adminCaps := defaultCaps | 1<<capabilityNumbers["SYS_ADMIN"]
	for _, c := range []struct{ container, program, want string }{
		{"restricted", "/app/tool", "euid=1000 CapEff=0000000000000000 NoNewPrivs=1 Seccomp=2 " + denied},
		{"restricted", "/app/suid", "euid=1000 CapEff=0000000000000000 NoNewPrivs=1 Seccomp=2 " + denied},
		{"open", "/app/tool", "euid=1000 CapEff=0000000000000000 NoNewPrivs=0 Seccomp=0 " + denied},
		{"open", "/app/suid", fmt.Sprintf("euid=0 CapEff=%016x NoNewPrivs=0 Seccomp=0 %s", defaultCaps, denied)},
		// CAP_SYS_ADMIN makes a namespace, unless the default seccomp filter denies it.
		{"admin", "/app/tool", fmt.Sprintf("euid=0 CapEff=%016x NoNewPrivs=0 Seccomp=0 unshare=ok", adminCaps)},
		{"admin-filtered", "/app/tool", fmt.Sprintf("euid=0 CapEff=%016x NoNewPrivs=0 Seccomp=2 %s", adminCaps, denied)},
	} {
		if got := security(pod.Name, c.container, c.program); !strings.HasSuffix(got, c.want) {
			t.Errorf("%s in container %s: %s, want %s", c.program, c.container, got, c.want)
		}
	}
	// A subPath of a volume (mounted by descriptor, read-only) is that directory of it.
	if _, errOut, err := kubectl("through the volume\n", "exec", "-i", "-n", "default", pod.Name, "-c", "admin", "--", "/app/tool", "write", "/vol/sub/x"); err != nil {
		t.Fatalf("writing into the volume: %v\n%s", err, errOut)
	}
	if out, errOut, err := kubectl("", "exec", "-n", "default", pod.Name, "-c", "restricted", "--", "/app/tool", "read", "/shared/x"); err != nil || out != "through the volume\n" {
		t.Errorf("reading the subPath: %q %v\n%s", out, err, errOut)
	}
	if _, errOut, err := kubectl("x", "exec", "-i", "-n", "default", pod.Name, "-c", "restricted", "--", "/app/tool", "write", "/shared/y"); err == nil || !strings.Contains(errOut, "read-only file system") {
		t.Errorf("writing into a read-only subPath: %v\n%s", err, errOut)
	}
}

// imageFile is a regular file of an image pushImage makes.
type imageFile struct {
	tar.Header
	content []byte
}

func mustDiffIDs(t *testing.T, img v1.Image) []v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// checkKubeletAPIAuth asks the agent's kubelet API for the exec pod's logs directly: without
// credentials 401; with a certificate of the cluster's CA for a user without nodes/proxy 403,
// until RBAC grants it; with the admin's (system:masters) 200.
func checkKubeletAPIAuth(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	n, err := e.kube.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/containerLogs/default/exec/tool", n.Status.DaemonEndpoints.KubeletEndpoint.Port)
	get := func(certs ...tls.Certificate) int {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, Certificates: certs}}} //nolint:gosec // the agent's serving certificate is self-signed
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("kubelet API: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusUnauthorized {
		t.Errorf("kubelet API without credentials: %d, want 401", code)
	}
	certPEM, keyPEM, err := e.cp.ClientCertificate("nobody", "some-team")
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if code := get(nobody); code != http.StatusForbidden {
		t.Errorf("kubelet API as a user without nodes/proxy: %d, want 403", code)
	}
	admin, err := tls.LoadX509KeyPair(e.rest.TLSClientConfig.CertFile, e.rest.TLSClientConfig.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if code := get(admin); code != http.StatusOK {
		t.Errorf("kubelet API as the admin: %d, want 200", code)
	}
}
