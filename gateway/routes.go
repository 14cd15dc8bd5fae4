package gateway

import (
	"iter"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/events"
)

// key names a function.
type key struct{ ns, name string }

// table is an immutable routing table: a new one replaces it on every change, so requests read
// it without locks.
type table struct {
	routes map[key]*route
	// revs are the routes of canaries, by revision: a function's route names its canary's.
	revs map[key]*route
}

// all yields every route, the functions' and their canaries'.
func (t *table) all() iter.Seq2[key, *route] {
	return func(yield func(key, *route) bool) {
		for k, rt := range t.routes {
			if !yield(k, rt) {
				return
			}
		}
		for k, rt := range t.revs {
			if !yield(k, rt) {
				return
			}
		}
	}
}

// lookup is the route of key k: a function's, or a canary's.
func (t *table) lookup(k key) *route {
	if rt := t.routes[k]; rt != nil {
		return rt
	}
	return t.revs[k]
}

// route is where one function's requests go.
type route struct {
	key
	// timeout is the whole request's deadline at the gateway: the function's timeout plus grace.
	timeout time.Duration
	// fnTimeout is the function's own timeout, for messages.
	fnTimeout time.Duration
	// eps are the ready endpoints, sorted by address.
	eps []*endpoint
	// ready, set when eps is empty, is closed once the function has a ready endpoint again or
	// goes away: requests held for scale from zero wait on it.
	ready chan struct{}
	// stats outlive routes: a route rebuilt for the same function keeps them.
	stats *stats
	// failure, set when eps is empty, is why the function's pods cannot start: held requests
	// are answered with it.
	failure string
	// desired is the replica count the function's status says its autoscaler wants.
	desired int32
	// private functions take only requests with a token of their namespace.
	private bool
	// limit is the function's rate limit (rps 0: none).
	limit limit
	// delivery is how its asynchronous calls are delivered; schedules its schedules.
	delivery  events.Function
	schedules []events.Schedule

	// A function's route serves its stable revision (stable, its name); while a canary takes a
	// share of traffic, canary is the key of the canary's own route and percent its share.
	stable  string
	canary  key
	percent int32
	// revisionOf is, on a canary's route, the function's name.
	revisionOf string
}

// endpoint is one ready pod of a function. It outlives routes while the pod stays in the
// function's EndpointSlices, so its in-flight count stays right across updates.
type endpoint struct {
	addr     string // host:port
	inflight atomic.Int64
	// passedOverUntil (Unix nanoseconds; 0: never) is set when a connection to it failed: a
	// pod whose node was lost stays in EndpointSlices for seconds, and each request sent to it
	// would wait out a dial before going elsewhere.
	passedOverUntil atomic.Int64
}

// passOverFor is how long an endpoint that did not take a connection is passed over.
const passOverFor = 5 * time.Second

// passOver has pick choose other endpoints than ep until now + passOverFor.
func (ep *endpoint) passOver(now time.Time) {
	ep.passedOverUntil.Store(now.Add(passOverFor).UnixNano())
}

// passedOver reports whether ep is passed over now; an expired mark is cleared, so that an
// endpoint never passed over costs one atomic load.
func (ep *endpoint) passedOver() bool {
	until := ep.passedOverUntil.Load()
	if until == 0 {
		return false
	}
	if time.Now().UnixNano() < until {
		return true
	}
	ep.passedOverUntil.CompareAndSwap(until, 0)
	return false
}

// pick chooses an endpoint by the power of two choices: of two distinct random endpoints, the one
// with fewer requests in flight, passing over those that recently did not take a connection
// (unless all did). It returns nil when there is none.
func (rt *route) pick() *endpoint {
	eps := rt.eps
	switch len(eps) {
	case 0:
		return nil
	case 1:
		return eps[0]
	}
	i, j := randomPair(len(eps))
	a, b := eps[i], eps[j]
	switch aOut, bOut := a.passedOver(), b.passedOver(); {
	case aOut && bOut:
		for k := range eps { // any other that takes connections; if none, a
			if ep := eps[(i+k)%len(eps)]; !ep.passedOver() {
				return ep
			}
		}
		return a
	case aOut:
		return b
	case bOut:
		return a
	}
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// pickOther chooses an endpoint other than not, by the power of two choices among those that
// take connections (or, when none does, among all the others), or nil when there is none. It
// runs only when a request must move, so it may look at every endpoint.
func (rt *route) pickOther(not *endpoint) *endpoint {
	var taking, others []*endpoint
	for _, ep := range rt.eps {
		if ep == not {
			continue
		}
		others = append(others, ep)
		if !ep.passedOver() {
			taking = append(taking, ep)
		}
	}
	if len(taking) == 0 {
		taking = others
	}
	switch len(taking) {
	case 0:
		return nil
	case 1:
		return taking[0]
	}
	i, j := randomPair(len(taking))
	if a, b := taking[i], taking[j]; b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return taking[i]
}

// randomPair is two distinct random indexes below n (n >= 2), uniformly.
func randomPair(n int) (i, j int) {
	i, j = rand.IntN(n), rand.IntN(n-1)
	if j >= i {
		j++
	}
	return i, j
}

// serviceIndex indexes EndpointSlices by "NAMESPACE/SERVICE".
const serviceIndex = "service"

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	svc := s.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + svc}, nil
}

