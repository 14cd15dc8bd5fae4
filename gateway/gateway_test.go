package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnfake "fnkit.dev/fn/controller/client/clientset/versioned/fake"
)

// Fixtures.

func function(name, ns string, opts ...func(*v1alpha1.Function)) *v1alpha1.Function {
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.FunctionSpec{Image: "registry.test/fns/" + name},
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

func withTimeout(d time.Duration) func(*v1alpha1.Function) {
	return func(f *v1alpha1.Function) { f.Spec.Timeout = &metav1.Duration{Duration: d} }
}

// slice is an EndpointSlice of function fn's Service with one endpoint per backend URL, all on
// the first backend's port (one slice per port, as the EndpointSlice controller makes them).
func slice(name, ns, fn string, opts ...func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: fn},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// withEndpoint adds the endpoint at the address of URL u, ready or not, and sets the slice's port
// named "http" to u's.
func withEndpoint(u string, ready bool) func(*discoveryv1.EndpointSlice) {
	return func(s *discoveryv1.EndpointSlice) {
		pu, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		host, port, _ := net.SplitHostPort(pu.Host)
		p, _ := strconv.Atoi(port)
		s.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(p)), Protocol: ptr.To(corev1.ProtocolTCP)}}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{host},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
		})
	}
}

// received is what a backend saw of a request.
type received struct {
	RequestURI string
	Host       string
	Header     http.Header
	Body       []byte
}

// backend is a function's pod: it records requests and answers with its name in X-Backend.
type backend struct {
	*httptest.Server
	name string

	mu   sync.Mutex
	reqs []received
}

func newBackend(t testing.TB, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, received{RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: body})
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "hello from "+name+"\n")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) last(t *testing.T) received {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		t.Fatalf("backend %s got no request", b.name)
	}
	return b.reqs[len(b.reqs)-1]
}

// syncBuffer collects log lines written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines are the JSON log lines written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	kube *kubefake.Clientset
	fns  *fnfake.Clientset
	gw   *Gateway
	srv  *served // serves gw
	logs *syncBuffer
}

// newFixture starts a gateway over fake clientsets holding objs, served by an httptest server.
func newFixture(t testing.TB, o Options, objs ...runtime.Object) *fixture {
	t.Helper()
	var kubeObjs, fnObjs []runtime.Object
	for _, obj := range objs {
		if _, ok := obj.(*v1alpha1.Function); ok {
			fnObjs = append(fnObjs, obj)
		} else {
			kubeObjs = append(kubeObjs, obj)
		}
	}
	f := &fixture{kube: kubefake.NewClientset(kubeObjs...), fns: fnfake.NewSimpleClientset(fnObjs...), logs: &syncBuffer{}}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(f.logs, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gw, err := NewFromClients(ctx, f.kube, f.fns, o)
	if err != nil {
		t.Fatal(err)
	}
	f.gw = gw
	f.srv = serve(t, gw)
	return f
}

// served is a gateway served by ServeListener on loopback, as fn-gateway serves it.
type served struct {
	URL    string
	client *http.Client
}

func (s *served) Client() *http.Client { return s.client }

// serve serves gw on a loopback port until the test ends, and checks it shuts down cleanly.
func serve(t testing.TB, gw *Gateway) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, gw) }()
	s := &served{URL: "http://" + ln.Addr().String(), client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return s
}

