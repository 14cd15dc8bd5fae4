package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"knative.dev/pkg/apis"
)

// Validate checks a rollout: its strategy's fields, steps increasing from 0 to 99.
func (r *Rollout) Validate() *apis.FieldError {
	var errs *apis.FieldError
	switch r.Strategy {
	case "", RolloutRolling, RolloutCanary, RolloutBatched:
	default:
		errs = errs.Also(apis.ErrInvalidValue(r.Strategy, "strategy", "want rolling, canary or batched"))
	}
	for i, s := range r.Steps {
		switch {
		case s < 0 || s > 99:
			errs = errs.Also(apis.ErrInvalidArrayValue(s, "steps", i).Also(&apis.FieldError{Message: "want a percent from 0 to 99: the new revision takes 100 after the last step", Paths: []string{fmt.Sprintf("steps[%d]", i)}}))
		case i > 0 && s <= r.Steps[i-1]:
			errs = errs.Also(&apis.FieldError{Message: fmt.Sprintf("invalid value: %d: want more than the step before (%d)", s, r.Steps[i-1]), Paths: []string{fmt.Sprintf("steps[%d]", i)}})
		}
	}
	if r.Pause != nil && r.Pause.Duration < time.Second {
		errs = errs.Also(apis.ErrInvalidValue(r.Pause.Duration.String(), "pause", "want a duration of 1s or more"))
	}
	if b := r.BatchSize; b != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(b, 100, true); err != nil || n < 1 || (b.Type == intstr.String && n > 100) {
			errs = errs.Also(apis.ErrInvalidValue(b.String(), "batchSize", "want a replica count of 1 or more, or a share such as 25%"))
		}
	}
	return errs
}

// StrategyOf is the spec's rollout strategy, rolling when none is set.
func (s *FunctionSpec) StrategyOf() RolloutStrategy {
	if s.Rollout == nil || s.Rollout.Strategy == "" {
		return RolloutRolling
	}
	return s.Rollout.Strategy
}

// CanarySteps are the rollout's steps, or DefaultCanarySteps.
func (r *Rollout) CanarySteps() []int32 {
	if r == nil || len(r.Steps) == 0 {
		return DefaultCanarySteps
	}
	return r.Steps
}

// PauseOf is how long a step lasts at least: the rollout's pause, else def.
func (r *Rollout) PauseOf(def time.Duration) time.Duration {
	if r == nil || r.Pause == nil {
		return def
	}
	return r.Pause.Duration
}

// Batch is how many of total replicas a batched rollout replaces at a time (at least 1).
func (r *Rollout) Batch(total int32) int32 {
	if r == nil || r.BatchSize == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(r.BatchSize, int(total), true)
	if err != nil || n < 1 {
		return 1
	}
	return int32(n)
}

// RevisionHistoryOf is how many revisions are kept.
func (s *FunctionSpec) RevisionHistoryOf() int32 {
	if s.RevisionHistory == nil {
		return DefaultRevisionHistory
	}
	return *s.RevisionHistory
}

// Template is what runs of a Function: a change of any of it makes a new revision. The rest of
// the spec (scale, access, rate limit, delivery, schedules, rollout) applies to every revision
// at once.
type Template struct {
	Image       string                      `json:"image"`
	Env         []corev1.EnvVar             `json:"env,omitempty"`
	EnvFrom     []corev1.EnvFromSource      `json:"envFrom,omitempty"`
	Resources   corev1.ResourceRequirements `json:"resources,omitempty"`
	Timeout     *metav1.Duration            `json:"timeout,omitempty"`
	Concurrency *int32                      `json:"concurrency,omitempty"`
}

// TemplateOf is what runs of spec s.
func (s *FunctionSpec) TemplateOf() Template {
	return Template{Image: s.Image, Env: s.Env, EnvFrom: s.EnvFrom, Resources: s.Resources, Timeout: s.Timeout, Concurrency: s.Concurrency}
}

// Apply sets what runs of spec s to t.
func (t Template) Apply(s *FunctionSpec) {
	s.Image, s.Env, s.EnvFrom, s.Resources, s.Timeout, s.Concurrency = t.Image, t.Env, t.EnvFrom, t.Resources, t.Timeout, t.Concurrency
}

// Hash identifies the template: equal templates have equal hashes.
func (t Template) Hash() string {
	b, _ := json.Marshal(t) // of plain types: cannot fail
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// RevisionName is the name of function's revision number n.
func RevisionName(function string, n int64) string { return fmt.Sprintf("%s-%05d", function, n) }
