package cli

import (
	"math"
	"strings"
	"testing"
	"time"
)

const gwMetrics1 = `# TYPE fn_gateway_requests_total counter
fn_gateway_requests_total{namespace="shop",function="orders",code="200"} 100
fn_gateway_requests_total{namespace="shop",function="orders",code="503"} 0
fn_gateway_requests_total{namespace="default",function="hello",code="200"} 7
# TYPE fn_gateway_request_duration_seconds histogram
fn_gateway_request_duration_seconds_bucket{namespace="shop",function="orders",le="0.01"} 50
fn_gateway_request_duration_seconds_bucket{namespace="shop",function="orders",le="0.1"} 100
fn_gateway_request_duration_seconds_bucket{namespace="shop",function="orders",le="+Inf"} 100
fn_gateway_request_duration_seconds_sum{namespace="shop",function="orders"} 3
fn_gateway_request_duration_seconds_count{namespace="shop",function="orders"} 100
# TYPE fn_gateway_cold_start_seconds histogram
fn_gateway_cold_start_seconds_bucket{namespace="shop",function="orders",le="+Inf"} 1
fn_gateway_cold_start_seconds_sum{namespace="shop",function="orders"} 0.2
fn_gateway_cold_start_seconds_count{namespace="shop",function="orders"} 1
# TYPE fn_gateway_requests_in_flight gauge
fn_gateway_requests_in_flight{namespace="shop",function="orders"} 3
# TYPE fn_gateway_ready_endpoints gauge
fn_gateway_ready_endpoints{namespace="shop",function="orders"} 2
# TYPE fn_gateway_desired_replicas gauge
fn_gateway_desired_replicas{namespace="shop",function="orders"} 3
# TYPE fn_gateway_unrouted_requests_total counter
fn_gateway_unrouted_requests_total 4
`

// Ten seconds later: 200 more requests, 20 of them 503, slower; one more cold start.
const gwMetrics2 = `# TYPE fn_gateway_requests_total counter
fn_gateway_requests_total{namespace="shop",function="orders",code="200"} 280
fn_gateway_requests_total{namespace="shop",function="orders",code="503"} 20
fn_gateway_requests_total{namespace="default",function="hello",code="200"} 7
# TYPE fn_gateway_request_duration_seconds histogram
fn_gateway_request_duration_seconds_bucket{namespace="shop",function="orders",le="0.01"} 50
fn_gateway_request_duration_seconds_bucket{namespace="shop",function="orders",le="0.1"} 200
fn_gateway_request_duration_seconds_bucket{namespace="shop",function="orders",le="+Inf"} 300
fn_gateway_request_duration_seconds_sum{namespace="shop",function="orders"} 40
fn_gateway_request_duration_seconds_count{namespace="shop",function="orders"} 300
# TYPE fn_gateway_cold_start_seconds histogram
fn_gateway_cold_start_seconds_bucket{namespace="shop",function="orders",le="+Inf"} 2
fn_gateway_cold_start_seconds_sum{namespace="shop",function="orders"} 0.4
fn_gateway_cold_start_seconds_count{namespace="shop",function="orders"} 2
# TYPE fn_gateway_requests_in_flight gauge
fn_gateway_requests_in_flight{namespace="shop",function="orders"} 5
# TYPE fn_gateway_ready_endpoints gauge
fn_gateway_ready_endpoints{namespace="shop",function="orders"} 3
# TYPE fn_gateway_desired_replicas gauge
fn_gateway_desired_replicas{namespace="shop",function="orders"} 3
`

func TestTopRows(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a := &topSnapshot{at: t0, fns: map[topKey]*topStats{}}
	b := &topSnapshot{at: t0.Add(10 * time.Second), fns: map[topKey]*topStats{}}
	if err := a.add(strings.NewReader(gwMetrics1)); err != nil {
		t.Fatal(err)
	}
	// Two gateway replicas: counters and in-flight add up, replicas do not.
	if err := b.add(strings.NewReader(gwMetrics2)); err != nil {
		t.Fatal(err)
	}
	if err := b.add(strings.NewReader(gwMetrics2)); err != nil {
		t.Fatal(err)
	}
	if err := a.add(strings.NewReader(gwMetrics1)); err != nil {
		t.Fatal(err)
	}
	rows := topRows(a, b, "shop", "")
	if len(rows) != 1 {
		t.Fatalf("rows %+v, want orders only", rows)
	}
	r := rows[0]
	want := topRow{Namespace: "shop", Name: "orders", WindowSeconds: 10, Requests: 400, RPS: 40, ErrorRate: 0.1,
		InFlight: 10, Ready: 3, Desired: 3, ColdStarts: 2}
	// In the window: 0 under 10 ms, 200 from 10 to 100 ms, 200 over 100 ms (of 400, twice).
	wantP50, wantP99 := 100.0, 100.0
	if math.Abs(r.P50Ms-wantP50) > 0.01 || math.Abs(r.P99Ms-wantP99) > 0.01 {
		t.Errorf("p50 %.2f p99 %.2f, want %.0f and %.0f (the last finite bound)", r.P50Ms, r.P99Ms, wantP50, wantP99)
	}
	r.P50Ms, r.P99Ms = 0, 0
	if r != want {
		t.Errorf("row\n got %+v\nwant %+v", r, want)
	}
	if all := topRows(a, b, "", ""); len(all) != 2 || all[0].Name != "hello" || all[0].Requests != 0 {
		t.Errorf("all namespaces: %+v", all)
	}
}

func TestQuantile(t *testing.T) {
	h := map[float64]float64{0.01: 10, 0.1: 90, 1: 100, math.Inf(1): 100}
	for _, c := range []struct{ q, want float64 }{
		{0.05, 0.005},          // within the first bucket, from 0
		{0.5, 0.01 + 0.09*0.5}, // 50th of 100: 40 into the 80 of the second bucket
		{0.95, 0.1 + 0.9*0.5},  // 95th: 5 into the last 10
		{1, 1},
	} {
		if got := quantile(c.q, h); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%g) = %g, want %g", c.q, got, c.want)
		}
	}
	if got := quantile(0.5, map[float64]float64{0.1: 0, math.Inf(1): 0}); got != 0 {
		t.Errorf("no requests: %g", got)
	}
}

func TestPrintTop(t *testing.T) {
	var b strings.Builder
	rows := []topRow{{Namespace: "shop", Name: "orders", WindowSeconds: 10, Requests: 400, RPS: 40, ErrorRate: 0.1, P50Ms: 12.5, P99Ms: 100,
		InFlight: 10, Ready: 3, Desired: 3, ColdStarts: 2}, {Namespace: "shop", Name: "idle", WindowSeconds: 10}}
	if err := printTop(&b, rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAMESPACE") ||
		strings.Join(strings.Fields(lines[1]), " ") != "shop orders 40.0 10.0% 12.5ms 100.0ms 10 0 3/3 2 10s" ||
		strings.Join(strings.Fields(lines[2]), " ") != "shop idle 0.0 0.0% - - 0 0 0/0 0 10s" {
		t.Errorf("fn top table:\n%s", b.String())
	}
}
