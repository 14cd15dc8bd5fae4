// Package autoscaler scales Functions on concurrency or requests per second, in the style of
// Knative's KPA: gateways report what they see of each function, the autoscaler averages it over
// a stable and a panic window and sets each function's Deployment replicas through its scale
// subresource. Decisions are a pure function of (spec, observation, state, now) (Decide).
package autoscaler
