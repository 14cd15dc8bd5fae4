package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"fnkit.dev/fn/platform/supervise"
)

func TestPrintStatus(t *testing.T) {
	now := time.Now()
	comps := []supervise.Status{
		{Name: "etcd", State: supervise.Running, PID: 10, Since: now.Add(-time.Hour)},
		{Name: "kube-apiserver", State: supervise.Running, PID: 12, Restarts: 2, LastExit: "was killed by killed", Since: now.Add(-30 * time.Second)},
		{Name: "kube-scheduler", State: supervise.Failed, Restarts: 4, LastExit: "exited with code 1, its 5th exit within 2m0s: given up", Since: now},
	}
	var b bytes.Buffer
	printStatus(&b, comps, now)
	for _, want := range []string{"COMPONENT", "kube-apiserver  running  12", "2         30s", "was killed by killed", "kube-scheduler  failed   -"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table:\n%s\nwant %q", b.String(), want)
		}
	}
	if err := failedComponents(comps); err == nil || !strings.Contains(err.Error(), "failed: kube-scheduler (") {
		t.Errorf("failedComponents: %v", err)
	}
	if err := failedComponents(comps[:2]); err != nil {
		t.Errorf("failedComponents with none failed: %v", err)
	}
}

func TestRememberedNodes(t *testing.T) {
	home := t.TempDir()
	if _, ok := rememberedNodes(home); ok {
		t.Error("a node count remembered in an empty FN_HOME")
	}
	if err := rememberNodes(home, 3); err != nil {
		t.Fatal(err)
	}
	if n, ok := rememberedNodes(home); !ok || n != 3 {
		t.Errorf("remembered %d %v, want 3", n, ok)
	}
	for _, bad := range []string{"0", "99", "three", ""} {
		if err := os.WriteFile(nodesFile(home), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if n, ok := rememberedNodes(home); ok {
			t.Errorf("%q remembered as %d nodes", bad, n)
		}
	}
}
