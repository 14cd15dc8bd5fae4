// Package function reconciles Functions into their Deployment, Service and, for metric cpu, a
// HorizontalPodAutoscaler, and reports their state in the Function's status.
package function
