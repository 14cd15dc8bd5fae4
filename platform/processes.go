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

// components are fn's components running as supervised processes of exe; stop stops them in
// the reverse order of their start, then closes the sockets held for them.
type components struct {
	exe    []string
	home   string
	notify func(supervise.Status, string)
	step   func(string, ...any)

	procs   []*supervise.Process
	sockets []*os.File
}

// start starts c as the supervised process name, its stdout and stderr appended to log, and
// files as its descriptors 3, 4; it serves its profiles on DebugSocketPath(home, name). It is
// not started again until Supervise. It dies with the platform (SIGKILL as its parent-death
// signal); Stop ends it with SIGTERM, then SIGKILL.
func (cs *components) start(name string, c Component, log string, files ...*os.File) (*supervise.Process, error) {
	args := append(append([]string{}, cs.exe[1:]...), ComponentArgs(c)...)
	args = append(args, "--debug-socket="+DebugSocketPath(cs.home, name))
	command := func() *exec.Cmd {
		cmd := exec.Command(cs.exe[0], args...)
		cmd.Env = os.Environ()
		if env := gogc(c); env != "" {
			cmd.Env = append(cmd.Env, env)
		}
		cmd.ExtraFiles = files
		if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			cmd.Stdout, cmd.Stderr = f, f // closed by supervise once the process has exited
		}
		return cmd
	}
	p, err := supervise.Start(name, command, supervise.DefaultPolicy, cs.notify)
	if err != nil {
		return nil, err
	}
	cs.procs = append(cs.procs, p)
	return p, nil
}

// launch starts component c as name, its log Home/logs/NAME.log, on a socket of addr that the
// platform holds (its descriptor 3) when addr is not "". Its wait, called once the platform has
// started what can start meanwhile, waits until it serves url, then has it started again
// whenever it exits, and said loudly if it is given up (until running is done).
func (cs *components) launch(ctx, running context.Context, name string, c Component, addr, url string) (wait func() error, err error) {
	log := ComponentLogPath(cs.home, name)
	var files []*os.File
	if addr != "" {
		f, err := heldSocket(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cs.sockets, files = append(cs.sockets, f), []*os.File{f}
	}
	p, err := cs.start(name, c, log, files...)
	if err != nil {
		return nil, err
	}
	return func() error {
		if err := waitServing(ctx, p, url, log); err != nil {
			return err
		}
		p.Supervise()
		watchGivenUp(running, p, "it stays down until the next fn up", log, cs.step)
		return nil
	}, nil
}

// stop stops every process, the last started first (Serve stops the agents before, all at
// once), then closes the sockets held for them.
func (cs *components) stop() {
	for i := len(cs.procs) - 1; i >= 0; i-- {
		_ = cs.procs[i].Stop(componentStopWait)
	}
	for _, f := range cs.sockets {
		_ = f.Close()
	}
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
			return fmt.Errorf("%v: %s (its log: %s)", p.Err(), LastLine(log), log)
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

// LastLine is the last non-empty line of the file at path (a log), or "" if there is none.
func LastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(lines[len(lines)-1])
}
