package runtime_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fnkit.dev/fn/runtime"
)

func okHandler(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	_, err := io.WriteString(w, "ok")
	return err
}

func TestStartError(t *testing.T) {
	f := runtime.HTTP(okHandler).WithHooks(runtime.Hooks{
		Start: func(context.Context, map[string]string) error { return errors.New("no database at db:5432") },
	})
	rs := start(t, f, testConfig(t), false)
	err := rs.wait(t)
	if err == nil {
		t.Fatal("Run returned nil, want the Start error")
	}
	if !strings.Contains(err.Error(), "no database at db:5432") || !strings.Contains(err.Error(), "Start") {
		t.Errorf("Run error %q does not mention the Start failure", err)
	}
	// Run stopped serving.
	waitFor(t, "the listener to be closed", func() bool { return isConnRefused(rs.addr) })
}

func TestStartGetsRunContext(t *testing.T) {
	f := runtime.HTTP(okHandler).WithHooks(runtime.Hooks{
		Start: func(ctx context.Context, _ map[string]string) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(waitTimeout):
				return errors.New("Start's context was not cancelled with Run's")
			}
		},
	})
	rs := start(t, f, testConfig(t), false)
	rs.cancel()
	if err := rs.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want the Start error wrapping context.Canceled", err)
	}
}

func TestReadyWaitsForStart(t *testing.T) {
	release := make(chan struct{})
	var called atomic.Int32
	handler := func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		called.Add(1)
		return okHandler(ctx, w, r)
	}
	f := runtime.HTTP(handler).WithHooks(runtime.Hooks{
		Start: func(ctx context.Context, _ map[string]string) error {
			select {
			case <-release:
				return nil
			case <-time.After(waitTimeout):
				return errors.New("never released")
			}
		},
	})
	rs := start(t, f, testConfig(t), false)

	// While Start runs: not ready, alive, and the function is not called.
	for i := 0; i < 3; i++ {
		if got := rs.get(t, "/_fn/ready"); got.Code != http.StatusServiceUnavailable {
			t.Fatalf("/_fn/ready during Start = %d %q, want 503", got.Code, got.Body)
		}
		if got := rs.get(t, "/_fn/live"); got.Code != http.StatusOK {
			t.Fatalf("/_fn/live during Start = %d %q, want 200", got.Code, got.Body)
		}
		got := rs.get(t, "/")
		if got.Code != http.StatusServiceUnavailable || got.Header.Get("Retry-After") == "" {
			t.Fatalf("request during Start = %d %v %q, want 503 with Retry-After", got.Code, got.Header, got.Body)
		}
	}
	if v, _ := metricValue(rs.metrics(t), "fn_ready", nil); v != 0 {
		t.Errorf("fn_ready during Start = %v, want 0", v)
	}
	if n := called.Load(); n != 0 {
		t.Fatalf("the function was called %d times before Start returned", n)
	}

	close(release)
	rs.waitStatus(t, "/_fn/ready", http.StatusOK)
	if got := rs.get(t, "/"); got.Code != http.StatusOK || got.Body != "ok" {
		t.Errorf("request after Start = %d %q, want 200 \"ok\"", got.Code, got.Body)
	}
	if v, _ := metricValue(rs.metrics(t), "fn_ready", nil); v != 1 {
		t.Errorf("fn_ready after Start = %v, want 1", v)
	}
}

func TestStartGetsEnvironment(t *testing.T) {
	t.Setenv("FN_TEST_GREETING", "hello=world")
	got := make(chan map[string]string, 1)
	f := runtime.HTTP(okHandler).WithHooks(runtime.Hooks{
		Start: func(_ context.Context, cfg map[string]string) error {
			got <- cfg
			return nil
		},
	})
	start(t, f, testConfig(t), true)
	select {
	case cfg := <-got:
		if v, ok := cfg["FN_TEST_GREETING"]; !ok || v != "hello=world" {
			t.Errorf("Start's cfg[FN_TEST_GREETING] = %q, %v; want \"hello=world\"", v, ok)
		}
		if _, ok := cfg["PATH"]; !ok {
			t.Errorf("Start's cfg has no PATH: %v", cfg)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Start was not called")
	}
}

// probeHook answers as its fields say, switchable while the server runs.
type probeHook struct {
	ok    atomic.Bool
	err   atomic.Pointer[string]
	panic atomic.Bool
}

func (p *probeHook) hook(context.Context) (bool, error) {
	if p.panic.Load() {
		panic("probe bug")
	}
	if e := p.err.Load(); e != nil {
		return false, errors.New(*e)
	}
	return p.ok.Load(), nil
}

func TestProbeHooks(t *testing.T) {
	var ready, alive probeHook
	f := runtime.HTTP(okHandler).WithHooks(runtime.Hooks{Ready: ready.hook, Alive: alive.hook})
	ready.ok.Store(true)
	alive.ok.Store(true)
	rs := start(t, f, testConfig(t), true)

	cacheDown := "cache is down"
	tests := []struct {
		name     string
		path     string
		hook     *probeHook
		set      func(*probeHook)
		wantCode int
		wantBody string
	}{
		{"ready", "/_fn/ready", &ready, func(p *probeHook) {}, 200, "ok"},
		{"not ready", "/_fn/ready", &ready, func(p *probeHook) { p.ok.Store(false) }, 503, "not ready"},
		{"ready error", "/_fn/ready", &ready, func(p *probeHook) { p.err.Store(&cacheDown) }, 503, cacheDown},
		{"ready panics", "/_fn/ready", &ready, func(p *probeHook) { p.panic.Store(true) }, 503, "probe bug"},
		{"alive", "/_fn/live", &alive, func(p *probeHook) {}, 200, "ok"},
		{"not alive", "/_fn/live", &alive, func(p *probeHook) { p.ok.Store(false) }, 503, "not alive"},
		{"alive error", "/_fn/live", &alive, func(p *probeHook) { p.err.Store(&cacheDown) }, 503, cacheDown},
		{"alive panics", "/_fn/live", &alive, func(p *probeHook) { p.panic.Store(true) }, 503, "probe bug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.hook.ok.Store(true)
			tt.hook.err.Store(nil)
			tt.hook.panic.Store(false)
			tt.set(tt.hook)
			got := rs.get(t, tt.path)
			if got.Code != tt.wantCode || !strings.Contains(got.Body, tt.wantBody) {
				t.Errorf("GET %s = %d %q, want %d with %q", tt.path, got.Code, got.Body, tt.wantCode, tt.wantBody)
			}
			// A failing probe does not stop the function from serving.
			if got := rs.get(t, "/"); got.Code != http.StatusOK {
				t.Errorf("request = %d, want 200", got.Code)
			}
			tt.hook.ok.Store(true)
			tt.hook.err.Store(nil)
			tt.hook.panic.Store(false)
		})
	}
}

func TestStopHookFailureDoesNotFailRun(t *testing.T) {
	for _, name := range []string{"error", "panic"} {
		t.Run(name, func(t *testing.T) {
			var stopped atomic.Bool
			f := runtime.HTTP(okHandler).WithHooks(runtime.Hooks{
				Stop: func(context.Context) error {
					stopped.Store(true)
					if name == "panic" {
						panic("stop bug")
					}
					return errors.New("flush failed")
				},
			})
			rs := start(t, f, testConfig(t), true)
			rs.cancel()
			if err := rs.wait(t); err != nil {
				t.Errorf("Run = %v, want nil: a failing Stop is logged", err)
			}
			if !stopped.Load() {
				t.Error("Stop was not called")
			}
		})
	}
}
