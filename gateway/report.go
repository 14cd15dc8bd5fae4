package gateway

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/rand"

	"fnkit.dev/fn/controller/autoscaler"
)

// samplesPerReport is how often load is sampled in one report period.
const samplesPerReport = 10

// reporter samples every function's requests in flight and reports them to the autoscaler.
type reporter struct {
	g      *Gateway
	id     string
	period time.Duration
	sink   func(autoscaler.Report) // delivers a report; must not block for long

	mu     sync.Mutex
	acc    map[key]*accum
	pokeMu sync.Mutex
	pokes  map[key]struct{}
	kick   chan struct{}
}

// accum is one function's samples in the current period.
type accum struct {
	sum      float64
	n        int
	arrivals uint64 // the counter at the period's start
	// errors and durations are the answers' counters at the period's start.
	errors    uint64
	durations [len(histogram{}.buckets)]uint64
}

// start records the counters of st at a period's start.
func (a *accum) start(st *stats) {
	a.arrivals, a.errors = st.arrivals.Load(), st.errors.Load()
	for i := range a.durations {
		a.durations[i] = st.duration.buckets[i].Load()
	}
}

func newReporter(g *Gateway, o Options) *reporter {
	r := &reporter{g: g, id: o.ID, period: o.ReportPeriod, acc: map[key]*accum{}, pokes: map[key]struct{}{}, kick: make(chan struct{}, 1)}
	if r.id == "" {
		host, _ := os.Hostname()
		r.id = host + "-" + rand.String(5)
	}
	if r.period <= 0 {
		r.period = time.Second
	}
	var remote *remoteSink
	if len(o.AutoscalerURLs) > 0 || o.AutoscalerService != "" {
		remote = &remoteSink{g: g, urls: o.AutoscalerURLs, service: o.AutoscalerService,
			client: autoscaler.Client{HTTP: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
				DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}}}}
	}
	local := o.Autoscaler
	r.sink = func(rep autoscaler.Report) {
		if local != nil {
			local.Report(rep)
		}
		if remote != nil {
			remote.send(rep)
		}
	}
	return r
}

// poke asks for an immediate report of function k's held requests.
func (r *reporter) poke(k key) {
	r.pokeMu.Lock()
	r.pokes[k] = struct{}{}
	r.pokeMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run samples and reports until done is closed.
func (r *reporter) run(done <-chan struct{}) {
	sample := time.NewTicker(r.period / samplesPerReport)
	defer sample.Stop()
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case <-r.kick:
			r.sendPokes()
		case now := <-sample.C:
			r.sample()
			if now.Sub(last) >= r.period-r.period/(2*samplesPerReport) {
				r.report(now.Sub(last))
				last = now
			}
		}
	}
}

func (r *reporter) sendPokes() {
	r.pokeMu.Lock()
	keys := r.pokes
	r.pokes = make(map[key]struct{}, len(keys))
	r.pokeMu.Unlock()
	t := r.g.table.Load()
	rep := autoscaler.Report{Gateway: r.id, Poke: true, Period: r.period}
	for k := range keys {
		if rt := t.lookup(k); rt != nil {
			if held := rt.stats.held.Load(); held > 0 {
				rep.Functions = append(rep.Functions, autoscaler.Stat{Namespace: k.ns, Name: k.name, Held: held, InFlight: rt.stats.inflight.Load() - held})
			}
		}
	}
	if len(rep.Functions) > 0 {
		r.sink(rep)
	}
}

// sample adds every function's requests in flight now to its period's samples.
func (r *reporter) sample() {
	t := r.g.table.Load()
	for k, rt := range t.all() {
		a := r.acc[k]
		if a == nil {
			a = &accum{}
			a.start(rt.stats)
			r.acc[k] = a
		}
		a.sum += float64(rt.stats.inflight.Load())
		a.n++
	}
}

// report sends the period's figures of the functions that had any, and starts a new period.
func (r *reporter) report(period time.Duration) {
	t := r.g.table.Load()
	rep := autoscaler.Report{Gateway: r.id, Period: period}
	for k, a := range r.acc {
		rt := t.lookup(k)
		if rt == nil {
			delete(r.acc, k)
			continue
		}
		arrivals := rt.stats.arrivals.Load()
		held, inflight := rt.stats.held.Load(), rt.stats.inflight.Load()
		st := autoscaler.Stat{Namespace: k.ns, Name: k.name, Requests: arrivals - a.arrivals, Held: held, InFlight: inflight - held,
			Errors: rt.stats.errors.Load() - a.errors}
		var answered uint64
		durations := make([]uint64, len(a.durations))
		for i := range durations {
			durations[i] = rt.stats.duration.buckets[i].Load() - a.durations[i]
			answered += durations[i]
		}
		if answered > 0 {
			st.Durations = durations
		}
		if a.n > 0 {
			st.Concurrency = a.sum / float64(a.n)
		}
		if st.Concurrency > 0 || st.Requests > 0 || inflight > 0 || answered > 0 {
			rep.Functions = append(rep.Functions, st)
		}
		a.sum, a.n = 0, 0
		a.start(rt.stats)
	}
	// Sent even when empty: the autoscaler learns the gateway is there and saw nothing.
	r.sink(rep)
}

// remoteSink posts reports to autoscalers over HTTP: given URLs, and every ready endpoint of
// the autoscaler's Service.
type remoteSink struct {
	g       *Gateway
	urls    []string
	service string // "NAMESPACE/NAME"
	client  autoscaler.Client
	busy    sync.Map // base URL -> struct{}: one report in flight per autoscaler
}

func (s *remoteSink) send(rep autoscaler.Report) {
	for _, base := range s.targets() {
		if _, inFlight := s.busy.LoadOrStore(base, struct{}{}); inFlight && !rep.Poke {
			continue // a slow autoscaler gets the next period's report instead
		}
		go func() {
			defer s.busy.Delete(base)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := s.client.Send(ctx, base, rep); err != nil {
				s.g.log.Warn("reporting to the autoscaler", "autoscaler", base, "error", err.Error())
			}
		}()
	}
}

// targets are the autoscalers' base URLs.
func (s *remoteSink) targets() []string {
	out := append([]string(nil), s.urls...)
	if s.service == "" {
		return out
	}
	for addr := range s.g.readyAddrs(s.service) {
		out = append(out, "http://"+addr)
	}
	return out
}
