package agent

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// refused says why a container asks for what the agent cannot give, or is "" when it asks for
// nothing of the kind: a privileged container, the host's PID or IPC namespace, a capability
// Linux does not know, a seccomp profile of the node's files, an unmasked /proc. A kubelet would either give these or refuse the pod; running it without
// them would let the pod believe it has what it has not. The container then waits with reason
// CreateContainerConfigError and this message.
func refused(pod *corev1.Pod, c *corev1.Container) string {
	var why []string
	if pod.Spec.HostPID {
		why = append(why, "hostPID")
	}
	if pod.Spec.HostIPC {
		why = append(why, "hostIPC")
	}
	seccomp := func(p *corev1.SeccompProfile, where string) {
		if p != nil && p.Type == corev1.SeccompProfileTypeLocalhost {
			why = append(why, where+"seccompProfile Localhost")
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		seccomp(psc.SeccompProfile, "the pod's ")
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.Privileged != nil && *sc.Privileged {
			why = append(why, "privileged")
		}
		if sc.Capabilities != nil {
			var unknown []string
			for _, c := range append(append([]corev1.Capability{}, sc.Capabilities.Add...), sc.Capabilities.Drop...) {
				if _, ok := capabilityNumber(c); !ok && !strings.EqualFold(string(c), "ALL") {
					unknown = append(unknown, string(c))
				}
			}
			if len(unknown) > 0 {
				why = append(why, "unknown capabilities "+strings.Join(unknown, ","))
			}
		}
		if sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
			why = append(why, "procMount Unmasked")
		}
		seccomp(sc.SeccompProfile, "")
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("container %s asks for %s, which fn's node agent does not give: remove it from the pod's spec", c.Name, strings.Join(why, ", "))
}
