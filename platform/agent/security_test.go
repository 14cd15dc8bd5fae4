package agent

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestRefused(t *testing.T) {
	ok := &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	for _, c := range []struct {
		name string
		pod  corev1.PodSpec
		sc   *corev1.SecurityContext
		want string // "" for none
	}{
		{"restricted", corev1.PodSpec{}, ok, ""},
		{"nothing asked", corev1.PodSpec{}, nil, ""},
		{"host network is given", corev1.PodSpec{HostNetwork: true}, nil, ""},
		{"privileged", corev1.PodSpec{}, &corev1.SecurityContext{Privileged: ptr.To(true)}, "privileged"},
		{"not privileged", corev1.PodSpec{}, &corev1.SecurityContext{Privileged: ptr.To(false)}, ""},
		{"host PID", corev1.PodSpec{HostPID: true}, nil, "hostPID"},
		{"host IPC", corev1.PodSpec{HostIPC: true}, nil, "hostIPC"},
		{"unknown capabilities", corev1.PodSpec{}, &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "SYS_WIZARD"}, Drop: []corev1.Capability{"CAP_BOGUS"}}}, "unknown capabilities SYS_WIZARD,CAP_BOGUS"},
		{"localhost seccomp", corev1.PodSpec{}, &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("x.json")}}, "seccompProfile Localhost"},
		{"pod's localhost seccomp", corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}}}, nil, "the pod's seccompProfile Localhost"},
		{"unmasked proc", corev1.PodSpec{}, &corev1.SecurityContext{ProcMount: ptr.To(corev1.UnmaskedProcMount)}, "procMount Unmasked"},
		{"two at once", corev1.PodSpec{HostPID: true}, &corev1.SecurityContext{Privileged: ptr.To(true)}, "hostPID, privileged"},
	} {
		pod := &corev1.Pod{Spec: c.pod}
		got := refused(pod, &corev1.Container{Name: "app", SecurityContext: c.sc})
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: refused: %s", c.name, got)
		case c.want != "" && (!strings.Contains(got, c.want) || !strings.Contains(got, "container app")):
			t.Errorf("%s: %q, want it to name %q and the container", c.name, got, c.want)
		}
	}
}
