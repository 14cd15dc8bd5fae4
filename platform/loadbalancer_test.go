package platform

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// The load balancer sends connections to the Service's ready endpoints only, passes over one
// that refuses, and writes its address into the Service's status.
func TestLoadBalancer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A backend that answers its name, one that refuses (a port nothing listens on), and one
	// that is not ready.
	serve := func(name string) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprint(c, name)
				c.Close()
			}
		}()
		return ln.Addr().(*net.TCPAddr).Port
	}
	live, unready := serve("live"), serve("unready")
	refuse, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := refuse.Addr().(*net.TCPAddr).Port
	refuse.Close()

	kube := fake.NewClientset(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "fn-system", Name: "fn-gateway"}})
	slice := func(name string, port int, ready bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "fn-system", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "fn-gateway"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(port))}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}},
		}
	}
	for _, s := range []*discoveryv1.EndpointSlice{slice("a", live, true), slice("b", refused, true), slice("c", unready, false)} {
		if _, err := kube.DiscoveryV1().EndpointSlices("fn-system").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = serveLoadBalancer(ctx, kube, "fn-system", "fn-gateway", "http", ln, io.Discard) }()

	answer := func() string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for deadline := time.Now().Add(10 * time.Second); answer() == ""; {
		if time.Now().After(deadline) {
			t.Fatal("the load balancer never forwarded a connection")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 20 {
		if got := answer(); got != "live" {
			t.Fatalf("connection %d answered %q, want only the ready endpoint that accepts (live)", i, got)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		svc, err := kube.CoreV1().Services("fn-system").Get(ctx, "fn-gateway", metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) == 1 && svc.Status.LoadBalancer.Ingress[0].IP == "127.0.0.1" &&
			strconv.Itoa(int(svc.Status.LoadBalancer.Ingress[0].Ports[0].Port)) == strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Service's status: %+v, %v; want the load balancer's address", svc.Status, err)
		}
	}
}
