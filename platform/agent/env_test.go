package agent

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func TestResolveArgv(t *testing.T) {
	env := map[string]string{"NAME": "fn", "PORT": "8080"}
	for _, c := range []struct {
		name                                 string
		entrypoint, cmd, command, args, want []string
	}{
		{"image only", []string{"/ko-app/hello"}, []string{"-v"}, nil, nil, []string{"/ko-app/hello", "-v"}},
		{"args replace cmd", []string{"/ko-app/hello"}, []string{"-v"}, nil, []string{"--port=$(PORT)"}, []string{"/ko-app/hello", "--port=8080"}},
		{"command replaces both", []string{"/ko-app/hello"}, []string{"-v"}, []string{"/bin/$(NAME)"}, nil, []string{"/bin/fn"}},
		{"command and args", []string{"/ko-app/hello"}, []string{"-v"}, []string{"/bin/x"}, []string{"a", "$(UNSET)"}, []string{"/bin/x", "a", "$(UNSET)"}},
		{"cmd only", nil, []string{"/bin/x", "y"}, nil, nil, []string{"/bin/x", "y"}},
		{"nothing", nil, nil, nil, nil, []string{}},
		{"image cmd is not expanded", nil, []string{"$(NAME)"}, nil, nil, []string{"$(NAME)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := resolveArgv(c.entrypoint, c.cmd, c.command, c.args, env)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B": "$(A)"}
	for in, want := range map[string]string{
		"$(A)":         "x",
		"a$(A)b$(A)":   "axbx",
		"$$(A)":        "$(A)",
		"$(C)":         "$(C)",
		"$(A":          "$(A",
		"$A":           "$A",
		"$":            "$",
		"$(B)":         "$(A)", // values are not expanded again
		"cost: $$5":    "cost: $5",
		"":             "",
		"no reference": "no reference",
	} {
		if got := expand(in, env); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func testEnvSource() *envSource {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "a", "tier": "b"}},
		Spec:       corev1.PodSpec{NodeName: "node1", ServiceAccountName: "sa"},
	}
	cms := map[string]*corev1.ConfigMap{"cm": {Data: map[string]string{"k": "v", "x.y": "z", "bad key": "skip"}}}
	secrets := map[string]*corev1.Secret{"sec": {Data: map[string][]byte{"password": []byte("pw")}}}
	nf := func(kind, name string) error {
		return apierrors.NewNotFound(schema.GroupResource{Resource: kind}, name)
	}
	return &envSource{
		pod: pod, podIP: "10.244.0.5", hostIP: "10.244.0.1",
		configMap: func(ns, name string) (*corev1.ConfigMap, error) {
			if cm, ok := cms[name]; ok && ns == "ns" {
				return cm, nil
			}
			return nil, nf("configmaps", name)
		},
		secret: func(ns, name string) (*corev1.Secret, error) {
			if s, ok := secrets[name]; ok && ns == "ns" {
				return s, nil
			}
			return nil, nf("secrets", name)
		},
		allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
}

func TestContainerEnv(t *testing.T) {
	s := testEnvSource()
	field := func(p string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: p}}
	}
	c := &corev1.Container{
		Name: "c",
		EnvFrom: []corev1.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}},
		},
		Env: []corev1.EnvVar{
			{Name: "PORT", Value: "8080"},
			{Name: "URL", Value: "http://$(POD_IP):$(PORT)/$(password)"},
			{Name: "POD_IP", ValueFrom: field("status.podIP")},
			{Name: "NAME", ValueFrom: field("metadata.name")},
			{Name: "NS", ValueFrom: field("metadata.namespace")},
			{Name: "NODE", ValueFrom: field("spec.nodeName")},
			{Name: "HOST", ValueFrom: field("status.hostIP")},
			{Name: "APP", ValueFrom: field("metadata.labels['app']")},
			{Name: "CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "nope", Optional: ptr.To(true)}}},
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
			{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CM_k", Value: "overridden"},
		},
	}
	got, err := s.containerEnv(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []envVar{
		{"CM_k", "overridden"}, {"CM_x.y", "z"}, {"password", "pw"}, {"PORT", "8080"},
		// POD_IP is defined after URL: its reference stays as written, as in Kubernetes.
		{"URL", "http://$(POD_IP):8080/pw"},
		{"POD_IP", "10.244.0.5"}, {"NAME", "p"}, {"NS", "ns"}, {"NODE", "node1"}, {"HOST", "10.244.0.1"}, {"APP", "a"},
		{"CM", "v"}, {"PW", "pw"}, {"CPU", "2"}, {"MEM_MI", "1024"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(envVar{})); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

func TestContainerEnvErrors(t *testing.T) {
	s := testEnvSource()
	for name, env := range map[string]corev1.EnvVar{
		"missing configmap": {Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}},
		"missing key":       {Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "nope"}}},
		"missing secret":    {Name: "A", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}},
		"unsupported field": {Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nope"}}},
	} {
		_, err := s.containerEnv(&corev1.Container{Env: []corev1.EnvVar{env}})
		var ce *configError
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v, want a configError", name, err)
		}
	}
	_, err := s.containerEnv(&corev1.Container{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}})
	if err == nil || err.Error() != `secret "nope" not found` {
		t.Errorf("envFrom a missing secret: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "PORT=1", "EMPTY="}, []envVar{{"PORT", "8080"}, {"X", "a=b"}}, "pod")
	want := []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "PORT=8080", "EMPTY=", "X=a=b", "PATH=" + defaultPath, "HOSTNAME=pod"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	got = mergeEnv([]string{"PATH=/ko-app"}, []envVar{{"HOSTNAME", "h"}}, "pod")
	if diff := cmp.Diff([]string{"PATH=/ko-app", "HOSTNAME=h"}, got); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}
