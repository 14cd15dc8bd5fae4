// Package v1alpha1 is version v1alpha1 of the fnkit.dev API: the Function resource.
//
// +k8s:deepcopy-gen=package
// +groupName=fnkit.dev
package v1alpha1
