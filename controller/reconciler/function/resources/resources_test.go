package resources

import (
	"context"
	"github.com/google/go-cmp/cmp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

func function(opts ...func(*v1alpha1.Function)) *v1alpha1.Function {
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "team", UID: "u1", Labels: map[string]string{"team": "payments"}},
		Spec: v1alpha1.FunctionSpec{
			Image:       "r.test/hello@sha256:0000000000000000000000000000000000000000000000000000000000000001",
			Env:         []corev1.EnvVar{{Name: "GREETING", Value: "hi"}},
			Timeout:     &metav1.Duration{Duration: 45 * time.Second},
			Concurrency: ptr.To(int32(4)),
		},
	}
	for _, o := range opts {
		o(f)
	}
	f.SetDefaults(context.Background())
	return f
}

func TestMakeDeployment(t *testing.T) {
	d := MakeDeployment(function(), DefaultConfig)
	if d.Name != "hello" || d.Namespace != "team" || len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != "u1" || !*d.OwnerReferences[0].Controller {
		t.Errorf("metadata: %+v", d.ObjectMeta)
	}
	if d.Labels["fnkit.dev/function"] != "hello" || d.Labels["team"] != "payments" || d.Spec.Template.Labels["fnkit.dev/function"] != "hello" {
		t.Errorf("labels: %v / %v", d.Labels, d.Spec.Template.Labels)
	}
	if d.Spec.Selector.MatchLabels["fnkit.dev/function"] != "hello" || len(d.Spec.Selector.MatchLabels) != 1 {
		t.Errorf("selector: %v", d.Spec.Selector)
	}
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas %d, want max(min, 1) = 1", *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value // later entries win, as in Kubernetes
	}
	want := map[string]string{"PORT": "8080", "FN_TIMEOUT": "45s", "FN_CONCURRENCY": "4", "GREETING": "hi", "FN_NAME": "hello", "FN_NAMESPACE": "team"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if c.Image != function().Spec.Image || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("container: image %s ports %v", c.Image, c.Ports)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/_fn/ready" || c.LivenessProbe.HTTPGet.Path != "/_fn/live" {
		t.Errorf("probes: %v %v", c.ReadinessProbe.HTTPGet, c.LivenessProbe.HTTPGet)
	}
	if lp := c.LivenessProbe; lp.InitialDelaySeconds < lp.PeriodSeconds {
		t.Errorf("liveness is first asked after %ds, want at least its period (%ds): a starting process is not unhealthy", lp.InitialDelaySeconds, lp.PeriodSeconds)
	}
	ps := d.Spec.Template.Spec
	if tsc := ps.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].TopologyKey != corev1.LabelHostname || tsc[0].MaxSkew != 1 ||
		tsc[0].LabelSelector == nil || tsc[0].LabelSelector.MatchLabels["fnkit.dev/function"] != function().Name {
		t.Errorf("a function's replicas do not spread over nodes: %+v", tsc)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken || ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		t.Errorf("a function's pod gets API credentials or service links: automount %v, links %v", ps.AutomountServiceAccountToken, ps.EnableServiceLinks)
	}
	// The restricted Pod Security Standard, field by field: each would be a way in if lost.
	wantSC := &corev1.SecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(65532)), AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if diff := cmp.Diff(wantSC, c.SecurityContext); diff != "" {
		t.Errorf("security context (-want +got):\n%s", diff)
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC || (ps.SecurityContext != nil && ps.SecurityContext.RunAsUser != nil && *ps.SecurityContext.RunAsUser == 0) {
		t.Errorf("a function's pod shares a host namespace or runs as root: %+v", ps)
	}
	if g := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != 57 {
		t.Errorf("grace period %ds, want the timeout plus the shutdown delay plus 10s = 57s", g)
	}
	if d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rollouts may drop capacity: %v", d.Spec.Strategy)
	}
	min5 := MakeDeployment(function(func(f *v1alpha1.Function) { f.Spec.Scale = &v1alpha1.Scale{Min: ptr.To(int32(5))} }), DefaultConfig)
	if *min5.Spec.Replicas != 5 {
		t.Errorf("replicas %d with min 5", *min5.Spec.Replicas)
	}
	for _, tc := range []struct {
		initial, min *int32
		want         int32
	}{{ptr.To(int32(0)), nil, 0}, {ptr.To(int32(3)), ptr.To(int32(1)), 3}, {nil, ptr.To(int32(0)), 1}} {
		d := MakeDeployment(function(func(f *v1alpha1.Function) { f.Spec.Scale = &v1alpha1.Scale{Initial: tc.initial, Min: tc.min} }), DefaultConfig)
		if *d.Spec.Replicas != tc.want {
			t.Errorf("initial %v min %v: replicas %d, want %d", ptr.Deref(tc.initial, -1), ptr.Deref(tc.min, -1), *d.Spec.Replicas, tc.want)
		}
	}
}

func TestMakeServiceAndHPA(t *testing.T) {
	s := MakeService(function())
	if p := s.Spec.Ports[0]; p.Port != 80 || p.TargetPort.StrVal != PortName || s.Spec.Selector["fnkit.dev/function"] != "hello" {
		t.Errorf("service: %+v", s.Spec)
	}
	if WantsHPA(function()) {
		t.Error("concurrency metric wants an HPA")
	}
	cpu := function(func(f *v1alpha1.Function) {
		f.Spec.Scale = &v1alpha1.Scale{Metric: v1alpha1.MetricCPU, Min: ptr.To(int32(0)), Max: ptr.To(int32(7)), Target: ptr.To(int32(60))}
	})
	if !WantsHPA(cpu) {
		t.Fatal("cpu metric wants no HPA")
	}
	h := MakeHPA(cpu)
	if *h.Spec.MinReplicas != 1 || h.Spec.MaxReplicas != 7 || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 || h.Spec.ScaleTargetRef.Name != "hello" {
		t.Errorf("hpa: %+v", h.Spec)
	}
}