// do sends a request through the gateway and returns the response with its body read.
func (f *fixture) do(t *testing.T, r *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := f.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func (f *fixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.do(t, r)
}

// internal asks the gateway's internal handler (its own port in fn-gateway).
func (f *fixture) internal(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	w := httptest.NewRecorder()
	f.gw.InternalHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Result(), w.Body.String()
}

// eventually polls cond every 10ms for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPathRouting(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	tests := []struct {
		path, wantURI string
	}{
		{"/f/ns/hello/a/b?x=1&y=two", "/a/b?x=1&y=two"},
		{"/f/ns/hello", "/"},
		{"/f/ns/hello/", "/"},
		{"/f/ns/hello?q=1", "/?q=1"},
		{"/f/ns/hello/a%2Fb/c%20d", "/a%2Fb/c%20d"},
		{"/f/ns/hello/f/ns/hello/x", "/f/ns/hello/x"},
	}
	for _, tt := range tests {
		resp, body := f.get(t, tt.path)
		if resp.StatusCode != http.StatusOK || body != "hello from a\n" {
			t.Errorf("GET %s: %d %q, want 200 from the backend", tt.path, resp.StatusCode, body)
			continue
		}
		got := b.last(t)
		if got.RequestURI != tt.wantURI {
			t.Errorf("GET %s: backend got %s, want %s", tt.path, got.RequestURI, tt.wantURI)
		}
		if p := got.Header.Get("X-Forwarded-Prefix"); p != "/f/ns/hello" {
			t.Errorf("GET %s: X-Forwarded-Prefix %q, want /f/ns/hello", tt.path, p)
		}
	}

	// Forwarding headers: the client's Host is kept, X-Forwarded-For extended.
	r, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/f/ns/hello/", nil)
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	f.do(t, r)
	got := b.last(t)
	gwHost := strings.TrimPrefix(f.srv.URL, "http://")
	want := map[string]string{
		"Host":              gwHost,
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Host":  gwHost,
		"X-Forwarded-Proto": "http",
	}
	have := map[string]string{
		"Host":              got.Host,
		"X-Forwarded-For":   got.Header.Get("X-Forwarded-For"),
		"X-Forwarded-Host":  got.Header.Get("X-Forwarded-Host"),
		"X-Forwarded-Proto": got.Header.Get("X-Forwarded-Proto"),
	}
	if d := cmp.Diff(want, have); d != "" {
		t.Errorf("forwarding headers (-want +got):\n%s", d)
	}
}

// TestNoRequestReachesAnotherFunction: however a path or Host is written — dot segments,
// escaped slashes in the namespace or name, upper case, a spoofed X-Forwarded-Host — a
// request reaches the function it names in the gateway's terms or none, and a private
// function's check holds by host as by path.
func TestNoRequestReachesAnotherFunction(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a", nil)
	b := newBackend(t, "b", nil)
	private := func(f *v1alpha1.Function) { f.Spec.Access = v1alpha1.AccessPrivate }
	f := newFixture(t, Options{},
		function("a", "ns"), slice("a-1", "ns", "a", withEndpoint(a.URL, true)),
		function("b", "ns", private), slice("b-1", "ns", "b", withEndpoint(b.URL, true)),
		accessSecret("ns", map[string]string{"token": goodToken}))
	for _, c := range []struct {
		path, host string
		header     http.Header
		want       string // the backend that answers, or "" for none (404)
		wantStatus int
	}{
		{path: "/f/ns/a/../b/", want: "a"},
		{path: "/f/ns/a/..%2Fb/", want: "a"},
		{path: "/f/ns/a/%2E%2E/b/", want: "a"},
		{path: "/f/ns%2Fb/x", wantStatus: http.StatusNotFound},
		{path: "/f/ns/a%2F..%2Fb/", wantStatus: http.StatusNotFound},
		{path: "/f/ns/../ns/b/", wantStatus: http.StatusNotFound},
		{path: "/f/../f/ns/b/", wantStatus: http.StatusNotFound},
		{path: "/f/NS/A/", wantStatus: http.StatusNotFound},
		{path: "/f/ns/a/", header: http.Header{"X-Forwarded-Host": {"b.ns.fn.local"}}, want: "a"},
		{path: "/f/ns/a/", host: "b.ns.fn.local", wantStatus: http.StatusUnauthorized}, // the host names b: b's rules
		{path: "/", host: "B.NS.fn.local", wantStatus: http.StatusUnauthorized},
		{path: "/", host: "b.ns.fn.local.", wantStatus: http.StatusNotFound},
	} {
		r, err := http.NewRequest(http.MethodGet, f.srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.URL.RequestURI(); got != c.path {
			t.Fatalf("the client would send %s, not %s", got, c.path)
		}
		if c.host != "" {
			r.Host = c.host
		}
		for k, v := range c.header {
			r.Header[k] = v
		}
		resp, body := f.do(t, r)
		switch {
		case c.want != "" && (resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != c.want):
			t.Errorf("GET %s (Host %q): %d from %q %q, want %s's answer", c.path, c.host, resp.StatusCode, resp.Header.Get("X-Backend"), body, c.want)
		case c.want == "" && (resp.StatusCode != c.wantStatus || resp.Header.Get("X-Backend") != ""):
			t.Errorf("GET %s (Host %q): %d from %q %q, want %d", c.path, c.host, resp.StatusCode, resp.Header.Get("X-Backend"), body, c.wantStatus)
		}
	}
	b.mu.Lock()
	n := len(b.reqs)
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("the private function b got %d requests, none with its token", n)
	}
}

