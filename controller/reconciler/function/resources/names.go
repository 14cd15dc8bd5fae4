package resources

import (
	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// Names of a Function's children: each is named after the Function.
func DeploymentName(f *v1alpha1.Function) string { return f.Name }

// ServiceName is the name of the Function's Service.
func ServiceName(f *v1alpha1.Function) string { return f.Name }

// HPAName is the name of the Function's HorizontalPodAutoscaler.
func HPAName(f *v1alpha1.Function) string { return f.Name }

// Selector selects the pods of a Function.
func Selector(f *v1alpha1.Function) map[string]string {
	return map[string]string{fn.FunctionLabelKey: f.Name}
}

// Labels are the labels of every child of a Function: the user's labels, the function label and
// the standard app.kubernetes.io ones.
func Labels(f *v1alpha1.Function) map[string]string {
	l := make(map[string]string, len(f.Labels)+3)
	for k, v := range f.Labels {
		l[k] = v
	}
	l[fn.FunctionLabelKey] = f.Name
	l["app.kubernetes.io/name"] = f.Name
	l["app.kubernetes.io/managed-by"] = "fn"
	return l
}
