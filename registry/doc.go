// Package registry serves a real OCI registry (CNCF distribution, filesystem storage) for fn's
// local platform and tests: images pushed to it survive restarts.
package registry