func TestHostRouting(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	objs := []runtime.Object{function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true))}
	tests := []struct {
		domain, host string
	}{
		{"", "hello.ns.fn.local"},
		{"", "hello.ns.fn.local:8080"},
		{"", "Hello.NS.Fn.Local"},
		{"example.com", "hello.ns.example.com:80"},
		{".example.com.", "hello.ns.example.com"},
	}
	for _, tt := range tests {
		f := newFixture(t, Options{Domain: tt.domain}, objs...)
		r, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/a/b?x=1", nil)
		r.Host = tt.host
		resp, body := f.do(t, r)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("domain %q, host %s: %d %q, want 200", tt.domain, tt.host, resp.StatusCode, body)
			continue
		}
		got := b.last(t)
		if got.RequestURI != "/a/b?x=1" || got.Host != tt.host {
			t.Errorf("domain %q, host %s: backend got %s with host %s, want /a/b?x=1 with the same host", tt.domain, tt.host, got.RequestURI, got.Host)
		}
		if p := got.Header.Get("X-Forwarded-Prefix"); p != "" {
			t.Errorf("host routing set X-Forwarded-Prefix %q", p)
		}
	}
}

func TestUnknownFunction(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	// A slice without a Function is not a route.
	f := newFixture(t, Options{}, function("hello", "ns"), slice("other-1", "ns", "other", withEndpoint(b.URL, true)))
	tests := []struct {
		host, path, want string
	}{
		{"", "/f/ns/nope/x", `no function "nope" in namespace "ns": fn list shows the deployed ones` + "\n"},
		{"", "/f/other/hello/", `no function "hello" in namespace "other": fn list shows the deployed ones` + "\n"},
		{"", "/f/ns/other", `no function "other" in namespace "ns": fn list shows the deployed ones` + "\n"},
		{"nope.ns.fn.local", "/", `no function "nope" in namespace "ns": fn list shows the deployed ones` + "\n"},
		{"", "/", "no function named in this request: use the path /f/NAMESPACE/NAME/ or the host NAME.NAMESPACE.fn.local\n"},
		{"", "/f/ns/", "no function named in this request: use the path /f/NAMESPACE/NAME/ or the host NAME.NAMESPACE.fn.local\n"},
		{"", "/f//hello/", "no function named in this request: use the path /f/NAMESPACE/NAME/ or the host NAME.NAMESPACE.fn.local\n"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, f.srv.URL+tt.path, nil)
		if tt.host != "" {
			r.Host = tt.host
		}
		resp, body := f.do(t, r)
		if resp.StatusCode != http.StatusNotFound || body != tt.want {
			t.Errorf("%s%s: %d %q, want 404 %q", tt.host, tt.path, resp.StatusCode, body, tt.want)
		}
	}
	if len(b.reqs) != 0 {
		t.Errorf("the backend got %d requests, want none", len(b.reqs))
	}
}

func TestNoReadyEndpoint(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	tests := []struct {
		name string
		objs []runtime.Object
	}{
		{"no slice", []runtime.Object{function("hello", "ns")}},
		{"endpoints not ready", []runtime.Object{function("hello", "ns"),
			slice("hello-1", "ns", "hello", withEndpoint(b.URL, false), withEndpoint("http://127.0.0.2:1", false))}},
		{"no http port", []runtime.Object{function("hello", "ns"),
			slice("hello-1", "ns", "hello", withEndpoint(b.URL, true), func(s *discoveryv1.EndpointSlice) {
				s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To("metrics"), Port: ptr.To(int32(9090))})
				s.Ports[0].Name = ptr.To("grpc")
			})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{}, tt.objs...)
			resp, body := f.get(t, "/f/ns/hello/")
			want := `function "hello" in namespace "ns" has no ready endpoint: retry shortly; fn describe hello -n ns shows why` + "\n"
			if resp.StatusCode != http.StatusServiceUnavailable || body != want || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("got %d %q Retry-After %q, want 503 %q Retry-After 1", resp.StatusCode, body, resp.Header.Get("Retry-After"), want)
			}
		})
	}
	if len(b.reqs) != 0 {
		t.Errorf("the backend got %d requests, want none", len(b.reqs))
	}
}

// count sends n requests and counts the answers by backend.
func (f *fixture) count(t *testing.T, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		resp, body := f.get(t, "/f/ns/hello/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d %q, want 200", resp.StatusCode, body)
		}
		got[resp.Header.Get("X-Backend")]++
	}
	return got
}

