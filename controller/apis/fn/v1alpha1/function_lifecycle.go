package v1alpha1

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
)

// The Function's conditions: Ready summarizes one condition per child.
const (
	// FunctionConditionReady is true when the function can serve.
	FunctionConditionReady = apis.ConditionReady
	// FunctionConditionDeploymentReady is true when the Deployment has its minimum of available replicas.
	FunctionConditionDeploymentReady apis.ConditionType = "DeploymentReady"
	// FunctionConditionServiceReady is true when the Service exists as desired.
	FunctionConditionServiceReady apis.ConditionType = "ServiceReady"
	// FunctionConditionAutoscalerReady is true when the autoscaler scales the function: fn's own
	// autoscaler has decided its replicas (its reason is the condition's), or for metric cpu a
	// HorizontalPodAutoscaler is active.
	FunctionConditionAutoscalerReady apis.ConditionType = "AutoscalerReady"
)

var functionCondSet = apis.NewLivingConditionSet(
	FunctionConditionDeploymentReady,
	FunctionConditionServiceReady,
	FunctionConditionAutoscalerReady,
)

// GetConditionSet implements duckv1.KRShaped.
func (*Function) GetConditionSet() apis.ConditionSet { return functionCondSet }

// InitializeConditions sets unknown conditions to Unknown.
func (s *FunctionStatus) InitializeConditions() { functionCondSet.Manage(s).InitializeConditions() }

// IsReady reports whether the function can serve.
func (s *FunctionStatus) IsReady() bool { return functionCondSet.Manage(s).IsHappy() }

// GetCondition returns the condition of type t, if any.
func (s *FunctionStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return functionCondSet.Manage(s).GetCondition(t)
}

// PropagateDeploymentStatus reflects the Deployment's status: replicas and availability, and
// the reason when it cannot progress.
func (s *FunctionStatus) PropagateDeploymentStatus(d *appsv1.DeploymentStatus) {
	s.Replicas, s.ReadyReplicas = d.Replicas, d.ReadyReplicas
	var available, progressing *appsv1.DeploymentCondition
	for i := range d.Conditions {
		switch c := &d.Conditions[i]; c.Type {
		case appsv1.DeploymentAvailable:
			available = c
		case appsv1.DeploymentProgressing:
			progressing = c
		case appsv1.DeploymentReplicaFailure:
			if c.Status == corev1.ConditionTrue {
				functionCondSet.Manage(s).MarkFalse(FunctionConditionDeploymentReady, c.Reason, "%s", c.Message)
				return
			}
		}
	}
	switch {
	case progressing != nil && progressing.Status == corev1.ConditionFalse:
		functionCondSet.Manage(s).MarkFalse(FunctionConditionDeploymentReady, progressing.Reason, "%s", progressing.Message)
	case available != nil && available.Status == corev1.ConditionTrue:
		functionCondSet.Manage(s).MarkTrue(FunctionConditionDeploymentReady)
	case available != nil && available.Status == corev1.ConditionFalse:
		functionCondSet.Manage(s).MarkUnknown(FunctionConditionDeploymentReady, available.Reason, "%s", available.Message)
	default:
		functionCondSet.Manage(s).MarkUnknown(FunctionConditionDeploymentReady, "Deploying", "waiting for the Deployment to report its status")
	}
}

// MarkDeploymentRollingOut reports a rollout in progress: the function serves, from old or new
// replicas, but not all replicas run the current spec yet.
func (s *FunctionStatus) MarkDeploymentRollingOut(updated, desired int32) {
	functionCondSet.Manage(s).MarkUnknown(FunctionConditionDeploymentReady, "RollingOut",
		"%d of %d replicas run the current version", updated, desired)
}

// MarkScaledToZero marks the Deployment ready at zero replicas, as the autoscaler wants it.
func (s *FunctionStatus) MarkScaledToZero() {
	s.Replicas, s.ReadyReplicas = 0, 0
	functionCondSet.Manage(s).MarkTrue(FunctionConditionDeploymentReady)
}

