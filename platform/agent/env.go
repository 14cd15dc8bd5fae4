package agent

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
)

// defaultPath is the PATH of a container whose image sets none, as container runtimes do.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// resolveArgv applies Kubernetes' rules to the image's entrypoint and cmd and the container's
// command and args: a command replaces both the entrypoint and the cmd; args alone replace the
// cmd. command and args are expanded ($(VAR)) with env, the container's environment.
func resolveArgv(entrypoint, cmd, command, args []string, env map[string]string) []string {
	var argv []string
	switch {
	case len(command) > 0:
		argv = append(expandAll(command, env), expandAll(args, env)...)
	case len(args) > 0:
		argv = append(append([]string{}, entrypoint...), expandAll(args, env)...)
	default:
		argv = append(append([]string{}, entrypoint...), cmd...)
	}
	return argv
}

func expandAll(ss []string, env map[string]string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = expand(s, env)
	}
	return out
}

// expand replaces $(VAR) references in s with their values in env, as Kubernetes does in env
// values, command and args: $$ is an escaped $, and a reference to an undefined variable (or an
// unclosed one) stays as written.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	checkpoint := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:i])
		rest := s[i+1:]
		advance := 1
		switch rest[0] {
		case '$':
			b.WriteByte('$')
		case '(':
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				b.WriteString("$(")
				break
			}
			name := rest[1:end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			advance = end + 1
		default:
			b.WriteByte('$')
			b.WriteByte(rest[0])
		}
		i += advance
		checkpoint = i + 1
	}
	return b.String() + s[checkpoint:]
}

// configError is a container configuration the agent cannot resolve (yet): a missing
// ConfigMap, Secret or key. The container waits with reason CreateContainerConfigError.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// envSource resolves a container's environment against its pod and the cluster.
type envSource struct {
	pod            *corev1.Pod
	podIP, hostIP  string
	configMap      func(namespace, name string) (*corev1.ConfigMap, error)
	secret         func(namespace, name string) (*corev1.Secret, error)
	allocatable    corev1.ResourceList // the node's, for resourceFieldRef without a limit
	serviceAccount string
	// services are the variables naming Services (the kubernetes one), set before the
	// container's own, which may override them.
	services []envVar
}

// envVar is one resolved variable.
type envVar struct{ name, value string }

var envNameRE = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

// containerEnv resolves c's envFrom and env, in Kubernetes' order: envFrom sources first (later
// sources win), then env entries, each expanded with what is defined before it.
func (s *envSource) containerEnv(c *corev1.Container) ([]envVar, error) {
	var vars []envVar
	idx := map[string]int{}
	set := func(name, value string) {
		if i, ok := idx[name]; ok {
			vars[i].value = value
			return
		}
		idx[name] = len(vars)
		vars = append(vars, envVar{name, value})
	}
	lookup := func() map[string]string {
		m := make(map[string]string, len(vars))
		for _, v := range vars {
			m[v.name] = v.value
		}
		return m
	}
	for _, v := range s.services {
		set(v.name, v.value)
	}
	ns := s.pod.Namespace
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := s.configMap(ns, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isOptional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, notFound("configmap", from.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			sec, err := s.secret(ns, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isOptional(from.SecretRef.Optional) {
					continue
				}
				return nil, notFound("secret", from.SecretRef.Name, err)
			}
			data = make(map[string]string, len(sec.Data)+len(sec.StringData))
			for k, v := range sec.Data {
				data[k] = string(v)
			}
		default:
			continue
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := from.Prefix + k
			if !envNameRE.MatchString(name) {
				continue // kubelet skips invalid names too (and records an event)
			}
			set(name, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup()))
			continue
		}
		v, ok, err := s.valueFrom(c, e.ValueFrom)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	return vars, nil
}

func isOptional(b *bool) bool { return b != nil && *b }

func notFound(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return &configError{fmt.Sprintf("%s %q not found", kind, name)}
	}
	return fmt.Errorf("getting %s %q: %w", kind, name, err)
}

