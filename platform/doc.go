// Package platform runs fn's local platform: a real Kubernetes control plane, the embedded
// registry, node agents that run pods as processes, and fn's controller, gateway and builder,
// each a process of its own (a Component) or, with Config.Install, pods on the agents (installed
// as fn install does, the gateway behind a local load balancer): one supervised process tree
// whose state lives under one directory. A component that exits is started again alone.
package platform
