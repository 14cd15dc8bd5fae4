package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fnkit.dev/fn/runtime"
)

// modes runs a test with and without a request deadline: the runtime serves a function through
// two different paths (a guarded writer in a goroutine of its own when FN_TIMEOUT is set).
var modes = []struct {
	name    string
	timeout time.Duration
}{
	{"no timeout", 0},
	{"with timeout", 30 * time.Second},
}

func TestHTTPHandler(t *testing.T) {
	tests := []struct {
		name    string
		handler runtime.HTTPFunc
		want    response
	}{
		{
			name: "writes its own response",
			handler: func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("X-Fn", "yes")
				w.WriteHeader(http.StatusCreated)
				_, err := fmt.Fprintf(w, "%s %s", r.Method, r.URL.RequestURI())
				return err
			},
			want: response{Code: 201, Header: http.Header{"X-Fn": {"yes"}}, Body: "POST /things?id=7"},
		},
		{
			name: "echoes the request body",
			handler: func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					return err
				}
				w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
				_, err = w.Write(b)
				return err
			},
			want: response{Code: 200, Header: http.Header{"Content-Type": {"text/x-test"}}, Body: "hello body"},
		},
		{
			name:    "writes nothing: 200 with an empty body",
			handler: func(context.Context, http.ResponseWriter, *http.Request) error { return nil },
			want:    response{Code: 200, Body: ""},
		},
		{
			name: "error before writing: 500 with the error text",
			handler: func(context.Context, http.ResponseWriter, *http.Request) error {
				return errors.New("database is down")
			},
			want: response{Code: 500, Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: "database is down\n"},
		},
		{
			name: "error with StatusCode 418",
			handler: func(context.Context, http.ResponseWriter, *http.Request) error {
				return statusErr{http.StatusTeapot, "I'm a teapot"}
			},
			want: response{Code: 418, Body: "I'm a teapot\n"},
		},
		{
			name: "wrapped error with StatusCode",
			handler: func(context.Context, http.ResponseWriter, *http.Request) error {
				return fmt.Errorf("looking up the user: %w", statusErr{http.StatusNotFound, "no such user"})
			},
			want: response{Code: 404, Body: "looking up the user: no such user\n"},
		},
		{
			name: "error with an out-of-range StatusCode: 500",
			handler: func(context.Context, http.ResponseWriter, *http.Request) error {
				return statusErr{http.StatusOK, "not really an error code"}
			},
			want: response{Code: 500, Body: "not really an error code\n"},
		},
		{
			name: "error after writing: the written status stands",
			handler: func(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
				w.WriteHeader(http.StatusAccepted)
				_, _ = io.WriteString(w, "accepted")
				return errors.New("failed after answering")
			},
			want: response{Code: 202, Body: "accepted"},
		},
		{
			name: "error after writing a body: the implicit 200 stands",
			handler: func(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
				_, _ = io.WriteString(w, "partial")
				return statusErr{http.StatusTeapot, "too late for a status"}
			},
			want: response{Code: 200, Body: "partial"},
		},
		{
			name: "informational response before the real one",
			handler: func(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Link", "</style.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusOK)
				_, err := io.WriteString(w, "after hints")
				return err
			},
			want: response{Code: 200, Header: http.Header{"Link": {"</style.css>; rel=preload"}}, Body: "after hints"},
		},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cfg := testConfig(t)
					cfg.Timeout = mode.timeout
					rs := start(t, runtime.HTTP(tt.handler), cfg, true)
					req := newRequest(t, http.MethodPost, rs.url+"/things?id=7", strings.NewReader("hello body"))
					req.Header.Set("Content-Type", "text/x-test")
					got := do(t, rs.client, req)
					// Compare only the headers the test names.
					hdr := http.Header{}
					for k := range tt.want.Header {
						if v, ok := got.Header[k]; ok {
							hdr[k] = v
						}
					}
					got.Header = hdr
					if tt.want.Header == nil {
						tt.want.Header = http.Header{}
					}
					if diff := diff(tt.want, got); diff != "" {
						t.Errorf("response mismatch (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = mode.timeout
			f := runtime.HTTP(func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/panic" {
					panic("handler bug")
				}
				_, err := io.WriteString(w, "fine")
				return err
			})
			rs := start(t, f, cfg, true)

			got := rs.get(t, "/panic")
			if got.Code != http.StatusInternalServerError {
				t.Fatalf("GET /panic = %d %q, want 500", got.Code, got.Body)
			}
			if strings.Contains(got.Body, "handler bug") {
				t.Errorf("500 body %q leaks the panic value to the client", got.Body)
			}
			// The process lives on: the same server answers the next requests.
			for i := 0; i < 3; i++ {
				if got := rs.get(t, "/ok"); got.Code != http.StatusOK || got.Body != "fine" {
					t.Fatalf("GET /ok after a panic = %d %q, want 200 \"fine\"", got.Code, got.Body)
				}
			}
			// And a second panic is recovered like the first.
			if got := rs.get(t, "/panic"); got.Code != http.StatusInternalServerError {
				t.Fatalf("second GET /panic = %d, want 500", got.Code)
			}
		})
	}
}