// stripManagedFields drops what the gateway never reads before objects enter the caches.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	return obj, nil
}

// functionKey is the key of a Function event.
func functionKey(obj any) (key, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	f, ok := obj.(*v1alpha1.Function)
	if !ok {
		return key{}, false
	}
	return key{f.Namespace, f.Name}, true
}

// sliceKey is the key of the function an EndpointSlice event is about: its Service is named after
// the function (resources.ServiceName).
func sliceKey(obj any) (key, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return key{}, false
	}
	svc := s.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return key{}, false
	}
	return key{s.Namespace, svc}, true
}

// handler marks the function of every event dirty.
func (g *Gateway) handler(keyOf func(any) (key, bool)) cache.ResourceEventHandler {
	mark := func(obj any) {
		if k, ok := keyOf(obj); ok {
			g.markDirty(k)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    mark,
		UpdateFunc: func(_, obj any) { mark(obj) },
		DeleteFunc: mark,
	}
}

func (g *Gateway) markDirty(k key) {
	g.mu.Lock()
	g.dirty[k] = struct{}{}
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// syncRoutes rebuilds the routes of dirty functions until done is closed, coalescing bursts of
// events into one new table.
func (g *Gateway) syncRoutes(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-g.kick:
		}
		g.mu.Lock()
		dirty := g.dirty
		g.dirty = make(map[key]struct{}, len(dirty))
		g.mu.Unlock()
		g.update(dirty)
	}
}

// update replaces the table with one where the routes of keys are rebuilt from the caches, with
// the canary routes of the functions among them. Only one goroutine calls it at a time.
func (g *Gateway) update(keys map[key]struct{}) {
	old := g.table.Load()
	next := &table{routes: maps.Clone(old.routes), revs: maps.Clone(old.revs)}
	if next.routes == nil {
		next.routes = make(map[key]*route, len(keys))
	}
	if next.revs == nil {
		next.revs = map[key]*route{}
	}
	set := func(m, oldm map[key]*route, k key, rt *route) {
		prev := oldm[k]
		if rt == nil {
			delete(m, k)
		} else {
			m[k] = rt
		}
		if prev != nil && prev.ready != nil && (rt == nil || rt.ready != prev.ready) {
			close(prev.ready) // held requests look again
		}
	}
	canaries := map[key]bool{}
	for k := range keys {
		if _, ok := g.revisions[k]; ok {
			canaries[k] = true // a canary's pods or endpoints: built below, with its function known
			continue
		}
		prev := old.routes[k]
		rt := g.build(k, prev)
		set(next.routes, old.routes, k, rt)
		// A function's canary route comes and goes with its rollout.
		if prev != nil && prev.canary.name != "" && (rt == nil || rt.canary != prev.canary) {
			delete(g.revisions, prev.canary)
			set(next.revs, old.revs, prev.canary, nil)
		}
		if rt != nil && rt.canary.name != "" {
			g.revisions[rt.canary] = k
			canaries[rt.canary] = true
		}
	}
	for ck := range canaries {
		if _, ok := g.revisions[ck]; ok {
			set(next.revs, old.revs, ck, g.buildCanary(ck, old.revs[ck]))
		}
	}
	g.table.Store(next)
	g.syncDeliveries(next)
}

// canaryOf is the key of Function f's canary route while its rollout runs one: the revision
// under rollout of a canary (its batched rollout shares by replicas, in the function's route).
func canaryOf(f *v1alpha1.Function) key {
	ro := f.Status.Rollout
	if ro == nil || ro.Phase.Done() || ro.Revision == "" || ro.Strategy == v1alpha1.RolloutBatched {
		return key{}
	}
	return key{f.Namespace, ro.Revision}
}

// build makes the route of function k from the caches, reusing prev's endpoints and stats; nil
// when there is no such Function.
func (g *Gateway) build(k key, prev *route) *route {
	f, err := g.fnLister.Functions(k.ns).Get(k.name)
	if err != nil {
		return nil // not found: the lister reads only from its cache
	}
	return g.buildFrom(k, f, "", prev)
}

// buildCanary makes the route of canary k (a revision's key) from the caches; nil once its
// function's rollout no longer runs it.
func (g *Gateway) buildCanary(k key, prev *route) *route {
	fk, ok := g.revisions[k]
	if !ok {
		return nil
	}
	f, err := g.fnLister.Functions(fk.ns).Get(fk.name)
	if err != nil || canaryOf(f) != k {
		delete(g.revisions, k)
		return nil
	}
	return g.buildFrom(k, f, fk.name, prev)
}