func TestBalancing(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	f := newFixture(t, Options{}, function("hello", "ns"),
		slice("hello-a", "ns", "hello", withEndpoint(a.URL, true)),
		slice("hello-b", "ns", "hello", withEndpoint(b.URL, true)))
	got := f.count(t, 200)
	if got["a"] < 40 || got["b"] < 40 {
		t.Errorf("answers by backend %v: want both to get a fair share of 200", got)
	}

	// A backend leaving the slices stops getting traffic.
	if err := f.kube.DiscoveryV1().EndpointSlices("ns").Delete(context.Background(), "hello-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b removed from the route", func() bool { return f.count(t, 10)["b"] == 0 })
	if got := f.count(t, 100); got["a"] != 100 {
		t.Errorf("after b left: answers by backend %v, want all 100 from a", got)
	}

	// And one no longer ready too.
	s := slice("hello-a", "ns", "hello", withEndpoint(a.URL, false))
	if _, err := f.kube.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a not ready", func() bool {
		resp, _ := f.get(t, "/f/ns/hello/")
		return resp.StatusCode == http.StatusServiceUnavailable
	})
}

func TestPowerOfTwoChoices(t *testing.T) {
	busy, idle := &endpoint{addr: "busy"}, &endpoint{addr: "idle"}
	busy.inflight.Store(3)
	rt := &route{eps: []*endpoint{busy, idle}}
	for range 100 {
		if ep := rt.pick(); ep != idle {
			t.Fatalf("picked %s, want the idle endpoint", ep.addr)
		}
	}
	if ep := (&route{}).pick(); ep != nil {
		t.Errorf("picked %s from no endpoint", ep.addr)
	}
	// With three, the busiest is never picked: it loses to whichever other one is drawn.
	third := &endpoint{addr: "third"}
	third.inflight.Store(1)
	rt.eps = append(rt.eps, third)
	got := map[string]int{}
	for range 300 {
		got[rt.pick().addr]++
	}
	if got["busy"] != 0 || got["idle"] == 0 || got["third"] == 0 {
		t.Errorf("picks %v: want idle and third, never busy", got)
	}
}

// TestPassOver: an endpoint that did not take a connection is not picked for passOverFor, even
// when it is the least busy, unless every endpoint is passed over; then it is picked again.
func TestPassOver(t *testing.T) {
	down, a, b := &endpoint{addr: "down"}, &endpoint{addr: "a"}, &endpoint{addr: "b"}
	a.inflight.Store(5)
	b.inflight.Store(5)
	rt := &route{eps: []*endpoint{down, a, b}}
	now := time.Now()
	down.passOver(now)
	for range 300 {
		if ep := rt.pick(); ep == down {
			t.Fatal("picked an endpoint passed over")
		}
	}
	for range 300 {
		if ep := rt.pickOther(a); ep != b {
			t.Fatalf("pickOther(a) = %v, want b (down is passed over)", ep.addr)
		}
	}
	// All passed over: requests still go somewhere.
	a.passOver(now)
	b.passOver(now)
	if ep := rt.pick(); ep == nil {
		t.Error("no endpoint picked when all are passed over")
	}
	if ep := rt.pickOther(a); ep == nil || ep == a {
		t.Errorf("pickOther(a) = %v when all are passed over, want another endpoint", ep)
	}
	if ep := (&route{eps: []*endpoint{a}}).pickOther(a); ep != nil {
		t.Errorf("pickOther(a) = %v with no other endpoint, want nil", ep.addr)
	}
	// The mark expires: down, the least busy, is picked again.
	for _, ep := range rt.eps {
		ep.passOver(now.Add(-passOverFor - time.Second))
	}
	got := map[string]int{}
	for range 300 {
		got[rt.pick().addr]++
	}
	if got["down"] == 0 || down.passedOverUntil.Load() != 0 {
		t.Errorf("after the mark expired: picks %v, mark %d; want down picked and its mark cleared", got, down.passedOverUntil.Load())
	}
}

