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
