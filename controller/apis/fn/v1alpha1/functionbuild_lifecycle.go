package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
)

const (
	// FunctionBuildConditionSucceeded is Unknown while a build waits or runs, then True, or
	// False with one of the BuildReason reasons.
	FunctionBuildConditionSucceeded = apis.ConditionSucceeded

	// FunctionBuildsKept is how many builds of a Function the controller keeps (the newest).
	FunctionBuildsKept = 5
	// FunctionBuildLogTail is how much of a build's log its status keeps, from its end.
	FunctionBuildLogTail = 4 << 10

	// FunctionLabel names the Function of a FunctionBuild.
	FunctionLabel = "fnkit.dev/function"
)

// Reasons of a build's Succeeded condition.
const (
	BuildReasonPending     = "Pending"   // waiting for its turn
	BuildReasonRunning     = "Running"   // building
	BuildReasonSucceeded   = "Succeeded" // built and written into the Function
	BuildReasonFailed      = "BuildFailed"
	BuildReasonSuperseded  = "Superseded" // a newer build of the same Function replaced it
	BuildReasonTimeout     = "Timeout"
	BuildReasonClone       = "CloneFailed"  // the commit could not be fetched
	BuildReasonDeploy      = "DeployFailed" // built, but the Function could not take it
	BuildReasonInterrupted = "Interrupted"  // the builder stopped before the build ended
)

var buildCondSet = apis.NewBatchConditionSet()

// InitializeConditions marks the build pending.
func (s *FunctionBuildStatus) InitializeConditions() {
	buildCondSet.Manage(s).InitializeConditions()
	buildCondSet.Manage(s).MarkUnknown(FunctionBuildConditionSucceeded, BuildReasonPending, "waiting for a builder")
}

// GetCondition returns the condition of type t, if any.
func (s *FunctionBuildStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return buildCondSet.Manage(s).GetCondition(t)
}

// MarkRunning marks the build started at now.
func (s *FunctionBuildStatus) MarkRunning(now time.Time) {
	t := metav1.NewTime(now)
	s.StartTime = &t
	buildCondSet.Manage(s).MarkUnknown(FunctionBuildConditionSucceeded, BuildReasonRunning, "building")
}

// MarkSucceeded records the image built, at now.
func (s *FunctionBuildStatus) MarkSucceeded(image string, now time.Time) {
	s.Image = image
	s.complete(now)
	buildCondSet.Manage(s).MarkTrueWithReason(FunctionBuildConditionSucceeded, BuildReasonSucceeded, "built %s", image)
}

// MarkFailed records why the build ended without a deployed image, at now.
func (s *FunctionBuildStatus) MarkFailed(reason, message string, now time.Time) {
	s.complete(now)
	buildCondSet.Manage(s).MarkFalse(FunctionBuildConditionSucceeded, reason, "%s", message)
}

func (s *FunctionBuildStatus) complete(now time.Time) {
	t := metav1.NewTime(now)
	s.CompletionTime = &t
	if s.StartTime == nil {
		s.StartTime = &t
	}
}

// IsDone reports whether the build has ended.
func (s *FunctionBuildStatus) IsDone() bool {
	c := s.GetCondition(FunctionBuildConditionSucceeded)
	return c != nil && !c.IsUnknown()
}

// SetLogTail keeps the end of log, from a line's start where it can.
func (s *FunctionBuildStatus) SetLogTail(log string) {
	if len(log) > FunctionBuildLogTail {
		log = log[len(log)-FunctionBuildLogTail:]
		for i := 0; i < len(log) && i < 256; i++ {
			if log[i] == '\n' {
				log = log[i+1:]
				break
			}
		}
	}
	s.LogTail = log
}
