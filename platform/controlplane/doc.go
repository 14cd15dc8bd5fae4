// Package controlplane runs a real single-machine Kubernetes control plane on loopback: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, built from upstream sources and
// cached (see hack/k8s-binaries.sh), with generated certificates and an admin kubeconfig. fn's
// integration tests and its local platform both start it.
package controlplane
