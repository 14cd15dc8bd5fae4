// Package builder turns a function directory into something that runs: it detects the function's
// signature with go/parser, generates the wrapper main that hands it to the fn runtime, and builds
// it, into a local binary (fn run) or an OCI image (fn build).
package builder
