package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	utilexec "k8s.io/utils/exec"
)

// forCommand is how command runs in the container whose process l started: same root, user,
// environment and working directory, its executable looked up on the container's PATH.
func (l launch) forCommand(command []string) (launch, error) {
	if len(command) == 0 {
		return l, errors.New("exec: no command")
	}
	pathEnv := defaultPath
	for _, kv := range l.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	exe, err := findExecutable(l.root, command[0], l.dir, pathEnv)
	if err != nil {
		return l, err
	}
	l.exe, l.argv = exe, command
	return l, nil
}

// startInSandbox starts cmd, made by l, in the pod's namespaces (and the container's).
func (c *container) startInSandbox(l launch, cmd *exec.Cmd) error {
	c.pd.mu.Lock()
	sb := c.pd.sb
	c.pd.mu.Unlock()
	return l.start(sb, cmd)
}

// RunInContainer runs cmd in a running container of the pod, as the container's process runs,
// with the caller's stdin, stdout and stderr (kubectl exec). Its exit code is the caller's. No
// terminal is offered: the agent has no pseudo-terminals.
func (p *provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	pd := p.lookup(namespace, podName)
	if pd == nil {
		return errdefs.NotFoundf("pod %s/%s is not running on this node", namespace, podName)
	}
	c := pd.container(containerName)
	if c == nil {
		return errdefs.NotFoundf("pod %s/%s has no container %q", namespace, podName, containerName)
	}
	pd.mu.Lock()
	inst := c.inst
	pd.mu.Unlock()
	running := inst != nil
	if running {
		select {
		case <-inst.exited:
			running = false
		default:
		}
	}
	if !running {
		return errdefs.InvalidInputf("container %q of pod %s/%s is not running", containerName, namespace, podName)
	}
	if attach.TTY() {
		return errdefs.InvalidInputf("fn's node agent offers no terminal: run kubectl exec without -t (-i works)")
	}
	l, err := inst.launch.forCommand(cmd)
	if err != nil {
		return fmt.Errorf("exec %q: %w", cmd, err)
	}
	x := l.command(nil, nil)
	x.Stdin, x.Stdout, x.Stderr = nil, nil, nil
	if in := attach.Stdin(); in != nil {
		x.Stdin = in
	}
	if out := attach.Stdout(); out != nil {
		x.Stdout = out
	}
	if errw := attach.Stderr(); errw != nil {
		x.Stderr = errw
	}
	// Once the command exits, its output is copied for at most this long (a child it left may
	// hold the pipes), and a stdin the caller keeps open stops being read.
	x.WaitDelay = time.Second
	if err := c.startInSandbox(l, x); err != nil {
		return fmt.Errorf("exec %q: %w", cmd, err)
	}
	p.log.Info("exec in container", "pod", pd.key, "container", containerName, "argv", cmd, "pid", x.Process.Pid)
	waited := reap(x)
	select {
	case err = <-waited:
	case <-ctx.Done(): // the caller went away
		_ = syscall.Kill(-x.Process.Pid, syscall.SIGKILL)
		err = <-waited
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	return err
}
