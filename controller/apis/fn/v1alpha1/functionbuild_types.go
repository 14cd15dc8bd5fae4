package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/kmeta"
)

// FunctionBuild is one build of a Function from git, made by fn-builder for one trigger (a
// push to its built-in remote, or a webhook's push): what was built, and how it went. A
// Function owns its builds; the controller keeps the newest few (FunctionBuildsKept) of each.
// A build that succeeds writes its image into the Function's spec, so the Function stays the
// one record of what runs.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=functionbuilds,singular=functionbuild,shortName=fnbuild;fnbuilds,categories=fn
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.function`
// +kubebuilder:printcolumn:name="Commit",type=string,JSONPath=`.spec.git.commit`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].reason`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Started",type=date,JSONPath=`.status.startTime`
// +kubebuilder:printcolumn:name="Completed",type=date,JSONPath=`.status.completionTime`,priority=1
type FunctionBuild struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FunctionBuildSpec   `json:"spec,omitempty"`
	Status FunctionBuildStatus `json:"status,omitempty"`
}

var (
	_ kmeta.OwnerRefable = (*FunctionBuild)(nil)
	_ duckv1.KRShaped    = (*FunctionBuild)(nil)
)

// BuildTrigger is what started a build.
//
// +kubebuilder:validation:Enum=push;deploy;github;gitea;gitlab
type BuildTrigger string

// The triggers of builds.
const (
	// TriggerPush is a git push to fn-builder's own remote.
	TriggerPush BuildTrigger = "push"
	// TriggerDeploy is fn deploy --git: a build of a branch's head.
	TriggerDeploy BuildTrigger = "deploy"
	// TriggerGitHub, TriggerGitea and TriggerGitLab are those hosts' push webhooks.
	TriggerGitHub BuildTrigger = "github"
	TriggerGitea  BuildTrigger = "gitea"
	TriggerGitLab BuildTrigger = "gitlab"
)

// FunctionBuildSpec is what a build builds.
type FunctionBuildSpec struct {
	// Function is the name of the Function (in this namespace) the build is for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Function string `json:"function"`
	// Trigger is what started the build.
	Trigger BuildTrigger `json:"trigger"`
	// Delivery is the webhook delivery's id (webhook triggers).
	// +optional
	Delivery string `json:"delivery,omitempty"`
	// User is who pushed, as the trigger says.
	// +optional
	User string `json:"user,omitempty"`
	// Git is the commit built.
	Git BuildGitSource `json:"git"`
}

// BuildGitSource is one commit of a directory of a repository.
type BuildGitSource struct {
	// URL is the repository (its clone URL, or fn-builder's remote's path).
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Ref is the ref pushed, e.g. refs/heads/main.
	// +optional
	Ref string `json:"ref,omitempty"`
	// Commit is the commit's full hash.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{40}([0-9a-f]{24})?$`
	Commit string `json:"commit"`
	// Path is the function's directory in the repository (empty: its root).
	// +optional
	Path string `json:"path,omitempty"`
}

// FunctionBuildStatus is how a build went.
type FunctionBuildStatus struct {
	duckv1.Status `json:",inline"`

	// Image is the image built, by digest.
	// +optional
	Image string `json:"image,omitempty"`
	// StartTime is when the build began to run (after waiting its turn).
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when it ended, however it ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// LogTail is the end of the build's log (at most FunctionBuildLogTail bytes).
	// +optional
	LogTail string `json:"logTail,omitempty"`
}

// FunctionBuildList is a list of FunctionBuilds.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type FunctionBuildList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []FunctionBuild `json:"items"`
}

// GetGroupVersionKind implements kmeta.OwnerRefable.
func (*FunctionBuild) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("FunctionBuild")
}

// GetStatus implements duckv1.KRShaped.
func (b *FunctionBuild) GetStatus() *duckv1.Status { return &b.Status.Status }

// GetConditionSet implements duckv1.KRShaped.
func (*FunctionBuild) GetConditionSet() apis.ConditionSet { return buildCondSet }
