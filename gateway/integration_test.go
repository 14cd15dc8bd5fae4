package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	fncontroller "fnkit.dev/fn/controller"
	fnclient "fnkit.dev/fn/controller/client/clientset/versioned"
	"fnkit.dev/fn/platform/controlplane"
)

// podIP adds an address of the pod network to the loopback interface for the test: the API
// server refuses loopback addresses in EndpointSlices, as it would pods on 127.0.0.1.
func podIP(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("adding a pod address to lo needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("adding a pod address to lo needs the ip command")
	}
	for range 10 {
		ip := fmt.Sprintf("10.244.255.%d", 2+rand.IntN(250))
		out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput()
		if err != nil {
			t.Logf("ip addr add %s: %v: %s", ip, err, out) // taken by another test run: try another
			continue
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
				t.Errorf("ip addr del %s: %v: %s", ip, err, out)
			}
		})
		return ip
	}
	t.Fatal("could not add a 10.244.255.0/24 address to lo")
	return ""
}

// TestControlPlane routes requests through a gateway watching a real kube-apiserver: to a
// Function with an EndpointSlice written by hand, as the EndpointSlice controller would.
func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ip := podIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: "pod"}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "pod")
		_, _ = fmt.Fprintf(w, "%s from %s\n", r.RequestURI, r.Host)
	}))
	b.Listener.Close()
	b.Listener = ln
	b.Start()
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir(), BinDir: bin, Controllers: []string{"garbagecollector", "namespace"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	}()
	cfg := cp.RESTConfig()
	if err := fncontroller.InstallCRD(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	fns := fnclient.NewForConfigOrDie(cfg)
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "gw-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Stop watching before the control plane stops: the API server waits for open watches.
	gwCtx, stopGateway := context.WithCancel(ctx)
	defer stopGateway()
	logs := &syncBuffer{}
	gw, err := New(gwCtx, cfg, Options{Domain: "fn.test", Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, gw)
	get := func(host, path string) (int, string) {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if host != "" {
			r.Host = host
		}
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("", "/f/"+ns.Name+"/hello/"); code != http.StatusNotFound {
		t.Errorf("before the Function: %d %q, want 404", code, body)
	}

	// Created after the gateway started: the gateway learns of both by watching.
	if _, err := fns.FnkitV1alpha1().Functions(ns.Name).Create(ctx, function("hello", ns.Name), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "503 once the Function exists", func() bool {
		code, _ := get("", "/f/"+ns.Name+"/hello/")
		return code == http.StatusServiceUnavailable
	})
	es := slice("hello-abcde", ns.Name, "hello", withEndpoint(b.URL, true))
	if es, err = kube.DiscoveryV1().EndpointSlices(ns.Name).Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "200 once the EndpointSlice has a ready endpoint", func() bool {
		code, _ := get("", "/f/"+ns.Name+"/hello/")
		return code == http.StatusOK
	})
	if code, body := get("", "/f/"+ns.Name+"/hello/a/b?c=d"); code != http.StatusOK || body != "/a/b?c=d from "+strings.TrimPrefix(srv.URL, "http://")+"\n" {
		t.Errorf("path routing: %d %q", code, body)
	}
	if code, body := get("hello."+ns.Name+".fn.test", "/a/b?c=d"); code != http.StatusOK || body != "/a/b?c=d from hello."+ns.Name+".fn.test\n" {
		t.Errorf("host routing: %d %q", code, body)
	}

	es.Endpoints[0].Conditions.Ready = new(bool)
	if _, err := kube.DiscoveryV1().EndpointSlices(ns.Name).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "503 once the endpoint is not ready", func() bool {
		code, _ := get("", "/f/"+ns.Name+"/hello/")
		return code == http.StatusServiceUnavailable
	})
	if err := fns.FnkitV1alpha1().Functions(ns.Name).Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "404 once the Function is deleted", func() bool {
		code, _ := get("", "/f/"+ns.Name+"/hello/")
		return code == http.StatusNotFound
	})
}
