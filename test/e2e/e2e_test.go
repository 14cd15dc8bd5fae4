package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// platformNodes are the Nodes of the platform under test: two agents, so that tests run on a
// cluster of more than one node.
var platformNodes = []string{"fn-local", "fn-local-2"}

var (
	fnBin  string // the fn binary under test
	fnHome string // FN_HOME of the platform under test
	repo   string // the repository's root
)

// TestMain builds fn, and brings the local platform up once for the package's tests, from an
// empty FN_HOME; it brings it down at the end and checks nothing of it is left running.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	repo = filepath.Clean(filepath.Join(wd, "..", ".."))
	tmp, err := os.MkdirTemp("", "fn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	fnBin = filepath.Join(tmp, "fn")
	build := exec.Command("go", "build", "-o", fnBin, "./cmd/fn")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building fn: %v\n%s", err, out)
		return 1
	}
	fnHome = filepath.Join(tmp, "home")
	os.Setenv("FN_HOME", fnHome)
	// The registry's store on a file system of its own, small enough for TestDiskFull to fill.
	if unmount, err := smallRegistryDisk(); err != nil {
		fmt.Fprintf(os.Stderr, "no small disk for the registry, so TestDiskFull skips: %v\n", err)
	} else {
		defer unmount()
	}
	os.Setenv("FN_CACHE_DIR", filepath.Join(tmp, "cache"))
	start := time.Now()
	if out, err := exec.Command(fnBin, "up", "--nodes", strconv.Itoa(len(platformNodes))).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "fn up: %v\n%s", err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "fn up: ready in %s\n", time.Since(start))
	code := m.Run()
	if out, err := exec.Command(fnBin, "down").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "fn down: %v\n%s", err, out)
		return 1
	}
	if left := platformProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes of the platform left after fn down: %v\n", left)
		return 1
	}
	return code
}

// registryDiskSize is the size of the file system of the registry's store under test.
const registryDiskSize = 1 << 30

// registryDisk is FN_HOME/registry when it is a file system of registryDiskSize.
var registryDisk string

// smallRegistryDisk mounts a tmpfs of registryDiskSize on FN_HOME/registry (as root).
func smallRegistryDisk() (unmount func(), err error) {
	dir := filepath.Join(fnHome, "registry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", registryDiskSize)); err != nil {
		return nil, err
	}
	registryDisk = dir
	return func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) }, nil
}

