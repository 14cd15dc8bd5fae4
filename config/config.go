// Package config holds fn's install manifests (the Function CRD, RBAC, configuration and the
// controller's Deployment), embedded for the CLI and tests.
package config

import "embed"

// Manifests are the YAML files of this directory; the CRDs are under crd/.
//
//go:embed *.yaml crd/*.yaml
var Manifests embed.FS

// FunctionCRD is the path of the Function CRD in Manifests.
const FunctionCRD = "crd/fnkit.dev_functions.yaml"

// CRDs are the paths in Manifests of every CRD of fn: Function, FunctionBuild (git builds) and
// Trigger (events).
var CRDs = []string{FunctionCRD, "crd/fnkit.dev_functionbuilds.yaml", "crd/fnkit.dev_triggers.yaml"}
