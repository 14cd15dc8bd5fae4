// Command fn turns a Go function into a running, autoscaled service.
package main

import (
	"context"
	"os"

	"fnkit.dev/fn/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.SystemStreams()))
}
