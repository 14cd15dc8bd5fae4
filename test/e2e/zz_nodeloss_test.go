package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fnkit.dev/fn/platform"
)

// nodeLossBound is how soon a function has all its replicas Ready again on the remaining
// nodes after one is lost: the local platform's NodeLossGrace (10 s) to notice, as long for
// the pods' tolerations, then a start.
const nodeLossBound = 40 * time.Second

// TestNodeLoss (in the last file, so that it runs last: a lost node stays lost until the next
// fn up, which it does at the end) loses the second node while a bounded request loop (one
// request at a time) runs against a function with replicas on both nodes: its agent frozen
// (SIGSTOP: no more heartbeats, and the supervisor, which restarts an agent that exits, sees
// nothing to restart) and its pods' processes killed, as when a machine goes away. No request
// fails but the one in flight on the lost node, and all 4 replicas run on the first node
// within nodeLossBound.
func TestNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "survivor")
	url := strings.TrimSpace(mustFn(t, "deploy", dir, "--min", "4"))
	placed := func() map[string]int {
		out := kubectl(t, "get", "pods", "-l", "fnkit.dev/function=survivor", "-o",
			`jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		n := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == "True" { // not terminating, Ready
				n[f[0]]++
			}
		}
		return n
	}
	if n := placed(); n[platformNodes[1]] == 0 {
		t.Fatalf("replicas per node %v: none on %s to lose", n, platformNodes[1])
	}
	pid := platformStatus(t)["agent "+platformNodes[1]].PID
	if pid == 0 {
		t.Fatalf("fn status shows no agent of %s", platformNodes[1])
	}
	t.Cleanup(func() {
		// The platform as it was, for whatever runs after. The frozen agent is killed (a lost
		// machine's agent does not come back): the supervisor starts a new one, which finishes
		// the lost node's pods' termination.
		_ = syscall.Kill(pid, syscall.SIGKILL)
		mustFn(t, "down")
		mustFn(t, "up", "--nodes", strconv.Itoa(len(platformNodes)))
		fn(t, "delete", "survivor")
	})

	l := startLoop(url, "Hello")
	lost := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		l.end()
		t.Fatal(err)
	}
	// Its pods' processes: each container's first process is a child of the agent (what they
	// started dies with them, in their PID namespaces).
	killed := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its ")".
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if child, err := strconv.Atoi(e.Name()); err == nil && syscall.Kill(child, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	if killed == 0 {
		l.end()
		t.Fatalf("no process of %s's pods to kill", platformNodes[1])
	}
	waitFor(t, nodeLossBound, "4 replicas Ready on "+platformNodes[0], func() bool { return placed()[platformNodes[0]] == 4 })
	time.Sleep(time.Second)
	l.end()
	t.Logf("node %s lost (%d pod processes killed): 4 replicas Ready on %s after %s; requests meanwhile: %d ok, %d failed",
		platformNodes[1], killed, platformNodes[0], time.Since(lost)-time.Second, l.ok.Load(), l.failed.Load())
	// The loop sends one request at a time: only the one in flight on the lost node when it
	// was lost may fail.
	if l.failed.Load() > 1 {
		t.Errorf("%d of %d requests failed while a node was lost, want at most the one in flight:%s\nthe gateway's errors:%s", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.failuresSince(lost), gatewayErrors(t, "survivor"))
	}
	if st := kubectl(t, "get", "node", platformNodes[1], "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); st == "True" {
		t.Errorf("the lost node is still Ready")
	}
}

// gatewayErrors is what the gateway's log says of the requests for function name that failed.
func gatewayErrors(t *testing.T, name string) string {
	b, err := os.ReadFile(platform.ComponentLogPath(fnHome, "gateway"))
	if err != nil {
		return err.Error()
	}
	var out strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"`+name+`"`) && strings.Contains(l, "ERROR") {
			out.WriteString("\n  " + l)
		}
	}
	return out.String()
}