// MarkDeploymentNotOwned reports a Deployment of the function's name that the Function does not own.
func (s *FunctionStatus) MarkDeploymentNotOwned(name string) {
	functionCondSet.Manage(s).MarkFalse(FunctionConditionDeploymentReady, "NotOwned",
		"there is already a Deployment %q that this Function does not own: delete or rename it", name)
}

// MarkDeploymentFailed reports a failure to create or update the Deployment.
func (s *FunctionStatus) MarkDeploymentFailed(reason string, err error) {
	functionCondSet.Manage(s).MarkFalse(FunctionConditionDeploymentReady, reason, "%v", err)
}

// MarkServiceReady marks the Service as desired.
func (s *FunctionStatus) MarkServiceReady() {
	functionCondSet.Manage(s).MarkTrue(FunctionConditionServiceReady)
}

// MarkServiceNotOwned reports a Service of the function's name that the Function does not own.
func (s *FunctionStatus) MarkServiceNotOwned(name string) {
	functionCondSet.Manage(s).MarkFalse(FunctionConditionServiceReady, "NotOwned",
		"there is already a Service %q that this Function does not own: delete or rename it", name)
}

// MarkServiceFailed reports a failure to create or update the Service.
func (s *FunctionStatus) MarkServiceFailed(reason string, err error) {
	functionCondSet.Manage(s).MarkFalse(FunctionConditionServiceReady, reason, "%v", err)
}

// ScaleReasonMessages are the messages of fn's autoscaler's reasons for a replica count.
var ScaleReasonMessages = map[string]string{
	"Stable":       "replicas follow the load averaged over the stable window",
	"Panic":        "a burst of requests: scaling up, and not down, until it has passed for a window",
	"AtMax":        "more replicas are wanted than spec.scale.max allows",
	"AtMin":        "fewer replicas are wanted than spec.scale.min keeps",
	"ScaledToZero": "no request for the window plus the scale-down delay: no replica runs, the next request starts one",
	"Activating":   "requests are held while a replica starts",
	"Warming":      "the autoscaler is gathering a window of data: it scales up as needed, not down",
}

// PropagateScaleReason reports fn's autoscaler's latest reason for the Deployment's replica
// count (empty: it has not decided yet).
func (s *FunctionStatus) PropagateScaleReason(reason string) {
	if reason == "" {
		functionCondSet.Manage(s).MarkUnknown(FunctionConditionAutoscalerReady, "Pending",
			"waiting for fn's autoscaler to take the function: is fn-controller running?")
		return
	}
	msg, ok := ScaleReasonMessages[reason]
	if !ok {
		msg = reason
	}
	functionCondSet.Manage(s).MarkTrueWithReason(FunctionConditionAutoscalerReady, reason, "%s", msg)
}

// PropagateHPAStatus reports a HorizontalPodAutoscaler's state (metric cpu): not active while it
// cannot read metrics, failed when it cannot scale.
func (s *FunctionStatus) PropagateHPAStatus(h *autoscalingv2.HorizontalPodAutoscalerStatus) {
	m := functionCondSet.Manage(s)
	var limited *autoscalingv2.HorizontalPodAutoscalerCondition
	for i := range h.Conditions {
		switch c := &h.Conditions[i]; {
		case c.Type == autoscalingv2.AbleToScale && c.Status == corev1.ConditionFalse:
			m.MarkFalse(FunctionConditionAutoscalerReady, c.Reason, "HorizontalPodAutoscaler: %s", c.Message)
			return
		case c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse:
			m.MarkUnknown(FunctionConditionAutoscalerReady, c.Reason, "HorizontalPodAutoscaler: %s", c.Message)
			return
		case c.Type == autoscalingv2.ScalingLimited && c.Status == corev1.ConditionTrue:
			limited = c
		}
	}
	if limited != nil {
		m.MarkTrueWithReason(FunctionConditionAutoscalerReady, limited.Reason, "HorizontalPodAutoscaler: %s", limited.Message)
		return
	}
	m.MarkTrueWithReason(FunctionConditionAutoscalerReady, "HorizontalPodAutoscaler", "scaled on CPU by a HorizontalPodAutoscaler")
}

