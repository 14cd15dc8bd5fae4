package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/autoscaler"
)

// fakeScaler stands for the autoscaler: it records reports, and on a poke for a function it
// knows makes that function's pod or EndpointSlice appear, as scaling from zero would.
type fakeScaler struct {
	t     *testing.T
	kube  atomic.Pointer[kubefake.Clientset] // set once the fixture exists
	start map[string]func(*kubefake.Clientset)

	mu      sync.Mutex
	reports []autoscaler.Report
	started map[string]bool
}

func (s *fakeScaler) Report(r autoscaler.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, r)
	if !r.Poke {
		return
	}
	for _, st := range r.Functions {
		if f := s.start[st.Name]; f != nil && !s.started[st.Name] {
			s.started[st.Name] = true
			go f(s.kube.Load())
		}
	}
}

func (s *fakeScaler) pokes(name string) (n int, held int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reports {
		for _, st := range r.Functions {
			if r.Poke && st.Name == name {
				n++
				held = max(held, st.Held)
			}
		}
	}
	return n, held
}

// pod is a running pod of function fn whose runtime answers at URL u.
func pod(name, ns, fn, u string, opts ...func(*corev1.Pod)) *corev1.Pod {
	pu, _ := url.Parse(u)
	host, port, _ := net.SplitHostPort(pu.Host)
	p, _ := strconv.Atoi(port)
	po := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: map[string]string{"fnkit.dev/function": fn}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "function",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(p)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: host, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "function", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	for _, o := range opts {
		o(po)
	}
	return po
}

func TestHeldUntilAnEndpointIsReady(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	sc := &fakeScaler{t: t, started: map[string]bool{}, start: map[string]func(*kubefake.Clientset){
		"hello": func(kube *kubefake.Clientset) {
			time.Sleep(50 * time.Millisecond) // the requests wait
			if _, err := kube.DiscoveryV1().EndpointSlices("ns").Create(context.Background(), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)), metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		},
	}}
	f := newFixture(t, Options{Autoscaler: sc, ProbePods: ptr.To(false)}, function("hello", "ns"))
	sc.kube.Store(f.kube)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/hello/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Backend") == "a" {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 {
		t.Errorf("%d of 20 held requests answered 200 by a", ok.Load())
	}
	if n, held := sc.pokes("hello"); n == 0 || held == 0 {
		t.Errorf("autoscaler poked %d times (at most %d held), want pokes naming held requests", n, held)
	}
	if f.gw.table.Load().routes[key{"ns", "hello"}].stats.held.Load() != 0 {
		t.Error("requests still counted as held once answered")
	}
	m := string(f.gw.metrics())
	if !strings.Contains(m, `fn_gateway_cold_start_seconds_count{namespace="ns",function="hello"} 20`) {
		t.Errorf("metrics do not count 20 cold starts:\n%s", m)
	}
}

