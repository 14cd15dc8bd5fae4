package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// Every container is told where the kubernetes Service is, as a kubelet tells it, and may
// override it.
func TestAPIServiceEnv(t *testing.T) {
	s := testEnvSource()
	s.services = (&apiService{ip: net.IPv4(10, 96, 0, 1), port: 443}).env()
	got, err := s.containerEnv(&corev1.Container{Env: []corev1.EnvVar{
		{Name: "KUBERNETES_SERVICE_PORT", Value: "6443"},
		{Name: "URL", Value: "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []envVar{
		{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "6443"},
		{"KUBERNETES_SERVICE_PORT_HTTPS", "443"}, {"KUBERNETES_PORT", "tcp://10.96.0.1:443"},
		{"KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"}, {"KUBERNETES_PORT_443_TCP_PROTO", "tcp"},
		{"KUBERNETES_PORT_443_TCP_PORT", "443"}, {"KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"},
		{"URL", "https://10.96.0.1:6443"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(envVar{})); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if (*apiService)(nil).env() != nil {
		t.Error("an unknown Service gives variables")
	}
}

// A connection to the Service reaches the API server both ways, and each side's close is
// passed on to the other.
func TestAPIServiceForward(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c) // until the client half-closes
		_, _ = c.Write(append([]byte("got "), b...))
		c.Close()
	}()
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := svc.Accept()
		if err == nil {
			forward(ctx, c, up.Addr().String(), slog.New(slog.DiscardHandler))
		}
	}()
	client, err := net.Dial("tcp", svc.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "got hello" {
		t.Fatalf("through the Service: %q, %v; want %q", got, err, "got hello")
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("forward did not end after both sides closed")
	}
}
