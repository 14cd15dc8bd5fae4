package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// componentStatus is a component as fn status -o json says.
type componentStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"lastExit"`
}

func platformStatus(t *testing.T) map[string]componentStatus {
	t.Helper()
	out, errOut, err := fn(t, "status", "-o", "json")
	if err != nil {
		t.Fatalf("fn status: %v\n%s%s", err, out, errOut)
	}
	var st struct{ Components []componentStatus }
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("fn status -o json: %v\n%s", err, out)
	}
	m := map[string]componentStatus{}
	for _, c := range st.Components {
		m[c.Name] = c
	}
	return m
}

// TestControlPlaneKilled kills etcd, then kube-apiserver, with SIGKILL while a bounded request
// loop runs against a function: not one request fails (the gateway routes from its caches),
// each comes back (fn status: running, a new pid, one restart more, its last exit), fn list
// answers again, and the function's pod was neither replaced nor restarted.
func TestControlPlaneKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "steady")
	url := strings.TrimSpace(mustFn(t, "deploy", dir, "--min", "1"))
	t.Cleanup(func() { fn(t, "delete", "steady") })
	pods := func() string {
		return strings.TrimSpace(kubectl(t, "get", "pods", "-l", "fnkit.dev/function=steady", "-o",
			`jsonpath={range .items[*]}{.metadata.name}:{.status.containerStatuses[0].restartCount} {end}`))
	}
	before := pods()
	if c := platformStatus(t)["kube-apiserver"]; c.State != "running" || c.PID == 0 {
		t.Fatalf("fn status before: kube-apiserver %+v", c)
	}
	l := startLoop(url, "Hello")
	killed := time.Now()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		old := platformStatus(t)[name]
		if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
			l.end()
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, name+" started again and fn list answering", func() bool {
			if _, _, err := fn(t, "list"); err != nil {
				return false
			}
			c := platformStatus(t)[name]
			return c.State == "running" && c.PID != old.PID && c.Restarts == old.Restarts+1 && strings.Contains(c.LastExit, "killed")
		})
		t.Logf("%s killed: back and the API answering %s after", name, time.Since(killed).Round(time.Millisecond))
		killed = time.Now()
	}
	time.Sleep(time.Second)
	l.end()
	if l.failed.Load() > 0 || l.ok.Load() == 0 {
		t.Errorf("%d of %d requests failed while the control plane was killed:%s", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.failuresSince(killed))
	}
	if after := pods(); after != before {
		t.Errorf("the function's pods were %q before, %q after: want them neither replaced nor restarted", before, after)
	}
}

// TestAgentKilled kills the second node's agent with SIGKILL while a bounded request loop runs
// against a function with a replica on each node: its pods die with it; the supervisor starts it
// again, and it starts the pods bound to its node again (the same pods, not replacements). No
// request fails but the one in flight on that node.
func TestAgentKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "resilient")
	url := strings.TrimSpace(mustFn(t, "deploy", dir, "--min", "2"))
	t.Cleanup(func() { fn(t, "delete", "resilient") })
	onNode := func(node string) string {
		return strings.TrimSpace(kubectl(t, "get", "pods", "-l", "fnkit.dev/function=resilient", "--field-selector", "spec.nodeName="+node, "-o",
			`jsonpath={range .items[*]}{.metadata.name}:{.status.conditions[?(@.type=="Ready")].status} {end}`))
	}
	before := onNode(platformNodes[1])
	if !strings.Contains(before, ":True") {
		t.Fatalf("no Ready replica on %s: %q", platformNodes[1], before)
	}
	old := platformStatus(t)["agent "+platformNodes[1]]
	l := startLoop(url, "Hello")
	killed := time.Now()
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		l.end()
		t.Fatal(err)
	}
	back := waitFor(t, 60*time.Second, "the agent started again and its pod Ready again", func() bool {
		c := platformStatus(t)["agent "+platformNodes[1]]
		return c.State == "running" && c.PID != old.PID && c.Restarts == old.Restarts+1 && onNode(platformNodes[1]) == before
	})
	time.Sleep(time.Second)
	l.end()
	t.Logf("agent of %s killed: started again, its pod Ready again after %s; requests meanwhile: %d ok, %d failed", platformNodes[1], back, l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 1 {
		t.Errorf("%d of %d requests failed while an agent restarted, want at most the one in flight:%s", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.failuresSince(killed))
	}
}

// TestRegistryUnavailable deploys to a registry that does not answer: fn deploy fails with one
// line naming the registry and what to do, and nothing on the cluster changes (no Function).
func TestRegistryUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "unpushed")
	out, errOut, err := fn(t, "deploy", dir, "--registry", "127.0.0.1:1/fns")
	if err == nil {
		t.Fatalf("fn deploy to a registry that does not answer succeeded: %s", out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "127.0.0.1:1") || !strings.HasPrefix(last, "fn: ") {
		t.Errorf("fn deploy's error: %q, want one line naming the registry", last)
	}
	if _, errOut, err := fn(t, "describe", "unpushed"); err == nil || !strings.Contains(errOut, "no function") {
		t.Errorf("a Function exists after the failed deploy: %v %s", err, errOut)
	}
}
