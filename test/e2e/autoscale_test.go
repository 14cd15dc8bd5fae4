package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeSlow copies test/functions/slow (it sleeps ?ms= milliseconds and answers its pod's name)
// into a new directory named name: a function of that name.
func writeSlow(t *testing.T, name string) string {
	t.Helper()
	return copyFunction(t, "slow", name)
}

// copyFunction copies the test function test/functions/from into a new directory named name.
func copyFunction(t *testing.T, from, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(repo, "test", "functions", from))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fnStatus is what the tests read of a Function.
type fnStatus struct {
	Ready, ReadyReason, Scale string
	Desired, ReadyReplicas    int
}

func functionStatus(t *testing.T, name string) fnStatus {
	t.Helper()
	var f struct {
		Status struct {
			DesiredReplicas int `json:"desiredReplicas"`
			ReadyReplicas   int `json:"readyReplicas"`
			Conditions      []struct{ Type, Status, Reason string }
		}
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "function", name, "-o", "json")), &f); err != nil {
		t.Fatal(err)
	}
	s := fnStatus{Desired: f.Status.DesiredReplicas, ReadyReplicas: f.Status.ReadyReplicas}
	for _, c := range f.Status.Conditions {
		switch c.Type {
		case "Ready":
			s.Ready, s.ReadyReason = c.Status, c.Reason
		case "AutoscalerReady":
			s.Scale = c.Reason
		}
	}
	return s
}

// pods are the names of function name's pods that are not being deleted.
func pods(t *testing.T, name string) []string {
	t.Helper()
	out := kubectl(t, "get", "pods", "-l", "fnkit.dev/function="+name, "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}`)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 1 {
			names = append(names, f[0])
		}
	}
	return names
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start)
}

// waitZero waits until function name has no replica, no pod and no process.
func waitZero(t *testing.T, name string, d time.Duration) {
	t.Helper()
	waitFor(t, d, name+" scaled to zero", func() bool {
		s := functionStatus(t, name)
		return s.Desired == 0 && s.Scale == "ScaledToZero" && len(pods(t, name)) == 0 && len(functionProcesses(name)) == 0
	})
}

// TestScaleToZeroAndBack: a function with a short window scales to zero after window + delay
// (no pod, no process, still Ready, the URL still answers); one request at zero and 100 at once
// are all answered 200.
func TestScaleToZeroAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	url := strings.TrimSpace(mustFn(t, "deploy", writeSlow(t, "sleepy"), "--window", "4s", "--scale-down-delay", "2s", "--max", "10"))
	waitZero(t, "sleepy", time.Minute)
	if s := functionStatus(t, "sleepy"); s.Ready != "True" || s.ReadyReason != "ScaledToZero" {
		t.Errorf("at zero: Ready %s (%s), want True with reason ScaledToZero", s.Ready, s.ReadyReason)
	}
	if out := mustFn(t, "list"); !strings.Contains(out, "ScaledToZero") {
		t.Errorf("fn list does not show the function scaled to zero:\n%s", out)
	}

	client := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "sleepy-") {
		t.Fatalf("one request at zero: %d %q, want 200 from a sleepy pod", resp.StatusCode, body)
	}
	t.Logf("one request at zero answered in %s", time.Since(start))

	waitZero(t, "sleepy", time.Minute)
	var ok, failed atomic.Int64
	var last atomic.Value
	var wg sync.WaitGroup
	start = time.Now()
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(url + "?ms=50")
			if err != nil {
				failed.Add(1)
				last.Store(err.Error())
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				last.Store(fmt.Sprintf("%d %s", resp.StatusCode, b))
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	t.Logf("100 concurrent requests at zero: %d ok in %s", ok.Load(), time.Since(start))
	if ok.Load() != 100 {
		t.Errorf("100 requests at zero: %d ok, %d failed (last: %v)", ok.Load(), failed.Load(), last.Load())
	}
}

