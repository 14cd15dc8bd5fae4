package controlplane

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedBuildInputs: the pinning module fn embeds is the repository's, and an fn outside a
// clone of it, extracting it with the script, finds the binaries the repository's build made
// (same key).
func TestEmbeddedBuildInputs(t *testing.T) {
	for embedded, orig := range map[string]string{
		"go.mod.pinned":   "../../third_party/k8s/go.mod",
		"go.sum.pinned":   "../../third_party/k8s/go.sum",
		"tools.go.pinned": "../../third_party/k8s/tools.go",
	} {
		got, err := fs.ReadFile(k8sSource, "k8ssrc/"+embedded)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(orig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("embedded %s differs from %s: run make generate", embedded, orig)
		}
	}
	if testing.Short() {
		return
	}
	// The repository's script: warm in the test command, which built the binaries first.
	repoDir, err := exec.Command("../../hack/k8s-binaries.sh").Output()
	if err != nil {
		t.Fatalf("hack/k8s-binaries.sh: %v", err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	script, module, err := extractScript()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(script, os.Getenv("XDG_CACHE_HOME")) || filepath.Base(script) != "k8s-binaries.sh" {
		t.Errorf("extracted to %s", script)
	}
	again, _, err := extractScript()
	if err != nil || again != script {
		t.Errorf("second extraction: %s %v, want %s", again, err, script)
	}
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "FN_K8S_CACHE="+filepath.Dir(strings.TrimSpace(string(repoDir))), "FN_K8S_MODULE="+module)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	embeddedDir, err := cmd.Output()
	if err != nil {
		t.Fatalf("the extracted script: %v\n%s", err, stderr.String())
	}
	if string(embeddedDir) != string(repoDir) {
		t.Errorf("the extracted script answers %q, the repository's %q: an installed fn would build again", embeddedDir, repoDir)
	}
	if stderr.Len() != 0 {
		t.Errorf("the extracted script built something or complained: %s", stderr.String())
	}
}
