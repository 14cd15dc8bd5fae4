package v1alpha1

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/pkg/kmeta"
)

// Trigger routes the CloudEvents published to its namespace's ingest (the gateway's
// /events/NAMESPACE) that match its filter to a Function of the namespace, as asynchronous
// calls: at least once, with the Function's delivery settings or the Trigger's own.
//
// +genclient
// +genreconciler
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=triggers,singular=trigger,shortName=fntrigger;fntriggers,categories=fn
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.function`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Trigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TriggerSpec   `json:"spec,omitempty"`
	Status TriggerStatus `json:"status,omitempty"`
}

var (
	_ apis.Validatable   = (*Trigger)(nil)
	_ kmeta.OwnerRefable = (*Trigger)(nil)
	_ duckv1.KRShaped    = (*Trigger)(nil)
)

// TriggerSpec is what a Trigger routes, and where.
type TriggerSpec struct {
	// Function is the Function of the Trigger's namespace that gets the matching events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Function string `json:"function"`
	// Filter selects the events; an empty filter takes every event.
	// +optional
	Filter TriggerFilter `json:"filter,omitempty"`
	// Delivery, when set, is how the events it routes are delivered, instead of the
	// Function's.
	// +optional
	Delivery *Delivery `json:"delivery,omitempty"`
}

// TriggerFilter matches CloudEvent attributes (type, source, subject, and any extension):
// every condition must hold.
type TriggerFilter struct {
	// Attributes must each equal the event's attribute of the same name.
	// +optional
	Attributes map[string]string `json:"attributes,omitempty"`
	// Prefix: each event attribute must begin with the value given.
	// +optional
	Prefix map[string]string `json:"prefix,omitempty"`
	// Suffix: each event attribute must end with the value given.
	// +optional
	Suffix map[string]string `json:"suffix,omitempty"`
}

// Matches reports whether an event whose attributes attr gives (the empty string for one it
// lacks) passes the filter.
func (f TriggerFilter) Matches(attr func(name string) (string, bool)) bool {
	for k, want := range f.Attributes {
		if v, ok := attr(k); !ok || v != want {
			return false
		}
	}
	for k, want := range f.Prefix {
		if v, ok := attr(k); !ok || !strings.HasPrefix(v, want) {
			return false
		}
	}
	for k, want := range f.Suffix {
		if v, ok := attr(k); !ok || !strings.HasSuffix(v, want) {
			return false
		}
	}
	return true
}

// TriggerStatus is what the controller observed.
type TriggerStatus struct {
	duckv1.Status `json:",inline"`
}

// TriggerList is a list of Triggers.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type TriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []Trigger `json:"items"`
}

// GetGroupVersionKind implements kmeta.OwnerRefable.
func (*Trigger) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Trigger")
}

// GetStatus implements duckv1.KRShaped.
func (t *Trigger) GetStatus() *duckv1.Status { return &t.Status.Status }

// GetConditionSet implements duckv1.KRShaped.
func (*Trigger) GetConditionSet() apis.ConditionSet { return triggerCondSet }

// TriggerConditionFunctionFound is True when the Trigger's Function exists.
const TriggerConditionFunctionFound apis.ConditionType = "FunctionFound"

// Reasons of a Trigger's conditions.
const (
	TriggerReasonFunctionNotFound = "FunctionNotFound"
	TriggerReasonInvalid          = "InvalidSpec"
)

var triggerCondSet = apis.NewLivingConditionSet(TriggerConditionFunctionFound)

// InitializeConditions sets the conditions Unknown.
func (s *TriggerStatus) InitializeConditions() { triggerCondSet.Manage(s).InitializeConditions() }

// MarkFunctionFound marks the Trigger's Function found: the Trigger is Ready.
func (s *TriggerStatus) MarkFunctionFound() {
	triggerCondSet.Manage(s).MarkTrue(TriggerConditionFunctionFound)
}

// MarkFunctionNotFound marks the Trigger not Ready: its Function does not exist.
func (s *TriggerStatus) MarkFunctionNotFound(name string) {
	triggerCondSet.Manage(s).MarkFalse(TriggerConditionFunctionFound, TriggerReasonFunctionNotFound,
		"no Function %q in the Trigger's namespace: the events it matches are not routed until there is", name)
}

// MarkInvalid marks the Trigger not Ready: its spec is refused.
func (s *TriggerStatus) MarkInvalid(msg string) {
	triggerCondSet.Manage(s).MarkFalse(TriggerConditionFunctionFound, TriggerReasonInvalid, "%s", msg)
}

// IsReady reports whether the Trigger routes events.
func (t *Trigger) IsReady() bool {
	c := triggerCondSet.Manage(&t.Status).GetTopLevelCondition()
	return c != nil && c.IsTrue() && t.Status.ObservedGeneration == t.Generation
}

// Validate checks the Trigger.
func (t *Trigger) Validate(context.Context) *apis.FieldError {
	var errs *apis.FieldError
	if p := labelProblem(t.Spec.Function); p != "" {
		errs = errs.Also(apis.ErrInvalidValue(t.Spec.Function, "function", p))
	}
	for _, m := range []struct {
		name string
		m    map[string]string
	}{{"attributes", t.Spec.Filter.Attributes}, {"prefix", t.Spec.Filter.Prefix}, {"suffix", t.Spec.Filter.Suffix}} {
		for k := range m.m {
			if !ceAttributeName(k) {
				errs = errs.Also(apis.ErrInvalidKeyName(k, "filter."+m.name, "a CloudEvent attribute: lower-case letters and digits, at most 20"))
			}
		}
	}
	if t.Spec.Delivery != nil {
		errs = errs.Also(t.Spec.Delivery.Validate().ViaField("delivery"))
	}
	return errs.ViaField("spec")
}

// ceAttributeName reports whether s names a CloudEvent attribute (lower-case a-z and 0-9;
// the spec advises at most 20 characters).
func ceAttributeName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
