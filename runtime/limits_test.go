package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"fnkit.dev/fn/runtime"
)

// gate lets a test hold handlers until it releases them; every handler waiting on it is also
// released when the test ends, so that no goroutine outlives the test.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(t testing.TB) *gate {
	g := &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// wait marks a handler as entered and blocks until the gate opens (or waitTimeout passes).
func (g *gate) wait() {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-time.After(waitTimeout):
	}
}

// awaitEntered waits until n handlers have entered.
func (g *gate) awaitEntered(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for i := 0; i < n; i++ {
		select {
		case <-g.entered:
		case <-timeout:
			t.Fatalf("only %d of %d handlers were called within %v", i, n, waitTimeout)
		}
	}
}

func TestTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	tests := []struct {
		name    string
		handler func(*gate) runtime.HTTPFunc
	}{
		{"returns ctx.Err() at its deadline", func(*gate) runtime.HTTPFunc {
			return func(ctx context.Context, _ http.ResponseWriter, _ *http.Request) error {
				<-ctx.Done()
				return ctx.Err()
			}
		}},
		{"returns nil at its deadline without answering", func(*gate) runtime.HTTPFunc {
			return func(ctx context.Context, _ http.ResponseWriter, _ *http.Request) error {
				<-ctx.Done()
				return nil
			}
		}},
		{"ignores its context", func(g *gate) runtime.HTTPFunc {
			return func(context.Context, http.ResponseWriter, *http.Request) error {
				g.wait()
				return nil
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = timeout
			g := newGate(t)
			rs := start(t, runtime.HTTP(tt.handler(g)), cfg, true)
			defer g.open() // before the server drains
			// The handler and the deadline race at the deadline: ask a few times.
			for i := 0; i < 5; i++ {
				got := rs.get(t, "/")
				if got.Code != http.StatusGatewayTimeout {
					t.Fatalf("request %d = %d %q, want 504", i, got.Code, got.Body)
				}
				if !strings.Contains(got.Body, "timeout") || !strings.Contains(got.Body, "FN_TIMEOUT") {
					t.Errorf("504 body %q does not mention the timeout (FN_TIMEOUT)", got.Body)
				}
			}
		})
	}
}

func TestTimeoutTyped(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 100 * time.Millisecond
	f := runtime.Typed(func(ctx context.Context, in string) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})
	rs := start(t, f, cfg, true)
	for i := 0; i < 5; i++ {
		if got := rs.post(t, "/", "application/json", `"x"`); got.Code != http.StatusGatewayTimeout {
			t.Fatalf("request %d = %d %q, want 504", i, got.Code, got.Body)
		}
	}
}

func TestTimeoutLateWritesFail(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 100 * time.Millisecond
	lateErr := make(chan error, 1)
	f := runtime.HTTP(func(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // well past the deadline
		w.Header().Set("X-Late", "1")
		_, err := io.WriteString(w, "too late")
		lateErr <- err
		return nil
	})
	rs := start(t, f, cfg, true)
	got := rs.get(t, "/")
	if got.Code != http.StatusGatewayTimeout || got.Header.Get("X-Late") != "" || strings.Contains(got.Body, "too late") {
		t.Fatalf("GET / = %d %v %q, want a 504 with nothing of the late handler", got.Code, got.Header, got.Body)
	}
	select {
	case err := <-lateErr:
		if !errors.Is(err, http.ErrHandlerTimeout) {
			t.Errorf("a write after the deadline returned %v, want http.ErrHandlerTimeout", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the handler did not return")
	}
}

// A handler that wrote part of its response and is still running at its deadline cannot be
// answered 504: the connection is aborted so that the client does not take the truncated answer
// for a whole one.
func TestTimeoutAfterPartialResponse(t *testing.T) {
	for _, flush := range []bool{false, true} {
		name := "buffered"
		if flush {
			name = "flushed"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = 100 * time.Millisecond
			f := runtime.HTTP(func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/quick" {
					_, err := io.WriteString(w, "quick")
					return err
				}
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, "the first half, ")
				if flush {
					w.(http.Flusher).Flush()
				}
				<-ctx.Done()
				time.Sleep(200 * time.Millisecond) // hangs on past its deadline
				_, _ = io.WriteString(w, "the second half")
				return nil
			})
			rs := start(t, f, cfg, true)
			res, err := rs.client.Get(rs.url + "/hang")
			if err == nil {
				var b []byte
				b, err = io.ReadAll(res.Body)
				res.Body.Close()
				if err == nil {
					t.Fatalf("GET /hang = %d %q read cleanly, want the connection aborted", res.StatusCode, b)
				}
			}
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("GET /hang: the client timed out (%v), want the connection aborted", err)
			}
			if got := rs.get(t, "/quick"); got.Code != http.StatusOK || got.Body != "quick" {
				t.Errorf("GET /quick after an aborted response = %d %q, want 200 \"quick\"", got.Code, got.Body)
			}
		})
	}
}

