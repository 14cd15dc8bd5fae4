// Package runtime serves a user's function over HTTP and CloudEvents: it is compiled into every
// function image by fn's generated main, and owns health, metrics, timeouts, concurrency limits and
// graceful shutdown. It imports nothing from Kubernetes.
package runtime