func TestFunctionDeleted(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	if resp, _ := f.get(t, "/f/ns/hello/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200", resp.StatusCode)
	}
	if err := f.fns.FnkitV1alpha1().Functions("ns").Delete(context.Background(), "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "404 after the Function is deleted", func() bool {
		resp, _ := f.get(t, "/f/ns/hello/")
		return resp.StatusCode == http.StatusNotFound
	})
	// And a new Function gets a route.
	if _, err := f.fns.FnkitV1alpha1().Functions("ns").Create(context.Background(), function("hello", "ns"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "200 after the Function is created again", func() bool {
		resp, _ := f.get(t, "/f/ns/hello/")
		return resp.StatusCode == http.StatusOK
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	tests := []struct {
		name string
		o    Options
		fn   *v1alpha1.Function
		want string
	}{
		{"spec.timeout", Options{}, function("hello", "ns", withTimeout(50*time.Millisecond)),
			`function "hello" in namespace "ns" did not answer within its timeout of 50ms` + "\n"},
		{"default timeout", Options{DefaultTimeout: 20 * time.Millisecond}, function("hello", "ns"),
			`function "hello" in namespace "ns" did not answer within its timeout of 20ms` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, "a", slow)
			f := newFixture(t, tt.o, tt.fn, slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
			resp, body := f.get(t, "/f/ns/hello/")
			if resp.StatusCode != http.StatusGatewayTimeout || body != tt.want {
				t.Errorf("got %d %q, want 504 %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

func TestBackendUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(dead, true)))
	resp, body := f.get(t, "/f/ns/hello/")
	want := `function "hello" in namespace "ns" could not be reached: retry; fn describe hello -n ns shows its state` + "\n"
	if resp.StatusCode != http.StatusBadGateway || body != want {
		t.Errorf("got %d %q, want 502 %q", resp.StatusCode, body, want)
	}
	lines := f.logs.lines(t)
	if len(lines) != 1 || lines[0]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(lines[0]["error"]), "connection refused") {
		t.Errorf("log lines %v, want one ERROR with the connection error", lines)
	}
}

// TestRetryOnRefused: a request whose endpoint refuses the connection (a pod just gone, the
// routing table not yet told) goes to another ready endpoint instead of failing. Nothing was sent
// to the refusing one, so this holds for a request with a body too: its body reaches the live one.
func TestRetryOnRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	var b *backend
	b = newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "alive %s %s\n", r.Method, b.last(t).Body) // newBackend read the body
	})
	// Two slices: a slice has one port for all its endpoints.
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(dead, true)), slice("hello-2", "ns", "hello", withEndpoint(b.URL, true)))
	for i := range 40 {
		resp, body := f.get(t, "/f/ns/hello/")
		if resp.StatusCode != http.StatusOK || body != "alive GET \n" {
			t.Fatalf("GET %d: %d %q, want every request served by the live endpoint", i, resp.StatusCode, body)
		}
		r, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/f/ns/hello/", strings.NewReader(fmt.Sprint("payload ", i)))
		resp, body = f.do(t, r)
		if want := fmt.Sprint("alive POST payload ", i, "\n"); resp.StatusCode != http.StatusOK || body != want {
			t.Fatalf("POST %d: %d %q, want %q", i, resp.StatusCode, body, want)
		}
	}
	refusedLogged := false
	for _, l := range f.logs.lines(t) {
		refusedLogged = refusedLogged || strings.Contains(fmt.Sprint(l["error"]), "refused")
	}
	if refusedLogged {
		t.Errorf("a refused connection was logged as the request's error, though another endpoint answered")
	}
}

// dyingBackend is a pod that is killed between two requests: until die it answers "dying" with
// keep-alive (each request held a moment, so that concurrent ones open several connections);
// after, it refuses new connections and closes a kept-alive one, unanswered, when the next
// request arrives on it — before the gateway's liveness check of idle connections can see it.
type dyingBackend struct {
	ln     net.Listener
	dead   atomic.Bool
	served atomic.Int64
}

func newDyingBackend(t *testing.T) *dyingBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dyingBackend{ln: ln}
	t.Cleanup(d.die)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return d
}

func (d *dyingBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil || d.dead.Load() {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(5 * time.Millisecond)
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ndying\n"); err != nil {
			return
		}
		d.served.Add(1)
	}
}

func (d *dyingBackend) url() string { return "http://" + d.ln.Addr().String() }

func (d *dyingBackend) die() {
	d.dead.Store(true)
	d.ln.Close()
}

