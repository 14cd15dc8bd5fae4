// Package resources builds the desired children of a Function (Deployment, Service,
// HorizontalPodAutoscaler) as pure functions: no clients, no logging, no I/O.
package resources
