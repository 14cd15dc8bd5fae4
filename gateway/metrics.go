package gateway

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"fnkit.dev/fn/controller/autoscaler"
)

// bucketBounds are the upper bounds of the request duration histogram's buckets: those the
// gateway reports to the autoscaler in, for canaries' analysis.
var bucketBounds = autoscaler.DurationBounds

// stats are one function's request metrics, updated with atomics on the request path.
type stats struct {
	// inflight counts the requests in flight, held ones included; held only those waiting for
	// the function to get a ready endpoint; arrivals every request routed to the function.
	inflight, held atomic.Int64
	arrivals       atomic.Uint64
	// errors counts 5xx answers, the gateway's own included: a canary's analysis reads them.
	errors atomic.Uint64
	// accepted counts asynchronous calls accepted; duplicates the repeats of an
	// Idempotency-Key among them, which accepted nothing new.
	accepted, duplicates atomic.Uint64

	// codes is copied on write: requests find their code's counter without a lock.
	codes atomic.Pointer[[]codeCount]
	mu    sync.Mutex // serializes writers of codes

	duration histogram
	// cold is the time from arrival to the first byte of the answer of requests that were held
	// while the function started.
	cold histogram

	// limiter is the function's rate limit's bucket at this gateway.
	limiter bucket
}

// histogram is a Prometheus histogram over bucketBounds.
type histogram struct {
	buckets [18]atomic.Uint64 // per bucket, not cumulative; the last one is +Inf
	sum     atomic.Int64      // nanoseconds
	count   atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(bucketBounds) && d > bucketBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
	h.count.Add(1)
}

// appendHistogram appends the series of h for function k.
func appendHistogram(b []byte, name string, k key, h *histogram) []byte {
	count := h.count.Load() // read first: buckets then sum at least this much
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		b = appendLabels(append(append(b, name...), "_bucket"...), k)
		b = append(b, `,le="`...)
		if i < len(bucketBounds) {
			b = strconv.AppendFloat(b, bucketBounds[i].Seconds(), 'g', -1, 64)
		} else {
			b = append(b, "+Inf"...)
			cum = max(cum, count)
			count = cum
		}
		b = append(b, "\"} "...)
		b = strconv.AppendUint(b, cum, 10)
		b = append(b, '\n')
	}
	b = appendLabels(append(append(b, name...), "_sum"...), k)
	b = append(b, "} "...)
	b = strconv.AppendFloat(b, time.Duration(h.sum.Load()).Seconds(), 'g', -1, 64)
	b = appendLabels(append(append(b, '\n'), name+"_count"...), k)
	b = append(b, "} "...)
	b = strconv.AppendUint(b, count, 10)
	return append(b, '\n')
}

// appendGauge appends one gauge's series for function k.
func appendGauge(b []byte, name string, k key, v int64) []byte {
	b = appendLabels(append(b, name...), k)
	b = append(b, "} "...)
	b = strconv.AppendInt(b, v, 10)
	return append(b, '\n')
}

type codeCount struct {
	code int
	n    *atomic.Uint64
}

func init() {
	if len(bucketBounds)+1 != len(histogram{}.buckets) {
		panic("gateway: histogram buckets and bounds disagree")
	}
}

// observe records a finished request.
func (s *stats) observe(code int, d time.Duration) {
	s.counter(code).Add(1)
	if code >= 500 {
		s.errors.Add(1)
	}
	s.duration.observe(d)
}

