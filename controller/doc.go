// Package controller owns the Function API (fnkit.dev/v1alpha1) and its reconciler, which
// materializes each Function as a Deployment, a Service and an autoscaler.
package controller