// TestEndpointsDying: two of a function's three pods die at once between requests (a node
// lost), each leaving several kept-alive connections in the gateway's pool that look open.
// Not one GET fails: a request whose kept-alive connection turns out closed goes again on a
// new one, which the dead pod refuses, and so to another endpoint, however many stale
// connections the dead ones left.
func TestEndpointsDying(t *testing.T) {
	t.Parallel()
	d1, d2 := newDyingBackend(t), newDyingBackend(t)
	live := newBackend(t, "live", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(w, "live\n")
	})
	f := newFixture(t, Options{}, function("hello", "ns"),
		slice("hello-1", "ns", "hello", withEndpoint(d1.url(), true)),
		slice("hello-2", "ns", "hello", withEndpoint(d2.url(), true)),
		slice("hello-3", "ns", "hello", withEndpoint(live.URL, true)))
	// Concurrent requests until each dying pod served several: each then has several idle
	// connections from the gateway.
	for round := 0; round < 50 && (d1.served.Load() < 12 || d2.served.Load() < 12); round++ {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, body := f.get(t, "/f/ns/hello/"); resp.StatusCode != http.StatusOK {
					t.Errorf("before the pods died: %d %q", resp.StatusCode, body)
				}
			}()
		}
		wg.Wait()
	}
	if d1.served.Load() < 12 || d2.served.Load() < 12 {
		t.Fatalf("the dying pods served %d and %d requests, want 12 each before they die", d1.served.Load(), d2.served.Load())
	}
	d1.die()
	d2.die()
	for i := range 30 {
		if resp, body := f.get(t, "/f/ns/hello/"); resp.StatusCode != http.StatusOK || body != "live\n" {
			t.Fatalf("GET %d after two of three pods died: %d %q, want the live pod's answer", i, resp.StatusCode, body)
		}
	}
}

func TestCloudEventsPassThrough(t *testing.T) {
	t.Parallel()
	reply := []byte{0x00, 0xff, 0xfe, 'o', 'k', '\n'}
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["ce-specversion"] = []string{"1.0"} // not canonical: sent as is
		h.Set("Ce-Id", "reply-1")
		h.Set("Ce-Type", "dev.fnkit.reply")
		h.Set("Ce-Source", "/fns/hello")
		h.Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(reply)
	})
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))

	binaryBody := []byte{0x00, 0x01, 0xc3, 0x28, 0xff, '\r', '\n', ' ', '"'}
	structured := []byte(`{"specversion":"1.0","id":"e-2","type":"dev.fnkit.test","source":"urn:test","time":"2026-01-02T03:04:05.678Z",` +
		`"datacontenttype":"application/json","data":{"n":1,"s":"\u00e9 \"quoted\""},"myext":"  spaced  "}`)
	tests := []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"binary", http.Header{
			"Ce-Specversion": {"1.0"},
			"Ce-Id":          {"e-1"},
			"Ce-Type":        {"dev.fnkit.test"},
			"Ce-Source":      {"urn:test/a%20b"},
			"Ce-Time":        {"2026-01-02T03:04:05.678901Z"},
			"Ce-Subject":     {"ünïcode, commas, \"quotes\""},
			"Ce-Myext":       {"a", "b"},
			"Content-Type":   {"application/octet-stream"},
		}, binaryBody},
		{"structured", http.Header{
			"Content-Type": {"application/cloudevents+json; charset=utf-8"},
		}, structured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/f/ns/hello/", bytes.NewReader(tt.body))
			r.Header = tt.header.Clone()
			resp, body := f.do(t, r)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			got := b.last(t)
			if !bytes.Equal(got.Body, tt.body) {
				t.Errorf("backend got body %q, want %q", got.Body, tt.body)
			}
			sent := map[string][]string{}
			for k, v := range tt.header {
				sent[k] = v
			}
			ce := map[string][]string{}
			for k, v := range got.Header {
				if strings.HasPrefix(k, "Ce-") || k == "Content-Type" {
					ce[k] = v
				}
			}
			if d := cmp.Diff(sent, ce); d != "" {
				t.Errorf("CloudEvent headers at the backend (-sent +got):\n%s", d)
			}
			// The reply comes back as the function wrote it.
			if body != string(reply) || resp.Header.Get("Ce-Specversion") != "1.0" || resp.Header.Get("Ce-Id") != "reply-1" ||
				resp.Header.Get("Ce-Type") != "dev.fnkit.reply" || resp.Header.Get("Ce-Source") != "/fns/hello" {
				t.Errorf("reply %q with headers %v: want the function's", body, resp.Header)
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "data: 2\n\n")
	})
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/hello/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		first <- l
	}()
	select {
	case l := <-first:
		if l != "data: 1\n" {
			t.Errorf("first line %q, want data: 1", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive while the function was still streaming")
	}
	close(next)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: 2\n\n" {
		t.Errorf("rest of the stream %q", rest)
	}
}

