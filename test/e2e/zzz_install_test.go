package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fnkit.dev/fn/platform/controlplane"
)

// leaderTakeoverBound is how soon a Function created after the controller's leader pod is
// deleted is Ready: the leader gives its leases up as it stops (a killed one's expire within
// 15 s), the other replica takes them and reconciles, and the function's pod starts.
const leaderTakeoverBound = 60 * time.Second

// TestInstallMode (in the last file: it runs last, on a platform of its own) brings the local
// platform up with fn's components as pods (fn up --install) and runs fn through them:
// deploy and invoke over HTTP and CloudEvents, scale from zero, git push; the controller's
// leader pod deleted, a gateway pod deleted under load; fn install again changes nothing, its
// --print applied to a fresh control plane gives the same objects, fn uninstall leaves nothing
// of fn-system.
func TestInstallMode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	// The suite's platform makes way (same ports); this one has a home of its own.
	mustFn(t, "down")
	mainHome := fnHome
	fnHome = filepath.Join(filepath.Dir(mainHome), "install-home")
	os.Setenv("FN_HOME", fnHome)
	t.Cleanup(func() {
		fn(t, "down")
		if left := platformProcesses(); len(left) > 0 {
			t.Errorf("processes of the platform left after fn down: %v", left)
		}
		fnHome = mainHome
		os.Setenv("FN_HOME", mainHome)
	})
	start := time.Now()
	up := exec.Command(fnBin, "up", "--install", "--nodes", strconv.Itoa(len(platformNodes)), "--source", repo)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("fn up --install: %v\n%s", err, out)
	}
	t.Logf("fn up --install --nodes %d: ready in %s", len(platformNodes), time.Since(start).Round(time.Millisecond))

	t.Run("components run as pods", func(t *testing.T) {
		out := kubectl(t, "get", "pods", "-n", "fn-system", "-o",
			`jsonpath={range .items[*]}{.metadata.labels.app\.kubernetes\.io/name} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		count, nodes := map[string]int{}, map[string]map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) != 3 || f[2] != "True" {
				t.Errorf("pod not Ready: %q", l)
				continue
			}
			count[f[0]]++
			if nodes[f[0]] == nil {
				nodes[f[0]] = map[string]bool{}
			}
			nodes[f[0]][f[1]] = true
		}
		if count["fn-controller"] != 2 || count["fn-gateway"] != 2 || count["fn-builder"] != 1 || count["fn-events"] != 1 {
			t.Errorf("Ready pods per component %v, want 2 controllers, 2 gateways, 1 builder, 1 event engine", count)
		}
		if len(nodes["fn-gateway"]) != 2 {
			t.Errorf("gateways on nodes %v: want one on each", nodes["fn-gateway"])
		}
		if ps := platformProcessesNamed("fn-gateway", "fn-controller", "fn-builder"); len(ps) != 5 {
			t.Errorf("component processes %v, want 5, each its pod's", ps)
		}
	})

	t.Run("deploy and invoke", func(t *testing.T) {
		mustFn(t, "deploy", filepath.Join(repo, "examples", "hello"))
		if got := mustFn(t, "invoke", "hello/via/pods"); got != "Hello, world!\n" {
			t.Errorf("invoke hello: %q", got)
		}
		// The access lines are the gateway pods' logs (written in batches of 200 ms).
		var out string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if out = mustFn(t, "logs", "hello", "--requests"); strings.Contains(out, " GET /f/default/hello/via/pods 200 ") {
				break
			}
		}
		if !strings.Contains(out, " GET /f/default/hello/via/pods 200 ") {
			t.Errorf("fn logs --requests through the gateway pods:\n%s", out)
		}
		mustFn(t, "deploy", filepath.Join(repo, "examples", "echo-event"))
		out = mustFn(t, "invoke", "echo-event", "--cloudevent", "-d", `{"message":"through pods"}`)
		if !strings.Contains(out, "through pods") {
			t.Errorf("CloudEvent through the pods' gateway: %s", out)
		}
	})

	t.Run("asynchronous call through fn's engine", func(t *testing.T) {
		// The gateway pods reach the engine's pod by its EndpointSlices; fn calls reads the
		// record through the API server's proxy to a gateway pod.
		// The gateways connect once the engine's pod is ready, which may be after their own.
		var out string
		took := waitFor(t, 30*time.Second, "an asynchronous call accepted", func() bool {
			o, _, err := fn(t, "invoke", "hello", "--async", "-d", "later")
			out = o
			return err == nil
		})
		t.Logf("accepted %s after the platform was up", took.Round(time.Millisecond))
		id := strings.TrimSpace(out)
		var state string
		waitFor(t, time.Minute, "the call done", func() bool {
			out, _, err := fn(t, "calls", "hello", id, "-o", "json")
			var r struct{ State string }
			if err == nil && json.Unmarshal([]byte(out), &r) == nil {
				state = r.State
			}
			return state == "done"
		})
	})

	t.Run("scale from zero", func(t *testing.T) {
		url := strings.TrimSpace(mustFn(t, "deploy", writeSlow(t, "sleepy"), "--window", "4s", "--scale-down-delay", "2s", "--max", "4"))
		waitZero(t, "sleepy", time.Minute)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "sleepy-") {
			t.Errorf("a request at zero: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("git push", func(t *testing.T) {
		r := newGitRepo(t, "")
		if out, err := r.run(fnBin, "remote", "pushed", "--add"); err != nil {
			t.Fatalf("fn remote --add: %v\n%s", err, out)
		}
		out, err := r.run("git", "push", "fn", "main")
		if err != nil || !strings.Contains(out, "remote: fn: built and pushed") {
			t.Fatalf("git push to the builder pod: %v\n%s", err, out)
		}
		if got := mustFn(t, "invoke", "pushed"); got != "Hello, world!\n" {
			t.Errorf("invoke pushed: %q", got)
		}
	})

	t.Run("controller leader deleted", func(t *testing.T) {
		leader := controllerLeader(t)
		if leader == "" {
			t.Fatal("no controller pod holds the reconciler's lease")
		}
		kubectl(t, "delete", "pod", "-n", "fn-system", leader, "--wait=false")
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), leaderTakeoverBound)
		defer cancel()
		cmd := exec.CommandContext(ctx, fnBin, "deploy", copyHello(t, "afterleader"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("fn deploy after the leader went: %v (bound %s)\n%s", err, leaderTakeoverBound, out)
		}
		t.Logf("a Function created after the leader pod was deleted was Ready in %s", time.Since(start).Round(time.Millisecond))
		if now := controllerLeader(t); now == leader || now == "" {
			t.Errorf("the lease is held by %q after %q was deleted", now, leader)
		}
	})

	t.Run("gateway pod deleted under load", func(t *testing.T) {
		l := startLoop(gatewayURL(t)+"/f/default/hello/", "Hello")
		time.Sleep(2 * time.Second)
		pod := strings.Fields(kubectl(t, "get", "pods", "-n", "fn-system", "-l", "app.kubernetes.io/name=fn-gateway", "-o", "jsonpath={.items[*].metadata.name}"))[0]
		before := l.ok.Load()
		kubectl(t, "delete", "pod", "-n", "fn-system", pod)
		time.Sleep(3 * time.Second)
		l.end()
		t.Logf("deleting gateway pod %s under load: %d ok (%d after), %d failed", pod, l.ok.Load(), l.ok.Load()-before, l.failed.Load())
		if l.failed.Load() > 1 || l.ok.Load()-before < 10 {
			t.Errorf("%d requests failed (last: %v), %d answered after the delete: want requests to go on through the other gateway", l.failed.Load(), l.last.Load(), l.ok.Load()-before)
		}
	})

	t.Run("install again changes nothing", func(t *testing.T) {
		var r struct{ Created, Changed, Unchanged int }
		if err := json.Unmarshal([]byte(mustFn(t, "install", "--source", repo, "-o", "json")), &r); err != nil {
			t.Fatal(err)
		}
		if r.Created != 0 || r.Changed != 0 || r.Unchanged == 0 {
			t.Errorf("fn install on an installed platform: %+v, want everything unchanged", r)
		}
	})

	t.Run("print applied to a fresh control plane", func(t *testing.T) {
		printed := filepath.Join(t.TempDir(), "fn.yaml")
		if err := os.WriteFile(printed, []byte(mustFn(t, "install", "--source", repo, "--print")), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		bin, err := controlplane.BinDir(ctx, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir(), BinDir: bin})
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Stop()
		fresh := func(args ...string) string {
			t.Helper()
			out, err := exec.Command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", cp.KubeconfigPath()}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl %s (fresh): %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		fresh("apply", "-f", printed)
		for _, obj := range []string{"deployment/fn-controller", "deployment/fn-gateway", "deployment/fn-builder",
			"service/fn-gateway", "service/fn-builder", "poddisruptionbudget/fn-gateway", "role/fn-controller"} {
			get := []string{"get", "-n", "fn-system", obj, "-o", "jsonpath={.spec}{.rules}"}
			if a, b := kubectl(t, get...), fresh(get...); stripClusterFields(a) != stripClusterFields(b) {
				t.Errorf("%s differs:\ninstalled: %s\nprinted:   %s", obj, a, b)
			}
		}
		for _, obj := range []string{"clusterrole/fn-controller", "clusterrole/fn-gateway", "clusterrole/fn-builder", "crd/functions.fnkit.dev"} {
			get := []string{"get", obj, "-o", "jsonpath={.spec}{.rules}"}
			if a, b := kubectl(t, get...), fresh(get...); a != b {
				t.Errorf("%s differs:\ninstalled: %s\nprinted:   %s", obj, a, b)
			}
		}
	})

	t.Run("uninstall", func(t *testing.T) {
		mustFn(t, "uninstall")
		if out := kubectl(t, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}"); strings.Contains(out, "fn-system") {
			t.Errorf("namespaces after fn uninstall: %s", out)
		}
		if out := kubectl(t, "get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/part-of=fn", "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("fn's cluster RBAC after fn uninstall:\n%s", out)
		}
		if out := kubectl(t, "get", "functions", "-o", "name"); !strings.Contains(out, "function.fnkit.dev/hello") {
			t.Errorf("Functions after fn uninstall (without --functions): %q, want them kept", out)
		}
	})
}

// stripClusterFields removes what differs between any two clusters from a Service's spec: the
// addresses and ports the cluster allocated.
func stripClusterFields(s string) string {
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		return s
	}
	for _, k := range []string{"clusterIP", "clusterIPs"} {
		delete(m, k)
	}
	if ports, ok := m["ports"].([]any); ok {
		for _, p := range ports {
			if pm, ok := p.(map[string]any); ok {
				delete(pm, "nodePort")
			}
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// controllerLeader is the pod holding the Function reconciler's lease (not the autoscaler's).
func controllerLeader(t *testing.T) string {
	t.Helper()
	out := kubectl(t, "get", "leases", "-n", "fn-system", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.holderIdentity}{"\n"}{end}`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.Contains(f[0], "reconciler") {
			pod, _, _ := strings.Cut(f[1], "_")
			return pod
		}
	}
	return ""
}

// platformProcessesNamed lists the platform's processes whose executable has one of names as
// its base name.
func platformProcessesNamed(names ...string) []string {
	var found []string
	for _, p := range platformProcesses() {
		f := strings.Fields(p)
		if len(f) > 1 {
			for _, n := range names {
				if filepath.Base(f[1]) == n {
					found = append(found, p)
				}
			}
		}
	}
	return found
}
