package gitbuild

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// NodePlatforms are the platforms (linux/amd64, linux/arm64...) that nodes run, sorted, each
// once: what a function's image is built for, so that it runs wherever it is scheduled. Nodes
// of other operating systems are left out (functions are Linux binaries); none gives nil.
func NodePlatforms(nodes []corev1.Node) []string {
	var ps []string
	for _, n := range nodes {
		os, arch := n.Status.NodeInfo.OperatingSystem, n.Status.NodeInfo.Architecture
		if os == "" {
			os = n.Labels[corev1.LabelOSStable]
		}
		if arch == "" {
			arch = n.Labels[corev1.LabelArchStable]
		}
		if os != "linux" || arch == "" {
			continue
		}
		if p := os + "/" + arch; !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// ClusterPlatforms are the NodePlatforms of the cluster's Nodes; an error (such as a user who
// may not list Nodes) is the caller's to report.
func ClusterPlatforms(ctx context.Context, kube kubernetes.Interface) ([]string, error) {
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return NodePlatforms(list.Items), nil
}
