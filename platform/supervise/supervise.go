// Package supervise keeps the local platform's processes running: a process that exits while
// it should run is started again after a backoff, its exits are logged with their cause, and
// after repeated crashes it is given up, loudly. When to start again is a pure function of the
// process's history and the time (Policy.Exited).
package supervise

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Policy is when a process that exited starts again.
type Policy struct {
	// Initial is the delay after a first crash; each crash in a row doubles it, up to Max.
	Initial, Max time.Duration
	// Reset is how long a run must last for the crash that ends it to count as a first one.
	Reset time.Duration
	// GiveUp exits within Within give the process up.
	GiveUp int
	Within time.Duration
}

// DefaultPolicy restarts after 200 ms, 400 ms, ... up to 30 s, and gives up after 5 exits in 2
// minutes.
var DefaultPolicy = Policy{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Reset: time.Minute, GiveUp: 5, Within: 2 * time.Minute}

// History is what a policy remembers of a process's exits.
type History struct {
	Consecutive int         // crashes in a row, each ending a run shorter than Reset
	Exits       []time.Time // within the last Within
}

// Exited is the policy's decision when a process that started at started exits at now: the
// history after it, how long to wait before starting again, or to give up.
func (p Policy) Exited(h History, started, now time.Time) (next History, delay time.Duration, giveUp bool) {
	for _, t := range h.Exits {
		if now.Sub(t) < p.Within {
			next.Exits = append(next.Exits, t)
		}
	}
	next.Exits = append(next.Exits, now)
	next.Consecutive = h.Consecutive + 1
	if now.Sub(started) >= p.Reset {
		next.Consecutive = 1
	}
	if len(next.Exits) >= p.GiveUp {
		return next, 0, true
	}
	delay = p.Initial
	for i := 1; i < next.Consecutive && delay < p.Max; i++ {
		delay *= 2
	}
	return next, min(delay, p.Max), false
}

// States of a supervised process.
const (
	Running    = "running"
	Restarting = "restarting" // exited; starts again after a delay
	Failed     = "failed"     // given up after repeated crashes, or exited before supervision began
	Stopped    = "stopped"
)

// Status is what is known of a supervised process now.
type Status struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"lastExit,omitempty"` // why it last exited
	Since    time.Time `json:"since"`              // when it entered its state
}

// Process is a supervised process.
type Process struct {
	name    string
	command func() *exec.Cmd
	policy  Policy
	notify  func(Status, string) // every change, with a line saying what happened

	mu         sync.Mutex
	st         Status
	cmd        *exec.Cmd
	supervised bool // restart on exit (off until the process is known good)
	stopping   bool
	wake       chan struct{} // cuts a restart's delay short when stopping
	done       chan struct{} // closed when the process will not run again
	err        error         // why, when it was not stopped
}

// Start starts the process command makes (a new command for each start), with SIGKILL as its
// parent-death signal, from a thread kept until it exits (Linux sends that signal when the
// forking thread ends). It is not restarted until Supervise. notify, if not nil, is called on
// every change of its status, with a line saying what happened.
func Start(name string, command func() *exec.Cmd, policy Policy, notify func(Status, string)) (*Process, error) {
	p := &Process{name: name, command: command, policy: policy, notify: notify,
		wake: make(chan struct{}), done: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Supervise has the process started again whenever it exits, by the policy.
func (p *Process) Supervise() {
	p.mu.Lock()
	p.supervised = true
	p.mu.Unlock()
}

// Status is the process's status now.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Done is closed when the process will not run again: stopped, given up, or exited before
// Supervise. Err says why.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is why the process ended, once Done is closed: nil when it was stopped.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop stops the process: SIGTERM, then SIGKILL after grace. It returns once it has exited.
func (p *Process) Stop(grace time.Duration) error {
	p.mu.Lock()
	if !p.stopping {
		p.stopping = true
		close(p.wake)
	}
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	p.mu.Lock()
	cmd = p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, grace)
}

func (p *Process) set(state string, cmd *exec.Cmd, why string, now time.Time) {
	p.mu.Lock()
	p.st.Name, p.st.State, p.st.Since = p.name, state, now
	p.cmd = cmd
	p.st.PID = 0
	if cmd != nil && cmd.Process != nil {
		p.st.PID = cmd.Process.Pid
	}
	st := p.st
	p.mu.Unlock()
	if p.notify != nil {
		p.notify(st, why)
	}
}

// run starts the process and, while supervised, starts it again each time it exits; it runs
// on a locked thread (the children's parent-death signal is this thread's), which ends with it.
func (p *Process) run(started chan<- error) {
	runtime.LockOSThread()
	defer close(p.done)
	var h History
	first := true
	for {
		cmd := p.command()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			if closer, ok := cmd.Stdout.(interface{ Close() error }); ok {
				_ = closer.Close()
			}
			err = fmt.Errorf("starting %s: %w", p.name, err)
			if first {
				started <- err
				return
			}
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			p.set(Failed, nil, err.Error(), time.Now())
			return
		}
		began := time.Now()
		if first {
			p.set(Running, cmd, "started", began)
			started <- nil
			first = false
		} else {
			p.mu.Lock()
			p.st.Restarts++
			p.mu.Unlock()
			p.set(Running, cmd, "started again", began)
		}
		werr := cmd.Wait()
		if closer, ok := cmd.Stdout.(interface{ Close() error }); ok {
			_ = closer.Close()
		}
		now := time.Now()
		why := exitText(werr)
		p.mu.Lock()
		stopping, supervised := p.stopping, p.supervised
		p.st.LastExit = why
		p.mu.Unlock()
		if stopping {
			p.set(Stopped, nil, "stopped", now)
			return
		}
		if !supervised {
			p.mu.Lock()
			p.err = fmt.Errorf("%s %s", p.name, why)
			p.mu.Unlock()
			p.set(Failed, nil, why, now)
			return
		}
		var delay time.Duration
		var giveUp bool
		h, delay, giveUp = p.policy.Exited(h, began, now)
		if giveUp {
			p.mu.Lock()
			p.err = fmt.Errorf("%s %s, its %d%s exit within %s: given up", p.name, why, len(h.Exits), ordinal(len(h.Exits)), p.policy.Within)
			err := p.err
			p.mu.Unlock()
			p.set(Failed, nil, err.Error(), now)
			return
		}
		p.set(Restarting, nil, fmt.Sprintf("%s; starting again in %s", why, delay), now)
		select {
		case <-time.After(delay):
		case <-p.wake:
			p.set(Stopped, nil, "stopped", time.Now())
			return
		}
	}
}

// exitText says how a process ended.
func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with code %d", ee.ExitCode())
	}
	if err != nil {
		return "failed: " + err.Error()
	}
	return "exited with code 0"
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return "th"
	case n%10 == 1:
		return "st"
	case n%10 == 2:
		return "nd"
	case n%10 == 3:
		return "rd"
	}
	return "th"
}
