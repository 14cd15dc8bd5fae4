package autoscaler

import (
	"fmt"
	"math"
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// Reasons of a decision, as the Function's status shows them.
const (
	// ReasonStable: the replica count follows the stable window's average.
	ReasonStable = "Stable"
	// ReasonPanic: load in the panic window is at least the panic threshold; no scale-down.
	ReasonPanic = "Panic"
	// ReasonAtMax: more replicas are wanted than spec.scale.max allows.
	ReasonAtMax = "AtMax"
	// ReasonAtMin: fewer replicas are wanted than spec.scale.min allows.
	ReasonAtMin = "AtMin"
	// ReasonScaledToZero: no request for the window plus the scale-down delay; no replica runs.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonActivating: requests arrived at zero replicas and are held while one starts.
	ReasonActivating = "Activating"
	// ReasonWarming: the autoscaler has less than a window of data (it just started); it scales
	// up as needed but not down.
	ReasonWarming = "Warming"
)

// Spec is what drives one function's scaling: its spec.scale with the cluster's defaults.
type Spec struct {
	Metric   v1alpha1.ScaleMetric // concurrency or rps
	Target   float64              // per replica
	Min, Max int32
	// Window is the stable window; PanicWindow the shorter one that detects bursts.
	Window, PanicWindow time.Duration
	// ScaleDownDelay is how long a lower recommendation must hold before it is applied, and so
	// how long after the window of no traffic a function keeps one replica before zero.
	ScaleDownDelay time.Duration
	// MaxScaleUpRate and MaxScaleDownRate bound one decision: at most ready*up replicas, at
	// least current/down.
	MaxScaleUpRate, MaxScaleDownRate float64
	// PanicThreshold is the ratio of the panic window's load to ready capacity (target per
	// ready replica) at which the autoscaler panics, e.g. 2 for 200%.
	PanicThreshold float64
}

// Observation is what the autoscaler knows of a function at one moment.
type Observation struct {
	// Stable and Panic are the metric (total in-flight requests, or requests per second) over
	// all gateways, averaged over the stable and the panic window.
	Stable, Panic float64
	// Current is the metric now: requests in flight plus held (concurrency), or the panic
	// window's rate plus held requests (rps). Requests held at zero count at once.
	Current float64
	// Held is the number of requests held by gateways while the function has no ready replica.
	Held int64
	// LastActive is the last time a request was seen in flight or held (zero: never).
	LastActive time.Time
	// Since is when the autoscaler's data for this function begins (its own start, or the
	// function's first report).
	Since time.Time
	// Replicas is the Deployment's desired replica count now; Ready how many of them are ready.
	Replicas, Ready int32
}

// State is what a decision remembers for the next one. Its zero value is a fresh start.
type State struct {
	// PanicSince is when the current panic began; PanicLast the last time the panic threshold
	// was crossed (zero: not panicking).
	PanicSince, PanicLast time.Time
	// PanicReplicas is the highest count wanted during the panic: a panic never scales down.
	PanicReplicas int32
	// Recent are the recommendations of the last ScaleDownDelay, newest last.
	Recent []Recommendation
}

// Recommendation is one past decision's replica count before the scale-down delay.
type Recommendation struct {
	At       time.Time
	Replicas int32
}

// Decision is the replica count to apply and why.
type Decision struct {
	Replicas int32
	Reason   string
	Message  string
}

// tolerance is how far (a fraction of it) past a multiple of the target a load may be measured
// without taking one more replica: the figures carry a little noise (samples a few milliseconds
// off their periods), and a load right at a multiple would otherwise flap between two counts.
const tolerance = 0.01

// replicasFor is the replicas that carry load at target per replica.
func replicasFor(load, target float64) int32 {
	x := load / target
	return int32(max(math.Ceil(x-tolerance*max(x, 1)), 0))
}

// Decide computes the replica count of one function from its spec, what is observed, the state
// of the previous decision and the time. It has no side effects.
func Decide(s Spec, o Observation, prev State, now time.Time) (Decision, State) {
	next := State{PanicSince: prev.PanicSince, PanicLast: prev.PanicLast, PanicReplicas: prev.PanicReplicas}
	target := s.Target
	if target <= 0 {
		target = 1
	}
	ready := float64(max(o.Ready, 1))
	panicLoad := max(o.Panic, o.Current)
	stableWant, panicWant := replicasFor(o.Stable, target), replicasFor(panicLoad, target)

	// The rate limits: up from the ready replicas, down from the desired ones.
	maxUp := int32(math.Ceil(ready * max(s.MaxScaleUpRate, 1)))
	maxDown := int32(math.Floor(float64(o.Replicas) / max(s.MaxScaleDownRate, 1)))
	stableWant = min(max(stableWant, maxDown), maxUp)
	panicWant = min(max(panicWant, maxDown), maxUp)

	// Panic: entered when the panic window's load reaches the threshold of ready capacity,
	// left a stable window after it was last crossed.
	over := panicLoad/(ready*target) >= s.PanicThreshold && s.PanicThreshold > 0
	switch {
	case over:
		if next.PanicLast.IsZero() {
			next.PanicSince = now
		}
		next.PanicLast = now
	case !next.PanicLast.IsZero() && now.Sub(next.PanicLast) >= s.Window:
		next.PanicSince, next.PanicLast, next.PanicReplicas = time.Time{}, time.Time{}, 0
	}
	panicking := !next.PanicLast.IsZero()

	want := stableWant
	if panicking {
		want = max(panicWant, next.PanicReplicas, o.Replicas)
		next.PanicReplicas = want
	}
	// Activity now always wants a replica, whatever the averages say.
	active := o.Current > 0 || o.Held > 0
	if active {
		want = max(want, 1)
	}

	// The scale-down delay: the highest recommendation of the last ScaleDownDelay wins.
	raw := want
	for _, r := range prev.Recent {
		if now.Sub(r.At) < s.ScaleDownDelay {
			next.Recent = append(next.Recent, r)
			want = max(want, r.Replicas)
		}
	}
	if s.ScaleDownDelay > 0 {
		next.Recent = append(next.Recent, Recommendation{At: now, Replicas: raw})
	}

	d := Decision{Replicas: want, Reason: ReasonStable}
	if panicking {
		d.Reason = ReasonPanic
		d.Message = fmt.Sprintf("panicking since %s: %.1f in the panic window against a target of %g per replica", next.PanicSince.UTC().Format(time.RFC3339), panicLoad, target)
	} else {
		d.Message = fmt.Sprintf("%.1f on average over %s against a target of %g per replica", o.Stable, s.Window, target)
	}

	// Warming up: with less than a window of data, never below what runs. When spec.scale.min
	// holds what runs anyway, min is the reason (a restarted autoscaler then records nothing new).
	if now.Sub(o.Since) < s.Window && d.Replicas < o.Replicas && o.Replicas > s.Min {
		d.Replicas = o.Replicas
		d.Reason = ReasonWarming
		d.Message = fmt.Sprintf("keeping %d replicas until a full window (%s) of data is in", o.Replicas, s.Window)
	}

	// Zero only after the window plus the delay without any request, seen by this autoscaler.
	if d.Replicas == 0 && o.Replicas > 0 {
		idleSince := o.LastActive
		if o.Since.After(idleSince) {
			idleSince = o.Since
		}
		if active || now.Sub(idleSince) < s.Window+s.ScaleDownDelay {
			d.Replicas = 1
		}
	}

	switch {
	case d.Replicas > s.Max:
		d.Replicas, d.Reason = s.Max, ReasonAtMax
		d.Message = fmt.Sprintf("%d replicas wanted, at most %d allowed (spec.scale.max)", want, s.Max)
	case d.Replicas < s.Min:
		d.Replicas, d.Reason = s.Min, ReasonAtMin
		d.Message = fmt.Sprintf("%d replicas wanted, at least %d kept (spec.scale.min)", want, s.Min)
	case d.Replicas == 0:
		d.Reason = ReasonScaledToZero
		d.Message = fmt.Sprintf("no request for %s (window %s plus scale-down delay %s)", s.Window+s.ScaleDownDelay, s.Window, s.ScaleDownDelay)
	case o.Replicas == 0 && d.Replicas > 0:
		d.Reason = ReasonActivating
		d.Message = fmt.Sprintf("%d requests held at zero replicas: starting %d", o.Held, d.Replicas)
	}
	return d, next
}
