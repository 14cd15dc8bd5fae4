package autoscaler

import "time"

// Report is what one gateway saw of the functions it serves during one period (about a second).
// Gateways send one per period, and one at once (Poke) when requests are held at zero.
type Report struct {
	// Gateway identifies the gateway replica (its pod name, or a random id).
	Gateway string `json:"gateway"`
	// Period is the time the report covers.
	Period time.Duration `json:"period"`
	// Poke asks for a decision now, not at the next tick: a function has requests held.
	Poke bool `json:"poke,omitempty"`
	// Functions lists the functions with activity in the period or requests now; the others
	// had none.
	Functions []Stat `json:"functions"`
}

// Stat is one function's figures in a Report.
type Stat struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Concurrency is the average number of requests in flight (forwarded or held) in the period.
	Concurrency float64 `json:"concurrency"`
	// Requests is the number of requests that arrived in the period.
	Requests uint64 `json:"requests"`
	// InFlight and Held are the requests forwarded and held at the end of the period.
	InFlight int64 `json:"inFlight"`
	Held     int64 `json:"held"`
	// Errors is how many of the period's answers were 5xx or not given (the gateway's 502 and
	// 504); Durations counts the period's answers by duration, per bucket of DurationBounds
	// (the last: longer than all). A canary's analysis reads them.
	Errors    uint64   `json:"errors,omitempty"`
	Durations []uint64 `json:"durations,omitempty"`
}

// DurationBounds are the upper bounds of the buckets of Stat.Durations.
var DurationBounds = []time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
}
