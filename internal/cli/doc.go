// Package cli holds the fn command's cobra commands: thin layers that validate flags, call the
// builder, runtime and platform libraries, and print results on stdout and progress on stderr.
package cli
