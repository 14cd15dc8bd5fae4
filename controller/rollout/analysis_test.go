package rollout

import (
	"strings"
	"testing"
	"time"
)

func TestAnalyze(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	th := Thresholds{MaxErrorRateIncrease: 0.01, MaxP99Ratio: 1.5, MinP99Increase: 5 * time.Millisecond, MinRequests: 20, Pause: time.Minute}
	good := Figures{Requests: 1000, Errors: 2, P99: 10 * time.Millisecond}
	for _, c := range []struct {
		name     string
		old, new Figures
		at       time.Duration // after the step began
		want     Verdict
		reason   string
	}{
		{"all 500s: back at once, before the pause", good, Figures{Requests: 25, Errors: 25, P99: time.Millisecond}, 5 * time.Second, RollBack, "error rate is 100.0% (25 of 25)"},
		{"errors, too few to judge yet", good, Figures{Requests: 19, Errors: 19}, 5 * time.Second, Hold, "pause ends in 55s"},
		{"errors within the allowance", good, Figures{Requests: 1000, Errors: 12, P99: 10 * time.Millisecond}, 2 * time.Minute, Promote, "within the thresholds over 1000"},
		{"errors just over it", good, Figures{Requests: 1000, Errors: 13, P99: 10 * time.Millisecond}, 2 * time.Minute, RollBack, "over the 1.0 points"},
		{"an old revision failing as much", Figures{Requests: 100, Errors: 50, P99: time.Millisecond}, Figures{Requests: 100, Errors: 50, P99: time.Millisecond}, 2 * time.Minute, Promote, ""},
		{"slower past the ratio", good, Figures{Requests: 100, P99: 16 * time.Millisecond}, 10 * time.Second, RollBack, "p99 is 16ms, the old one's 10ms"},
		{"a fast function a bucket slower: not judged", Figures{Requests: 1000, P99: time.Millisecond}, Figures{Requests: 100, P99: 2500 * time.Microsecond}, 2 * time.Minute, Promote, ""},
		{"slower within the ratio", good, Figures{Requests: 100, P99: 15 * time.Millisecond}, 2 * time.Minute, Promote, ""},
		{"no old traffic: latency not judged", Figures{}, Figures{Requests: 100, P99: time.Second}, 2 * time.Minute, Promote, ""},
		{"no old traffic, errors judged absolutely", Figures{}, Figures{Requests: 100, Errors: 5}, 2 * time.Minute, RollBack, "error rate is 5.0%"},
		{"good, pause not over", good, good, 59 * time.Second, Hold, "pause ends in 1s"},
		{"good, pause over", good, good, time.Minute, Promote, ""},
		{"pause over, no traffic yet", good, Figures{Requests: 3}, 10 * time.Minute, Hold, "waiting for traffic: the new revision answered 3 of the 20"},
	} {
		d := Analyze(th, c.old, c.new, t0, t0.Add(c.at))
		if d.Verdict != c.want || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %s (%s), want %s (%q)", c.name, d.Verdict, d.Reason, c.want, c.reason)
		}
	}
	// MinRequests 0 judges from the first request; none at all is never judged.
	zero := th
	zero.MinRequests = 0
	if d := Analyze(zero, good, Figures{}, t0, t0.Add(time.Minute)); d.Verdict != Promote {
		t.Errorf("no minimum, no requests, pause over: %s (%s)", d.Verdict, d.Reason)
	}
	if d := Analyze(zero, good, Figures{Requests: 1, Errors: 1}, t0, t0); d.Verdict != RollBack {
		t.Errorf("no minimum, one error: %s (%s)", d.Verdict, d.Reason)
	}
}
