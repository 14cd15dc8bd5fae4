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
	want := Result{RPS: 75840.25, P50: 469 * time.Microsecond, P99: 5310 * time.Microsecond, Errors: 7}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("garbage"); err == nil {
		t.Error("parseWrk of garbage succeeded")
	}
}
