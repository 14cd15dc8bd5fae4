// Package fn holds the fnkit.dev API group's name and its well-known labels.
package fn

const (
	// GroupName is the API group of fn's resources.
	GroupName = "fnkit.dev"
	// FunctionLabelKey labels every child of a Function with the Function's name.
	FunctionLabelKey = GroupName + "/function"
)
