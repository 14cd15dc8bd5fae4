package autoscaler

import (
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// sample is one gateway's Stat of a function for the period ending at at (when its report
// arrived). from is where the sample's span begins on the autoscaler's clock: at - period, or
// the previous sample's arrival when the two are within half a period (see add).
type sample struct {
	at, from time.Time
	period   time.Duration
	Stat
}

// series holds the samples of one function from every gateway, over the longest window.
type series struct {
	byGateway map[string][]sample
	// lastActive is the last time a sample showed a request.
	lastActive time.Time
	// since is when this function's data begins.
	since time.Time
	// poked are the requests gateways said they hold between their reports.
	poked map[string]heldAt
}

type heldAt struct {
	held int64
	at   time.Time
}

// pokedHeld records the requests a gateway holds now, ahead of its next report.
func (s *series) pokedHeld(gateway string, held int64, now time.Time) {
	if s.poked == nil {
		s.poked = map[string]heldAt{}
	}
	s.poked[gateway] = heldAt{held, now}
}

func newSeries(since time.Time) *series {
	return &series{byGateway: map[string][]sample{}, since: since}
}

// add records a gateway's sample and drops those older than keep.
func (s *series) add(gateway string, smp sample, keep time.Duration) {
	if smp.Concurrency > 0 || smp.Requests > 0 || smp.InFlight > 0 || smp.Held > 0 {
		s.lastActive = smp.at
	}
	// A gateway's periods follow one another, but its reports arrive after varying delays. Were
	// each sample to span the period before its arrival, a late report would overlap the next
	// one's period and count part of the load twice (20 in flight would average 21 over a short
	// window). So the samples of a gateway are laid end to end: one begins where the previous
	// ended, when that is within half a period of at - period; a longer gap is time with no
	// report of this function (idle, or a report lost), which counts as zero.
	smp.from = smp.at.Add(-smp.period)
	prev := s.byGateway[gateway]
	if n := len(prev); n > 0 {
		last := prev[n-1].at
		if smp.from.Sub(last) < smp.period/2 {
			smp.from = last
			if smp.at.Before(last) {
				smp.from = smp.at // out of order: spans nothing
			}
		}
	}
	ss := append(prev, smp)
	i := 0
	for i < len(ss) && smp.at.Sub(ss[i].at) > keep {
		i++
	}
	s.byGateway[gateway] = ss[i:]
}

// gatewaySeen is when a gateway's reports began, and its newest one.
type gatewaySeen struct{ first, last time.Time }

// observe averages the samples of the windows ending at now (for a gateway that reports, at its
// last report). A gateway's average counts the periods in which it reported nothing of this
// function as zero: it covers the window, or the time since the gateway's first report when that
// is shorter. now's instant figures come from
// each gateway's newest sample when that is fresh.
func (s *series) observe(metric v1alpha1.ScaleMetric, window, panicWindow, fresh time.Duration, gateways map[string]gatewaySeen, now time.Time) (stable, panic, current float64, held int64) {
	for gw, ss := range s.byGateway {
		seen, ok := gateways[gw]
		if !ok || len(ss) == 0 {
			continue
		}
		// A live gateway's figures are known up to its last report: the windows end there, not
		// at now, so the time since (a part of a period) does not count as idle.
		end := now
		if seen.last.Before(now) && now.Sub(seen.last) <= fresh {
			end = seen.last
		}
		stable += average(metric, ss, seen.first, window, end)
		panic += average(metric, ss, seen.first, panicWindow, end)
		if last := ss[len(ss)-1]; now.Sub(last.at) <= fresh && seen.last.Equal(last.at) {
			h := last.Held
			if p, ok := s.poked[gw]; ok && p.at.After(last.at) {
				h = max(h, p.held)
			}
			held += h
			current += float64(last.InFlight + h)
		}
	}
	// Pokes of gateways with no fresh report of this function.
	for gw, p := range s.poked {
		if now.Sub(p.at) > fresh {
			delete(s.poked, gw)
			continue
		}
		if ss := s.byGateway[gw]; len(ss) > 0 && ss[len(ss)-1].at.After(now.Add(-fresh)) {
			continue // counted above
		}
		held += p.held
		current += float64(p.held)
	}
	if metric == v1alpha1.MetricRPS {
		current = panic + float64(held)
	}
	return stable, panic, current, held
}

// average is a gateway's average of the metric over the window ending at now. A sample's figure
// (the period's average concurrency, or its requests per second) counts for the part of its span
// inside the window, so that a window as short as the report period never counts two whole
// samples (reports are not exactly a period apart).
func average(metric v1alpha1.ScaleMetric, ss []sample, first time.Time, window time.Duration, now time.Time) float64 {
	start := now.Add(-window)
	covered := window
	if first.After(start) {
		covered = now.Sub(first)
	}
	if covered <= 0 {
		return 0
	}
	var sum float64
	for _, smp := range ss {
		if smp.period <= 0 {
			continue
		}
		lo, hi := smp.from, smp.at
		if lo.Before(start) {
			lo = start
		}
		if hi.After(now) {
			hi = now
		}
		if !hi.After(lo) {
			continue
		}
		part := hi.Sub(lo)
		switch metric {
		case v1alpha1.MetricRPS:
			sum += float64(smp.Requests) / smp.period.Seconds() * part.Seconds()
		default:
			sum += smp.Concurrency * part.Seconds()
		}
	}
	return sum / covered.Seconds()
}