func TestHeldPastDeadlineBoundAndHangUp(t *testing.T) {
	t.Parallel()
	sc := &fakeScaler{t: t, started: map[string]bool{}}
	f := newFixture(t, Options{Autoscaler: sc, MaxHeld: 2, ProbePods: ptr.To(false)},
		function("never", "ns", withTimeout(10*time.Millisecond)), function("slow", "ns"))

	// Past the function's timeout: 504.
	resp, body := f.get(t, "/f/ns/never/")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, `function "never" in namespace "ns" got no ready replica within its timeout (10ms)`) {
		t.Errorf("held past its timeout: %d %q, want 504 naming the function", resp.StatusCode, body)
	}

	// Two held; the third is past the bound: 503 with Retry-After at once.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/f/ns/slow/", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	st := func() *stats { return f.gw.table.Load().routes[key{"ns", "slow"}].stats }
	eventually(t, "two requests held", func() bool { return st().held.Load() == 2 })
	resp, body = f.get(t, "/f/ns/slow/")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `function "slow" in namespace "ns" is starting and already holds 2 requests`) {
		t.Errorf("past the bound: %d %q (Retry-After %q), want 503 naming the function", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// Clients that hang up leave the queue.
	cancel()
	wg.Wait()
	eventually(t, "hung-up requests dropped", func() bool { return st().held.Load() == 0 && st().inflight.Load() == 0 })
}

// TestHeldAnswersWhyPodsCannotStart: a function at zero whose only pod cannot run its image
// answers its held requests 503 with the reason, instead of holding them to their deadline.
func TestHeldAnswersWhyPodsCannotStart(t *testing.T) {
	t.Parallel()
	sc := &fakeScaler{t: t, started: map[string]bool{}, start: map[string]func(*kubefake.Clientset){
		"broken": func(kube *kubefake.Clientset) {
			p := pod("broken-1", "ns", "broken", "http://10.0.0.1:8080", func(p *corev1.Pod) {
				p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
					Reason: "CannotRun", Message: "image is for linux/arm64, this node runs linux/amd64"}}
			})
			if _, err := kube.CoreV1().Pods("ns").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		},
	}}
	f := newFixture(t, Options{Autoscaler: sc}, function("broken", "ns", withTimeout(time.Minute)))
	sc.kube.Store(f.kube)
	start := time.Now()
	resp, body := f.get(t, "/f/ns/broken/")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `function "broken" in namespace "ns" cannot start: CannotRun: image is for linux/arm64`) {
		t.Errorf("held for a pod that cannot run: %d %q, want 503 with the reason", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("answered after %s: held towards its deadline", d)
	}
	// While the pod stays so, new requests get the same answer without waiting.
	if resp, _ := f.get(t, "/f/ns/broken/"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second request: %d, want 503", resp.StatusCode)
	}
}

// TestProbedPodTakesRequests: a new pod that answers /_fn/ready takes held requests before any
// EndpointSlice lists it; once its slice lists it ready, the slice rules, and a deleted pod
// gets no more requests.
func TestProbedPodTakesRequests(t *testing.T) {
	t.Parallel()
	var readyAsked atomic.Int64
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_fn/ready" {
			readyAsked.Add(1)
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	sc := &fakeScaler{t: t, started: map[string]bool{}, start: map[string]func(*kubefake.Clientset){
		"hello": func(kube *kubefake.Clientset) {
			if _, err := kube.CoreV1().Pods("ns").Create(context.Background(), pod("hello-1", "ns", "hello", b.URL), metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		},
	}}
	f := newFixture(t, Options{Autoscaler: sc}, function("hello", "ns"))
	sc.kube.Store(f.kube)
	resp, _ := f.get(t, "/f/ns/hello/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "a" {
		t.Fatalf("held request: %d, want 200 from the probed pod", resp.StatusCode)
	}
	if readyAsked.Load() == 0 {
		t.Error("the pod's /_fn/ready was never asked")
	}
	// The pod goes away: no endpoint is left, requests are held again (and time out here).
	if err := f.kube.CoreV1().Pods("ns").Delete(context.Background(), "hello-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted pod dropped", func() bool { return len(f.gw.table.Load().routes[key{"ns", "hello"}].eps) == 0 })
}

// TestReports: the gateway reports each function's average concurrency and arrivals.
func TestReports(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the backend closes, also when the test fails
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { <-release })
	sc := &fakeScaler{t: t, started: map[string]bool{}}
	f := newFixture(t, Options{Autoscaler: sc, ReportPeriod: 100 * time.Millisecond, ID: "gw-1", ProbePods: ptr.To(false)},
		function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/hello/"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "a report of 3 in flight", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		for _, r := range sc.reports {
			for _, st := range r.Functions {
				if r.Gateway == "gw-1" && st.Name == "hello" && st.InFlight == 3 && st.Concurrency >= 2.5 {
					return true
				}
			}
		}
		return false
	})
	unblock()
	wg.Wait()
}
