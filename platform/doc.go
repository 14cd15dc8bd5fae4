// Package platform runs fn's local platform: a real Kubernetes control plane, the embedded
// registry, node agents (a process each) that run pods as processes, and fn's controller,
// gateway and builder, either in the platform's process or, with Config.Install, as pods on the
// agents (installed as fn install does, the gateway behind a local load balancer), in one
// supervised process tree whose state lives under one directory.
package platform
