// Package agent is the node agent of fn's local platform: it registers a real Node through the
// virtual-kubelet library and runs each Pod scheduled to it as local processes, with the Pod's
// image unpacked into a root of its own, a Pod IP of its own and the kubelet's logs API.
package agent
