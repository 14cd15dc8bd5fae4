package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestManifestDeploy: fn init, edit fn.yaml, fn deploy: the Function's spec is exactly the file
// plus the deploy's flags, field by field; a variable removed from the file, or given once as a
// flag and not again, is gone after the next deploy.
func TestManifestDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := filepath.Join(t.TempDir(), "manifested")
	mustFn(t, "init", dir)
	if err := os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte(`# edited by the test
name: manifested
env:
  - name: KEEP
    value: kept
  - name: DROP
    value: dropped
timeout: 20s
concurrency: 3
resources:
  requests: {cpu: 10m}
scale:
  min: 1
  max: 3
  window: 10s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFn(t, "deploy", dir, "--env", "ONCE=flag")
	want := map[string]any{
		"env":         []any{map[string]any{"name": "KEEP", "value": "kept"}, map[string]any{"name": "DROP", "value": "dropped"}, map[string]any{"name": "ONCE", "value": "flag"}},
		"timeout":     "20s",
		"concurrency": float64(3),
		"resources":   map[string]any{"requests": map[string]any{"cpu": "10m"}},
		"scale":       map[string]any{"min": float64(1), "max": float64(3), "window": "10s"},
	}
	checkSpec(t, "manifested", want)

	// Its requests are in the gateway's access lines, and fn logs --requests shows them.
	// The gateway writes its access lines in batches (every 200 ms): the line is there within
	// a few of them.
	mustFn(t, "invoke", "manifested/some/path?name=e2e")
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out = mustFn(t, "logs", "manifested", "--requests", "--tail", "5"); strings.Contains(out, " GET /f/default/manifested/some/path 200 ") {
			break
		}
	}
	if !strings.Contains(out, " GET /f/default/manifested/some/path 200 ") {
		t.Errorf("fn logs --requests:\n%s", out)
	}

	// fn top counts them over its window, from the gateway's metrics.
	topDone := make(chan string, 1)
	go func() {
		out, errOut, err := fn(t, "top", "manifested", "-o", "json", "--interval", "5s")
		if err != nil {
			out = err.Error() + ": " + errOut
		}
		topDone <- out
	}()
	time.Sleep(2 * time.Second) // fn top has taken its first scrape
	for range 3 {
		mustFn(t, "invoke", "manifested")
	}
	var rows []struct {
		Name          string
		Requests, RPS float64
		ReadyReplicas float64
	}
	topOut := <-topDone
	if err := json.Unmarshal([]byte(topOut), &rows); err != nil || len(rows) != 1 || rows[0].Name != "manifested" ||
		rows[0].Requests < 1 || rows[0].Requests > 3 || rows[0].RPS <= 0 || rows[0].ReadyReplicas < 1 {
		t.Errorf("fn top -o json: %v\n%s", err, topOut)
	}

	mustFn(t, "config", "-p", dir, "env", "unset", "DROP")
	mustFn(t, "config", "-p", dir, "unset", "concurrency")
	mustFn(t, "deploy", dir)
	want["env"] = []any{map[string]any{"name": "KEEP", "value": "kept"}}
	delete(want, "concurrency")
	checkSpec(t, "manifested", want)

	// A namespace that does not exist is found before anything is built.
	_, errOut, err := fn(t, "deploy", dir, "-n", "no-such-namespace")
	if err == nil || !strings.Contains(errOut, "namespace no-such-namespace does not exist: create it (kubectl create namespace no-such-namespace) or pass --create-namespace") || strings.Contains(errOut, "Building") {
		t.Errorf("deploy into a missing namespace: %v\n%s", err, errOut)
	}
	mustFn(t, "delete", "manifested")
}

// checkSpec asserts the Function's spec is want plus the image the deploy built: no other field.
func checkSpec(t *testing.T, name string, want map[string]any) {
	t.Helper()
	var f struct {
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "function", name, "-o", "json")), &f); err != nil {
		t.Fatal(err)
	}
	img, _ := f.Spec["image"].(string)
	if !strings.Contains(img, "@sha256:") {
		t.Errorf("spec.image %q, want the built digest", img)
	}
	delete(f.Spec, "image")
	if !reflect.DeepEqual(f.Spec, want) {
		got, _ := json.Marshal(f.Spec)
		exp, _ := json.Marshal(want)
		t.Errorf("spec of %s\n got %s\nwant %s", name, got, exp)
	}
}

// TestDeployFailuresSayWhy: a deploy that cannot succeed says why within seconds: a crashing
// function's last log lines, a never-ready function's probe answer.
func TestDeployFailuresSayWhy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	start := time.Now()
	_, errOut, err := fn(t, "deploy", filepath.Join(repo, "test", "functions", "crash"), "--wait", "90s")
	if err == nil || !strings.Contains(errOut, "function crash cannot run: pod crash-") || !strings.Contains(errOut, "CrashLoopBackOff") ||
		!strings.Contains(errOut, "its last log lines: ") || !strings.Contains(errOut, "connecting to the orders database: connection refused") {
		t.Errorf("deploy of a crashing function (%s): %v\n%s", time.Since(start).Round(time.Second), err, errOut)
	}
	if strings.Contains(errOut, "MinimumReplicasUnavailable") {
		t.Errorf("deploy shows the Deployment's reason as if it were the problem:\n%s", errOut)
	}
	mustFn(t, "delete", "crash")

	start = time.Now()
	_, errOut, err = fn(t, "deploy", filepath.Join(repo, "test", "functions", "unready"), "--wait", "20s")
	if err == nil || !strings.Contains(errOut, "function unready not ready within 20s: pod unready-") ||
		!strings.Contains(errOut, "Readiness probe failed: HTTP probe failed with statuscode: 503: not ready: the cache is still warming") {
		t.Errorf("deploy of a never-ready function (%s): %v\n%s", time.Since(start).Round(time.Second), err, errOut)
	}
	// Shown as progress as soon as the probe failed its threshold, long before the wait ends.
	if i := strings.Index(errOut, "  pod unready-"); i < 0 || !strings.Contains(errOut[i:], "is not ready: Readiness probe failed") {
		t.Errorf("no progress line with the probe's answer:\n%s", errOut)
	}
	mustFn(t, "delete", "unready")
}
