package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/events"
)

// Asynchronous calls: a request to /async/f/NAMESPACE/NAME/... (or any request of a function
// with Prefer: respond-async) is stored in the event engine and answered 202 at once, with
// the call's id and a Location to ask what became of it; the events.Dispatcher delivers it
// later through ServeHTTP, so that it wakes a function at zero and counts as its load.

// MaxAsyncBody bounds the body of an asynchronous call; a larger one is answered 413.
const MaxAsyncBody = 4 << 20

const (
	asyncPrefix = "/async"
	callsPrefix = "/async/calls/"
	// CallbackHeader names a URL that receives the outcome of an asynchronous call.
	CallbackHeader = "Fn-Callback"
)

// async is the gateway's side of asynchronous calls.
type async struct {
	q *events.Queue
	d *events.Dispatcher
	s *events.Scheduler
}

// deliveryKey marks a request's context as a delivery of the dispatcher's: a call admitted
// when it was accepted, which carries no token.
type deliveryKey struct{}

// deliveries is the handler the dispatcher delivers through.
func (g *Gateway) deliveries() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), deliveryKey{}, true)))
	})
}

func delivered(r *http.Request) bool { return r.Context().Value(deliveryKey{}) != nil }

// preferAsync reports whether a request asks to be answered at once and served later
// (RFC 7240's Prefer: respond-async).
func preferAsync(h http.Header) bool {
	for _, v := range h["Prefer"] {
		for p := range strings.SplitSeq(v, ",") {
			p, _, _ = strings.Cut(p, ";")
			p, _, _ = strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// policyOf is delivery settings d as the dispatcher takes them.
func policyOf(d *v1alpha1.Delivery) (events.Policy, bool) {
	p := events.DefaultPolicy
	dead := true
	if d != nil {
		if d.Attempts != nil {
			p.Attempts = int(*d.Attempts)
		}
		if d.Backoff != nil {
			p.Backoff = d.Backoff.Duration
		}
		if d.MaxBackoff != nil {
			p.MaxBackoff = d.MaxBackoff.Duration
		}
		if d.MaxAge != nil {
			p.MaxAge = d.MaxAge.Duration
		}
		if d.DeadLetters != nil {
			dead = *d.DeadLetters
		}
	}
	p.MaxBackoff = max(p.MaxBackoff, p.Backoff)
	if p.Validate() != nil { // refused by the API's validation; a stored one the gateway mends
		p = events.DefaultPolicy
	}
	return p, dead
}

// delivery is function f's delivery settings as the dispatcher takes them.
func delivery(f *v1alpha1.Function) events.Function {
	p, dead := policyOf(f.Spec.Delivery)
	// Enough calls in delivery to keep every replica busy at the most it scales to.
	n := events.DefaultConcurrency
	if c := f.Spec.Concurrency; c != nil && *c > 0 {
		m := v1alpha1.DefaultMaxScale
		if f.Spec.Scale != nil && f.Spec.Scale.Max != nil {
			m = *f.Spec.Scale.Max
		}
		n = int(*c) * int(m)
	}
	return events.Function{Namespace: f.Namespace, Name: f.Name, Policy: p, DeadLetters: dead,
		Concurrency: min(n, DefaultMaxHeld/2)}
}

// syncDeliveries hands the dispatcher the functions of table t.
func (g *Gateway) syncDeliveries(t *table) {
	if g.async == nil {
		return
	}
	fns := make([]events.Function, 0, len(t.routes))
	var scheds []events.Schedule
	for _, rt := range t.routes {
		fns = append(fns, rt.delivery)
		scheds = append(scheds, rt.schedules...)
	}
	g.async.d.Sync(fns)
	g.async.s.Sync(scheds)
}

// schedules is function f's schedules as the engine keeps them.
func schedules(f *v1alpha1.Function) []events.Schedule {
	var out []events.Schedule
	for _, sc := range f.Spec.Schedules {
		if sc.Validate() != nil {
			continue // refused by the API's validation; one stored otherwise is not set
		}
		es := events.Schedule{Namespace: f.Namespace, Function: f.Name, Name: sc.Name, Cron: v1alpha1.EngineCron(sc.Cron),
			TimeZone: sc.TimeZone, Type: sc.Type}
		if es.Type == "" {
			es.Type = v1alpha1.DefaultScheduleType
		}
		if sc.Data != nil {
			es.Data = sc.Data.Raw
		}
		out = append(out, es)
	}
	return out
}

// serveAsync serves the gateway's asynchronous paths: /async/f/NS/NAME/... accepts a call,
// /async/calls/NS/NAME/ID says what became of one.
func (g *Gateway) serveAsync(w http.ResponseWriter, r *http.Request, start time.Time) {
	if strings.HasPrefix(r.URL.Path, callsPrefix) {
		g.serveCall(w, r)
		return
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = strings.TrimPrefix(r.URL.Path, asyncPrefix)
	if u.RawPath != "" {
		u.RawPath = strings.TrimPrefix(u.RawPath, asyncPrefix)
	}
	r2.URL = &u
	t, ok := g.match(r2)
	if !ok || !t.strip {
		g.unrouted.Add(1)
		http.Error(w, "no function named in this request: use the path /async/f/NAMESPACE/NAME/ for an asynchronous call", http.StatusNotFound)
		g.logRequest(r.Context(), key{}, r.Method, r.URL.Path, http.StatusNotFound, time.Since(start), "", nil)
		return
	}
	g.serveRouted(w, r2, t, start, true)
}

// accept stores r as an asynchronous call of route rt, which admit let through, and answers.
func (g *Gateway) accept(w http.ResponseWriter, r *http.Request, t target, rt *route) int {
	if g.async == nil {
		http.Error(w, "asynchronous calls need the event engine, and this gateway runs without one", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	if r.ContentLength > MaxAsyncBody {
		return tooLarge(w)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAsyncBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(w)
		}
		http.Error(w, "reading the call's body: "+err.Error(), http.StatusBadRequest)
		return http.StatusBadRequest
	}
	path := t.functionPath(r)
	if t.rawPath != "" {
		path = t.rawPath
	}
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	c := events.Call{Namespace: t.ns, Name: t.name, Method: r.Method, Path: path, Header: r.Header.Clone(), Body: body,
		Key: r.Header.Get("Idempotency-Key"), Callback: r.Header.Get(CallbackHeader)}
	c.Header.Del(CallbackHeader)
	if c.Callback != "" {
		if u, err := url.Parse(c.Callback); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			http.Error(w, fmt.Sprintf("%s: %q is not an http or https URL", CallbackHeader, c.Callback), http.StatusBadRequest)
			return http.StatusBadRequest
		}
	}
	if len(c.Key) > 255 {
		http.Error(w, "Idempotency-Key: longer than 255 characters", http.StatusBadRequest)
		return http.StatusBadRequest
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	acc, err := g.async.q.Enqueue(ctx, c)
	if err != nil {
		g.log.Error("accepting an asynchronous call", "namespace", t.ns, "function", t.name, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the call was not accepted: "+err.Error()+"; try again", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	rt.stats.accepted.Add(1)
	loc := callsPrefix + t.ns + "/" + t.name + "/" + acc.ID
	h := w.Header()
	h.Set("Location", loc)
	h.Set(events.CallIDHeader, acc.ID)
	h.Set("Preference-Applied", "respond-async")
	h.Set("Content-Type", "application/json")
	if acc.Duplicate {
		// A repeat within the window is answered as the first was, and accepts nothing new.
		rt.stats.duplicates.Add(1)
		h.Set("Fn-Call-Duplicate", "true")
	}
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(struct {
		ID        string `json:"id"`
		Location  string `json:"location"`
		Duplicate bool   `json:"duplicate,omitempty"`
	}{acc.ID, loc, acc.Duplicate})
	return http.StatusAccepted
}

func tooLarge(w http.ResponseWriter) int {
	http.Error(w, fmt.Sprintf("the call's body is over the %d MiB an asynchronous call may carry", MaxAsyncBody>>20), http.StatusRequestEntityTooLarge)
	return http.StatusRequestEntityTooLarge
}

// serveCall answers GET /async/calls/NS/NAME/ID with the call's record, for whoever may call
// the function.
func (g *Gateway) serveCall(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, callsPrefix), "/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "a call's record is read with GET", http.StatusMethodNotAllowed)
		return
	}
	if len(parts) != 3 || !dnsLabel(parts[0]) || !dnsLabel(parts[1]) || events.ParseID(parts[2]) != nil {
		http.Error(w, "a call is /async/calls/NAMESPACE/NAME/ID, as the Location of its 202 says", http.StatusNotFound)
		return
	}
	k := key{parts[0], parts[1]}
	rt := g.table.Load().routes[k]
	if rt == nil {
		http.Error(w, fmt.Sprintf("no function %q in namespace %q: fn list shows the deployed ones", k.name, k.ns), http.StatusNotFound)
		return
	}
	if rt.private {
		if f := g.admit(&route{key: k, private: true}, r, time.Now()); f.status != 0 {
			refuse(w, f)
			return
		}
	}
	if g.async == nil {
		http.Error(w, "asynchronous calls need the event engine, and this gateway runs without one", http.StatusServiceUnavailable)
		return
	}
	rec, err := g.async.q.Call(r.Context(), k.ns, k.name, parts[2])
	switch {
	case errors.Is(err, events.ErrNoCall):
		http.Error(w, fmt.Sprintf("function %s/%s has no call %s (never accepted, or past the engine's retention)", k.ns, k.name, parts[2]), http.StatusNotFound)
		return
	case err != nil:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "reading the call's record: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, rec)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// The internal endpoints of asynchronous calls, for fn calls (InternalHandler's port):
//
//	GET    /_gw/calls/NS[/NAME]               records, oldest first
//	GET    /_gw/calls/NS/NAME/ID              one record
//	GET    /_gw/dead/NS[/NAME]                dead letters
//	POST   /_gw/dead/NS/NAME/ID/resend        send a dead letter again
//	DELETE /_gw/dead/NS[/NAME]                remove dead letters
//	GET    /_gw/async                         the dispatcher's counts
func (g *Gateway) asyncHandlers(mux *http.ServeMux) {
	queue := func(w http.ResponseWriter) *events.Queue {
		if g.async == nil {
			http.Error(w, "this gateway runs without the event engine", http.StatusServiceUnavailable)
			return nil
		}
		return g.async.q
	}
	names := func(w http.ResponseWriter, r *http.Request) (ns, name string, ok bool) {
		ns, name = r.PathValue("ns"), r.PathValue("name")
		if !dnsLabel(ns) || (name != "" && !dnsLabel(name)) {
			http.Error(w, "a namespace and a function are DNS labels", http.StatusBadRequest)
			return "", "", false
		}
		return ns, name, true
	}
	fail := func(w http.ResponseWriter, err error) {
		code := http.StatusServiceUnavailable
		if errors.Is(err, events.ErrNoCall) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
	}
	list := func(w http.ResponseWriter, r *http.Request) {
		q := queue(w)
		ns, name, ok := names(w, r)
		if q == nil || !ok {
			return
		}
		recs, err := q.Calls(r.Context(), ns, name)
		if err != nil {
			fail(w, err)
			return
		}
		if recs == nil {
			recs = []events.Record{}
		}
		slices.SortStableFunc(recs, func(a, b events.Record) int { return a.Accepted.Compare(b.Accepted) })
		writeJSON(w, recs)
	}
	mux.HandleFunc("GET /_gw/calls/{ns}/{name}/{id}", func(w http.ResponseWriter, r *http.Request) {
		q := queue(w)
		ns, name, ok := names(w, r)
		if q == nil || !ok {
			return
		}
		rec, err := q.Call(r.Context(), ns, name, r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, rec)
	})
	mux.HandleFunc("GET /_gw/calls/{ns}", list)
	mux.HandleFunc("GET /_gw/calls/{ns}/{name}", list)
	dead := func(w http.ResponseWriter, r *http.Request) {
		q := queue(w)
		ns, name, ok := names(w, r)
		if q == nil || !ok {
			return
		}
		dls, err := q.DeadLetters(r.Context(), ns, name)
		if err != nil {
			fail(w, err)
			return
		}
		if dls == nil {
			dls = []events.DeadLetter{}
		}
		writeJSON(w, dls)
	}
	mux.HandleFunc("GET /_gw/dead/{ns}", dead)
	mux.HandleFunc("GET /_gw/dead/{ns}/{name}", dead)
	purge := func(w http.ResponseWriter, r *http.Request) {
		q := queue(w)
		ns, name, ok := names(w, r)
		if q == nil || !ok {
			return
		}
		n, err := q.PurgeDead(r.Context(), ns, name)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[string]uint64{"purged": n})
	}
	mux.HandleFunc("DELETE /_gw/dead/{ns}", purge)
	mux.HandleFunc("DELETE /_gw/dead/{ns}/{name}", purge)
	mux.HandleFunc("POST /_gw/dead/{ns}/{name}/{id}/resend", func(w http.ResponseWriter, r *http.Request) {
		q := queue(w)
		ns, name, ok := names(w, r)
		if q == nil || !ok {
			return
		}
		acc, err := q.Resend(r.Context(), ns, name, r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, map[string]string{"id": acc.ID, "location": callsPrefix + ns + "/" + name + "/" + acc.ID})
	})
	mux.HandleFunc("GET /_gw/async", func(w http.ResponseWriter, r *http.Request) {
		if g.async == nil {
			http.Error(w, "this gateway runs without the event engine", http.StatusServiceUnavailable)
			return
		}
		s := &g.async.d.Stats
		writeJSON(w, AsyncStats{Attempts: s.Attempts.Load(), Done: s.Done.Load(), Retried: s.Retried.Load(), Dead: s.Dead.Load(),
			Redelivered: s.Redelivered.Load(), Settled: s.Settled.Load(), CallbacksFailed: s.CallbacksFailed.Load()})
	})
}

// AsyncStats are a gateway's dispatcher's counts since it started (events.Stats).
type AsyncStats struct {
	Attempts        uint64 `json:"attempts"`
	Done            uint64 `json:"done"`
	Retried         uint64 `json:"retried"`
	Dead            uint64 `json:"dead"`
	Redelivered     uint64 `json:"redelivered"`
	Settled         uint64 `json:"settled"`
	CallbacksFailed uint64 `json:"callbacksFailed"`
}

// ServiceDialer connects to a ready endpoint of a Service, found by the gateway's
// EndpointSlices, as the gateway reaches functions: no cluster DNS or kube-proxy is needed. The
// event engine's client takes it before the gateway exists (events.Options.Dialer); New makes
// it dial (Options.EventsDialer), and until then it fails, and the client tries again.
type ServiceDialer struct {
	// Service is "NAMESPACE/NAME".
	Service string
	g       atomic.Pointer[Gateway]
}

// Dial connects to one of the Service's ready endpoints, whatever address it is given.
func (d *ServiceDialer) Dial(network, _ string) (net.Conn, error) {
	g := d.g.Load()
	if g == nil {
		return nil, errors.New("the gateway has not listed the endpoints of " + d.Service + " yet")
	}
	var errs []error
	for addr := range g.readyAddrs(d.Service) {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("service " + d.Service + " has no ready endpoint")
	}
	return nil, errors.Join(errs...)
}
