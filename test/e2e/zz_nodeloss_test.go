package e2e

import (
	"os"
	"os/exec"
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
// fn up, which it does at the end) SIGKILLs the agent of the second node while a bounded
// request loop (one request at a time) runs against a function with replicas on both nodes:
// no request fails but the one in flight on the lost node, and all 4 replicas run on the
// first node within nodeLossBound.
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
	out, err := exec.Command("pgrep", "-f", "internal agent --node "+platformNodes[1]+" ").Output()
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || perr != nil {
		t.Fatalf("finding the agent of %s: %v %v (%q)", platformNodes[1], err, perr, out)
	}
	t.Cleanup(func() {
		// The platform as it was, for whatever runs after (first: the lost node's pods can
		// only finish terminating once its agent is back).
		mustFn(t, "down")
		mustFn(t, "up", "--nodes", strconv.Itoa(len(platformNodes)))
		fn(t, "delete", "survivor")
	})

	l := startLoop(url, "Hello")
	lost := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		l.end()
		t.Fatal(err)
	}
	waitFor(t, nodeLossBound, "4 replicas Ready on "+platformNodes[0], func() bool { return placed()[platformNodes[0]] == 4 })
	time.Sleep(time.Second)
	l.end()
	t.Logf("node %s lost: 4 replicas Ready on %s after %s; requests meanwhile: %d ok, %d failed",
		platformNodes[1], platformNodes[0], time.Since(lost)-time.Second, l.ok.Load(), l.failed.Load())
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
