//go:build tools

// Package k8s pins the Kubernetes control-plane and etcd main packages so that
// hack/k8s-binaries.sh can build them from this module's go.mod/go.sum.
package k8s

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
