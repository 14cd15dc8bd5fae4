package agent

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestCapabilities(t *testing.T) {
	defaults := make([]int, 0, len(defaultCapabilities))
	for _, c := range defaultCapabilities {
		defaults = append(defaults, capabilityNumbers[c])
	}
	without := func(caps []int, n int) []int {
		return slices.DeleteFunc(slices.Clone(caps), func(c int) bool { return c == n })
	}
	for _, c := range []struct {
		name    string
		caps    *corev1.Capabilities
		want    []int
		wantErr string
	}{
		{"nothing said", nil, defaults, ""},
		{"drop ALL", &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, nil, ""},
		{"drop ALL, add one", &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}, []int{10}, ""},
		{"drop one, its CAP_ name in lower case", &corev1.Capabilities{Drop: []corev1.Capability{"cap_net_raw"}}, without(defaults, 13), ""},
		{"add one", &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}, append(slices.Clone(defaults), 21), ""},
		{"unknown", &corev1.Capabilities{Add: []corev1.Capability{"SYS_WIZARD"}}, nil, `unknown capability "SYS_WIZARD"`},
	} {
		var sc *corev1.SecurityContext
		if c.caps != nil {
			sc = &corev1.SecurityContext{Capabilities: c.caps}
		}
		got, err := capabilities(sc)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: %v, want an error saying %s", c.name, err, c.wantErr)
			}
			continue
		}
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, want)
		}
	}
}
