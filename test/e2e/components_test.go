package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"fnkit.dev/fn/platform"
	"fnkit.dev/fn/platform/controlplane"
)

// killComponent kills component name (as fn status names it) with SIGKILL and waits until the
// supervisor has it running again: a new pid, one restart more, its last exit the kill.
func killComponent(t *testing.T, name string) (back time.Duration) {
	t.Helper()
	old := platformStatus(t)[name]
	if old.State != "running" || old.PID == 0 {
		t.Fatalf("fn status before the kill: %s %+v", name, old)
	}
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return waitFor(t, 30*time.Second, name+" started again", func() bool {
		c := platformStatus(t)[name]
		return c.State == "running" && c.PID != old.PID && c.Restarts == old.Restarts+1 && strings.Contains(c.LastExit, "killed")
	})
}

// logSize is the size of component name's log now: where what it logs next begins.
func logSize(t *testing.T, name string) int64 {
	return fileSize(t, platform.ComponentLogPath(fnHome, name))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func auditLog() string { return controlplane.AuditLogPath(filepath.Join(fnHome, "cluster")) }

// writesSince lists the writes the API server's audit log records from offset on by clients
// of user agent agent to objects of the default namespace named one of names: "verb
// resource/namespace/name[/subresource] code".
func writesSince(t *testing.T, offset int64, agent string, names ...string) []string {
	t.Helper()
	b, err := os.ReadFile(auditLog())
	if err != nil || int64(len(b)) < offset {
		t.Fatalf("the audit log: %v (or it was rotated)", err)
	}
	var writes []string
	for _, l := range strings.Split(string(b[offset:]), "\n") {
		var e struct {
			Stage, Verb, UserAgent string
			ObjectRef              struct{ Resource, Namespace, Name, Subresource string }
			ResponseStatus         struct{ Code int }
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.UserAgent != agent || e.Stage != "ResponseComplete" ||
			e.ObjectRef.Namespace != "default" || !slices.Contains(names, e.ObjectRef.Name) {
			continue
		}
		o := e.ObjectRef
		writes = append(writes, fmt.Sprintf("%s %s/%s/%s/%s %d", e.Verb, o.Resource, o.Namespace, o.Name, o.Subresource, e.ResponseStatus.Code))
	}
	return writes
}

// loggedSince reports whether component name's log, from offset on, has a line containing all
// of parts.
func loggedSince(t *testing.T, name string, offset int64, parts ...string) bool {
	b, err := os.ReadFile(platform.ComponentLogPath(fnHome, name))
	if err != nil || int64(len(b)) < offset {
		return false
	}
	for _, l := range strings.Split(string(b[offset:]), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestComponentsKilled kills each of fn's own components on the local platform with SIGKILL,
// under load, and checks what the README promises:
//   - the controller: no request fails; started again, it resyncs every Function without one
//     write where nothing changed (the API server's audit log records none by it, and the
//     resourceVersions of a Function and its children stay);
//     the autoscaler, starting with no data, neither drops a loaded function's replicas nor
//     jumps to its max;
//   - the gateway: only the requests in flight fail, at once (none hangs); clients connecting
//     while it restarts wait for it (the platform holds its socket);
//   - the registry and the builder: started again, a client connecting meanwhile is answered.
func TestComponentsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	fixedURL := strings.TrimSpace(mustFn(t, "deploy", copyHello(t, "fixed"), "--min", "2", "--max", "2"))
	t.Cleanup(func() { fn(t, "delete", "fixed") })
	busyURL := strings.TrimSpace(mustFn(t, "deploy", writeSlow(t, "loaded"), "--min", "1", "--max", "12", "--target", "2",
		"--window", "6s", "--scale-down-delay", "2s"))
	t.Cleanup(func() { fn(t, "delete", "loaded") })

	t.Run("controller", func(t *testing.T) {
		// 8 requests in flight against a target of 2: 4 replicas.
		l := startLoops(busyURL+"?ms=100", "loaded", 8)
		defer l.end()
		waitFor(t, 60*time.Second, "4 ready replicas under load", func() bool {
			s := functionStatus(t, "loaded")
			return s.Desired == 4 && s.ReadyReplicas == 4
		})
		versions := func() string {
			return strings.TrimSpace(kubectl(t, "get", "function/fixed", "deployment/fixed", "service/fixed", "function/loaded", "-o",
				`jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}`))
		}
		// Settled: the scale-out's panic is over and on the status (nothing left to write).
		waitFor(t, 30*time.Second, "both Functions settled", func() bool {
			v := versions()
			time.Sleep(2 * time.Second)
			return functionStatus(t, "loaded").Scale == "Stable" && versions() == v
		})
		before := versions()
		failedBefore := l.failed.Load()
		offset := logSize(t, "controller")
		auditOffset := fileSize(t, auditLog())

		killed := time.Now()
		back := killComponent(t, "controller")
		waitFor(t, 30*time.Second, "the restarted controller's resync of both Functions", func() bool {
			return loggedSince(t, "controller", offset, "Reconcile succeeded", "default/fixed") &&
				loggedSince(t, "controller", offset, "Reconcile succeeded", "default/loaded")
		})
		resynced := time.Since(killed)
		// Through the autoscaler's first window (6 s) after its start, and past it.
		var seen []int
		for end := killed.Add(back + 9*time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			seen = append(seen, functionStatus(t, "loaded").Desired)
		}
		t.Logf("controller killed: running again after %s, resynced after %s; loaded's replicas meanwhile %v", back, resynced, seen)
		for _, n := range seen {
			if n < 3 || n > 5 {
				t.Errorf("a restarted autoscaler moved 4 replicas under steady load to %d (all seen: %v)", n, seen)
				break
			}
		}
		if after := versions(); after != before {
			t.Errorf("the restarted controller changed an unchanged Function or a child: %s before, %s after", before, after)
		}
		// Not one write to these two Functions or their children: not even one the API server
		// found changed nothing. (Other tests' Functions may still be settling.)
		if w := writesSince(t, auditOffset, "fn-controller", "fixed", "loaded"); len(w) > 0 {
			t.Errorf("the restarted controller made %d writes where nothing changed:\n  %s", len(w), strings.Join(w, "\n  "))
		}
		if n := l.failed.Load() - failedBefore; n > 0 {
			t.Errorf("%d requests failed while the controller restarted:%s", n, l.failuresSince(killed))
		}
	})

	t.Run("gateway", func(t *testing.T) {
		const clients = 8
		l := startLoops(fixedURL, "Hello", clients)
		time.Sleep(time.Second)
		killed := time.Now()
		back := killComponent(t, "gateway")
		okAt := l.ok.Load()
		waitFor(t, 10*time.Second, "requests answered again", func() bool { return l.ok.Load() > okAt+100 })
		l.end()
		t.Logf("gateway killed: running again after %s; %d requests ok, %d failed, the slowest failure took %s",
			back, l.ok.Load(), l.failed.Load(), l.slowestFail.Round(time.Millisecond))
		if n := l.failed.Load(); n > clients {
			t.Errorf("%d requests failed when the gateway was killed, want at most the %d in flight:%s", n, clients, l.failuresSince(killed))
		}
		if l.slowestFail > 2*time.Second {
			t.Errorf("a request failed after %s when the gateway was killed, want a connection error at once:%s", l.slowestFail, l.failuresSince(killed))
		}
	})

	t.Run("registry and builder", func(t *testing.T) {
		st := readState(t)
		for name, url := range map[string]string{"registry": "http://" + st.Registry + "/v2/", "builder": st.Builder + "/"} {
			old := platformStatus(t)[name]
			if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Right after the kill: the connection waits in the socket's queue for the next one.
			resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
			if err != nil {
				t.Errorf("%s killed: a request right after failed: %v", name, err)
				continue
			}
			resp.Body.Close()
			c := platformStatus(t)[name]
			if c.PID == old.PID || c.Restarts != old.Restarts+1 {
				t.Errorf("%s killed: answered %s, but fn status says %+v (before %+v)", name, resp.Status, c, old)
			}
		}
	})
}

// readState is the platform's state file.
func readState(t *testing.T) *platform.State {
	t.Helper()
	st, err := platform.ReadState(fnHome)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
