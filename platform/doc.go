// Package platform runs fn's local platform: a real Kubernetes control plane, the embedded
// registry, the fn controller, the gateway and a node agent that runs pods as processes, in one
// supervised process tree whose state lives under one directory.
package platform
