package rollout

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

func TestNext(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	canary := &v1alpha1.Rollout{Strategy: v1alpha1.RolloutCanary, Steps: []int32{20, 50}, Pause: &metav1.Duration{Duration: 30 * time.Second}}
	batch1 := intstr.FromInt32(1)
	batched := &v1alpha1.Rollout{Strategy: v1alpha1.RolloutBatched, BatchSize: &batch1}
	th := Thresholds{MaxErrorRateIncrease: 0.01, MaxP99Ratio: 1.5, MinP99Increase: 5 * time.Millisecond, MinRequests: 20, Pause: 30 * time.Second}
	good := Figures{Requests: 500, P99: time.Millisecond}
	bad := Figures{Requests: 30, Errors: 30, P99: time.Millisecond}
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }
	step := func(n int32, pct int32, reason string) v1alpha1.RolloutStatus {
		return v1alpha1.RolloutStatus{Revision: "f-00002", From: "f-00001", Strategy: v1alpha1.RolloutCanary, Phase: v1alpha1.RolloutProgressing,
			Step: n, Percent: pct, StepStarted: at(0), Reason: reason}
	}
	batch := func(n, replicas int32, phase v1alpha1.RolloutPhase) v1alpha1.RolloutStatus {
		return v1alpha1.RolloutStatus{Revision: "f-00002", From: "f-00001", Strategy: v1alpha1.RolloutBatched, Phase: phase,
			Step: n, Replicas: replicas, Total: 4, Percent: replicas * 25, StepStarted: at(0)}
	}
	for _, tt := range []struct {
		name      string
		s         v1alpha1.RolloutStatus
		o         Observed
		phase     v1alpha1.RolloutPhase
		step, pct int32
		started   time.Duration // the step's start after t0
		msg       string
	}{
		{"canary not ready: no traffic yet, its clock not started", step(0, 0, ""),
			Observed{Now: t0.Add(5 * time.Second), Rollout: canary, Thresholds: th, Wanted: 1}, v1alpha1.RolloutProgressing, 0, 0, 5 * time.Second, "0 of 1 ready"},
		{"canary ready: its share, the step's clock from now", step(0, 0, "Starting"),
			Observed{Now: t0.Add(8 * time.Second), Rollout: canary, Thresholds: th, Ready: 1, Wanted: 1, Old: good}, v1alpha1.RolloutProgressing, 0, 20, 8 * time.Second, "pause ends"},
		{"never ready: back after the deadline", step(0, 0, "Starting"),
			Observed{Now: t0.Add(StartDeadline + time.Second), Rollout: canary, Thresholds: th, Wanted: 1}, v1alpha1.RolloutRolledBack, 0, 0, 0, "after 2m0s"},
		{"within the thresholds, the pause not over: hold", step(0, 20, ""),
			Observed{Now: t0.Add(10 * time.Second), Rollout: canary, Thresholds: th, Ready: 1, Wanted: 1, Old: good, New: good}, v1alpha1.RolloutProgressing, 0, 20, 0, "pause ends in 20s"},
		{"within the thresholds past the pause: the next step", step(0, 20, ""),
			Observed{Now: t0.Add(31 * time.Second), Rollout: canary, Thresholds: th, Ready: 1, Wanted: 1, Old: good, New: good}, v1alpha1.RolloutProgressing, 1, 50, 31 * time.Second, "on to 50%"},
		{"the last step passed: promoting with all traffic", step(1, 50, ""),
			Observed{Now: t0.Add(31 * time.Second), Rollout: canary, Thresholds: th, Ready: 1, Wanted: 1, Old: good, New: good}, v1alpha1.RolloutPromoting, 1, 100, 0, "takes all traffic"},
		{"all errors: rolled back at once, before the pause", step(0, 20, ""),
			Observed{Now: t0.Add(3 * time.Second), Rollout: canary, Thresholds: th, Ready: 1, Wanted: 1, Old: good, New: bad}, v1alpha1.RolloutRolledBack, 0, 0, 0, "error rate is 100.0%"},
		{"promoting: done once the function's Deployment runs it", v1alpha1.RolloutStatus{Revision: "f-00002", Strategy: v1alpha1.RolloutCanary, Phase: v1alpha1.RolloutPromoting, Percent: 100},
			Observed{Now: t0, Rollout: canary, StableRolledOut: true}, v1alpha1.RolloutSucceeded, 0, 100, -1, "runs alone"},
		{"promoting: waits for the function's Deployment", v1alpha1.RolloutStatus{Revision: "f-00002", Strategy: v1alpha1.RolloutCanary, Phase: v1alpha1.RolloutPromoting, Percent: 100},
			Observed{Now: t0, Rollout: canary}, v1alpha1.RolloutPromoting, 0, 100, -1, ""},
		{"aborted: all traffic back", step(0, 20, ""),
			Observed{Now: t0, Rollout: canary, Aborted: true, Ready: 1}, v1alpha1.RolloutAborted, 0, 0, 0, "abort"},
		{"paused: held at its step", step(0, 20, ""),
			Observed{Now: t0.Add(time.Hour), Rollout: canary, Thresholds: th, Paused: true, Ready: 1, Old: good, New: good}, v1alpha1.RolloutPaused, 0, 20, 0, "resume"},
		{"a batch ready: paused until resumed", batch(0, 1, v1alpha1.RolloutProgressing),
			Observed{Now: t0.Add(time.Hour), Rollout: batched, Ready: 1, Wanted: 1}, v1alpha1.RolloutPaused, 0, 25, 0, "batch 1 ready"},
		{"a batch resumed: the next", batch(0, 1, v1alpha1.RolloutPaused),
			Observed{Now: t0.Add(time.Hour), Rollout: batched, Ready: 1, Wanted: 1, Resumed: "f-00002/0"}, v1alpha1.RolloutProgressing, 1, 50, time.Hour, "batch 2"},
		{"an older step's resume does not let this one go", batch(1, 2, v1alpha1.RolloutPaused),
			Observed{Now: t0.Add(time.Hour), Rollout: batched, Ready: 2, Wanted: 2, Resumed: "f-00002/0"}, v1alpha1.RolloutPaused, 1, 50, 0, "batch 2 ready"},
		{"a batch not ready yet: waits", batch(1, 2, v1alpha1.RolloutProgressing),
			Observed{Now: t0.Add(time.Minute), Rollout: batched, Ready: 1, Wanted: 2}, v1alpha1.RolloutProgressing, 1, 50, time.Minute, "1 of 2 ready"},
		{"the last batch resumed: promoting", batch(3, 4, v1alpha1.RolloutPaused),
			Observed{Now: t0.Add(time.Hour), Rollout: batched, Ready: 4, Wanted: 4, Resumed: "f-00002/3"}, v1alpha1.RolloutPromoting, 3, 100, 0, "every batch passed"},
		{"a batch with a pause goes on by itself after it", batch(0, 1, v1alpha1.RolloutProgressing),
			Observed{Now: t0.Add(11 * time.Second), Rollout: &v1alpha1.Rollout{Strategy: v1alpha1.RolloutBatched, Pause: &metav1.Duration{Duration: 10 * time.Second}}, Ready: 1, Wanted: 1}, v1alpha1.RolloutProgressing, 1, 50, 11 * time.Second, "batch 2"},
		{"a finished rollout stays", v1alpha1.RolloutStatus{Phase: v1alpha1.RolloutRolledBack, Message: "kept"},
			Observed{Now: t0, Rollout: canary, Aborted: true}, v1alpha1.RolloutRolledBack, 0, 0, -1, "kept"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Next(tt.s, tt.o)
			if got.Phase != tt.phase || got.Step != tt.step || got.Percent != tt.pct {
				t.Errorf("Next = %s step %d at %d%%, want %s step %d at %d%% (%s)", got.Phase, got.Step, got.Percent, tt.phase, tt.step, tt.pct, got.Message)
			}
			if tt.started >= 0 && !got.StepStarted.Time.Equal(t0.Add(tt.started)) {
				t.Errorf("the step started at %s, want %s", got.StepStarted.Sub(t0), tt.started)
			}
			if !strings.Contains(got.Message, tt.msg) {
				t.Errorf("message %q, want it to say %q", got.Message, tt.msg)
			}
		})
	}
}
