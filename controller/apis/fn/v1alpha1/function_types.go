package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/kmeta"
)

// Function is a Go function served on Kubernetes: fn's controller runs its image as a
// Deployment behind a Service, scaled by an autoscaler.
//
// +genclient
// +genreconciler
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=functions,singular=function,shortName=fns,categories=all;fn
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Ready Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Scale",type=string,JSONPath=`.status.conditions[?(@.type=="AutoscalerReady")].reason`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Function struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FunctionSpec   `json:"spec,omitempty"`
	Status FunctionStatus `json:"status,omitempty"`
}

var (
	_ apis.Validatable   = (*Function)(nil)
	_ apis.Defaultable   = (*Function)(nil)
	_ kmeta.OwnerRefable = (*Function)(nil)
	_ duckv1.KRShaped    = (*Function)(nil)
)

// FunctionSpec is what the user asks for.
//
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || self.timeout > duration('0s')",message="must be a duration > 0, such as 30s",fieldPath=".timeout"
type FunctionSpec struct {
	// Image is the function's image. fn deploy and git builds pin it by digest; a tag is
	// accepted in a Function written otherwise, and is pulled as Kubernetes pulls a tag: a tag
	// moved to another image is not rolled out until the Function changes.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`
	Image string `json:"image"`

	// Source names what git builds watch and build into Image.
	// +optional
	Source *Source `json:"source,omitempty"`

	// Env are environment variables of the function's container.
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// EnvFrom fills the environment from ConfigMaps and Secrets.
	// +optional
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`

	// Resources are the container's compute resource requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Timeout is the per-request deadline (default 30s).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Concurrency is the maximum number of in-flight requests per replica; 0 means unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Concurrency *int32 `json:"concurrency,omitempty"`

	// Scale bounds and drives the number of replicas.
	// +optional
	Scale *Scale `json:"scale,omitempty"`

	// Access says who may invoke the function through the gateway: public (the default),
	// anyone who reaches the gateway; private, only requests that carry a token of the
	// namespace's Secret fn-access (Authorization: Bearer TOKEN), which the gateway removes
	// before the request reaches the function.
	// +optional
	// +kubebuilder:validation:Enum=public;private
	Access Access `json:"access,omitempty"`

	// RateLimit bounds the requests per second the gateway lets through to the function;
	// those over it are answered 429 with Retry-After.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// Delivery is how the function's asynchronous calls are delivered: tried again after
	// network errors, 408, 429 and 5xx with exponential backoff, until the attempts or the
	// maximum age run out, then kept as dead letters with their last answer.
	// +optional
	Delivery *Delivery `json:"delivery,omitempty"`

	// Schedules deliver a CloudEvent to the function at each tick of a cron expression, as
	// asynchronous calls (with Delivery's retries). A tick missed while the event engine was
	// down fires once when it is back, not once per tick missed.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Schedules []Schedule `json:"schedules,omitempty"`

	// Rollout is how a new revision replaces the running one (default: a rolling update).
	// +optional
	Rollout *Rollout `json:"rollout,omitempty"`

	// RevisionHistory is how many revisions are kept, the newest, for fn rollback (default 5,
	// at most 50).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	RevisionHistory *int32 `json:"revisionHistory,omitempty"`
}

// Schedule is a CloudEvent delivered at each tick of a cron expression.
type Schedule struct {
	// Name names the schedule among the function's: a DNS label.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Cron is when it fires: five fields (minute hour day-of-month month day-of-week), or six
	// with seconds first; or @every DURATION (1s or more), @hourly, @daily, @weekly, @monthly,
	// @yearly.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Cron string `json:"cron"`
	// TimeZone is the IANA time zone the expression is read in, such as Europe/Paris (default
	// UTC; not with @every).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
	// Type is the CloudEvent's type (default dev.fnkit.schedule).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Type string `json:"type,omitempty"`
	// Data is the CloudEvent's data, any JSON value (default: none).
	// +optional
	Data *apiextensionsv1.JSON `json:"data,omitempty"`
}

// DefaultScheduleType is the CloudEvent type of a schedule's ticks.
const DefaultScheduleType = "dev.fnkit.schedule"

// Delivery is how a function's asynchronous calls are delivered.
//
// +kubebuilder:validation:XValidation:rule="!has(self.backoff) || !has(self.maxBackoff) || self.backoff <= self.maxBackoff",message="must be at most maxBackoff",fieldPath=".backoff"
type Delivery struct {
	// Attempts is how many times a call is tried in all, from 1 to 100 (default 5).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Attempts *int32 `json:"attempts,omitempty"`
	// Backoff is the wait before the second attempt; each later wait doubles, up to
	// maxBackoff, spread by ±10% (default 1s). A Retry-After in the answer waits longer.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	Backoff *metav1.Duration `json:"backoff,omitempty"`
	// MaxBackoff bounds each wait (default 5m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
	// MaxAge is how long after it was accepted a call may still be tried (default 24h).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
	// DeadLetters keeps the calls given up, with their last answer, for fn calls to show and
	// send again (default true); false only records that they failed.
	// +optional
	DeadLetters *bool `json:"deadLetters,omitempty"`
}

// Access is who may invoke a function.
type Access string

const (
	// AccessPublic lets any request through.
	AccessPublic Access = "public"
	// AccessPrivate lets through only requests with a token of the namespace's Secret
	// AccessSecretName.
	AccessPrivate Access = "private"
)

// AccessSecretName is the Secret whose values are the tokens of a namespace's private
// functions (any key; each value of 16 bytes or more is a token).
const AccessSecretName = "fn-access"

// RateLimit is a token bucket: RPS requests per second on average, Burst at once.
type RateLimit struct {
	// RPS is the sustained rate, in requests per second, over all the gateway's replicas.
	// +kubebuilder:validation:Minimum=1
	RPS int32 `json:"rps"`
	// Burst is the most requests let through at once after a quiet spell (default: RPS).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst *int32 `json:"burst,omitempty"`
}

// Source is where a function's code lives.
type Source struct {
	// Git is a git repository.
	// +optional
	Git *GitSource `json:"git,omitempty"`
}

// GitSource is a directory of a branch of a git repository.
type GitSource struct {
	// URL is the repository's clone URL.
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Ref is the branch to follow (default main).
	// +optional
	Ref string `json:"ref,omitempty"`
	// Path is the function's directory in the repository (default the root).
	// +optional
	Path string `json:"path,omitempty"`
	// SecretRef names a Secret holding the credentials to clone with.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// ScaleMetric is what the autoscaler scales on.
//
// +kubebuilder:validation:Enum=concurrency;rps;cpu
type ScaleMetric string

const (
	// MetricConcurrency scales on in-flight requests per replica.
	MetricConcurrency ScaleMetric = "concurrency"
	// MetricRPS scales on requests per second per replica.
	MetricRPS ScaleMetric = "rps"
	// MetricCPU scales on CPU use, with a HorizontalPodAutoscaler.
	MetricCPU ScaleMetric = "cpu"
)

// Scale bounds and drives the number of replicas.
//
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || self.min <= self.max",message="must be at most max",fieldPath=".min"
// +kubebuilder:validation:XValidation:rule="!has(self.scaleDownDelay) || self.scaleDownDelay >= duration('0s')",message="must be a duration >= 0, such as 30s",fieldPath=".scaleDownDelay"
// +kubebuilder:validation:XValidation:rule="!has(self.initial) || !has(self.max) || self.initial <= self.max",message="must be at most max",fieldPath=".initial"
// +kubebuilder:validation:XValidation:rule="!has(self.initial) || !has(self.min) || self.initial >= self.min",message="must be at least min",fieldPath=".initial"
// +kubebuilder:validation:XValidation:rule="!has(self.window) || (self.window >= duration('2s') && self.window <= duration('1h'))",message="must be a duration from 2s to 1h",fieldPath=".window"
type Scale struct {
	// Min is the minimum number of replicas; 0 lets the function scale to zero (default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Min *int32 `json:"min,omitempty"`
	// Max is the maximum number of replicas (default 10).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Max *int32 `json:"max,omitempty"`
	// Target is the metric's target per replica: in-flight requests, requests per second, or
	// percent of requested CPU (default 10 for concurrency, 100 for rps, 80 for cpu).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Target *int32 `json:"target,omitempty"`
	// Metric is what to scale on: concurrency (default), rps or cpu.
	// +optional
	Metric ScaleMetric `json:"metric,omitempty"`
	// ScaleDownDelay is how long a lower replica count must be wanted before it is applied: a
	// function scales to zero after its window plus this delay without a request (default 30s).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
	// Initial is the replica count a new Function starts with; 0 starts it scaled to zero
	// (default max(1, min)).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Initial *int32 `json:"initial,omitempty"`
	// Window is the stable window the autoscaler averages load over, from 2s to 1h (default the
	// cluster's, 60s); the panic window is a tenth of it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	Window *metav1.Duration `json:"window,omitempty"`
}

// FunctionStatus is what the controller observed.
type FunctionStatus struct {
	duckv1.Status `json:",inline"`

	// URL is where the function answers, through the fn gateway.
	// +optional
	URL *apis.URL `json:"url,omitempty"`

	// Address is the function's in-cluster address (its Service).
	// +optional
	Address *duckv1.Addressable `json:"address,omitempty"`

	// Image is the image the function's Deployment runs: the spec's, once rolled out.
	// +optional
	Image string `json:"image,omitempty"`

	// DesiredReplicas is the replica count the autoscaler wants.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas"`

	// Replicas is the number of replicas of the function's Deployment.
	// +optional
	Replicas int32 `json:"replicas"`

	// ReadyReplicas is the number of those replicas that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// LatestRevision is the revision of the spec as it is; StableRevision the one that has the
	// traffic a rollout has not given to another.
	// +optional
	LatestRevision string `json:"latestRevision,omitempty"`
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`

	// Revisions are the revisions kept, newest first, with their share of traffic.
	// +optional
	Revisions []RevisionStatus `json:"revisions,omitempty"`

	// Rollout is the rollout under way, or the last one.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// FunctionList is a list of Functions.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type FunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []Function `json:"items"`
}

// GetGroupVersionKind implements kmeta.OwnerRefable.
func (*Function) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Function")
}

// GetStatus implements duckv1.KRShaped.
func (f *Function) GetStatus() *duckv1.Status { return &f.Status.Status }
