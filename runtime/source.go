package runtime

import "embed"

// Source holds this module's source (go.mod, go.sum and the package's Go files). The fn CLI embeds
// it so that a function can be built on a machine where this module cannot be fetched from any proxy.
// Nothing in the runtime refers to it, so the linker leaves it out of function binaries.
//
//go:embed go.mod go.sum *.go
var Source embed.FS
