package events

import (
	"fmt"
	"net/http"
	"time"
)

// Policy is how a function's asynchronous calls are delivered.
type Policy struct {
	// Attempts is how many times a call is tried in all (at least 1).
	Attempts int
	// Backoff is the wait before the second attempt; each later wait doubles, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// MaxAge is how long after it was accepted a call may still be tried (0: no bound).
	MaxAge time.Duration
	// Jitter spreads each wait over ±Jitter of it (0.1: ±10%), so that calls failed together are
	// not tried again together.
	Jitter float64
}

// DefaultPolicy is the delivery of a function that says nothing of its own.
var DefaultPolicy = Policy{Attempts: 5, Backoff: time.Second, MaxBackoff: 5 * time.Minute, MaxAge: 24 * time.Hour, Jitter: 0.1}

// Validate reports what is wrong with p, naming the field.
func (p Policy) Validate() error {
	switch {
	case p.Attempts < 1:
		return fmt.Errorf("attempts: %d; want 1 or more", p.Attempts)
	case p.Backoff <= 0:
		return fmt.Errorf("backoff: %s; want more than 0", p.Backoff)
	case p.MaxBackoff < p.Backoff:
		return fmt.Errorf("maxBackoff: %s is under backoff %s", p.MaxBackoff, p.Backoff)
	case p.MaxAge < 0:
		return fmt.Errorf("maxAge: %s; want 0 (no bound) or more", p.MaxAge)
	case p.Jitter < 0 || p.Jitter >= 1:
		return fmt.Errorf("jitter: %g; want at least 0 and under 1", p.Jitter)
	}
	return nil
}

// Attempt is the outcome of one try of a call.
type Attempt struct {
	// N is which attempt it was, from 1.
	N int
	// Status is the function's answer (0: none, the request failed on the network).
	Status int
	// RetryAfter is what the answer's Retry-After asked for (0: nothing).
	RetryAfter time.Duration
}

// Verdict is what becomes of a call after an attempt.
type Verdict int

const (
	// Done: the function answered it (2xx, or 3xx: an answer, not a failure).
	Done Verdict = iota
	// Retry: tried again after Decision.After.
	Retry
	// Dead: given up, to the dead letters with its last answer.
	Dead
)

func (v Verdict) String() string {
	return [...]string{"done", "retry", "dead"}[v]
}

// Decision is a Verdict, its wait (Retry) and why (Dead).
type Decision struct {
	Verdict Verdict
	After   time.Duration
	Reason  string
}

// Retriable reports whether a call answered with status (0: a network error) may succeed if
// tried again: a network error, 408, 429 and 5xx. Any other 4xx is the function refusing the
// call as it is.
func Retriable(status int) bool {
	return status == 0 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// Decide decides what becomes of a call accepted at accepted after attempt a, at now; spread, in
// [0, 1), picks the wait within the policy's jitter (give it a random number).
func Decide(p Policy, a Attempt, accepted, now time.Time, spread float64) Decision {
	switch {
	case a.Status >= 200 && a.Status < 400:
		return Decision{Verdict: Done}
	case !Retriable(a.Status):
		return Decision{Verdict: Dead, Reason: fmt.Sprintf("the function answered %d, which retrying does not change", a.Status)}
	case a.N >= p.Attempts:
		return Decision{Verdict: Dead, Reason: fmt.Sprintf("%s after %d attempts", failure(a.Status), a.N)}
	}
	wait := p.Wait(a.N, spread)
	if a.RetryAfter > wait {
		wait = a.RetryAfter
	}
	if p.MaxAge > 0 && now.Add(wait).Sub(accepted) > p.MaxAge {
		return Decision{Verdict: Dead, Reason: fmt.Sprintf("%s after %d attempts; the next would be past its maximum age of %s", failure(a.Status), a.N, p.MaxAge)}
	}
	return Decision{Verdict: Retry, After: wait}
}

// Wait is the wait after failed attempt n (from 1): Backoff doubled n-1 times, at most
// MaxBackoff, spread within ±Jitter.
func (p Policy) Wait(n int, spread float64) time.Duration {
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return time.Duration(float64(d) * (1 + p.Jitter*(2*spread-1)))
}

func failure(status int) string {
	if status == 0 {
		return "the function could not be reached"
	}
	return fmt.Sprintf("the function answered %d", status)
}
