// Package fn holds the fnkit.dev API group's name and its well-known labels.
package fn

const (
	// GroupName is the API group of fn's resources.
	GroupName = "fnkit.dev"
	// FunctionLabelKey labels every child of a Function with the Function's name.
	FunctionLabelKey = GroupName + "/function"
)

// ScaleReasonAnnotation, on a Function, is fn's autoscaler's latest reason for its replica count
// (autoscaler.Reason*): the reconciler reports it in the Function's status.
const ScaleReasonAnnotation = "autoscaling." + GroupName + "/reason"

// RevisionLabelKey labels a revision's ControllerRevision, and the pods and Service of a
// revision under rollout, with the revision's name.
const RevisionLabelKey = GroupName + "/revision"

// Annotations that act on a Function's rollout (fn rollout): PausedAnnotation "true" holds it
// at its step; ResumedAnnotation "REVISION/STEP" lets that step of a batched rollout go on
// (or a paused one); AbortedAnnotation "REVISION" stops that revision's rollout and gives all
// traffic back to the stable revision.
const (
	PausedAnnotation  = "rollout." + GroupName + "/paused"
	ResumedAnnotation = "rollout." + GroupName + "/resumed"
	AbortedAnnotation = "rollout." + GroupName + "/aborted"
)

// RevisionHashAnnotation, on a revision's ControllerRevision, is the hash of what runs; the
// ReleasedAnnotation "true" marks a revision that once had all traffic.
const (
	RevisionHashAnnotation = GroupName + "/revision-hash"
	ReleasedAnnotation     = GroupName + "/released"
)