func TestPanicAfterWritingAbortsTheResponse(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = mode.timeout
			f := runtime.HTTP(func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
				if r.URL.Path == "/ok" {
					_, err := io.WriteString(w, "fine")
					return err
				}
				_, _ = io.WriteString(w, "the first half")
				w.(http.Flusher).Flush()
				panic("bug in the second half")
			})
			rs := start(t, f, cfg, true)
			res, err := rs.client.Get(rs.url + "/half")
			if err == nil {
				b, rerr := io.ReadAll(res.Body)
				res.Body.Close()
				if rerr == nil {
					t.Fatalf("GET /half = %d %q read cleanly, want the connection aborted", res.StatusCode, b)
				}
			}
			if got := rs.get(t, "/ok"); got.Code != http.StatusOK {
				t.Fatalf("GET /ok after an aborted response = %d, want 200", got.Code)
			}
		})
	}
}

// Before Run has called the Start hook, a Server served by any http.Server answers the function's
// requests 503 with Retry-After, and its own endpoints as usual.
func TestServerBeforeRun(t *testing.T) {
	called := false
	f := runtime.HTTP(func(context.Context, http.ResponseWriter, *http.Request) error {
		called = true
		return nil
	})
	ts := httptest.NewServer(runtime.New(f, testConfig(t), runtime.WithLogger(quietLogger())))
	defer ts.Close()
	c := newClient(t)

	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string // a part of the body
	}{
		{http.MethodGet, "/", http.StatusServiceUnavailable, "starting"},
		{http.MethodPost, "/anything", http.StatusServiceUnavailable, "starting"},
		{http.MethodGet, "/_fn/live", http.StatusOK, "ok"},
		{http.MethodHead, "/_fn/live", http.StatusOK, ""},
		{http.MethodGet, "/_fn/ready", http.StatusServiceUnavailable, "starting"},
		{http.MethodGet, "/_fn/metrics", http.StatusOK, "fn_ready 0"},
		{http.MethodGet, "/_fn/nothing", http.StatusNotFound, "/_fn/nothing"},
		{http.MethodPost, "/_fn/metrics", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		got := do(t, c, newRequest(t, tt.method, ts.URL+tt.path, nil))
		if got.Code != tt.wantCode || !strings.Contains(got.Body, tt.wantBody) {
			t.Errorf("%s %s = %d %q, want %d with %q", tt.method, tt.path, got.Code, got.Body, tt.wantCode, tt.wantBody)
		}
		if tt.wantCode == http.StatusServiceUnavailable && !strings.HasPrefix(tt.path, "/_fn/") && got.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", tt.method, tt.path)
		}
	}
	if called {
		t.Error("the function was called before Run started it")
	}
}

func TestFunctionKind(t *testing.T) {
	tests := []struct {
		f    runtime.Function
		want string
	}{
		{runtime.HTTP(func(context.Context, http.ResponseWriter, *http.Request) error { return nil }), "http"},
		{runtime.Typed(func(context.Context, int) (int, error) { return 0, nil }), "typed"},
		{runtime.TypedNoContext(func(int) (int, error) { return 0, nil }), "typed"},
		{runtime.CloudEvents(nil), "cloudevents"},
	}
	for _, tt := range tests {
		if got := tt.f.Kind(); got != tt.want {
			t.Errorf("Kind() = %q, want %q", got, tt.want)
		}
		// WithHooks keeps the kind.
		if got := tt.f.WithHooks(runtime.Hooks{}).Kind(); got != tt.want {
			t.Errorf("WithHooks(...).Kind() = %q, want %q", got, tt.want)
		}
	}
}