// sample is one line of the Prometheus text format.
var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (\S+)$`)

// parseMetrics parses the text format strictly enough to catch malformed output: every sample
// well formed, with a numeric value, of a family declared by a TYPE line before it.
func parseMetrics(t *testing.T, text string) map[string]float64 {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("metrics do not end with a newline")
	}
	types := map[string]string{}
	samples := map[string]float64{}
	for l := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		if f, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			if types[name] != "" {
				t.Errorf("family %s declared twice", name)
			}
			types[name] = typ
			continue
		}
		if strings.HasPrefix(l, "# HELP ") {
			continue
		}
		m := sampleRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("malformed sample line %q", l)
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Errorf("sample %q: value: %v", l, err)
		}
		family := m[1]
		if types[family] == "" {
			base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(family, "")
			if types[base] != "histogram" {
				t.Errorf("sample %q of no declared family", l)
			}
		}
		if _, dup := samples[m[1]+m[2]]; dup {
			t.Errorf("duplicate sample %q", l)
		}
		samples[m[1]+m[2]] = v
	}
	return samples
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "failed", http.StatusInternalServerError)
		case "/hold":
			<-release
		}
	})
	f := newFixture(t, Options{}, function("hello", "ns"), function("idle", "ns"),
		slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	for _, p := range []string{"/f/ns/hello/", "/f/ns/hello/x", "/f/ns/hello/fail", "/f/ns/nope/", "/f/ns/idle/"} {
		f.get(t, p)
	}

	// A request in flight shows as such.
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/hello/hold")
		if err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "one request in flight", func() bool { return f.gw.InFlight("ns", "hello") == 1 })
	_, text := f.internal(t, "/_gw/metrics")
	close(release)
	<-done
	if n := f.gw.InFlight("ns", "hello"); n != 0 {
		t.Errorf("InFlight after the request: %d, want 0", n)
	}
	if n := f.gw.InFlight("ns", "nope"); n != 0 {
		t.Errorf("InFlight of an unknown function: %d, want 0", n)
	}

	got := parseMetrics(t, text)
	const hello = `namespace="ns",function="hello"`
	const idle = `namespace="ns",function="idle"`
	want := map[string]float64{
		`fn_gateway_requests_total{` + hello + `,code="200"}`:                   2,
		`fn_gateway_requests_total{` + hello + `,code="500"}`:                   1,
		`fn_gateway_requests_total{` + idle + `,code="503"}`:                    1,
		`fn_gateway_request_duration_seconds_count{` + hello + `}`:              3,
		`fn_gateway_request_duration_seconds_bucket{` + hello + `,le="+Inf"}`:   3,
		`fn_gateway_request_duration_seconds_bucket{` + hello + `,le="300"}`:    3,
		`fn_gateway_request_duration_seconds_count{` + idle + `}`:               1,
		`fn_gateway_requests_in_flight{` + hello + `}`:                          1,
		`fn_gateway_requests_in_flight{` + idle + `}`:                           0,
		`fn_gateway_unrouted_requests_total`:                                    1,
		`fn_gateway_request_duration_seconds_bucket{` + idle + `,le="+Inf"}`:    1,
		`fn_gateway_request_duration_seconds_bucket{` + hello + `,le="0.0005"}`: got[`fn_gateway_request_duration_seconds_bucket{`+hello+`,le="0.0005"}`],
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %t), want %v", k, g, ok, v)
		}
	}
	// Buckets are cumulative.
	prev := -1.0
	for _, le := range []string{"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "+Inf"} {
		v, ok := got[`fn_gateway_request_duration_seconds_bucket{`+hello+`,le="`+le+`"}`]
		if !ok || v < prev {
			t.Errorf("bucket le=%s: %v (present %t), below the previous %v", le, v, ok, prev)
		}
		prev = v
	}
	if s := got[`fn_gateway_request_duration_seconds_sum{`+hello+`}`]; s <= 0 || s > 10 {
		t.Errorf("duration sum %v, want a few milliseconds", s)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	f.get(t, "/f/ns/hello/a?secret=1")
	f.get(t, "/f/ns/nope/")
	f.internal(t, "/_gw/health")
	lines := f.logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("log lines %v, want 2", lines)
	}
	upstream := strings.TrimPrefix(b.URL, "http://")
	for i, want := range []map[string]any{
		{"level": "INFO", "msg": "request", "namespace": "ns", "function": "hello", "method": "GET", "path": "/f/ns/hello/a", "status": 200.0, "upstream": upstream},
		{"level": "INFO", "msg": "request", "namespace": "ns", "function": "nope", "method": "GET", "path": "/f/ns/nope/", "status": 404.0, "upstream": ""},
	} {
		got := lines[i]
		if d, ok := got["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("line %d: duration_ms %v", i, got["duration_ms"])
		}
		delete(got, "duration_ms")
		delete(got, "time")
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("line %d (-want +got):\n%s", i, d)
		}
	}

	// Errors are logged even when requests are not.
	quiet := &syncBuffer{}
	f = newFixture(t, Options{Logger: slog.New(slog.NewJSONHandler(quiet, &slog.HandlerOptions{Level: slog.LevelWarn}))}, function("hello", "ns"))
	f.get(t, "/f/ns/hello/")
	f.get(t, "/f/ns/nope/")
	if lines := quiet.lines(t); len(lines) != 1 || lines[0]["level"] != "ERROR" || lines[0]["status"] != 503.0 {
		t.Errorf("log lines at level WARN: %v, want one error for the 503", lines)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	if resp, body := f.internal(t, "/_gw/health"); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("health: %d %q", resp.StatusCode, body)
	}
	// The gateway's own endpoints are on the internal port only.
	for _, p := range []string{"/_gw/health", "/_gw/metrics"} {
		if resp, body := f.get(t, p); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "fn_gateway") {
			t.Errorf("public %s: %d %q, want 404", p, resp.StatusCode, body)
		}
	}
}

// A function's internal endpoints (/_fn/: probes, metrics) are not reached through the
// gateway, however the path is written; other paths are.
func TestInternalPathsStayInternal(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	f := newFixture(t, Options{Domain: "fn.test"}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	for _, p := range []string{"/f/ns/hello/_fn/metrics", "/f/ns/hello/_fn/ready", "/f/ns/hello//_fn/live", "/f/ns/hello/a/../_fn/metrics",
		"/f/ns/hello/%5Ffn/metrics", "/f/ns/hello/./_fn", "/f/ns/hello/_fn"} {
		if resp, body := f.get(t, p); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "internal endpoints") {
			t.Errorf("GET %s: %d %q, want 404 from the gateway", p, resp.StatusCode, body)
		}
	}
	r, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/_fn/metrics", nil)
	r.Host = "hello.ns.fn.test"
	if resp, _ := f.do(t, r); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /_fn/metrics by host: %d, want 404", resp.StatusCode)
	}
	b.mu.Lock()
	n := len(b.reqs)
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("the function got %d requests for its internal endpoints: %v", n, b.reqs)
	}
	for _, p := range []string{"/f/ns/hello/_fnx", "/f/ns/hello/x/_fn/metrics"} {
		if resp, _ := f.get(t, p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want it forwarded", p, resp.StatusCode)
		}
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done\n")
	})
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, f.gw) }()

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/f/ns/hello/")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(body), err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the function")
	}
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case r := <-res:
		if r.err != nil || r.code != http.StatusOK || r.body != "done\n" {
			t.Errorf("request in flight at shutdown: %d %q %v, want 200 done", r.code, r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight did not finish")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

func TestLogBuffer(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	b := NewLogBuffer(out, 20*time.Millisecond)
	fmt.Fprintln(b, `{"n":1}`)
	eventually(t, "the line written after the interval", func() bool { return len(out.lines(t)) == 1 })
	fmt.Fprintln(b, `{"n":2}`)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := out.lines(t); len(got) != 2 || got[1]["n"] != 2.0 {
		t.Errorf("lines after Close: %v, want both", got)
	}
}

// BenchmarkServeHTTP measures the gateway's own cost per request, over a real connection to a
// backend; the bench/gateway command measures it end to end against a direct baseline.
func BenchmarkServeHTTP(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Hello, world!\n")
	}))
	defer backend.Close()
	f := newFixture(b, Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}, function("hello", "ns"),
		slice("hello-1", "ns", "hello", withEndpoint(backend.URL, true)))
	r := httptest.NewRequest(http.MethodGet, "/f/ns/hello/a?b=c", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.gw.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("got %d", w.Code)
		}
	}
}
