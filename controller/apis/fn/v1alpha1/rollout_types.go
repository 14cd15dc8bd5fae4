package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RolloutStrategy is how a new revision replaces the running one.
//
// +kubebuilder:validation:Enum=rolling;canary;batched
type RolloutStrategy string

const (
	// RolloutRolling replaces the replicas as a Deployment's rolling update does, at once.
	RolloutRolling RolloutStrategy = "rolling"
	// RolloutCanary gives the new revision a share of traffic step by step, judged at each
	// step against the running revision, and promotes it or rolls it back by itself.
	RolloutCanary RolloutStrategy = "canary"
	// RolloutBatched replaces the replicas in batches, pausing after each.
	RolloutBatched RolloutStrategy = "batched"
)

// Rollout is how a new revision of the function replaces the running one. A revision that
// ran before (fn rollback, or a spec set back) is rolled out at once, whatever the strategy.
//
// +kubebuilder:validation:XValidation:rule="!has(self.pause) || self.pause >= duration('1s')",message="must be a duration of 1s or more",fieldPath=".pause"
type Rollout struct {
	// Strategy is rolling (the default), canary or batched.
	// +optional
	Strategy RolloutStrategy `json:"strategy,omitempty"`
	// Steps are a canary's traffic shares in percent, increasing, each from 0 to 99 (default
	// 5, 25, 50); after the last the new revision takes all. A step of 0 takes no traffic: the
	// revision answers only when addressed (NAME@REVISION).
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=0
	// +kubebuilder:validation:items:Maximum=99
	Steps []int32 `json:"steps,omitempty"`
	// Pause is how long each canary step lasts at least (default 1m), and how long a batched
	// rollout waits after each batch is ready (default: until fn rollout resume).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	Pause *metav1.Duration `json:"pause,omitempty"`
	// Analysis bounds how much worse than the running revision a canary may do.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`
	// BatchSize is how many replicas a batched rollout replaces at a time: a count or a share
	// such as 25% (default 1).
	// +optional
	// +kubebuilder:validation:XIntOrString
	BatchSize *intstr.IntOrString `json:"batchSize,omitempty"`
}

// Analysis bounds a canary's figures against the running revision's over the same window.
type Analysis struct {
	// MaxErrorIncrease is how many points of error rate (5xx answers and requests not
	// answered) the canary may add to the running revision's (default 1).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxErrorIncrease *int32 `json:"maxErrorIncrease,omitempty"`
	// MaxLatencyPercent is the canary's p99 at most, as a percent of the running revision's
	// (default 150).
	// +optional
	// +kubebuilder:validation:Minimum=100
	MaxLatencyPercent *int32 `json:"maxLatencyPercent,omitempty"`
	// MinRequests is how many requests the canary must answer in a step before it is judged
	// (default 20).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinRequests *int32 `json:"minRequests,omitempty"`
}

// Defaults of rollouts.
const (
	DefaultRevisionHistory  int32 = 5
	MaxRevisionHistory      int32 = 50
	DefaultCanaryPause            = 60 // seconds
	DefaultMaxErrorIncrease int32 = 1
	DefaultMaxLatencyPct    int32 = 150
	DefaultMinRequests      int32 = 20
)

// DefaultCanarySteps are a canary's steps when none are given.
var DefaultCanarySteps = []int32{5, 25, 50}

// RevisionStatus is one revision of the function, as its status lists them.
type RevisionStatus struct {
	// Name is the revision's name: FUNCTION-NNNNN.
	Name string `json:"name"`
	// Number counts the function's revisions from 1.
	Number int64 `json:"number"`
	// Image is the revision's image.
	Image string `json:"image"`
	// Percent is its share of traffic now.
	Percent int32 `json:"percent"`
	// Created is when it was made.
	// +optional
	Created metav1.Time `json:"created,omitempty"`
}

// RolloutPhase is where a rollout is.
type RolloutPhase string

const (
	// RolloutProgressing: the new revision is taking traffic or replicas step by step.
	RolloutProgressing RolloutPhase = "Progressing"
	// RolloutPaused: waiting for fn rollout resume (or spec.rollout.paused set).
	RolloutPaused RolloutPhase = "Paused"
	// RolloutPromoting: the new revision has all traffic while it replaces the running one.
	RolloutPromoting RolloutPhase = "Promoting"
	// RolloutSucceeded: the new revision runs alone.
	RolloutSucceeded RolloutPhase = "Succeeded"
	// RolloutRolledBack: the analysis found the new revision worse; the running one kept all.
	RolloutRolledBack RolloutPhase = "RolledBack"
	// RolloutAborted: fn rollout abort stopped it; the running one kept all.
	RolloutAborted RolloutPhase = "Aborted"
)

// Done reports whether the phase is final.
func (p RolloutPhase) Done() bool {
	return p == RolloutSucceeded || p == RolloutRolledBack || p == RolloutAborted
}

// RolloutStatus is the rollout under way, or the last one.
type RolloutStatus struct {
	// Revision is the revision rolled out; From the one it replaces.
	Revision string `json:"revision"`
	From     string `json:"from,omitempty"`
	// Strategy is the rollout's strategy.
	Strategy RolloutStrategy `json:"strategy"`
	// Phase is where it is.
	Phase RolloutPhase `json:"phase"`
	// Step is the index of the current step (a canary's share, a batch) from 0.
	Step int32 `json:"step"`
	// Percent is the new revision's share of traffic now.
	Percent int32 `json:"percent"`
	// Replicas is, in a batched rollout, the new revision's replicas now, of Total.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// +optional
	Total int32 `json:"total,omitempty"`
	// StepStarted is when the current step began (or its batch was ready).
	// +optional
	StepStarted metav1.Time `json:"stepStarted,omitempty"`
	// Reason and Message say why it is where it is: the analysis's last decision.
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}
