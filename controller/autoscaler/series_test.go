package autoscaler

import (
	"math"
	"testing"
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// TestSeries sums gateways' averages, counts the periods a gateway did not report as zero, and
// takes held requests from pokes between reports.
func TestSeries(t *testing.T) {
	s := newSeries(t0)
	gws := map[string]gatewaySeen{}
	report := func(gw string, at time.Time, c float64, req uint64, inflight, held int64) {
		g := gws[gw]
		if g.first.IsZero() {
			g.first = at.Add(-time.Second)
		}
		g.last = at
		gws[gw] = g
		s.add(gw, sample{at: at, period: time.Second, Stat: Stat{Concurrency: c, Requests: req, InFlight: inflight, Held: held}}, time.Hour)
	}
	// Gateway a: 10 in flight for 10 s. Gateway b: 4 in flight for the last 5 s of them, and
	// reporting nothing (idle) in its first 5 s.
	for i := 1; i <= 10; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		report("a", at, 10, 100, 10, 0)
		if i == 1 {
			gws["b"] = gatewaySeen{first: t0, last: at}
		}
		if i > 5 {
			report("b", at, 4, 40, 4, 0)
		} else {
			g := gws["b"]
			g.last = at
			gws["b"] = g
		}
	}
	now := t0.Add(10 * time.Second)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	stable, panic, current, held := s.observe(v1alpha1.MetricConcurrency, 10*time.Second, 2*time.Second, fresh, gws, now)
	if !near(stable, 10+2) || !near(panic, 14) || current != 14 || held != 0 {
		t.Errorf("concurrency: stable %v panic %v current %v held %v, want 12, 14, 14, 0", stable, panic, current, held)
	}
	stable, panic, _, _ = s.observe(v1alpha1.MetricRPS, 10*time.Second, 2*time.Second, fresh, gws, now)
	if !near(stable, 100+20) || !near(panic, 140) {
		t.Errorf("rps: stable %v panic %v, want 120, 140", stable, panic)
	}
	// A poke from gateway a between reports: its held requests count at once.
	s.pokedHeld("a", 7, now.Add(500*time.Millisecond))
	_, _, current, held = s.observe(v1alpha1.MetricConcurrency, 10*time.Second, 2*time.Second, fresh, gws, now.Add(600*time.Millisecond))
	if held != 7 || current != 21 {
		t.Errorf("after a poke: held %d current %v, want 7 and 21", held, current)
	}
	// A gateway gone quiet: its instant figures stop counting once stale.
	_, _, current, held = s.observe(v1alpha1.MetricConcurrency, 10*time.Second, 2*time.Second, fresh, gws, now.Add(time.Minute))
	if held != 0 || current != 0 {
		t.Errorf("a minute later: held %d current %v, want 0", held, current)
	}
}

// TestSeriesJitter: reports arrive about, not exactly, a period apart; a steady load of 10 in
// flight averages 10 over a window as short as the period, at any time between reports.
func TestSeriesJitter(t *testing.T) {
	s := newSeries(t0)
	gws := map[string]gatewaySeen{"a": {first: t0}}
	at := t0
	for i := range 60 {
		// Periods of 0.9 s to 1.1 s.
		period := time.Second + time.Duration((i%5)-2)*50*time.Millisecond
		at = at.Add(period)
		s.add("a", sample{at: at, period: period, Stat: Stat{Concurrency: 10, InFlight: 10}}, time.Hour)
		g := gws["a"]
		g.last = at
		gws["a"] = g
		for _, d := range []time.Duration{0, 300 * time.Millisecond, 700 * time.Millisecond} {
			now := at.Add(d)
			if i < 2 {
				continue
			}
			stable, panic, _, _ := s.observe(v1alpha1.MetricConcurrency, 10*time.Second, time.Second, fresh, gws, now)
			if panic > 10+1e-9 || stable > 10+1e-9 || panic < 9.99 || stable < 9.99 {
				t.Fatalf("report %d, +%s: stable %v panic %v, want 10", i, d, stable, panic)
			}
		}
	}
}

// TestSeriesDelivery: a gateway's periods follow one another, but its reports reach the
// autoscaler after a varying delay (a busy network or CPU). A late report must not make its
// period overlap the next one's: a steady load of 20 in flight never averages more than 20
// (which at a target of 2 would take an 11th replica), however the delays fall.
func TestSeriesDelivery(t *testing.T) {
	s := newSeries(t0)
	gws := map[string]gatewaySeen{"a": {first: t0}}
	delays := []time.Duration{0, 80, 5, 60, 0, 0, 120, 10, 40, 0}
	for i := range 60 {
		end := t0.Add(time.Duration(i+1) * time.Second) // the period's end at the gateway
		at := end.Add(delays[i%len(delays)] * time.Millisecond)
		s.add("a", sample{at: at, period: time.Second, Stat: Stat{Concurrency: 20, Requests: 200, InFlight: 20}}, time.Hour)
		g := gws["a"]
		g.last = at
		gws["a"] = g
		if i < 2 {
			continue
		}
		for _, d := range []time.Duration{0, 300 * time.Millisecond, 900 * time.Millisecond} {
			now := at.Add(d)
			for _, m := range []v1alpha1.ScaleMetric{v1alpha1.MetricConcurrency, v1alpha1.MetricRPS} {
				stable, panic, _, _ := s.observe(m, 10*time.Second, time.Second, fresh, gws, now)
				want := 20.0
				if m == v1alpha1.MetricRPS {
					want = 200
				}
				// Never over; under by at most the longest delay's share of the panic window.
				if panic > want*(1+1e-9) || stable > want*(1+1e-9) || panic < want*0.85 || stable < want*0.98 {
					t.Fatalf("%s, report %d, +%s: stable %v panic %v, want %v", m, i, d, stable, panic, want)
				}
			}
		}
	}
}
