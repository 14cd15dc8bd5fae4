package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"fnkit.dev/fn/platform/supervise"
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
		pids = cp.Pids() // those restarted included
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
	checkEtcdClients(t, cp)
	checkRestarts(t, cp, kube)
}

// checkRestarts kills etcd and then kube-apiserver with SIGKILL: each is started again (a new
// pid, one restart, its last exit said), and the API answers again with its data.
func checkRestarts(t *testing.T, cp *ControlPlane, kube kubernetes.Interface) {
	t.Helper()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		old := cp.Pids()[name]
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := kube.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
			var st supervise.Status
			for _, s := range cp.Statuses() {
				if s.Name == name {
					st = s
				}
			}
			if err == nil && st.State == supervise.Running && st.PID != old && st.Restarts == 1 {
				if st.LastExit != "was killed by killed" {
					t.Errorf("%s's last exit: %q", name, st.LastExit)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s killed: not back within 60s: %+v, API: %v", name, st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	select {
	case err := <-cp.Failures():
		t.Errorf("a component failed: %v", err)
	default:
	}
}

// checkEtcdClients: etcd answers only a client with the API server's certificate — not plain
// HTTP, not a TLS client without a certificate, not one with the cluster CA's admin certificate.
func checkEtcdClients(t *testing.T, cp *ControlPlane) {
	t.Helper()
	get := func(url string, certs ...tls.Certificate) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, Certificates: certs}}} //nolint:gosec // who answers, not whom to trust
		resp, err := c.Get(url + "/version")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	pair := func(name string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(cp.pki.path(name+".crt"), cp.pki.path(name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := get(cp.etcdURL, pair("apiserver-etcd-client")); err != nil {
		t.Fatalf("etcd with the API server's client certificate: %v", err)
	}
	if err := get(strings.Replace(cp.etcdURL, "https://", "http://", 1)); err == nil {
		t.Error("etcd answers plain HTTP")
	}
	if err := get(cp.etcdURL); err == nil {
		t.Error("etcd answers a TLS client without a certificate")
	}
	if err := get(cp.etcdURL, pair("admin")); err == nil {
		t.Error("etcd answers the cluster's admin certificate: its CA must be etcd's own")
	}
}
