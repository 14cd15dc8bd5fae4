package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// StartDeadline is how long a new revision's replicas have to become ready: past it, the
// rollout goes back.
const StartDeadline = 2 * time.Minute

// Observed is what a rollout's next move depends on, read by the reconciler.
type Observed struct {
	Now time.Time
	// Rollout is the spec's; Thresholds its analysis's.
	Rollout    *v1alpha1.Rollout
	Thresholds Thresholds
	// Ready is the new revision's ready replicas; Wanted the replicas it was given (a batch).
	Ready, Wanted int32
	// StableRolledOut reports, while promoting, that the function's Deployment runs the new
	// revision on all its replicas, ready.
	StableRolledOut bool
	// Old and New are the stable and the new revision's figures since the step began.
	Old, New Figures
	// Paused, Resumed ("REVISION/STEP") and Aborted are fn rollout's annotations.
	Paused  bool
	Resumed string
	Aborted bool
}

// Next is where a rollout goes from s, and when to look again (0: at the next change). It is a
// pure function of s and o: the reconciler applies it.
func Next(s v1alpha1.RolloutStatus, o Observed) (v1alpha1.RolloutStatus, time.Duration) {
	if s.Phase.Done() {
		return s, 0
	}
	now := metav1.NewTime(o.Now)
	if o.Aborted {
		s.Phase, s.Percent, s.Reason, s.Message = v1alpha1.RolloutAborted, 0, "Aborted", "fn rollout abort stopped it: "+s.From+" keeps all traffic"
		return s, 0
	}
	if s.Phase == v1alpha1.RolloutPromoting {
		if o.StableRolledOut {
			s.Phase, s.Percent, s.Reason, s.Message = v1alpha1.RolloutSucceeded, 100, "Promoted", s.Revision+" runs alone"
			return s, 0
		}
		return s, time.Second
	}
	if o.Paused {
		if s.Phase != v1alpha1.RolloutPaused {
			s.Phase, s.Reason, s.Message = v1alpha1.RolloutPaused, "Paused", "fn rollout resume lets it go on"
		}
		return s, 0
	}
	// The new revision's replicas must be ready first; the step's clock starts then.
	if o.Ready < max(o.Wanted, 1) {
		if s.Reason != "Starting" {
			s.Reason, s.StepStarted = "Starting", now
		}
		s.Phase = v1alpha1.RolloutProgressing
		if s.Strategy == v1alpha1.RolloutCanary {
			s.Percent = 0
		}
		if waited := o.Now.Sub(s.StepStarted.Time); waited > StartDeadline {
			s.Phase, s.Percent, s.Reason = v1alpha1.RolloutRolledBack, 0, "NotReady"
			s.Message = fmt.Sprintf("%s had %d of %d replicas ready after %s: %s keeps all traffic", s.Revision, o.Ready, max(o.Wanted, 1), StartDeadline, s.From)
			return s, 0
		}
		s.Message = fmt.Sprintf("waiting for %s's replicas: %d of %d ready", s.Revision, o.Ready, max(o.Wanted, 1))
		return s, time.Second
	}
	if s.Reason == "Starting" {
		s.Reason, s.StepStarted = "", now
	}
	switch s.Strategy {
	case v1alpha1.RolloutCanary:
		return nextCanary(s, o, now)
	default:
		return nextBatch(s, o, now)
	}
}

func nextCanary(s v1alpha1.RolloutStatus, o Observed, now metav1.Time) (v1alpha1.RolloutStatus, time.Duration) {
	steps := o.Rollout.CanarySteps()
	s.Phase = v1alpha1.RolloutProgressing
	if int(s.Step) >= len(steps) {
		s.Step = int32(len(steps) - 1)
	}
	s.Percent = steps[s.Step]
	d := Analyze(o.Thresholds, o.Old, o.New, s.StepStarted.Time, o.Now)
	s.Message = d.Reason
	switch d.Verdict {
	case RollBack:
		s.Phase, s.Percent, s.Reason = v1alpha1.RolloutRolledBack, 0, "AnalysisFailed"
		s.Message = fmt.Sprintf("at %d%%, %s: %s keeps all traffic", steps[s.Step], d.Reason, s.From)
		return s, 0
	case Promote:
		if int(s.Step)+1 < len(steps) {
			s.Step++
			s.Percent, s.StepStarted, s.Reason = steps[s.Step], now, "Promoted"
			s.Message = fmt.Sprintf("step %d passed (%s): on to %d%%", s.Step, d.Reason, s.Percent)
			return s, time.Second
		}
		s.Phase, s.Percent, s.Reason = v1alpha1.RolloutPromoting, 100, "Promoting"
		s.Message = fmt.Sprintf("every step passed (%s): %s takes all traffic while it replaces %s", d.Reason, s.Revision, s.From)
		return s, time.Second
	}
	s.Reason = "Analyzing"
	return s, AnalysisInterval
}

// AnalysisInterval is how often a canary's figures are judged: a bad canary goes back within
// one of the gateways' report periods (a second) and this.
const AnalysisInterval = 250 * time.Millisecond

func nextBatch(s v1alpha1.RolloutStatus, o Observed, now metav1.Time) (v1alpha1.RolloutStatus, time.Duration) {
	batch := o.Rollout.Batch(s.Total)
	ready := fmt.Sprintf("batch %d ready: %d of %d replicas run %s", s.Step+1, s.Replicas, s.Total, s.Revision)
	resumed := o.Resumed == fmt.Sprintf("%s/%d", s.Revision, s.Step)
	proceed := resumed
	var wait time.Duration
	if p := o.Rollout.PauseOf(0); p > 0 && !resumed {
		left := s.StepStarted.Add(p).Sub(o.Now)
		proceed, wait = left <= 0, left
	}
	if !proceed {
		s.Phase, s.Reason = v1alpha1.RolloutPaused, "BatchReady"
		if wait > 0 {
			s.Phase = v1alpha1.RolloutProgressing
			s.Message = fmt.Sprintf("%s; the next batch in %s", ready, wait.Round(time.Second))
			return s, wait
		}
		s.Message = ready + "; fn rollout resume goes on"
		return s, 0
	}
	s.Phase = v1alpha1.RolloutProgressing
	if s.Replicas >= s.Total {
		s.Phase, s.Percent, s.Reason = v1alpha1.RolloutPromoting, 100, "Promoting"
		s.Message = fmt.Sprintf("every batch passed: %s replaces %s", s.Revision, s.From)
		return s, time.Second
	}
	s.Step++
	s.Replicas = min(s.Total, s.Replicas+batch)
	s.Percent = s.Replicas * 100 / max(s.Total, 1)
	s.StepStarted, s.Reason = now, "Batch"
	s.Message = fmt.Sprintf("batch %d: %d of %d replicas on %s", s.Step+1, s.Replicas, s.Total, s.Revision)
	return s, time.Second
}
