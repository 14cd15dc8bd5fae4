// Package e2e tests fn end to end on the local platform, as a user would: it builds the fn
// binary, runs fn up, deploys and invokes the examples, rolls out under load, and fn down.
package e2e
