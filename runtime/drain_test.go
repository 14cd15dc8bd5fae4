package runtime_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"fnkit.dev/fn/runtime"
)

// TestDrain cancels Run's context (what SIGTERM does in Main) while requests are in flight: they
// all complete, Run returns nil, and the Stop hook runs after the last of them.
func TestDrain(t *testing.T) {
	const n = 20
	for _, tt := range []struct {
		name  string
		delay time.Duration
	}{
		{"no shutdown delay", 0},
		{"with shutdown delay", time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.ShutdownDelay = tt.delay
			cfg.DrainTimeout = waitTimeout
			g := newGate(t)
			var finished atomic.Int32
			stopSaw := make(chan int32, 1)
			f := runtime.HTTP(func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/slow" {
					g.wait()
					defer finished.Add(1)
				}
				_, err := io.WriteString(w, "done "+r.URL.Path)
				return err
			}).WithHooks(runtime.Hooks{
				Stop: func(context.Context) error {
					stopSaw <- finished.Load()
					return nil
				},
			})
			rs := start(t, f, cfg, true)

			results := make(chan response, n)
			for i := 0; i < n; i++ {
				go func() {
					res, err := rs.client.Get(rs.url + "/slow")
					if err != nil {
						results <- response{Body: err.Error()}
						return
					}
					b, err := io.ReadAll(res.Body)
					res.Body.Close()
					if err != nil {
						b = []byte(err.Error())
					}
					results <- response{Code: res.StatusCode, Body: string(b)}
				}()
			}
			g.awaitEntered(t, n)
			var inFlight float64
			waitFor(t, "fn_requests_in_flight to count every request", func() bool {
				inFlight, _ = metricValue(rs.metrics(t), "fn_requests_in_flight", nil)
				return inFlight == n
			}, func() string { return "last value " + strconv.FormatFloat(inFlight, 'g', -1, 64) })

			rs.cancel() // SIGTERM

			if tt.delay > 0 {
				// During the shutdown delay the function reports not ready but still serves.
				rs.waitStatus(t, "/_fn/ready", http.StatusServiceUnavailable)
				if got := rs.get(t, "/fast"); got.Code != http.StatusOK || got.Body != "done /fast" {
					t.Errorf("request during the shutdown delay = %d %q, want 200", got.Code, got.Body)
				}
			}
			// Then it stops accepting connections, while the requests in flight go on.
			waitFor(t, "the listener to be closed", func() bool { return isConnRefused(rs.addr) })
			select {
			case err := <-rs.done:
				t.Fatalf("Run returned %v with %d requests in flight", err, n)
			case v := <-stopSaw:
				t.Fatalf("Stop was called with %d of %d requests finished", v, n)
			default:
			}

			g.open()
			for i := 0; i < n; i++ {
				select {
				case got := <-results:
					if got.Code != http.StatusOK || got.Body != "done /slow" {
						t.Errorf("in-flight request = %d %q, want 200 \"done /slow\"", got.Code, got.Body)
					}
				case <-time.After(waitTimeout):
					t.Fatalf("only %d of %d in-flight requests completed", i, n)
				}
			}
			if err := rs.wait(t); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			select {
			case v := <-stopSaw:
				if v != n {
					t.Errorf("Stop was called with %d of %d requests finished, want all", v, n)
				}
			default:
				t.Error("Stop was not called")
			}
		})
	}
}

// TestDrainTimeout: a request still running at the end of the drain timeout is cut off, and Run
// returns (and calls Stop) all the same.
func TestDrainTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.DrainTimeout = 200 * time.Millisecond
	g := newGate(t)
	var stopped atomic.Bool
	f := runtime.HTTP(func(context.Context, http.ResponseWriter, *http.Request) error {
		g.wait()
		return nil
	}).WithHooks(runtime.Hooks{Stop: func(context.Context) error { stopped.Store(true); return nil }})
	rs := start(t, f, cfg, true)

	errc := make(chan error, 1)
	go func() {
		res, err := rs.client.Get(rs.url + "/stuck")
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		errc <- err
	}()
	g.awaitEntered(t, 1)
	rs.cancel()
	if err := rs.wait(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if !stopped.Load() {
		t.Error("Stop was not called after the drain timeout")
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("the request cut off by the drain timeout read a clean answer")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the request cut off by the drain timeout did not end")
	}
}

// TestDrainZeroConfig: a Config built by hand, without ConfigFromLookup's defaults, still drains
// in-flight requests (its zero DrainTimeout means the default, as FN_DRAIN_TIMEOUT=0 does).
func TestDrainZeroConfig(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	f := runtime.HTTP(func(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
		g.wait()
		_, err := io.WriteString(w, "drained")
		return err
	})
	rs := start(t, f, runtime.Config{}, true)
	results := make(chan response, 1)
	go func() {
		res, err := rs.client.Get(rs.url + "/")
		if err != nil {
			results <- response{Body: err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		results <- response{Code: res.StatusCode, Body: string(b)}
	}()
	g.awaitEntered(t, 1)
	rs.cancel()
	waitFor(t, "the listener to be closed", func() bool { return isConnRefused(rs.addr) })
	g.open()
	select {
	case got := <-results:
		if got.Code != http.StatusOK || got.Body != "drained" {
			t.Errorf("in-flight request = %d %q, want 200 \"drained\"", got.Code, got.Body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the in-flight request did not complete")
	}
	if err := rs.wait(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
