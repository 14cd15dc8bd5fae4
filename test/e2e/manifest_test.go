package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
