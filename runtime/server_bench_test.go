package runtime

// Go benchmarks of the request path, for profiling (make bench compares against net/http).

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func benchServe(b *testing.B, cfg Config) {
	s := New(HTTP(func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err := io.WriteString(w, "Hello, world!\n")
		return err
	}), cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.started.Store(true)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
	}
}

func BenchmarkServeNoTimeout(b *testing.B) { benchServe(b, Config{MaxBody: DefaultMaxBody}) }
func BenchmarkServeTimeout(b *testing.B) {
	benchServe(b, Config{MaxBody: DefaultMaxBody, Timeout: 30 * time.Second, Concurrency: 1000})
}
