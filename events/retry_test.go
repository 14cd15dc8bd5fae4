package events

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	p := Policy{Attempts: 4, Backoff: time.Second, MaxBackoff: 3 * time.Second, MaxAge: time.Minute, Jitter: 0.1}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		a      Attempt
		now    time.Time
		spread float64
		want   Decision
		reason string // a part of the reason
	}{
		{name: "200 is done", a: Attempt{N: 1, Status: 200}, now: t0, want: Decision{Verdict: Done}},
		{name: "202 is done", a: Attempt{N: 3, Status: 202}, now: t0, want: Decision{Verdict: Done}},
		{name: "a redirect is an answer", a: Attempt{N: 1, Status: 302}, now: t0, want: Decision{Verdict: Done}},
		{name: "400 is final at once", a: Attempt{N: 1, Status: 400}, now: t0, want: Decision{Verdict: Dead}, reason: "answered 400"},
		{name: "404 is final", a: Attempt{N: 2, Status: 404}, now: t0, want: Decision{Verdict: Dead}, reason: "answered 404"},
		{name: "a network error is tried again after the backoff", a: Attempt{N: 1}, now: t0, spread: 0.5, want: Decision{Verdict: Retry, After: time.Second}},
		{name: "408 is tried again", a: Attempt{N: 1, Status: 408}, now: t0, spread: 0.5, want: Decision{Verdict: Retry, After: time.Second}},
		{name: "500: the wait doubles", a: Attempt{N: 2, Status: 500}, now: t0, spread: 0.5, want: Decision{Verdict: Retry, After: 2 * time.Second}},
		{name: "503: the wait is capped", a: Attempt{N: 3, Status: 503}, now: t0, spread: 0.5, want: Decision{Verdict: Retry, After: 3 * time.Second}},
		{name: "jitter low end", a: Attempt{N: 2, Status: 500}, now: t0, spread: 0, want: Decision{Verdict: Retry, After: 1800 * time.Millisecond}},
		{name: "jitter high end", a: Attempt{N: 2, Status: 500}, now: t0, spread: 0.999, want: Decision{Verdict: Retry, After: 2199600 * time.Microsecond}},
		{name: "429's Retry-After over the backoff wins", a: Attempt{N: 1, Status: 429, RetryAfter: 10 * time.Second}, now: t0, spread: 0.5, want: Decision{Verdict: Retry, After: 10 * time.Second}},
		{name: "a Retry-After under the backoff does not shorten it", a: Attempt{N: 2, Status: 429, RetryAfter: time.Millisecond}, now: t0, spread: 0.5, want: Decision{Verdict: Retry, After: 2 * time.Second}},
		{name: "the last attempt failed: dead", a: Attempt{N: 4, Status: 500}, now: t0, want: Decision{Verdict: Dead}, reason: "answered 500 after 4 attempts"},
		{name: "unreachable to the end: dead", a: Attempt{N: 4}, now: t0, want: Decision{Verdict: Dead}, reason: "could not be reached after 4 attempts"},
		{name: "the next try would be past the maximum age: dead", a: Attempt{N: 1, Status: 500}, now: t0.Add(59500 * time.Millisecond), spread: 0.5, want: Decision{Verdict: Dead}, reason: "maximum age of 1m0s"},
		{name: "just within the maximum age: tried", a: Attempt{N: 1, Status: 500}, now: t0.Add(59 * time.Second), spread: 0.5, want: Decision{Verdict: Retry, After: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(p, tt.a, t0, tt.now, tt.spread)
			if got.Verdict != tt.want.Verdict || got.After != tt.want.After {
				t.Fatalf("Decide = %v after %s (%q), want %v after %s", got.Verdict, got.After, got.Reason, tt.want.Verdict, tt.want.After)
			}
			if !strings.Contains(got.Reason, tt.reason) {
				t.Fatalf("reason %q does not say %q", got.Reason, tt.reason)
			}
		})
	}
}

// Without a maximum age, a call is tried as long as its attempts last.
func TestDecideNoMaxAge(t *testing.T) {
	p := Policy{Attempts: 3, Backoff: time.Hour, MaxBackoff: time.Hour}
	t0 := time.Now()
	if got := Decide(p, Attempt{N: 2, Status: 502}, t0, t0.Add(1000*time.Hour), 0.5); got.Verdict != Retry || got.After != time.Hour {
		t.Fatalf("Decide = %+v, want a retry after 1h", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy.Validate(); err != nil {
		t.Fatalf("the default policy: %v", err)
	}
	for _, tt := range []struct {
		p    Policy
		want string
	}{
		{Policy{Attempts: 0, Backoff: time.Second, MaxBackoff: time.Second}, "attempts: 0"},
		{Policy{Attempts: 1, Backoff: 0, MaxBackoff: time.Second}, "backoff: 0s"},
		{Policy{Attempts: 1, Backoff: time.Minute, MaxBackoff: time.Second}, "maxBackoff: 1s is under backoff 1m0s"},
		{Policy{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Second, MaxAge: -time.Second}, "maxAge: -1s"},
		{Policy{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Second, Jitter: 1}, "jitter: 1"},
	} {
		err := tt.p.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.p, err, tt.want)
		}
	}
}