// platformProcesses lists running processes whose command line or executable refers to FN_HOME
// or whose environment names it, and containers' processes whose root is under it: what fn
// down must leave none of.
func platformProcesses() []string {
	var left []string
	// A container's process is pivoted into its root: its mounts show where that root is on the
	// host, as a path inside its file system (FN_HOME's last two names are enough: the first
	// is the e2e run's random temporary directory).
	rootMark := []byte("/" + filepath.Base(filepath.Dir(fnHome)) + "/" + filepath.Base(fnHome) + "/")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		inContainer := false
		if mounts, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo")); err == nil {
			for _, l := range bytes.Split(mounts, []byte("\n")) {
				// mount ID, parent ID, major:minor, root, mount point: the one mounted on /.
				if f := bytes.Fields(l); len(f) > 4 && string(f[4]) == "/" && bytes.Contains(f[3], rootMark) {
					inContainer = true
				}
			}
		}
		if inContainer || bytes.Contains(cmdline, []byte(fnHome)) || strings.Contains(exe, fnHome) || bytes.Contains(environ, []byte("FN_HOME="+fnHome)) {
			left = append(left, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return left
}

// fn runs the fn binary and returns its stdout, stderr and error.
func fn(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, fnBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func mustFn(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := fn(t, args...)
	if err != nil {
		t.Fatalf("fn %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	var st struct {
		Kubeconfig string `json:"kubeconfig"`
		Kubectl    string `json:"kubectl"`
	}
	b, err := os.ReadFile(filepath.Join(fnHome, "platform.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(st.Kubectl, append([]string{"--kubeconfig", st.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDeployAndInvokeExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	for _, ex := range []string{"hello", "echo-event", "typed"} {
		url := strings.TrimSpace(mustFn(t, "deploy", filepath.Join(repo, "examples", ex)))
		if !strings.HasPrefix(url, "http://") {
			t.Fatalf("fn deploy %s printed %q, want its URL", ex, url)
		}
	}
	if out := mustFn(t, "invoke", "hello"); out != "Hello, world!\n" {
		t.Errorf("fn invoke hello = %q", out)
	}
	for _, mode := range []string{"binary", "structured"} {
		out := mustFn(t, "invoke", "echo-event", "--cloudevent", "--type", "t", "--source", "s", "--id", "e2e-1", "--mode", mode, "--data", `{"n":1}`)
		var ev map[string]any
		if err := json.Unmarshal([]byte(out), &ev); err != nil || ev["type"] != "dev.fnkit.echo" || ev["echoedid"] != "e2e-1" {
			t.Errorf("fn invoke echo-event (%s) = %q (%v)", mode, out, err)
		}
	}
	if out := mustFn(t, "invoke", "typed", "--data", `{"items":[{"name":"tea","price":2.5,"quantity":2}]}`); strings.TrimSpace(out) != `{"total":5,"itemCount":2}` {
		t.Errorf("fn invoke typed = %q", out)
	}

	// The pods run on the agents' nodes and their Service's EndpointSlice lists them.
	pods := kubectl(t, "get", "pods", "-l", "fnkit.dev/function=hello", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.status.podIP}{\"\\n\"}{end}")
	var ips []string
	for _, l := range strings.Split(strings.TrimSpace(pods), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || !slices.Contains(platformNodes, f[0]) || f[1] != "Running" {
			t.Errorf("hello pod: %q, want Running on one of %v with an IP", l, platformNodes)
			continue
		}
		ips = append(ips, f[2])
	}
	eps := kubectl(t, "get", "endpointslices", "-l", "kubernetes.io/service-name=hello", "-o", "jsonpath={range .items[*].endpoints[*]}{.addresses[0]}{\"\\n\"}{end}")
	for _, ip := range ips {
		if !strings.Contains(eps, ip) {
			t.Errorf("EndpointSlice of hello %q does not list pod IP %s", eps, ip)
		}
	}

	// A function's process runs confined: not as root, without privileges to gain, and with no
	// API credentials (a function is not a Kubernetes client unless it is given one).
	pids := functionProcesses("hello")
	if len(pids) == 0 {
		t.Error("no process of hello found")
	}
	for _, pid := range pids {
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "NoNewPrivs:\t1", "CapEff:\t0000000000000000"} {
			if !strings.Contains(string(status), want) {
				t.Errorf("hello's process %d: no %q in its status:\n%s", pid, want, status)
			}
		}
		token := filepath.Join("/proc", strconv.Itoa(pid), "root/var/run/secrets/kubernetes.io/serviceaccount")
		if _, err := os.Stat(token); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("hello's process %d sees a service account token (%s: %v)", pid, token, err)
		}
	}

	// fn list, describe and logs.
	if out := mustFn(t, "list"); !strings.Contains(out, "hello") || !strings.Contains(out, "echo-event") {
		t.Errorf("fn list:\n%s", out)
	}
	if out := mustFn(t, "describe", "hello"); !strings.Contains(out, "Ready:") || !strings.Contains(out, "Running") {
		t.Errorf("fn describe hello:\n%s", out)
	}
	if out := mustFn(t, "logs", "hello"); !strings.Contains(out, `"msg":"ready"`) {
		t.Errorf("fn logs hello:\n%s", out)
	}
}

func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	before := functionImages(t)
	dir := filepath.Join(t.TempDir(), "broken")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "handle.go"), []byte("package broken\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {\n\tw.Write(nope)\n}\n"), 0o644)
	_, errOut, err := fn(t, "deploy", dir)
	if err == nil || !strings.Contains(errOut, "handle.go:6:10: undefined: nope") {
		t.Errorf("deploy of a broken function: %v\n%s", err, errOut)
	}
	if after := functionImages(t); after != before {
		t.Errorf("a failed deploy changed the cluster's functions: %s -> %s", before, after)
	}
	_, errOut, err = fn(t, "invoke", "nosuchfn")
	if err == nil || !strings.Contains(errOut, `no function "nosuchfn"`) {
		t.Errorf("invoke of an unknown function: %v %q", err, errOut)
	}
}

// TestRollingUpdateUnderLoad redeploys hello with new code while a bounded request loop runs
// through the gateway: the new answer appears and not one request fails.
func TestRollingUpdateUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "hello")
	url := strings.TrimSpace(mustFn(t, "deploy", dir))
	src, _ := os.ReadFile(filepath.Join(dir, "hello.go"))
	os.WriteFile(filepath.Join(dir, "hello.go"), bytes.Replace(src, []byte(`"Hello, %s!\n"`), []byte(`"Howdy, %s!\n"`), 1), 0o644)

	l := startLoop(url, "Howdy, world!\n")
	time.Sleep(time.Second)
	mustFn(t, "deploy", dir)
	// Keep the loop going a little after the rollout, then stop it.
	time.Sleep(3 * time.Second)
	l.end()
	t.Logf("requests: %d ok (%d new), %d failed", l.ok.Load(), l.wanted.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Errorf("%d requests failed during the rollout; last: %v", l.failed.Load(), l.last.Load())
	}
	if l.wanted.Load() == 0 {
		t.Errorf("the new version never answered")
	}
}

