package autoscaler

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	appsv1listers "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/util/workqueue"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	fnlisters "fnkit.dev/fn/controller/client/listers/fn/v1alpha1"
)

// Options configure an Autoscaler.
type Options struct {
	// Config, when set, is the configuration; otherwise DefaultConfig until SetConfig is called
	// (Run watches the ConfigMap).
	Config *Config
	// Logger receives scaling decisions and errors (default: none).
	Logger *zap.SugaredLogger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// Autoscaler scales the Functions of metric concurrency and rps. Gateways give it Reports
// (Report, or POST /report through ServeHTTP); every replica of the autoscaler keeps them, so a
// new leader starts with the same window of data; only the leader decides (Run).
type Autoscaler struct {
	kube     kubernetes.Interface
	fnClient versioned.Interface
	fns      fnlisters.FunctionLister
	deploys  appsv1listers.DeploymentLister
	log      *zap.SugaredLogger
	now      func() time.Time
	start    time.Time
	cfg      atomic.Pointer[Config]

	mu       sync.Mutex
	series   map[types.NamespacedName]*series
	gateways map[string]gatewaySeen
	states   map[types.NamespacedName]State
	applied  map[types.NamespacedName]applied

	pokeMu  sync.Mutex
	pokes   map[types.NamespacedName]struct{}
	pokeSig chan struct{}

	// reasons are the decisions' reasons to record on Functions, written reasonDelay after
	// the decision by Run's recorder.
	reasonMu sync.Mutex
	reasons  map[types.NamespacedName]string
	toRecord workqueue.TypedDelayingInterface[types.NamespacedName]
}

// reasonDelay is how long after a decision its reason is written on the Function: scale first,
// report after. A scale from zero is a chain of API writes (the scale, the ReplicaSet, the Pod,
// its binding, its status), each waiting for the API server's CPU; the Function's annotation,
// and the status write of the Function it triggers, come after them, not among them. A burst
// of decisions writes only the last reason.
const reasonDelay = 200 * time.Millisecond

// applied is the last replica count this autoscaler wrote, for decisions made before the
// Deployment's informer has seen it.
type applied struct {
	replicas int32
	at       time.Time
}

// New returns an Autoscaler that reads Functions and Deployments from listers, writes replicas
// with kube and its reasons (fn.ScaleReasonAnnotation) on Functions with fnClient.
func New(kube kubernetes.Interface, fnClient versioned.Interface, fns fnlisters.FunctionLister, deploys appsv1listers.DeploymentLister, o Options) *Autoscaler {
	if o.Logger == nil {
		o.Logger = zap.NewNop().Sugar()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Autoscaler{
		kube: kube, fnClient: fnClient, fns: fns, deploys: deploys, log: o.Logger, now: o.Now, start: o.Now(),
		series:   map[types.NamespacedName]*series{},
		gateways: map[string]gatewaySeen{},
		states:   map[types.NamespacedName]State{},
		applied:  map[types.NamespacedName]applied{},
		pokes:    map[types.NamespacedName]struct{}{},
		pokeSig:  make(chan struct{}, 1),
		reasons:  map[types.NamespacedName]string{},
		toRecord: workqueue.NewTypedDelayingQueue[types.NamespacedName](),
	}
	c := DefaultConfig
	if o.Config != nil {
		c = *o.Config
	}
	a.cfg.Store(&c)
	return a
}

// SetConfig replaces the configuration.
func (a *Autoscaler) SetConfig(c Config) { a.cfg.Store(&c) }

// Config is the configuration in use.
func (a *Autoscaler) Config() Config { return *a.cfg.Load() }

// keep is how long samples are kept: the longest window a Function may have.
const keep = v1alpha1.MaxWindow

// fresh is how old a gateway's newest sample may be for its instant figures to count.
const fresh = 3 * time.Second

// Report records a gateway's report. With Poke, functions with held requests are decided at once.
func (a *Autoscaler) Report(r Report) {
	now := a.now()
	period := r.Period
	if period <= 0 {
		period = time.Second
	}
	var poke []types.NamespacedName
	a.mu.Lock()
	gs := a.gateways[r.Gateway]
	if gs.first.IsZero() {
		gs.first = now.Add(-period)
	}
	if !r.Poke {
		gs.last = now
	}
	for _, st := range r.Functions {
		k := types.NamespacedName{Namespace: st.Namespace, Name: st.Name}
		s := a.series[k]
		if s == nil {
			s = newSeries(now)
			a.series[k] = s
		}
		if r.Poke {
			// A poke carries no period's figures: it updates what is held now.
			if st.Held > 0 {
				s.lastActive = now
				s.pokedHeld(r.Gateway, st.Held, now)
				poke = append(poke, k)
			}
			continue
		}
		s.add(r.Gateway, sample{at: now, period: period, Stat: st}, keep)
	}
	a.gateways[r.Gateway] = gs
	a.mu.Unlock()
	if !r.Poke {
		for _, st := range r.Functions {
			if k := (types.NamespacedName{Namespace: st.Namespace, Name: st.Name}); a.overloaded(k, st) {
				poke = append(poke, k) // a burst is decided now, not at the next tick
			}
		}
	}
	if len(poke) == 0 {
		return
	}
	a.pokeMu.Lock()
	for _, k := range poke {
		a.pokes[k] = struct{}{}
	}
	a.pokeMu.Unlock()
	select {
	case a.pokeSig <- struct{}{}:
	default:
	}
}

// overloaded reports whether a gateway alone sees function k past the panic threshold of its
// ready capacity: in flight and held requests at least threshold × target × ready replicas.
func (a *Autoscaler) overloaded(k types.NamespacedName, st Stat) bool {
	load := float64(st.InFlight + st.Held)
	if load == 0 {
		return false
	}
	f, d, ok := a.target(k)
	if !ok {
		return false
	}
	s := a.Config().SpecOf(f) // its own defaults: no copy of the Function
	if s.Metric != v1alpha1.MetricConcurrency {
		return false
	}
	return load >= s.Target*s.PanicThreshold*float64(max(d.Status.ReadyReplicas, 1))
}

// maxReportBytes bounds a report's body.
const maxReportBytes = 8 << 20

// ServeHTTP takes gateways' reports: POST /report with a JSON Report; GET /healthz.
func (a *Autoscaler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/healthz":
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/report" && r.Method == http.MethodPost:
		var rep Report
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportBytes)).Decode(&rep); err != nil || rep.Gateway == "" {
			http.Error(w, "want a JSON report with a gateway", http.StatusBadRequest)
			return
		}
		a.Report(rep)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// Run decides, every tick and on every poke, until ctx is done. Only one replica may run it at
// a time: RunLeader runs it while elected.
func (a *Autoscaler) Run(ctx context.Context) {
	rctx, stopRecorder := context.WithCancel(ctx)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		a.recordReasons(rctx)
	}()
	defer func() { stopRecorder(); <-recorded }()
	tick := time.NewTicker(a.Config().TickInterval)
	defer tick.Stop()
	interval := a.Config().TickInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.pokeSig:
			a.pokeMu.Lock()
			keys := a.pokes
			a.pokes = map[types.NamespacedName]struct{}{}
			a.pokeMu.Unlock()
			for k := range keys {
				a.decide(ctx, k)
			}
		case <-tick.C:
			if c := a.Config().TickInterval; c != interval {
				interval = c
				tick.Reset(c)
			}
			a.tick(ctx)
		}
	}
}