func TestTimeoutNotReached(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 5 * time.Second
	var deadline time.Time
	f := runtime.HTTP(func(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
		deadline, _ = ctx.Deadline()
		_, err := io.WriteString(w, "in time")
		return err
	})
	rs := start(t, f, cfg, true)
	before := time.Now()
	if got := rs.get(t, "/"); got.Code != http.StatusOK || got.Body != "in time" {
		t.Fatalf("GET / = %d %q, want 200 \"in time\"", got.Code, got.Body)
	}
	if deadline.IsZero() || deadline.Before(before) || deadline.After(before.Add(cfg.Timeout+time.Second)) {
		t.Errorf("the handler's context deadline is %v, want about %v after %v", deadline, cfg.Timeout, before)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.Concurrency = 1
	g := newGate(t)
	f := runtime.HTTP(func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/block" {
			g.wait()
		}
		_, err := io.WriteString(w, "done "+r.URL.Path)
		return err
	})
	rs := start(t, f, cfg, true)

	first := make(chan response, 1)
	go func() {
		res, err := rs.client.Get(rs.url + "/block")
		if err != nil {
			first <- response{Body: err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		first <- response{Code: res.StatusCode, Header: res.Header, Body: string(b)}
	}()
	g.awaitEntered(t, 1)

	second := rs.get(t, "/other")
	if second.Code != http.StatusServiceUnavailable {
		t.Fatalf("second request = %d %q, want 503", second.Code, second.Body)
	}
	if second.Header.Get("Retry-After") == "" {
		t.Errorf("the 503 has no Retry-After header: %v", second.Header)
	}
	if !strings.Contains(second.Body, "concurrency") {
		t.Errorf("503 body %q does not mention the concurrency limit", second.Body)
	}

	g.open()
	select {
	case got := <-first:
		if got.Code != http.StatusOK || got.Body != "done /block" {
			t.Errorf("first request = %d %q, want 200 \"done /block\"", got.Code, got.Body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the first request did not finish")
	}
	// The slot is free again.
	if got := rs.get(t, "/other"); got.Code != http.StatusOK {
		t.Errorf("request after the first finished = %d %q, want 200", got.Code, got.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	httpEcho := runtime.HTTP(func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	typed := runtime.Typed(func(_ context.Context, in map[string]string) (int, error) { return len(in), nil })
	events := runtime.CloudEvents(func(context.Context, event.Event) (*event.Event, error) { return nil, nil })

	e := event.New()
	e.SetID("1")
	e.SetType("t")
	e.SetSource("s")
	structured, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	binaryHeaders := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Type": {"t"}, "Ce-Source": {"s"},
		"Content-Type": {"text/plain"},
	}

	tests := []struct {
		name    string
		f       runtime.Function
		header  http.Header
		body    string // exactly at the limit; one more byte (a space) is over it
		okCode  int
		maxBody int64
	}{
		{"http", httpEcho, nil, "0123456789abcdef", http.StatusOK, 16},
		{"typed", typed, http.Header{"Content-Type": {"application/json"}}, `{"k":"01234567"}`, http.StatusOK, 16},
		{"cloudevents binary", events, binaryHeaders, "0123456789abcdef", http.StatusAccepted, 16},
		{"cloudevents structured", events, http.Header{"Content-Type": {"application/cloudevents+json"}}, string(structured), http.StatusAccepted, int64(len(structured))},
	}
	for _, tt := range tests {
		if int64(len(tt.body)) != tt.maxBody {
			t.Fatalf("%s: test body is %d bytes, want %d", tt.name, len(tt.body), tt.maxBody)
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each server's drain waits out net/http's lingering close after a 413
			cfg := testConfig(t)
			cfg.MaxBody = tt.maxBody
			rs := start(t, tt.f, cfg, true)
			send := func(body string, withLength bool) response {
				var r io.Reader = strings.NewReader(body)
				if !withLength {
					r = chunked(body)
				}
				req := newRequest(t, http.MethodPost, rs.url+"/", r)
				for k, v := range tt.header {
					req.Header[k] = v
				}
				if withLength != (req.ContentLength > 0) {
					t.Fatalf("request ContentLength = %d, want it known: %v", req.ContentLength, withLength)
				}
				return do(t, rs.client, req)
			}
			for _, withLength := range []bool{true, false} {
				if got := send(tt.body, withLength); got.Code != tt.okCode {
					t.Errorf("body at the limit (Content-Length sent: %v) = %d %q, want %d", withLength, got.Code, got.Body, tt.okCode)
				}
				if got := send(tt.body+" ", withLength); got.Code != http.StatusRequestEntityTooLarge {
					t.Errorf("body one byte over the limit (Content-Length sent: %v) = %d %q, want 413", withLength, got.Code, got.Body)
				}
			}
		})
	}
}

// At FN_TIMEOUT a handler waiting on its context sees it end with DeadlineExceeded, and
// context.Cause agrees; the client has its 504.
func TestTimeoutContextErr(t *testing.T) {
	cfg := testConfig(t)
	cfg.Timeout = 50 * time.Millisecond
	got := make(chan error, 2)
	f := runtime.HTTP(func(ctx context.Context, _ http.ResponseWriter, _ *http.Request) error {
		<-ctx.Done()
		got <- ctx.Err()
		got <- context.Cause(ctx)
		return ctx.Err()
	})
	rs := start(t, f, cfg, true)
	if r := rs.get(t, "/"); r.Code != http.StatusGatewayTimeout {
		t.Fatalf("status %d %q, want 504", r.Code, r.Body)
	}
	for range 2 {
		if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the handler saw %v, want context.DeadlineExceeded", err)
		}
	}
}
