// Command fn turns a Go function into a running, autoscaled service.
package main

import (
	"os"

	"fnkit.dev/fn/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.SystemStreams()))
}