// tick decides every Function of metric concurrency or rps, and forgets what is gone.
func (a *Autoscaler) tick(ctx context.Context) {
	all, err := a.fns.List(labels.Everything())
	if err != nil {
		a.log.Errorw("listing Functions", zap.Error(err))
		return
	}
	live := make(map[types.NamespacedName]bool, len(all))
	for _, f := range all {
		for _, k := range scaled(f) {
			live[k] = true
			a.decide(ctx, k)
		}
	}
	a.reasonMu.Lock()
	for k := range a.reasons {
		if !live[k] {
			delete(a.reasons, k)
		}
	}
	a.reasonMu.Unlock()
	now := a.now()
	a.mu.Lock()
	for k := range a.series {
		if !live[k] {
			delete(a.series, k)
			delete(a.states, k)
			delete(a.applied, k)
		}
	}
	for gw, gs := range a.gateways {
		if now.Sub(gs.last) > keep && now.Sub(gs.first) > keep {
			delete(a.gateways, gw)
		}
	}
	a.mu.Unlock()
}

// Observe is what the autoscaler knows of function k at now, given its Deployment's replicas.
func (a *Autoscaler) observe(k types.NamespacedName, s Spec, f *v1alpha1.Function, replicas, ready int32, now time.Time) Observation {
	o := Observation{Replicas: replicas, Ready: ready, Since: a.start}
	if ct := f.CreationTimestamp.Time; ct.After(o.Since) {
		o.Since = ct
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ap, ok := a.applied[k]; ok && now.Sub(ap.at) < fresh {
		o.Replicas = ap.replicas
	}
	if sr := a.series[k]; sr != nil {
		o.Stable, o.Panic, o.Current, o.Held = sr.observe(s.Metric, s.Window, s.PanicWindow, fresh, a.gateways, now)
		o.LastActive = sr.lastActive
	}
	return o
}

// scaled are the Deployments of Function f that the autoscaler scales, each on its own
// traffic: the function's own, and a canary's while it takes a share. A batched rollout's
// replicas are the rollout's to set, not the autoscaler's, until it ends.
func scaled(f *v1alpha1.Function) []types.NamespacedName {
	own := types.NamespacedName{Namespace: f.Namespace, Name: f.Name}
	ro := f.Status.Rollout
	if ro == nil || ro.Phase.Done() {
		return []types.NamespacedName{own}
	}
	if ro.Strategy == v1alpha1.RolloutBatched {
		return nil
	}
	return []types.NamespacedName{own, {Namespace: f.Namespace, Name: ro.Revision}}
}

// target is the Function and the Deployment that key k scales: a Function's own Deployment
// is named after it; a canary's is named after its revision and controlled by the Function.
func (a *Autoscaler) target(k types.NamespacedName) (*v1alpha1.Function, *appsv1.Deployment, bool) {
	d, err := a.deploys.Deployments(k.Namespace).Get(k.Name)
	if err != nil {
		return nil, nil, false
	}
	owner := metav1.GetControllerOf(d)
	if owner == nil || owner.Kind != "Function" {
		return nil, nil, false
	}
	f, err := a.fns.Functions(k.Namespace).Get(owner.Name)
	if err != nil || !metav1.IsControlledBy(d, f) {
		return nil, nil, false // gone, or not the Function's: the reconciler reports that
	}
	if k.Name != f.Name && !slices.Contains(scaled(f), k) {
		return nil, nil, false // a revision that no longer takes traffic: the reconciler removes it
	}
	return f, d, true
}

// decide makes and applies the decision of Deployment k: a Function's, or its canary's.
func (a *Autoscaler) decide(ctx context.Context, k types.NamespacedName) {
	f, d, ok := a.target(k)
	if !ok {
		return
	}
	f = f.DeepCopy()
	f.SetDefaults(ctx)
	if f.Spec.Scale.Metric == v1alpha1.MetricCPU {
		return // a HorizontalPodAutoscaler's
	}
	if len(scaled(f)) == 0 {
		return // a batched rollout's
	}
	canary := k.Name != f.Name
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	now := a.now()
	spec := a.Config().SpecOf(f)
	if canary {
		spec.Min = max(spec.Min, 1) // a canary under analysis keeps a replica to judge
	}
	obs := a.observe(k, spec, f, replicas, d.Status.ReadyReplicas, now)
	a.mu.Lock()
	prev := a.states[k]
	a.mu.Unlock()
	dec, next := Decide(spec, obs, prev, now)
	a.mu.Lock()
	a.states[k] = next
	a.mu.Unlock()

	if dec.Replicas != obs.Replicas {
		scale := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace},
			Spec:       autoscalingv1.ScaleSpec{Replicas: dec.Replicas},
		}
		if _, err := a.kube.AppsV1().Deployments(k.Namespace).UpdateScale(ctx, d.Name, scale, metav1.UpdateOptions{}); err != nil {
			if !apierrs.IsNotFound(err) {
				a.log.Errorw("scaling", "function", k.String(), "replicas", dec.Replicas, zap.Error(err))
			}
			return
		}
		a.mu.Lock()
		a.applied[k] = applied{replicas: dec.Replicas, at: now}
		a.mu.Unlock()
		a.log.Infow("scaled", "function", k.String(), "from", obs.Replicas, "to", dec.Replicas, "reason", dec.Reason, "message", dec.Message)
	}
	if canary {
		return // the Function's reason is its own Deployment's
	}
	a.reasonMu.Lock()
	a.reasons[k] = dec.Reason
	a.reasonMu.Unlock()
	if f.Annotations[fn.ScaleReasonAnnotation] != dec.Reason {
		a.toRecord.AddAfter(k, reasonDelay) // a key already waiting keeps its time
	}
}

// recordReasons writes the reasons of decisions on their Functions, each reasonDelay after it
// was decided, until ctx is done. On the Function, not the Deployment: a Deployment's
// annotations bump its generation and are copied to its ReplicaSets.
func (a *Autoscaler) recordReasons(ctx context.Context) {
	go func() {
		<-ctx.Done()
		a.toRecord.ShutDown()
	}()
	for {
		k, shutdown := a.toRecord.Get()
		if shutdown {
			return
		}
		a.reasonMu.Lock()
		reason := a.reasons[k]
		a.reasonMu.Unlock()
		if f, err := a.fns.Functions(k.Namespace).Get(k.Name); err == nil && reason != "" && f.Annotations[fn.ScaleReasonAnnotation] != reason {
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{fn.ScaleReasonAnnotation: reason}}})
			if _, err := a.fnClient.FnkitV1alpha1().Functions(k.Namespace).Patch(ctx, k.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrs.IsNotFound(err) && ctx.Err() == nil {
				a.log.Errorw("recording the scale reason", "function", k.String(), zap.Error(err)) // tried again at the next decision
			}
		}
		a.toRecord.Done(k)
	}
}
