// Package rollout holds what a canary rollout decides at each step: go on, wait, or go back.
// Analyze is a pure function of the two revisions' figures over the same window, the
// thresholds, when the step began and now; nothing here does I/O.
package rollout

import (
	"fmt"
	"time"
)

// Figures are one revision's requests over the analysis window, as the gateway counts them.
type Figures struct {
	// Requests answered, and of them Errors: 5xx answers, and requests the revision did not
	// answer (the gateway's 502 and 504).
	Requests, Errors uint64
	// P99 is the 99th percentile of their durations.
	P99 time.Duration
}

// ErrorRate is Errors over Requests (0 without requests).
func (f Figures) ErrorRate() float64 {
	if f.Requests == 0 {
		return 0
	}
	return float64(f.Errors) / float64(f.Requests)
}

// Thresholds bound how much worse than the old revision the new one may do.
type Thresholds struct {
	// MaxErrorRateIncrease is how many points of error rate the new revision may add to the
	// old one's (0.01: one point).
	MaxErrorRateIncrease float64
	// MaxP99Ratio is how many times the old revision's p99 the new one's may be, once it is
	// also MinP99Increase slower: a fast function's p99 moves by a bucket of the gateway's
	// histogram (1 to 2.5 ms) with no change of its own.
	MaxP99Ratio    float64
	MinP99Increase time.Duration
	// MinRequests is how many requests the new revision must have answered in the window
	// before its figures are judged at all.
	MinRequests uint64
	// Pause is how long a step lasts at least.
	Pause time.Duration
}

// DefaultThresholds: one point of errors more, p99 half again (and 5 ms), 20 requests, a
// minute a step.
var DefaultThresholds = Thresholds{MaxErrorRateIncrease: 0.01, MaxP99Ratio: 1.5, MinP99Increase: 5 * time.Millisecond, MinRequests: 20, Pause: time.Minute}

// Verdict is what becomes of a step.
type Verdict int

const (
	// Hold: the step goes on.
	Hold Verdict = iota
	// Promote: on to the next step (the last step's promotion gives the new revision all).
	Promote
	// RollBack: all traffic back on the old revision, the rollout stopped.
	RollBack
)

func (v Verdict) String() string { return [...]string{"hold", "promote", "roll back"}[v] }

// Decision is a Verdict and why.
type Decision struct {
	Verdict Verdict
	Reason  string
}

// Analyze decides step of a rollout that began at since, at now, from the old and new
// revisions' figures over the same window. A new revision worse than the thresholds allow is
// rolled back as soon as it has MinRequests, without waiting for the pause; one within them is
// promoted once the pause has passed with MinRequests judged; otherwise the step holds.
func Analyze(t Thresholds, old, new Figures, since, now time.Time) Decision {
	if new.Requests >= t.MinRequests && new.Requests > 0 {
		if inc := new.ErrorRate() - old.ErrorRate(); inc > t.MaxErrorRateIncrease {
			return Decision{RollBack, fmt.Sprintf("the new revision's error rate is %.1f%% (%d of %d), the old one's %.1f%%: over the %.1f points allowed",
				100*new.ErrorRate(), new.Errors, new.Requests, 100*old.ErrorRate(), 100*t.MaxErrorRateIncrease)}
		}
		if old.Requests > 0 && old.P99 > 0 && float64(new.P99) > t.MaxP99Ratio*float64(old.P99) && new.P99-old.P99 > t.MinP99Increase {
			return Decision{RollBack, fmt.Sprintf("the new revision's p99 is %s, the old one's %s: over the %.2gx allowed",
				new.P99.Round(time.Microsecond), old.P99.Round(time.Microsecond), t.MaxP99Ratio)}
		}
	}
	if left := since.Add(t.Pause).Sub(now); left > 0 {
		return Decision{Hold, fmt.Sprintf("the step's pause ends in %s", left.Round(time.Second))}
	}
	if new.Requests < t.MinRequests {
		return Decision{Hold, fmt.Sprintf("waiting for traffic: the new revision answered %d of the %d requests judged", new.Requests, t.MinRequests)}
	}
	return Decision{Promote, fmt.Sprintf("within the thresholds over %d requests", new.Requests)}
}
