package runtime_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"fnkit.dev/fn/runtime"
)

func TestMetrics(t *testing.T) {
	f := runtime.HTTP(func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		switch r.URL.Path {
		case "/fail":
			return errors.New("failed")
		case "/missing":
			return statusErr{http.StatusNotFound, "no such thing"}
		}
		return okHandler(ctx, w, r)
	})
	cfg := testConfig(t)
	cfg.Concurrency = 7
	rs := start(t, f, cfg, true)

	const ok = 5
	for i := 0; i < ok; i++ {
		if got := rs.get(t, "/"); got.Code != 200 {
			t.Fatalf("GET / = %d", got.Code)
		}
	}
	if got := rs.get(t, "/fail"); got.Code != 500 {
		t.Fatalf("GET /fail = %d", got.Code)
	}
	if got := rs.get(t, "/missing"); got.Code != 404 {
		t.Fatalf("GET /missing = %d", got.Code)
	}
	// The runtime's own endpoints are not counted.
	rs.get(t, "/_fn/live")
	rs.get(t, "/_fn/ready")

	res := rs.get(t, "/_fn/metrics")
	if res.Code != http.StatusOK {
		t.Fatalf("GET /_fn/metrics = %d", res.Code)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	samples := parseMetrics(t, res.Body)

	byCode := map[string]float64{}
	for _, s := range samples {
		if s.name == "fn_requests_total" {
			byCode[s.labels["code"]] = s.value
		}
	}
	if diff := diff(map[string]float64{"200": ok, "500": 1, "404": 1}, byCode); diff != "" {
		t.Errorf("fn_requests_total by code mismatch (-want +got):\n%s", diff)
	}
	const total = ok + 2

	count, _ := metricValue(samples, "fn_request_duration_seconds_count", nil)
	inf, _ := metricValue(samples, "fn_request_duration_seconds_bucket", map[string]string{"le": "+Inf"})
	sum, _ := metricValue(samples, "fn_request_duration_seconds_sum", nil)
	if count != total || inf != total {
		t.Errorf("histogram _count = %v and +Inf bucket = %v, want both %d (the requests served)", count, inf, total)
	}
	if sum <= 0 {
		t.Errorf("histogram _sum = %v, want > 0", sum)
	}
	// Buckets are cumulative: their bounds and counts both increase.
	prevLE, prevN, buckets := -1.0, 0.0, 0
	for _, s := range samples {
		if s.name != "fn_request_duration_seconds_bucket" {
			continue
		}
		buckets++
		le := s.labels["le"]
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = 1e308, nil
		}
		if err != nil || bound <= prevLE || s.value < prevN || s.value > total {
			t.Errorf("bucket le=%q count %v after le=%v count %v: not cumulative", le, s.value, prevLE, prevN)
		}
		prevLE, prevN = bound, s.value
	}
	if buckets < 2 {
		t.Errorf("%d histogram buckets, want several", buckets)
	}

	want := map[string]float64{
		"fn_requests_in_flight": 0,
		"fn_concurrency_limit":  7,
		"fn_ready":              1,
	}
	for name, v := range want {
		if got, found := metricValue(samples, name, nil); !found || got != v {
			t.Errorf("%s = %v (found: %v), want %v", name, got, found, v)
		}
	}
	if v, found := metricValue(samples, "fn_cold_start_seconds", nil); !found || v <= 0 {
		t.Errorf("fn_cold_start_seconds = %v (found: %v), want > 0 once ready", v, found)
	}
	if v, found := metricValue(samples, "fn_function_info", map[string]string{"kind": "http"}); !found || v != 1 {
		t.Errorf("fn_function_info{kind=\"http\"} = %v (found: %v), want 1", v, found)
	}
	if v, found := metricValue(samples, "go_goroutines", nil); !found || v < 1 {
		t.Errorf("go_goroutines = %v (found: %v), want >= 1", v, found)
	}
}

func TestMetricsCountRejections(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBody = 4
	rs := start(t, runtime.HTTP(okHandler), cfg, true)
	if got := rs.post(t, "/", "text/plain", "too long"); got.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST = %d, want 413", got.Code)
	}
	if got := rs.post(t, "/", "text/plain", "fit"); got.Code != http.StatusOK {
		t.Fatalf("POST = %d, want 200", got.Code)
	}
	samples := rs.metrics(t)
	for code, want := range map[string]float64{"413": 1, "200": 1} {
		if v, _ := metricValue(samples, "fn_requests_total", map[string]string{"code": code}); v != want {
			t.Errorf("fn_requests_total{code=%q} = %v, want %v", code, v, want)
		}
	}
}

func TestParseMetricsRejectsMalformedText(t *testing.T) {
	// The parser the metrics tests rely on must itself catch malformed text.
	for _, text := range []string{
		"fn_x 1\n", // no TYPE
		"# TYPE fn_x gauge\nfn_x one\n",
		"# TYPE fn_x gauge\nfn_x{a=\"1\" 1\n",
		"# TYPE fn_x gauge\nfn-x 1\n",
		"# TYPE fn_x gauge\n# TYPE fn_x gauge\nfn_x 1\n",
		"# TYPE fn_x gauge\n\nfn_x 1\n",
	} {
		ft := &fatalRecorder{}
		func() {
			defer func() { _ = recover() }()
			parseMetrics(ft, text)
		}()
		if !ft.failed {
			t.Errorf("parseMetrics accepted %q", text)
		}
	}
}

// fatalRecorder is a testing.TB whose Fatal records the failure and stops the caller by panicking.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