// copyHello copies examples/hello's module into a new directory named name.
func copyHello(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	os.MkdirAll(dir, 0o755)
	for _, f := range []string{"go.mod", "hello.go"} {
		b, err := os.ReadFile(filepath.Join(repo, "examples", "hello", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	return dir
}

// TestSpreadOverNodes: a function's replicas spread over the nodes, and the gateway reaches
// every one of them.
func TestSpreadOverNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "spread")
	url := strings.TrimSpace(mustFn(t, "deploy", dir, "--min", "4"))
	t.Cleanup(func() { fn(t, "delete", "spread") })
	out := kubectl(t, "get", "pods", "-l", "fnkit.dev/function=spread", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP}{\"\\n\"}{end}")
	perNode := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			perNode[f[0]]++
		}
	}
	for _, n := range platformNodes {
		if perNode[n] != 4/len(platformNodes) {
			t.Errorf("4 replicas over %v: %v, want them spread evenly", platformNodes, perNode)
			break
		}
	}
	// Every replica answers through the gateway (no request fails, whichever node it reaches).
	for i := 0; i < 40; i++ {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
}

// TestRestartAndDelete kills a function's process, expects the pod to restart it and serve
// again, then deletes the function and expects its pods and processes gone.
func TestRestartAndDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	mustFn(t, "deploy", filepath.Join(repo, "examples", "hello"), "--name", "victim")
	pids := functionProcesses("victim")
	if len(pids) == 0 {
		t.Fatalf("no process of function victim found")
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		restarts := kubectl(t, "get", "pods", "-l", "fnkit.dev/function=victim", "-o", "jsonpath={.items[0].status.containerStatuses[0].restartCount} {.items[0].status.containerStatuses[0].ready}")
		if f := strings.Fields(restarts); len(f) == 2 && f[0] != "0" && f[1] == "true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod of victim not restarted and ready within 60s: %q", restarts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Ready again: it serves again once the endpoints say so (until then the gateway answers 503).
	for {
		out, _, err := fn(t, "invoke", "victim")
		if err == nil && out == "Hello, world!\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("victim does not serve again after its restart: %q %v", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustFn(t, "delete", "victim")
	if out := kubectl(t, "get", "pods", "-l", "fnkit.dev/function=victim", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("pods left after fn delete: %s", out)
	}
	if left := functionProcesses("victim"); len(left) > 0 {
		t.Errorf("processes left after fn delete: %v", left)
	}
}

// functionProcesses finds the processes of a function's pods: their environment names the function.
func functionProcesses(name string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(env, []byte("\x00FN_NAME="+name+"\x00")) || bytes.HasPrefix(env, []byte("FN_NAME="+name+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// functionImages describes the deployed functions by name and image.
func functionImages(t *testing.T) string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string }  `json:"metadata"`
			Spec     struct{ Image string } `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustFn(t, "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, f := range list.Items {
		parts = append(parts, f.Metadata.Name+"="+f.Spec.Image)
	}
	return strings.Join(parts, " ")
}

// TestUpIdempotentAndCrashRecovery: fn up on a running platform changes nothing; after the
// platform is killed outright (no cleanup at all), fn up starts it again over the stale files and
// the functions deployed before serve again.
func TestUpIdempotentAndCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	mustFn(t, "deploy", filepath.Join(repo, "examples", "hello"))
	before := mustFn(t, "up", "-o", "json")
	var st struct {
		PID        int    `json:"pid"`
		Kubeconfig string `json:"kubeconfig"`
	}
	if err := json.Unmarshal([]byte(before), &st); err != nil || st.PID == 0 {
		t.Fatalf("fn up -o json: %q (%v)", before, err)
	}
	if again := mustFn(t, "up", "-o", "json"); again != before {
		t.Errorf("fn up on a running platform changed it:\n%s\n%s", before, again)
	}

	// A crash: SIGKILL, no shutdown. Its components die with it; its files stay behind.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(platformProcesses()) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("processes left 30s after the platform was killed: %v", platformProcesses())
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustFn(t, "up", "--nodes", strconv.Itoa(len(platformNodes)))
	for deadline := time.Now().Add(90 * time.Second); ; {
		out, errOut, err := fn(t, "invoke", "hello")
		if err == nil && out == "Hello, world!\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hello does not serve after a crash and fn up: %q %v %s\n%s", out, err, errOut, kubectl(t, "get", "pods,endpointslices", "-o", "wide"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