func (s *stats) counter(code int) *atomic.Uint64 {
	if p := s.codes.Load(); p != nil {
		for _, c := range *p {
			if c.code == code {
				return c.n
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []codeCount
	if p := s.codes.Load(); p != nil {
		cur = *p
	}
	for _, c := range cur {
		if c.code == code {
			return c.n
		}
	}
	next := append(slices.Clone(cur), codeCount{code, new(atomic.Uint64)})
	slices.SortFunc(next, func(a, b codeCount) int { return cmp.Compare(a.code, b.code) })
	s.codes.Store(&next)
	for _, c := range next {
		if c.code == code {
			return c.n
		}
	}
	panic("unreachable")
}

// serveMetrics writes the gateway's metrics in the Prometheus text format.
func (g *Gateway) serveMetrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(g.metrics())
}

func (g *Gateway) metrics() []byte {
	t := g.table.Load()
	rts := make([]*route, 0, len(t.routes))
	for _, rt := range t.all() {
		rts = append(rts, rt)
	}
	slices.SortFunc(rts, func(a, b *route) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name))
	})
	var b []byte
	b = append(b, "# HELP fn_gateway_requests_total Requests to functions through the gateway, by status code.\n"+
		"# TYPE fn_gateway_requests_total counter\n"...)
	for _, rt := range rts {
		p := rt.stats.codes.Load()
		if p == nil {
			continue
		}
		for _, c := range *p {
			b = appendLabels(append(b, "fn_gateway_requests_total"...), rt.key)
			b = append(b, `,code="`...)
			b = strconv.AppendInt(b, int64(c.code), 10)
			b = append(b, "\"} "...)
			b = strconv.AppendUint(b, c.n.Load(), 10)
			b = append(b, '\n')
		}
	}
	b = append(b, "# HELP fn_gateway_request_duration_seconds Duration of requests to functions through the gateway.\n"+
		"# TYPE fn_gateway_request_duration_seconds histogram\n"...)
	for _, rt := range rts {
		b = appendHistogram(b, "fn_gateway_request_duration_seconds", rt.key, &rt.stats.duration)
	}
	b = append(b, "# HELP fn_gateway_cold_start_seconds Time from arrival to the first byte of the answer of requests held while their function started.\n"+
		"# TYPE fn_gateway_cold_start_seconds histogram\n"...)
	for _, rt := range rts {
		if rt.stats.cold.count.Load() > 0 {
			b = appendHistogram(b, "fn_gateway_cold_start_seconds", rt.key, &rt.stats.cold)
		}
	}
	b = append(b, "# HELP fn_gateway_requests_held Requests held while their function has no ready endpoint.\n"+
		"# TYPE fn_gateway_requests_held gauge\n"...)
	for _, rt := range rts {
		b = appendGauge(b, "fn_gateway_requests_held", rt.key, rt.stats.held.Load())
	}
	b = append(b, "# HELP fn_gateway_desired_replicas Replicas the function's autoscaler wants, from its status.\n"+
		"# TYPE fn_gateway_desired_replicas gauge\n"...)
	for _, rt := range rts {
		b = appendGauge(b, "fn_gateway_desired_replicas", rt.key, int64(rt.desired))
	}
	b = append(b, "# HELP fn_gateway_ready_endpoints Ready endpoints the gateway routes the function's requests to.\n"+
		"# TYPE fn_gateway_ready_endpoints gauge\n"...)
	for _, rt := range rts {
		b = appendGauge(b, "fn_gateway_ready_endpoints", rt.key, int64(len(rt.eps)))
	}
	b = append(b, "# HELP fn_gateway_requests_in_flight Requests to functions in flight through the gateway, including those held for a function to start.\n"+
		"# TYPE fn_gateway_requests_in_flight gauge\n"...)
	for _, rt := range rts {
		b = appendLabels(append(b, "fn_gateway_requests_in_flight"...), rt.key)
		b = append(b, "} "...)
		b = strconv.AppendInt(b, rt.stats.inflight.Load(), 10)
		b = append(b, '\n')
	}
	if g.async != nil {
		for _, c := range []struct {
			name, help string
			n          func(*stats) uint64
		}{
			{"accepted", "Asynchronous calls accepted, repeats of an Idempotency-Key included.", func(s *stats) uint64 { return s.accepted.Load() }},
			{"duplicates", "Repeats of an Idempotency-Key within its window, which accepted nothing new.", func(s *stats) uint64 { return s.duplicates.Load() }},
		} {
			name := "fn_gateway_async_" + c.name + "_total"
			b = append(b, "# HELP "+name+" "+c.help+"\n# TYPE "+name+" counter\n"...)
			for _, rt := range rts {
				b = appendLabels(append(b, name...), rt.key)
				b = append(b, "} "...)
				b = strconv.AppendUint(b, c.n(rt.stats), 10)
				b = append(b, '\n')
			}
		}
		s := &g.async.d.Stats
		for _, c := range []struct {
			name, help string
			n          uint64
		}{
			{"attempts", "Deliveries of asynchronous calls tried.", s.Attempts.Load()},
			{"done", "Asynchronous calls the function answered.", s.Done.Load()},
			{"retried", "Attempts of asynchronous calls that failed and are tried again.", s.Retried.Load()},
			{"dead", "Asynchronous calls given up.", s.Dead.Load()},
			{"redelivered", "Attempts whose outcome a gateway lost (it stopped mid-delivery): possible duplicates at the function.", s.Redelivered.Load()},
			{"settled", "Calls delivered again though already settled (their acknowledgement was lost), acknowledged without delivering.", s.Settled.Load()},
			{"callbacks_failed", "Outcomes a call's callback URL did not take.", s.CallbacksFailed.Load()},
		} {
			name := "fn_gateway_async_" + c.name + "_total"
			b = append(b, "# HELP "+name+" "+c.help+"\n# TYPE "+name+" counter\n"+name+" "...)
			b = strconv.AppendUint(b, c.n, 10)
			b = append(b, '\n')
		}
	}
	b = append(b, "# HELP fn_gateway_unrouted_requests_total Requests that named no known function.\n"+
		"# TYPE fn_gateway_unrouted_requests_total counter\n"+
		"fn_gateway_unrouted_requests_total "...)
	b = strconv.AppendUint(b, g.unrouted.Load(), 10)
	b = append(b, '\n')
	return b
}

// appendLabels appends `{namespace="NS",function="NAME"` without the closing brace.
func appendLabels(b []byte, k key) []byte {
	b = append(b, `{namespace="`...)
	b = appendLabelValue(b, k.ns)
	b = append(b, `",function="`...)
	b = appendLabelValue(b, k.name)
	return append(b, '"')
}

func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
