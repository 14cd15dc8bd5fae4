//go:build tools

// Package metricsserver pins the metrics-server main package so that
// hack/metrics-server.sh can build it from this module's go.mod/go.sum.
package metricsserver

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
