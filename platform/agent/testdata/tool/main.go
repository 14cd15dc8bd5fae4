// Command tool is a container's program in the agent's tests: "serve" waits to be stopped, "cat"
// copies stdin to stdout, "fail" writes its other arguments to stderr and exits 3.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
	case "cat":
		_, _ = io.Copy(os.Stdout, os.Stdin)
	case "fail":
		fmt.Fprintln(os.Stderr, strings.Join(os.Args[2:], " "))
		os.Exit(3)
	default:
		os.Exit(2)
	}
}
