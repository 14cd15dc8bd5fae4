package bench

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:1/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   712.05us  1.02ms  20.66ms   91.43%
    Req/Sec    38.12k     2.06k   42.38k    72.00%
  Latency Distribution
     50%  469.00us
     75%  682.00us
     90%    1.25ms
     99%    5.31ms
  379366 requests in 5.00s, 46.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  75840.25
Transfer/sec:      9.26MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{RPS: 75840.25, Requests: 379366, P50: 469 * time.Microsecond, P99: 5310 * time.Microsecond, Errors: 7}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("garbage"); err == nil {
		t.Error("parseWrk of garbage succeeded")
	}
}

func TestMedian(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("Median(3,1,2) = %v", m)
	}
	if m := Median([]time.Duration{4, 1, 3, 2}); m != 3 {
		t.Errorf("Median of four = %v, want the upper middle 3", m)
	}
	if m := Median([]int(nil)); m != 0 {
		t.Errorf("Median of none = %v", m)
	}
	if s := Durations([]time.Duration{1499 * time.Microsecond, 2 * time.Second}); s != "1ms 2s" {
		t.Errorf("Durations = %q", s)
	}
}
