package runtime

import (
	"bufio"
	"io"
	goruntime "runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the request duration histogram.
var latencyBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// metrics are the runtime's counters, updated with atomics on the request path and written in
// the Prometheus text format on /_fn/metrics.
type metrics struct {
	codes     [600]atomic.Uint64
	buckets   [len(latencyBuckets)]atomic.Uint64 // per bucket, not cumulative; +Inf is count
	count     atomic.Uint64
	sumNanos  atomic.Uint64
	coldStart atomic.Int64 // nanoseconds from process start to ready
}

func (m *metrics) observe(code int, d time.Duration) {
	if code < 0 || code >= len(m.codes) {
		code = 0
	}
	m.codes[code].Add(1)
	secs := d.Seconds()
	for i, le := range latencyBuckets {
		if secs <= le {
			m.buckets[i].Add(1)
			break
		}
	}
	m.count.Add(1)
	m.sumNanos.Add(uint64(d))
}

func (m *metrics) write(w io.Writer, s *Server) {
	b := bufio.NewWriter(w)
	defer b.Flush()
	line := func(name, labels string, v float64) {
		b.WriteString(name)
		if labels != "" {
			b.WriteString("{" + labels + "}")
		}
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		b.WriteByte('\n')
	}
	head := func(name, typ, help string) {
		b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
	}

	head("fn_requests_total", "counter", "Requests served by the function, by HTTP status code.")
	for code := range m.codes {
		if n := m.codes[code].Load(); n > 0 {
			line("fn_requests_total", `code="`+strconv.Itoa(code)+`"`, float64(n))
		}
	}
	head("fn_request_duration_seconds", "histogram", "Time to serve a request, from arrival to the end of the handler.")
	var cum uint64
	for i, le := range latencyBuckets {
		cum += m.buckets[i].Load()
		line("fn_request_duration_seconds_bucket", `le="`+strconv.FormatFloat(le, 'g', -1, 64)+`"`, float64(cum))
	}
	count := m.count.Load()
	line("fn_request_duration_seconds_bucket", `le="+Inf"`, float64(count))
	line("fn_request_duration_seconds_sum", "", time.Duration(m.sumNanos.Load()).Seconds())
	line("fn_request_duration_seconds_count", "", float64(count))
	head("fn_requests_in_flight", "gauge", "Requests being served now.")
	line("fn_requests_in_flight", "", float64(s.inflight.Load()))
	head("fn_concurrency_limit", "gauge", "Maximum in-flight requests (FN_CONCURRENCY), 0 for unlimited.")
	line("fn_concurrency_limit", "", float64(s.cfg.Concurrency))
	head("fn_ready", "gauge", "1 when the function has started and is not shutting down.")
	ready := 0.0
	if s.started.Load() && !s.draining.Load() {
		ready = 1
	}
	line("fn_ready", "", ready)
	head("fn_cold_start_seconds", "gauge", "Time from process start until the function was ready to serve.")
	line("fn_cold_start_seconds", "", time.Duration(m.coldStart.Load()).Seconds())
	head("fn_function_info", "gauge", "The function's kind.")
	line("fn_function_info", `kind="`+s.fn.kind+`"`, 1)
	head("go_goroutines", "gauge", "Number of goroutines that currently exist.")
	line("go_goroutines", "", float64(goruntime.NumGoroutine()))
}