// buildFrom makes route k of Function f: the function's own, or (revisionOf set) its canary's.
func (g *Gateway) buildFrom(k key, f *v1alpha1.Function, revisionOf string, prev *route) *route {
	rt := &route{key: k, fnTimeout: g.opts.DefaultTimeout, revisionOf: revisionOf}
	if revisionOf == "" {
		rt.stable = f.Status.StableRevision
		if ck := canaryOf(f); ck.name != "" {
			rt.canary = ck
			rt.percent = f.Status.Rollout.Percent
		}
	}
	if f.Spec.Timeout != nil && f.Spec.Timeout.Duration > 0 {
		rt.fnTimeout = f.Spec.Timeout.Duration
	}
	rt.timeout = rt.fnTimeout + timeoutGrace
	rt.desired = f.Status.DesiredReplicas
	rt.private = f.Spec.Access == v1alpha1.AccessPrivate
	rt.limit = limitOf(f.Spec.RateLimit)
	if revisionOf == "" { // a function's calls and schedules, not its canary's
		rt.delivery = delivery(f)
		rt.schedules = schedules(f)
	}
	if prev != nil {
		rt.stats = prev.stats
	} else {
		rt.stats = &stats{}
	}

	var have map[string]*endpoint
	if prev != nil && len(prev.eps) > 0 {
		have = make(map[string]*endpoint, len(prev.eps))
		for _, ep := range prev.eps {
			have[ep.addr] = ep
		}
	}
	seen := make(map[string]bool)
	if ro := f.Status.Rollout; revisionOf == "" && ro != nil && ro.Revision != "" && (ro.Phase.Done() || ro.Strategy != v1alpha1.RolloutBatched) {
		// The function's Service selects the pods of the revision under rollout too: they
		// serve the canary's route, and none once it is over (they go away), except in a
		// batched rollout, where they share the function's route by replicas.
		for addr := range g.readyAddrs(k.ns + "/" + ro.Revision) {
			seen[addr] = true
		}
		// Its pods, as the gateway watches them: the function's slices may list one before
		// the revision's do, or after the revision is gone.
		ips := map[string]bool{}
		for ip := range g.revisionIPs(key{k.ns, ro.Revision}) {
			ips[ip] = true
		}
		if len(ips) > 0 {
			for addr := range g.readyAddrs(k.ns + "/" + k.name) {
				if h, _, err := net.SplitHostPort(addr); err == nil && ips[h] {
					seen[addr] = true
				}
			}
		}
	}
	add := func(addr string) {
		if seen[addr] {
			return
		}
		seen[addr] = true
		ep := have[addr]
		if ep == nil {
			ep = &endpoint{addr: addr}
		}
		rt.eps = append(rt.eps, ep)
	}
	for addr := range g.readyAddrs(k.ns + "/" + k.name) {
		add(addr)
	}
	// Pods that answered the gateway's own probe, until their EndpointSlice lists them ready.
	if g.prober != nil {
		g.prober.handedOver(k, seen)
		for _, addr := range g.prober.readyAddrs(k) {
			add(addr)
		}
	}
	slices.SortFunc(rt.eps, func(a, b *endpoint) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	if len(rt.eps) == 0 {
		rt.failure = g.failure(k)
		if prev != nil && prev.ready != nil && prev.failure == rt.failure {
			rt.ready = prev.ready // still waiting
		} else {
			rt.ready = make(chan struct{}) // held requests look again at the new failure
		}
	}
	return rt
}

// listedReady reports whether function k's EndpointSlices list addr as ready.
func (g *Gateway) listedReady(k key, addr string) bool {
	for a := range g.readyAddrs(k.ns + "/" + k.name) {
		if a == addr {
			return true
		}
	}
	return false
}

// readyAddrs are the addresses (host:port of the runtime's port) of the ready endpoints of the
// EndpointSlices of Service "NAMESPACE/NAME".
func (g *Gateway) readyAddrs(service string) iter.Seq[string] {
	return func(yield func(string) bool) {
		objs, _ := g.slices.ByIndex(serviceIndex, service)
		for _, obj := range objs {
			s := obj.(*discoveryv1.EndpointSlice)
			if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
				continue
			}
			port, ok := slicePort(s)
			if !ok {
				continue
			}
			for _, e := range s.Endpoints {
				// A nil ready condition means unknown, which the API says to read as ready.
				if len(e.Addresses) == 0 || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
					continue
				}
				// An endpoint's addresses are fungible.
				if !yield(net.JoinHostPort(e.Addresses[0], port)) {
					return
				}
			}
		}
	}
}

// slicePort is the port of a slice's endpoints that the runtime listens on: the one named
// resources.PortName, or the only one.
func slicePort(s *discoveryv1.EndpointSlice) (string, bool) {
	var only *discoveryv1.EndpointPort
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
			continue
		}
		if p.Name != nil && *p.Name == resources.PortName {
			return strconv.Itoa(int(*p.Port)), true
		}
		only = p
	}
	if only != nil && len(s.Ports) == 1 {
		return strconv.Itoa(int(*only.Port)), true
	}
	return "", false
}
