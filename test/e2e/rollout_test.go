package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// getFunction reads Function name as the API server has it.
func getFunction(t *testing.T, name string) *v1alpha1.Function {
	t.Helper()
	var f v1alpha1.Function
	if err := json.Unmarshal([]byte(kubectl(t, "get", "function", name, "-o", "json")), &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// versionClient asks a version function for its version through the gateway.
type versionClient struct {
	url    string
	client *http.Client
}

func newVersionClient(url string) *versionClient {
	return &versionClient{url: url, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

// get answers the version that answered, and its status.
func (c *versionClient) get(header ...string) (string, int, error) {
	req, _ := http.NewRequest(http.MethodGet, c.url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp.StatusCode, nil
}

// versionLoop asks for the version without a pause from workers goroutines until end, and
// counts the answers by version and the failures.
type versionLoop struct {
	c      *versionClient
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	counts map[string]int
	failed atomic.Int64
	last   atomic.Value
}

func startVersionLoop(c *versionClient, workers int) *versionLoop {
	l := &versionLoop{c: c, stop: make(chan struct{}), counts: map[string]int{}}
	deadline := time.Now().Add(5 * time.Minute) // bounded whatever the test does
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				v, code, err := l.c.get()
				l.mu.Lock()
				l.counts[v]++
				l.mu.Unlock()
				if err != nil || code != http.StatusOK {
					l.failed.Add(1)
					l.last.Store(strings.TrimSpace(v + " " + http.StatusText(code) + " " + errText(err)))
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return l
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (l *versionLoop) end() map[string]int {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

// TestCanaryRollout: a canary of 20% takes 20% of the requests (within 5 points) during its
// step, then all of them, with not one request failed; a canary that answers 500 is rolled back
// by itself at its first step, the stable revision keeping all traffic, and fn describe says
// why; fn rollback brings back the revision before, at once and without a build.
func TestCanaryRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyFunction(t, "version", "canary")
	url := strings.TrimSpace(mustFn(t, "deploy", dir, "--env", "VERSION=v1", "--min", "1"))
	t.Cleanup(func() { fn(t, "delete", "canary") })
	c := newVersionClient(url)
	if v, code, err := c.get(); err != nil || code != http.StatusOK || v != "v1" {
		t.Fatalf("v1 answered %q %d %v", v, code, err)
	}

	// v2 as a canary of 20%, one step of 20 s: a loop runs through the whole rollout.
	loop := startVersionLoop(c, 2)
	mustFn(t, "deploy", dir, "--env", "VERSION=v2", "--min", "1", "--canary", "--steps", "20", "--pause", "20s")
	waitFor(t, time.Minute, "the canary at 20%", func() bool {
		ro := getFunction(t, "canary").Status.Rollout
		return ro != nil && ro.Percent == 20 && ro.Phase == v1alpha1.RolloutProgressing
	})
	share := map[string]int{}
	for range 1000 {
		v, code, err := c.get()
		if err != nil || code != http.StatusOK {
			t.Fatalf("a request during the step failed: %q %d %v", v, code, err)
		}
		share[v]++
	}
	if ro := getFunction(t, "canary").Status.Rollout; ro.Percent != 20 || ro.Phase != v1alpha1.RolloutProgressing {
		t.Fatalf("the step ended while its share was measured: %+v", ro)
	}
	t.Logf("during the 20%% step: %v", share)
	if got := share["v2"]; got < 150 || got > 250 || share["v1"]+got != 1000 {
		t.Errorf("v2 answered %d of 1,000 requests during the 20%% step, want 200 ± 50 (the rest v1): %v", got, share)
	}
	waitFor(t, 2*time.Minute, "v2 promoted", func() bool {
		f := getFunction(t, "canary")
		return f.Status.Rollout.Phase == v1alpha1.RolloutSucceeded && f.Status.StableRevision == "canary-00002"
	})
	for range 50 {
		if v, code, err := c.get(); err != nil || code != http.StatusOK || v != "v2" {
			t.Fatalf("after the rollout, %q %d %v answered, want v2", v, code, err)
		}
	}
	counts := loop.end()
	t.Logf("through the rollout: %v, %d failed", counts, loop.failed.Load())
	if n := loop.failed.Load(); n > 0 {
		t.Errorf("%d requests failed through the canary rollout; last: %v", n, loop.last.Load())
	}

	// v3 answers 500 to everything: rolled back at its first step, v2 keeping all traffic.
	loop = startVersionLoop(c, 2)
	mustFn(t, "deploy", dir, "--env", "VERSION=v3", "--env", "FAIL=1", "--min", "1", "--canary", "--steps", "20,50", "--pause", "30s")
	var ro *v1alpha1.RolloutStatus
	waitFor(t, time.Minute, "v3 rolled back", func() bool {
		ro = getFunction(t, "canary").Status.Rollout
		return ro != nil && ro.Revision == "canary-00003" && ro.Phase.Done()
	})
	counts = loop.end()
	if ro.Phase != v1alpha1.RolloutRolledBack || ro.Step != 0 {
		t.Fatalf("v3's rollout ended %s at step %d, want RolledBack at the first: %+v", ro.Phase, ro.Step+1, ro)
	}
	t.Logf("v3 rolled back: %s; requests meanwhile: %v", ro.Message, counts)
	f := getFunction(t, "canary")
	if f.Status.StableRevision != "canary-00002" {
		t.Errorf("the stable revision is %s, want canary-00002", f.Status.StableRevision)
	}
	for range 100 {
		if v, code, err := c.get(); err != nil || code != http.StatusOK || v != "v2" {
			t.Fatalf("after v3's rollback, %q %d %v answered, want v2 for every request", v, code, err)
		}
	}
	desc := mustFn(t, "describe", "canary")
	if !strings.Contains(desc, "RolledBack") || !strings.Contains(desc, "error rate") {
		t.Errorf("fn describe does not say why v3 was rolled back:\n%s", desc)
	}
	// The revision under test answers when addressed, whatever its share: v2 is stable.
	if v, code, _ := c.get("Fn-Revision", "2"); code != http.StatusOK || v != "v2" {
		t.Errorf("Fn-Revision: 2 answered %q %d, want v2", v, code)
	}
	if _, code, _ := c.get("Fn-Revision", "1"); code != http.StatusNotFound {
		t.Errorf("Fn-Revision: 1 (not running) answered %d, want 404", code)
	}

	// fn rollback: v1 again, at once.
	start := time.Now()
	_, errOut, err := fn(t, "rollback", "canary")
	if err != nil {
		t.Fatalf("fn rollback: %v\n%s", err, errOut)
	}
	took := time.Since(start)
	if strings.Contains(errOut, "Building") || strings.Contains(errOut, "Pushed") {
		t.Errorf("fn rollback built something:\n%s", errOut)
	}
	waitFor(t, 30*time.Second, "v1 answers", func() bool {
		v, code, _ := c.get()
		return code == http.StatusOK && v == "v1"
	})
	t.Logf("fn rollback to v1 took %s; v1 answers %s after it began", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if took > 30*time.Second {
		t.Errorf("fn rollback took %s", took)
	}
	if f := getFunction(t, "canary"); f.Status.StableRevision != "canary-00001" {
		t.Errorf("after fn rollback the stable revision is %s, want canary-00001", f.Status.StableRevision)
	}
}

// TestBatchedRollout: a batched rollout of 4 replicas in batches of 1 pauses after each
// batch, and fn rollout resume takes it on to the end.
func TestBatchedRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyFunction(t, "version", "batched")
	url := strings.TrimSpace(mustFn(t, "deploy", dir, "--env", "VERSION=v1", "--min", "4"))
	t.Cleanup(func() { fn(t, "delete", "batched") })
	c := newVersionClient(url)
	loop := startVersionLoop(c, 1)
	mustFn(t, "deploy", dir, "--env", "VERSION=v2", "--min", "4", "--batch-size", "1")
	for batch := int32(1); batch <= 4; batch++ {
		var ro *v1alpha1.RolloutStatus
		waitFor(t, time.Minute, "batch ready and paused", func() bool {
			ro = getFunction(t, "batched").Status.Rollout
			return ro != nil && ro.Phase == v1alpha1.RolloutPaused && ro.Replicas == batch
		})
		if ro.Total != 4 {
			t.Fatalf("the rollout replaces %d replicas, want 4", ro.Total)
		}
		// Held: still paused a moment later, with as many new replicas.
		time.Sleep(2 * time.Second)
		if ro = getFunction(t, "batched").Status.Rollout; ro.Phase != v1alpha1.RolloutPaused || ro.Replicas != batch {
			t.Fatalf("batch %d did not hold: %+v", batch, ro)
		}
		if n := len(pods(t, "batched")); n != 4 {
			t.Errorf("batch %d: %d pods, want 4 (%d new, %d old)", batch, n, batch, 4-batch)
		}
		mustFn(t, "rollout", "resume", "batched")
	}
	waitFor(t, 2*time.Minute, "the batched rollout done", func() bool {
		f := getFunction(t, "batched")
		return f.Status.Rollout.Phase == v1alpha1.RolloutSucceeded && f.Status.StableRevision == "batched-00002"
	})
	counts := loop.end()
	t.Logf("through the batched rollout: %v", counts)
	if n := loop.failed.Load(); n > 0 {
		t.Errorf("%d requests failed through the batched rollout; last: %v", n, loop.last.Load())
	}
	for range 20 {
		if v, code, err := c.get(); err != nil || code != http.StatusOK || v != "v2" {
			t.Fatalf("after the rollout, %q %d %v answered, want v2", v, code, err)
		}
	}
}
