package platform

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"fnkit.dev/fn/platform/supervise"
)

// agentStopWait bounds how long a stopping agent may take to stop its pods;
// componentStopWait how long another component may take to finish what it serves.
const (
	agentStopWait     = 45 * time.Second
	componentStopWait = 10 * time.Second
)

// startComponent starts c as the supervised process name, run by exe with ComponentArgs, its
// stdout and stderr appended to log, and files as its descriptors 3, 4; it serves its profiles
// on DebugSocketPath(home, name). It is not started
// again until Supervise. It dies with the platform (SIGKILL as its parent-death signal); Stop
// ends it with SIGTERM, then SIGKILL.
func startComponent(exe []string, home, name string, c Component, log string, notify func(supervise.Status, string), files ...*os.File) (*supervise.Process, error) {
	args := append(append([]string{}, exe[1:]...), ComponentArgs(c)...)
	args = append(args, "--debug-socket="+DebugSocketPath(home, name))
	command := func() *exec.Cmd {
		cmd := exec.Command(exe[0], args...)
		cmd.Env = os.Environ()
		cmd.ExtraFiles = files
		if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			cmd.Stdout, cmd.Stderr = f, f // closed by supervise once the process has exited
		}
		return cmd
	}
	return supervise.Start(name, command, supervise.DefaultPolicy, notify)
}

// heldSocket listens on addr and returns the listening socket as a file, for a component to
// inherit (its ListenFD): the platform holds it across the component's restarts, so that
// clients connecting meanwhile wait in its queue instead of being refused.
func heldSocket(addr string) (*os.File, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close() // the file is a descriptor of its own on the same socket
	return ln.(*net.TCPListener).File()
}

// serveWait bounds how long a component may take to serve after it starts.
const serveWait = 2 * time.Minute

// waitServing waits until url answers over HTTP (any status: the component serves), and fails
// if the process exits first, with the last line of its log.
func waitServing(ctx context.Context, p *supervise.Process, url, log string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(serveWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return fmt.Errorf("%v: %s (its log: %s)", p.Err(), lastLine(log), log)
		case <-deadline:
			return fmt.Errorf("%s did not serve %s within %s (its log: %s)", p.Status().Name, url, serveWait, log)
		case <-tick.C:
		}
	}
}

// watchGivenUp says, loudly, when p is given up after repeated crashes (fn status shows it
// too): what follows, and where its log is. The rest of the platform serves on.
func watchGivenUp(ctx context.Context, p *supervise.Process, then, log string, step func(string, ...any)) {
	go func() {
		select {
		case <-ctx.Done():
		case <-p.Done():
			if err := p.Err(); err != nil {
				step("ERROR: %v: %s (its log: %s)", err, then, log)
			}
		}
	}()
}

// lastLine is the last non-empty line of the file at path, or "" if there is none.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(lines[len(lines)-1])
}
