// Command tool is a container's program in the agent's tests: "serve" waits to be stopped, "cat"
// copies stdin to stdout, "fail" writes its other arguments to stderr and exits 3, "self" prints
// its own path as /proc tells it, "api" says whether a TLS connection to the kubernetes
// Service (KUBERNETES_SERVICE_HOST and _PORT) is made, "security" prints what the process may
// do (its pid, the processes it sees, its effective user, capabilities, no_new_privs, seccomp
// mode, and whether it may make a namespace), "write FILE" writes stdin to FILE and "read FILE"
// prints it.
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
	case "security":
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		field := func(name string) string {
			for _, l := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(l, name+":"); ok {
					return strings.TrimSpace(v)
				}
			}
			return "?"
		}
		procs := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if strings.Trim(e.Name(), "0123456789") == "" {
				procs++
			}
		}
		init, _ := os.ReadFile("/proc/1/cmdline")
		unshare := "ok" // a UTS namespace of its own: CAP_SYS_ADMIN, and no seccomp filter denying it
		if err := syscall.Unshare(syscall.CLONE_NEWUTS); err != nil {
			unshare = err.Error()
		}
		fmt.Printf("pid=%d procs=%d init=%q euid=%d CapEff=%s NoNewPrivs=%s Seccomp=%s unshare=%s\n", os.Getpid(), procs,
			strings.TrimRight(string(init), "\x00"), os.Geteuid(), field("CapEff"), field("NoNewPrivs"), field("Seccomp"), unshare)
	case "write": // stdin to the file named
		b, _ := io.ReadAll(os.Stdin)
		if err := os.WriteFile(os.Args[2], b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "read":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "fail":
		fmt.Fprintln(os.Stderr, strings.Join(os.Args[2:], " "))
		os.Exit(3)
	default:
		os.Exit(2)
	}
}
