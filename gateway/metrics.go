package gateway

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bucketBounds are the upper bounds of the request duration histogram's buckets.
var bucketBounds = []time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
}

// stats are one function's request metrics, updated with atomics on the request path.
type stats struct {
	inflight atomic.Int64

	// codes is copied on write: requests find their code's counter without a lock.
	codes atomic.Pointer[[]codeCount]
	mu    sync.Mutex // serializes writers of codes

	buckets [18]atomic.Uint64 // per bucket, not cumulative; the last one is +Inf
	sum     atomic.Int64      // nanoseconds
	count   atomic.Uint64
}

type codeCount struct {
	code int
	n    *atomic.Uint64
}

func init() {
	if len(bucketBounds)+1 != len(stats{}.buckets) {
		panic("gateway: histogram buckets and bounds disagree")
	}
}

// observe records a finished request.
func (s *stats) observe(code int, d time.Duration) {
	s.counter(code).Add(1)
	i := 0
	for i < len(bucketBounds) && d > bucketBounds[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sum.Add(int64(d))
	s.count.Add(1)
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
	for _, rt := range t.routes {
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
		s := rt.stats
		count := s.count.Load() // read first: buckets then sum at least this much
		var cum uint64
		for i := range s.buckets {
			cum += s.buckets[i].Load()
			b = appendLabels(append(b, "fn_gateway_request_duration_seconds_bucket"...), rt.key)
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
		b = appendLabels(append(b, "fn_gateway_request_duration_seconds_sum"...), rt.key)
		b = append(b, "} "...)
		b = strconv.AppendFloat(b, time.Duration(s.sum.Load()).Seconds(), 'g', -1, 64)
		b = appendLabels(append(b, "\nfn_gateway_request_duration_seconds_count"...), rt.key)
		b = append(b, "} "...)
		b = strconv.AppendUint(b, count, 10)
		b = append(b, '\n')
	}
	b = append(b, "# HELP fn_gateway_requests_in_flight Requests to functions in flight through the gateway, including those held for a function to start.\n"+
		"# TYPE fn_gateway_requests_in_flight gauge\n"...)
	for _, rt := range rts {
		b = appendLabels(append(b, "fn_gateway_requests_in_flight"...), rt.key)
		b = append(b, "} "...)
		b = strconv.AppendInt(b, rt.stats.inflight.Load(), 10)
		b = append(b, '\n')
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