// TestScaleOutSteadyAndDown: a load step to 10x the target scales out within the panic window
// plus pod start and every new replica serves; a steady load keeps the count for 60 s; a lower
// load scales down with no failed request; no load returns to min after window + delay.
func TestScaleOutSteadyAndDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	url := strings.TrimSpace(mustFn(t, "deploy", writeSlow(t, "busy"), "--min", "1", "--max", "12", "--target", "2",
		"--window", "10s", "--scale-down-delay", "2s"))
	if s := functionStatus(t, "busy"); s.Desired != 1 {
		t.Fatalf("before load: %d replicas desired, want 1", s.Desired)
	}

	var clients atomic.Int64 // how many load loops run
	var ok, failed atomic.Int64
	var last atomic.Value
	var mu sync.Mutex
	served := map[string]int{} // pod -> requests answered
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(id int64) {
		defer wg.Done()
		client := &http.Client{Timeout: 30 * time.Second}
		deadline := time.Now().Add(4 * time.Minute)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			if id >= clients.Load() {
				time.Sleep(20 * time.Millisecond) // this loop is paused
				continue
			}
			resp, err := client.Get(url + "?ms=100")
			if err != nil {
				failed.Add(1)
				last.Store(err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				last.Store(fmt.Sprintf("%d %s", resp.StatusCode, b))
				continue
			}
			ok.Add(1)
			mu.Lock()
			served[string(b)]++
			mu.Unlock()
		}
	}
	for i := range 20 {
		wg.Add(1)
		go loop(int64(i))
	}
	defer func() { close(stop); wg.Wait() }()

	// The step: 20 requests in flight, 10x the target of 2 per replica: 10 replicas. (The load
	// can only be at or under 10 targets, never over: the count sits on no boundary to flap on.)
	clients.Store(20)
	took := waitFor(t, 30*time.Second, "scale-out to 10 ready replicas", func() bool {
		s := functionStatus(t, "busy")
		return s.Desired >= 10 && s.ReadyReplicas >= 10
	})
	t.Logf("load step: 10 replicas ready after %s", took)
	if took > 15*time.Second {
		t.Errorf("scale-out took %s, want within the panic window (1s) plus pod start", took)
	}

	// Steady: the count must not change for 60 s, and every replica takes traffic.
	time.Sleep(3 * time.Second)
	mu.Lock()
	clear(served)
	mu.Unlock()
	want := functionStatus(t, "busy").Desired
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if s := functionStatus(t, "busy"); s.Desired != want {
			t.Fatalf("under steady load the replica count changed: %d -> %d (%s)", want, s.Desired, s.Scale)
		}
	}
	names := pods(t, "busy")
	mu.Lock()
	for _, p := range names {
		if served[p] == 0 {
			t.Errorf("replica %s took no request under load (served: %v)", p, served)
		}
	}
	mu.Unlock()
	if len(names) != want {
		t.Errorf("%d pods for %d desired replicas", len(names), want)
	}

	// Scale-down while load goes on at a lower rate: not one request fails.
	failedBefore := failed.Load()
	clients.Store(6)
	waitFor(t, 60*time.Second, "scale-down to 3 under a lower load", func() bool {
		return functionStatus(t, "busy").Desired == 3
	})
	waitFor(t, 60*time.Second, "scaled-down replicas gone", func() bool { return len(pods(t, "busy")) == 3 })
	time.Sleep(2 * time.Second)
	if n := failed.Load() - failedBefore; n > 0 {
		t.Errorf("%d requests failed while scaling down under load (last: %v)", n, last.Load())
	}

	// No load: back to min after the window plus the delay.
	clients.Store(0)
	took = waitFor(t, 60*time.Second, "back to min 1", func() bool {
		s := functionStatus(t, "busy")
		return s.Desired == 1 && s.Scale == "AtMin"
	})
	t.Logf("no load: back to min after %s; %d requests ok, %d failed", took, ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed under load (last: %v)", failed.Load(), last.Load())
	}
}

// TestZeroCannotRun: a function at zero whose image cannot run on this node answers its held
// requests 503 with the reason, within 10 s.
func TestZeroCannotRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	var st struct {
		Registry string `json:"registry"`
	}
	b, err := os.ReadFile(filepath.Join(fnHome, "platform.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &st)
	ref := strings.TrimSpace(mustFn(t, "build", writeSlow(t, "foreign"), "--registry", st.Registry+"/fns", "--platform", "linux/arm64"))
	manifest := fmt.Sprintf(`apiVersion: fnkit.dev/v1alpha1
kind: Function
metadata: {name: foreign, namespace: default}
spec:
  image: %s
  timeout: 60s
  scale: {min: 0, initial: 0}
`, ref)
	path := filepath.Join(t.TempDir(), "foreign.yaml")
	os.WriteFile(path, []byte(manifest), 0o644)
	kubectl(t, "apply", "-f", path)
	waitFor(t, 30*time.Second, "foreign at zero and Ready", func() bool {
		s := functionStatus(t, "foreign")
		return s.Ready == "True" && s.Desired == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL(t)+"/f/default/foreign/", nil)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "cannot start: CannotRun") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("held request for an image that cannot run: %d %q, want 503 with the reason", resp.StatusCode, body)
	}
	if took > 10*time.Second {
		t.Errorf("answered after %s, want within 10s", took)
	}
	t.Logf("answered %d in %s: %s", resp.StatusCode, took, strings.TrimSpace(string(body)))
	mustFn(t, "delete", "foreign")
}

