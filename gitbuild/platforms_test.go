package gitbuild

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodePlatforms(t *testing.T) {
	node := func(os, arch string, labels bool) corev1.Node {
		n := corev1.Node{}
		if labels {
			n.ObjectMeta = metav1.ObjectMeta{Labels: map[string]string{corev1.LabelOSStable: os, corev1.LabelArchStable: arch}}
		} else {
			n.Status.NodeInfo = corev1.NodeSystemInfo{OperatingSystem: os, Architecture: arch}
		}
		return n
	}
	for _, tc := range []struct {
		name  string
		nodes []corev1.Node
		want  []string
	}{
		{"none", nil, nil},
		{"one", []corev1.Node{node("linux", "amd64", false)}, []string{"linux/amd64"}},
		{"mixed, each once, sorted", []corev1.Node{node("linux", "arm64", false), node("linux", "amd64", false), node("linux", "arm64", true)},
			[]string{"linux/amd64", "linux/arm64"}},
		{"windows nodes left out", []corev1.Node{node("windows", "amd64", false), node("linux", "arm64", true)}, []string{"linux/arm64"}},
	} {
		if got := NodePlatforms(tc.nodes); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
