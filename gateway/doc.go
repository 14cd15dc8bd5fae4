// Package gateway is fn's one HTTP entry for all functions: it routes each request by path
// (/f/NAMESPACE/NAME/...) or host (NAME.NAMESPACE.DOMAIN) to a ready endpoint of the function's
// EndpointSlices, applies the function's timeout, and counts requests for metrics and autoscaling.
package gateway
