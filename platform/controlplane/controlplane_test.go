package controlplane

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	bin, err := BinDir(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	cp, err := Start(context.Background(), Options{Dir: dir, BinDir: bin, Controllers: []string{"namespace", "garbagecollector"}, Scheduler: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready in %s", time.Since(start))
	pids := cp.Pids()
	defer func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
		for name, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("%s (pid %d) still runs after Stop", name, pid)
			}
		}
	}()
	if len(pids) != 4 {
		t.Errorf("components %v, want etcd, apiserver, controller manager, scheduler", pids)
	}
	kube := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	v, err := kube.Discovery().ServerVersion()
	if err != nil || v.GitVersion != "v1.37.2" {
		t.Errorf("server version %v, %v", v, err)
	}
	if _, err := kube.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("default namespace: %v", err)
	}
	out, err := exec.Command(bin+"/kubectl", "--kubeconfig", cp.KubeconfigPath(), "get", "ns", "-o", "name").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "namespace/kube-system") {
		t.Errorf("kubectl with the kubeconfig: %v\n%s", err, out)
	}
}
