package autoscaler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func spec(opts ...func(*Spec)) Spec {
	s := Spec{
		Metric: v1alpha1.MetricConcurrency, Target: 10, Min: 0, Max: 10,
		Window: 60 * time.Second, PanicWindow: 6 * time.Second, ScaleDownDelay: 30 * time.Second,
		MaxScaleUpRate: 1000, MaxScaleDownRate: 2, PanicThreshold: 2,
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// warm is an observation by an autoscaler that has had data for ten minutes.
func warm(o Observation) Observation {
	o.Since = t0.Add(-10 * time.Minute)
	if o.LastActive.IsZero() && (o.Stable > 0 || o.Current > 0) {
		o.LastActive = t0
	}
	return o
}

func TestDecide(t *testing.T) {
	panicking := State{PanicSince: t0.Add(-10 * time.Second), PanicLast: t0.Add(-5 * time.Second), PanicReplicas: 8}
	for _, tc := range []struct {
		name       string
		spec       Spec
		obs        Observation
		prev       State
		now        time.Time
		want       int32
		reason     string
		wantPanic  bool
		wantRecent int // recommendations kept for the scale-down delay
	}{{
		name: "steady state: load at target per replica keeps the count",
		spec: spec(), obs: warm(Observation{Stable: 30, Panic: 30, Current: 30, Replicas: 3, Ready: 3}),
		now: t0, want: 3, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "a load measured a hair past a multiple of the target takes no extra replica",
		spec: spec(func(s *Spec) { s.Target = 2 }), obs: warm(Observation{Stable: 20.04, Panic: 20.06, Current: 20, Replicas: 10, Ready: 10}),
		now: t0, want: 10, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "stable: more load wants more replicas",
		spec: spec(), obs: warm(Observation{Stable: 45, Panic: 50, Current: 50, Replicas: 3, Ready: 3}),
		now: t0, want: 5, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "panic entered at 200% of ready capacity in the panic window",
		spec: spec(), obs: warm(Observation{Stable: 12, Panic: 100, Current: 100, Replicas: 1, Ready: 1}),
		now: t0, want: 10, reason: ReasonPanic, wantPanic: true, wantRecent: 1,
	}, {
		name: "just under the panic threshold: stable",
		spec: spec(), obs: warm(Observation{Stable: 15, Panic: 19, Current: 19, Replicas: 1, Ready: 1}),
		now: t0, want: 2, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "no scale-down while panicking, even when the load drops",
		spec: spec(), obs: warm(Observation{Stable: 10, Panic: 10, Current: 10, Replicas: 8, Ready: 8}),
		prev: panicking, now: t0, want: 8, reason: ReasonPanic, wantPanic: true, wantRecent: 1,
	}, {
		name: "panic left a stable window after the threshold was last crossed",
		spec: spec(func(s *Spec) { s.ScaleDownDelay = 0 }), obs: warm(Observation{Stable: 10, Panic: 10, Current: 10, Replicas: 8, Ready: 8}),
		prev: panicking, now: t0.Add(55 * time.Second), want: 4, reason: ReasonStable,
	}, {
		name: "scale-up rate: at most 1000x the ready replicas",
		spec: spec(func(s *Spec) { s.MaxScaleUpRate = 2; s.Max = 100; s.PanicThreshold = 100 }),
		obs:  warm(Observation{Stable: 500, Panic: 500, Current: 500, Replicas: 2, Ready: 2}),
		now:  t0, want: 4, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "scale-down rate: at most halved per decision",
		spec: spec(func(s *Spec) { s.ScaleDownDelay = 0 }), obs: warm(Observation{Stable: 5, Panic: 5, Current: 5, Replicas: 8, Ready: 8}),
		now: t0, want: 4, reason: ReasonStable,
	}, {
		name: "max bounds the count",
		spec: spec(func(s *Spec) { s.Max = 3 }), obs: warm(Observation{Stable: 80, Panic: 80, Current: 80, Replicas: 3, Ready: 3}),
		now: t0, want: 3, reason: ReasonAtMax, wantPanic: true, wantRecent: 1,
	}, {
		name: "min bounds the count, even with no traffic",
		spec: spec(func(s *Spec) { s.Min = 2 }), obs: warm(Observation{Replicas: 2, Ready: 2, LastActive: t0.Add(-time.Hour)}),
		now: t0, want: 2, reason: ReasonAtMin, wantRecent: 1,
	}, {
		name: "no request for less than window plus delay: one replica stays",
		spec: spec(), obs: warm(Observation{Replicas: 1, Ready: 1, LastActive: t0.Add(-89 * time.Second)}),
		now: t0, want: 1, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "no request for window plus delay: zero",
		spec: spec(), obs: warm(Observation{Replicas: 1, Ready: 1, LastActive: t0.Add(-90 * time.Second)}),
		now: t0, want: 0, reason: ReasonScaledToZero, wantRecent: 1,
	}, {
		name: "a request in flight now keeps a replica whatever the averages",
		spec: spec(), obs: warm(Observation{Current: 1, Replicas: 1, Ready: 1, LastActive: t0}),
		now: t0, want: 1, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "at zero with nothing held: stays at zero",
		spec: spec(), obs: warm(Observation{Replicas: 0, LastActive: t0.Add(-time.Hour)}),
		now: t0, want: 0, reason: ReasonScaledToZero, wantRecent: 1,
	}, {
		name: "one request held at zero: one replica",
		spec: spec(), obs: warm(Observation{Current: 1, Held: 1, Replicas: 0}),
		now: t0, want: 1, reason: ReasonActivating, wantRecent: 1,
	}, {
		name: "100 held at zero: as many replicas as they need at once",
		spec: spec(), obs: warm(Observation{Current: 100, Held: 100, Replicas: 0}),
		now: t0, want: 10, reason: ReasonActivating, wantPanic: true, wantRecent: 1,
	}, {
		name: "restarted autoscaler with no data keeps what runs",
		spec: spec(), obs: Observation{Replicas: 5, Ready: 5, Since: t0.Add(-4 * time.Second)},
		now: t0, want: 5, reason: ReasonWarming, wantRecent: 1,
	}, {
		name: "restarted autoscaler at spec.scale.min: min, not warming, is the reason",
		spec: func() Spec { s := spec(); s.Min = 5; return s }(), obs: Observation{Replicas: 5, Ready: 5, Since: t0.Add(-4 * time.Second)},
		now: t0, want: 5, reason: ReasonAtMin, wantRecent: 1,
	}, {
		name: "restarted autoscaler above spec.scale.min keeps what runs",
		spec: func() Spec { s := spec(); s.Min = 2; return s }(), obs: Observation{Replicas: 5, Ready: 5, Since: t0.Add(-4 * time.Second)},
		now: t0, want: 5, reason: ReasonWarming, wantRecent: 1,
	}, {
		name: "restarted autoscaler still scales up",
		spec: spec(), obs: Observation{Stable: 30, Panic: 150, Current: 150, Replicas: 5, Ready: 5, Since: t0.Add(-4 * time.Second), LastActive: t0},
		now: t0, want: 15 - 5, reason: ReasonAtMax, wantPanic: true, wantRecent: 1,
	}, {
		name: "restarted autoscaler never scales to zero before its own window plus delay",
		spec: spec(), obs: Observation{Replicas: 1, Ready: 1, Since: t0.Add(-70 * time.Second)},
		now: t0, want: 1, reason: ReasonStable, wantRecent: 1,
	}, {
		name: "restarted autoscaler activates a function at zero",
		spec: spec(), obs: Observation{Current: 1, Held: 1, Replicas: 0, Since: t0.Add(-time.Second)},
		now: t0, want: 1, reason: ReasonActivating, wantRecent: 1,
	}, {
		name: "the scale-down delay keeps the highest recent recommendation",
		spec: spec(), obs: warm(Observation{Stable: 10, Panic: 10, Current: 10, Replicas: 4, Ready: 4}),
		prev: State{Recent: []Recommendation{{At: t0.Add(-40 * time.Second), Replicas: 6}, {At: t0.Add(-20 * time.Second), Replicas: 4}}},
		now:  t0, want: 4, reason: ReasonStable, wantRecent: 2,
	}, {
		name: "rps: requests per second against the target",
		spec: spec(func(s *Spec) { s.Metric = v1alpha1.MetricRPS; s.Target = 100 }),
		obs:  warm(Observation{Stable: 250, Panic: 260, Current: 260, Replicas: 3, Ready: 3}),
		now:  t0, want: 3, reason: ReasonStable, wantRecent: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d, next := Decide(tc.spec, tc.obs, tc.prev, tc.now)
			if d.Replicas != tc.want || d.Reason != tc.reason {
				t.Errorf("Decide = %d (%s: %s), want %d (%s)", d.Replicas, d.Reason, d.Message, tc.want, tc.reason)
			}
			if got := !next.PanicLast.IsZero(); got != tc.wantPanic {
				t.Errorf("panicking = %v, want %v (state %+v)", got, tc.wantPanic, next)
			}
			if len(next.Recent) != tc.wantRecent {
				t.Errorf("kept %d recommendations, want %d: %+v", len(next.Recent), tc.wantRecent, next.Recent)
			}
		})
	}
}

// TestDecideOverTime runs decisions every 2 s through a day in the life of a function: a load
// step, a steady load that must not flap, the load stopping, and scale to zero at window + delay.
func TestDecideOverTime(t *testing.T) {
	s := spec(func(s *Spec) {
		s.Window = 10 * time.Second
		s.PanicWindow = time.Second
		s.ScaleDownDelay = 4 * time.Second
	})
	var st State
	replicas := int32(1)
	load := func(at time.Duration) float64 {
		switch {
		case at < 20*time.Second:
			return 5
		case at < 80*time.Second:
			return 100 // 10x target
		default:
			return 0
		}
	}
	lastActive := t0
	var got []int32
	for at := time.Duration(0); at <= 120*time.Second; at += 2 * time.Second {
		now := t0.Add(at)
		// The stable average of a load that changes in a step, over the window.
		var sum float64
		for back := time.Duration(0); back < s.Window; back += time.Second {
			if at-back >= 0 {
				sum += load(at - back)
			}
		}
		cur := load(at)
		if cur > 0 {
			lastActive = now
		}
		o := Observation{Stable: sum / s.Window.Seconds(), Panic: cur, Current: cur, Replicas: replicas, Ready: replicas,
			Since: t0.Add(-time.Hour), LastActive: lastActive}
		var d Decision
		d, st = Decide(s, o, st, now)
		replicas = d.Replicas
		got = append(got, replicas)
	}
	want := []int32{
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0-18 s: 5 in flight, one replica
		10, 10, 10, 10, 10, // 20-28 s: the step panics to 10 at once
		10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, // 30-78 s: panic over, steady at 10, no flapping
		10, 9, 7, 5, 3, 2, 1, 1, // 80-94 s: load stopped; down with the stable average, held by the delay
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 96-120 s: zero, past window + delay after the last request (78 s)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replicas over time (-want +got):\n%s", diff)
	}
}
