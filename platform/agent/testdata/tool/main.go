// Command tool is a container's program in the agent's tests: "serve" waits to be stopped, "cat"
// copies stdin to stdout, "fail" writes its other arguments to stderr and exits 3, "self" prints
// its own path as /proc tells it, "api" says whether a TLS connection to the kubernetes
// Service (KUBERNETES_SERVICE_HOST and _PORT) is made.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
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
	case "self":
		exe, err := os.Executable()
		fmt.Println(exe, err)
	case "api":
		addr := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only whether it answers
		if err != nil {
			fmt.Println(addr, err)
			os.Exit(1)
		}
		c.Close()
		fmt.Println(addr, "answers TLS")
	case "fail":
		fmt.Fprintln(os.Stderr, strings.Join(os.Args[2:], " "))
		os.Exit(3)
	default:
		os.Exit(2)
	}
}
