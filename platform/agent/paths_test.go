package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))             // relative
	must(os.Symlink("/etc", filepath.Join(root, "abs")))                // absolute: from root
	must(os.Symlink("../../../../..", filepath.Join(root, "up")))       // cannot leave root
	must(os.Symlink("loop", filepath.Join(root, "loop")))               // a loop
	must(os.Symlink("/usr/../../lib", filepath.Join(root, "usr/back"))) // .. clamps at root
	for in, want := range map[string]string{
		"/lib/ld.so":        "usr/lib/ld.so",
		"lib":               "usr/lib",
		"/abs/passwd":       "etc/passwd",
		"/up/etc/passwd":    "etc/passwd",
		"/../../etc/passwd": "etc/passwd",
		"/usr/back/x":       "usr/lib/x",
		"/missing/../etc":   "etc",
		"/":                 ".",
	} {
		got, err := resolveIn(root, in)
		if err != nil {
			t.Errorf("resolveIn(%q): %v", in, err)
			continue
		}
		if got != filepath.Join(root, want) {
			t.Errorf("resolveIn(%q) = %s, want %s", in, got, filepath.Join(root, want))
		}
	}
	if _, err := resolveIn(root, "/loop/x"); err == nil {
		t.Error("a symlink loop resolved")
	}
	if !within(root, filepath.Join(root, "a")) || within(root, filepath.Dir(root)) || within(root, root+"x") {
		t.Error("within")
	}
}
