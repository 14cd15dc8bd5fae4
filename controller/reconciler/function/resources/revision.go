package resources

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// A revision under rollout runs beside the function's own Deployment, in a Deployment and
// behind a Service both named after the revision. Its pods carry the revision's label: the
// gateway routes the revision's share to them, the function's Service selects them too.

// RevisionSelector selects the pods of revision rev of f.
func RevisionSelector(f *v1alpha1.Function, rev string) map[string]string {
	return map[string]string{fn.FunctionLabelKey: f.Name, fn.RevisionLabelKey: rev}
}

// MakeRevisionDeployment returns the Deployment of revision rev, f's spec being the revision's,
// with replicas replicas.
func MakeRevisionDeployment(f *v1alpha1.Function, rev string, replicas int32, cfg Config) *appsv1.Deployment {
	d := MakeDeployment(f, cfg)
	d.Name = rev
	d.Labels[fn.RevisionLabelKey] = rev
	d.Spec.Replicas = ptr.To(replicas)
	d.Spec.Selector.MatchLabels = RevisionSelector(f, rev)
	d.Spec.Template.Labels[fn.RevisionLabelKey] = rev
	return d
}

// MakeRevisionService returns the Service of revision rev's pods: the gateway reads its
// EndpointSlices.
func MakeRevisionService(f *v1alpha1.Function, rev string) *corev1.Service {
	s := MakeService(f)
	s.Name = rev
	s.Labels[fn.RevisionLabelKey] = rev
	s.Spec.Selector = RevisionSelector(f, rev)
	return s
}