// MarkReadyScaledToZero gives a ready Function scaled to zero that reason, so that it shows.
func (s *FunctionStatus) MarkReadyScaledToZero() {
	if !s.IsReady() || s.DesiredReplicas != 0 {
		return
	}
	functionCondSet.Manage(s).MarkTrueWithReason(FunctionConditionReady, "ScaledToZero", "%s", ScaleReasonMessages["ScaledToZero"])
}

// MarkAutoscalerNotOwned reports a HorizontalPodAutoscaler of the function's name it does not own.
func (s *FunctionStatus) MarkAutoscalerNotOwned(name string) {
	functionCondSet.Manage(s).MarkFalse(FunctionConditionAutoscalerReady, "NotOwned",
		"there is already a HorizontalPodAutoscaler %q that this Function does not own: delete or rename it", name)
}

// MarkAutoscalerFailed reports a failure to create, update or delete the autoscaler.
func (s *FunctionStatus) MarkAutoscalerFailed(reason string, err error) {
	functionCondSet.Manage(s).MarkFalse(FunctionConditionAutoscalerReady, reason, "%v", err)
}

// SetAddress records the function's in-cluster address and its URL through the gateway.
func (s *FunctionStatus) SetAddress(cluster, gateway *apis.URL) {
	s.Address = nil
	if cluster != nil {
		s.Address = &duckv1.Addressable{URL: cluster}
	}
	s.URL = gateway
}

// FunctionConditionBuildSucceeded reports the latest git build of the Function (a Function not
// built from git has none). It is not part of Ready: a failed build changes nothing that runs.
const FunctionConditionBuildSucceeded apis.ConditionType = "BuildSucceeded"

// PropagateLatestBuild reports the Function's latest build: running, succeeded, or why it
// failed, with its message (the compiler's); nil clears the condition.
func (s *FunctionStatus) PropagateLatestBuild(b *FunctionBuild) {
	m := functionCondSet.Manage(s)
	if b == nil {
		_ = m.ClearCondition(FunctionConditionBuildSucceeded)
		return
	}
	c := b.Status.GetCondition(FunctionBuildConditionSucceeded)
	commit := b.Spec.Git.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	switch {
	case c == nil || c.IsUnknown():
		reason := BuildReasonPending
		if c != nil && c.Reason != "" {
			reason = c.Reason
		}
		m.MarkUnknown(FunctionConditionBuildSucceeded, reason, "build %s of commit %s is in progress", b.Name, commit)
	case c.IsTrue():
		m.MarkTrueWithReason(FunctionConditionBuildSucceeded, BuildReasonSucceeded, "build %s of commit %s runs", b.Name, commit)
	default:
		m.MarkFalse(FunctionConditionBuildSucceeded, c.Reason, "build %s of commit %s: %s", b.Name, commit, c.Message)
	}
}

// FunctionConditionRolledOut is true when the latest revision has all traffic, unknown while a
// rollout runs, false when a rollout went back (its reason and message say why). It does not
// make the Function unready: the stable revision serves.
const FunctionConditionRolledOut apis.ConditionType = "RolledOut"

// PropagateRollout reports the rollout in the RolledOut condition.
func (s *FunctionStatus) PropagateRollout() {
	c := apis.Condition{Type: FunctionConditionRolledOut, Status: corev1.ConditionTrue, Severity: apis.ConditionSeverityInfo}
	if ro := s.Rollout; ro != nil {
		switch {
		case ro.Phase == RolloutRolledBack || ro.Phase == RolloutAborted:
			c.Status, c.Severity, c.Reason = corev1.ConditionFalse, apis.ConditionSeverityWarning, ro.Reason
			c.Message = ro.Revision + " did not roll out: " + ro.Message
		case !ro.Phase.Done():
			c.Status, c.Reason = corev1.ConditionUnknown, string(ro.Phase)
			c.Message = fmt.Sprintf("%s at %d%%: %s", ro.Revision, ro.Percent, ro.Message)
		}
	}
	functionCondSet.Manage(s).SetCondition(c)
}
