package autoscaler

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	"fnkit.dev/fn/controller/rollout"
)

// Figures sums the gateways' reports of Deployment k's requests that arrived after since, up to
// now, for a canary's analysis: requests, errors, and the p99 of their durations (the upper
// bound of the bucket it falls in). Every replica of the autoscaler keeps the reports, so any
// of them answers alike.
func (a *Autoscaler) Figures(k types.NamespacedName, since, now time.Time) rollout.Figures {
	a.mu.Lock()
	defer a.mu.Unlock()
	var f rollout.Figures
	s := a.series[k]
	if s == nil {
		return f
	}
	buckets := make([]uint64, len(DurationBounds)+1)
	for _, ss := range s.byGateway {
		for _, smp := range ss {
			if !smp.at.After(since) || smp.at.After(now) {
				continue
			}
			f.Errors += smp.Errors
			for i, n := range smp.Durations {
				if i < len(buckets) {
					buckets[i] += n
					f.Requests += n
				}
			}
		}
	}
	f.P99 = quantile(buckets, 0.99)
	return f
}

// quantile is the upper bound of the bucket where the q quantile of the counts falls (the
// largest bound for the last bucket); 0 without counts.
func quantile(buckets []uint64, q float64) time.Duration {
	var total uint64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, n := range buckets {
		seen += n
		if seen >= rank {
			if i < len(DurationBounds) {
				return DurationBounds[i]
			}
			break
		}
	}
	return DurationBounds[len(DurationBounds)-1]
}