// valueFrom resolves one env var source; ok is false when an optional source is missing.
func (s *envSource) valueFrom(c *corev1.Container, from *corev1.EnvVarSource) (value string, ok bool, err error) {
	ns := s.pod.Namespace
	switch {
	case from.FieldRef != nil:
		v, err := s.fieldValue(from.FieldRef.FieldPath)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := s.resourceValue(c, from.ResourceFieldRef)
		return v, err == nil, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := s.configMap(ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, notFound("configmap", ref.Name, err)
		}
		if v, found := cm.Data[ref.Key]; found {
			return v, true, nil
		}
		if v, found := cm.BinaryData[ref.Key]; found {
			return string(v), true, nil
		}
		if isOptional(ref.Optional) {
			return "", false, nil
		}
		return "", false, &configError{fmt.Sprintf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)}
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		sec, err := s.secret(ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, notFound("secret", ref.Name, err)
		}
		if v, found := sec.Data[ref.Key]; found {
			return string(v), true, nil
		}
		if isOptional(ref.Optional) {
			return "", false, nil
		}
		return "", false, &configError{fmt.Sprintf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)}
	}
	return "", false, nil
}

// fieldValue is the value of a downward API field path.
func (s *envSource) fieldValue(path string) (string, error) {
	p := s.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return s.podIP, nil
	case "status.hostIP", "status.hostIPs":
		return s.hostIP, nil
	case "metadata.labels":
		return formatMap(p.Labels), nil
	case "metadata.annotations":
		return formatMap(p.Annotations), nil
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels", p.Labels}, {"metadata.annotations", p.Annotations}} {
		if key, ok := subscript(path, m.prefix); ok {
			return m.values[key], nil
		}
	}
	return "", &configError{fmt.Sprintf("unsupported fieldRef %q", path)}
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// formatMap renders labels or annotations as the downward API does: key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k + "=" + strconv.Quote(m[k])
	}
	return strings.Join(lines, "\n")
}

// resourceValue is the value of a resourceFieldRef: the container's limit (the node's
// allocatable when unset) or request, divided by the divisor and rounded up.
func (s *envSource) resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" {
		found := false
		for i := range s.pod.Spec.Containers {
			if s.pod.Spec.Containers[i].Name == ref.ContainerName {
				c, found = &s.pod.Spec.Containers[i], true
			}
		}
		if !found {
			return "", &configError{fmt.Sprintf("resourceFieldRef: no container %q", ref.ContainerName)}
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", &configError{fmt.Sprintf("unsupported resourceFieldRef %q", ref.Resource)}
	}
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	switch kind {
	case "limits":
		var found bool
		if q, found = c.Resources.Limits[rn]; !found {
			q = s.allocatable[rn]
		}
	case "requests":
		q = c.Resources.Requests[rn]
	default:
		return "", &configError{fmt.Sprintf("unsupported resourceFieldRef %q", ref.Resource)}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// mergeEnv is the process environment: the image's variables, overridden or extended by the
// pod's, plus a default PATH and HOSTNAME when neither sets them.
func mergeEnv(image []string, pod []envVar, hostname string) []string {
	out := make([]string, 0, len(image)+len(pod)+2)
	idx := map[string]int{}
	set := func(name, value string) {
		kv := name + "=" + value
		if i, ok := idx[name]; ok {
			out[i] = kv
			return
		}
		idx[name] = len(out)
		out = append(out, kv)
	}
	for _, kv := range image {
		name, value, _ := strings.Cut(kv, "=")
		set(name, value)
	}
	for _, v := range pod {
		set(v.name, v.value)
	}
	if _, ok := idx["PATH"]; !ok {
		set("PATH", defaultPath)
	}
	if _, ok := idx["HOSTNAME"]; !ok && hostname != "" {
		set("HOSTNAME", hostname)
	}
	return out
}

// envMap is the pod-defined part of a container's environment, which command and args are
// expanded with (as kubelets do, the image's variables are not).
func envMap(vars []envVar) map[string]string {
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.name] = v.value
	}
	return m
}