func gatewayURL(t *testing.T) string {
	t.Helper()
	var st struct {
		Gateway string `json:"gateway"`
	}
	b, err := os.ReadFile(filepath.Join(fnHome, "platform.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Gateway
}

// TestCPUAutoscaling: a CPU-bound function with metric cpu scales from 1 to more replicas by
// its HorizontalPodAutoscaler, on figures from metrics-server and the node agent, and
// kubectl top shows them.
func TestCPUAutoscaling(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	// The platform runs metrics-server only when it finds its binary (make check builds it and
	// sets FN_METRICS_SERVER); without it no HPA can scale, so say so rather than time out.
	if b, err := os.ReadFile(filepath.Join(fnHome, "logs", "metrics-server.log")); err == nil && strings.Contains(string(b), "metrics-server is not running") {
		t.Fatalf("metrics-server does not run on the platform under test (set FN_METRICS_SERVER=$(hack/metrics-server.sh), as make check does): %s", strings.TrimSpace(string(b)))
	}
	dir := copyFunction(t, "hot", "hot")
	var st struct {
		Registry string `json:"registry"`
	}
	b, err := os.ReadFile(filepath.Join(fnHome, "platform.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &st)
	ref := strings.TrimSpace(mustFn(t, "build", dir, "--registry", st.Registry+"/fns"))
	manifest := fmt.Sprintf(`apiVersion: fnkit.dev/v1alpha1
kind: Function
metadata: {name: hot, namespace: default}
spec:
  image: %s
  resources: {requests: {cpu: 100m}}
  scale: {metric: cpu, target: 50, min: 1, max: 4}
`, ref)
	path := filepath.Join(t.TempDir(), "hot.yaml")
	os.WriteFile(path, []byte(manifest), 0o644)
	kubectl(t, "apply", "-f", path)
	defer fn(t, "delete", "hot")
	waitFor(t, time.Minute, "hot running", func() bool { return len(pods(t, "hot")) == 1 && len(functionProcesses("hot")) == 1 })

	url := gatewayURL(t) + "/f/default/hot/?ms=40"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := client.Get(url); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	took := waitFor(t, 2*time.Minute, "the HPA scales hot out", func() bool {
		return strings.TrimSpace(kubectl(t, "get", "deployment", "hot", "-o", "jsonpath={.spec.replicas}")) > "1"
	})
	t.Logf("scaled out on CPU after %s", took)
	top := kubectl(t, "top", "pods", "-l", "fnkit.dev/function=hot", "--no-headers")
	if !strings.Contains(top, "hot-") || !strings.Contains(top, "m ") {
		t.Errorf("kubectl top pods shows no CPU figures for hot:\n%s", top)
	}
	t.Logf("kubectl top pods:\n%s", top)
	// Right after a scale-out the new pod has no CPU figure until metrics-server's next scrape,
	// and the HPA says FailedGetResourceMetric meanwhile: the reason must settle to one with
	// metrics for every pod.
	var reason string
	if settled := func() bool {
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
			if reason = functionStatus(t, "hot").Scale; reason != "" && reason != "FailedGetResourceMetric" {
				return true
			}
		}
		return false
	}(); !settled {
		t.Errorf("AutoscalerReady reason %q a minute after the scale-out: the HPA has no metrics", reason)
	}
}

// TestScaleBoundsHold: min and max given on a later deploy bind at once, with no load: --min 3
// gets 3 replicas that stay, and --max 2 brings them down to 2.
func TestScaleBoundsHold(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := writeSlow(t, "bounded")
	mustFn(t, "deploy", dir, "--min", "1")
	if s := functionStatus(t, "bounded"); s.Desired != 1 {
		t.Fatalf("after --min 1: %d desired, want 1", s.Desired)
	}
	mustFn(t, "deploy", dir, "--min", "3")
	waitFor(t, 60*time.Second, "3 ready replicas after --min 3", func() bool {
		s := functionStatus(t, "bounded")
		return s.Desired == 3 && s.ReadyReplicas == 3
	})
	// Without a request the autoscaler wants none, and keeps min: through several of its ticks.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if s := functionStatus(t, "bounded"); s.Desired != 3 {
			t.Fatalf("min 3 did not hold: %d desired (%s)", s.Desired, s.Scale)
		}
	}
	mustFn(t, "deploy", dir, "--min", "1", "--max", "2")
	waitFor(t, 60*time.Second, "2 replicas after --max 2", func() bool {
		s := functionStatus(t, "bounded")
		return s.Desired == 2 && s.ReadyReplicas == 2 && len(pods(t, "bounded")) == 2
	})
	mustFn(t, "delete", "bounded")
}
