package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// A sandbox is a pod's set of namespaces, held by one OS thread the agent keeps for the pod:
// the thread unshares a network, mount, UTS and IPC namespace, and every process of the pod is
// forked from it, so it starts inside them. Mounts (the containers' read-only roots, volumes,
// /dev nodes, /etc/hosts) live in the pod's mount namespace only, so nothing of them shows on
// the host, and when the pod ends its thread exits and the namespaces (and the veth inside
// the network one) go away with it, even if the agent is killed.
//
// Processes forked from the thread get SIGKILL when it exits (Pdeathsig): a pod's processes
// never outlive its sandbox, nor the agent.
type sandbox struct {
	reqs  chan func()
	done  chan struct{}
	netns int // the pod's network namespace (a file descriptor), -1 when it has none
}

type sandboxOptions struct {
	net, mounts, uts, ipc bool // namespaces to create
	hostname              string
	noNewPrivs            bool // processes cannot gain privileges (setuid binaries, file capabilities)
}

var errSandboxClosed = errors.New("pod sandbox closed")

func newSandbox(o sandboxOptions) (*sandbox, error) {
	s := &sandbox{reqs: make(chan func()), done: make(chan struct{}), netns: -1}
	ready := make(chan error, 1)
	go func() {
		defer close(s.done)
		// The thread is never unlocked: when this goroutine returns, the runtime ends the
		// thread, and its namespaces with it.
		runtime.LockOSThread()
		if err := s.setup(o); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for f := range s.reqs {
			f()
		}
		if s.netns >= 0 {
			unix.Close(s.netns)
		}
	}()
	if err := <-ready; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

func (s *sandbox) setup(o sandboxOptions) error {
	var flags int
	if o.net {
		flags |= unix.CLONE_NEWNET
	}
	if o.mounts {
		flags |= unix.CLONE_NEWNS
	}
	if o.uts {
		flags |= unix.CLONE_NEWUTS
	}
	if o.ipc {
		flags |= unix.CLONE_NEWIPC
	}
	if flags != 0 {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("creating the pod's namespaces: %w", err)
		}
	}
	if o.mounts {
		// Nothing mounted for the pod propagates to the host.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("making the pod's mounts private: %w", err)
		}
	}
	if o.uts && o.hostname != "" {
		h := o.hostname
		if len(h) > 63 {
			h = h[:63]
		}
		if err := unix.Sethostname([]byte(h)); err != nil {
			return fmt.Errorf("setting the pod's hostname: %w", err)
		}
	}
	if o.net {
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening the pod's network namespace: %w", err)
		}
		s.netns = fd
	}
	if o.noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	return nil
}

// do runs f on the sandbox's thread, inside the pod's namespaces.
func (s *sandbox) do(f func() error) (err error) {
	errc := make(chan error, 1)
	defer func() {
		if recover() != nil { // send on the closed channel
			err = errSandboxClosed
		}
	}()
	select {
	case s.reqs <- func() { errc <- f() }:
	case <-s.done:
		return errSandboxClosed
	}
	return <-errc
}

// close ends the sandbox's thread: its namespaces go away once no process is left in them,
// and any process still forked from it gets SIGKILL.
func (s *sandbox) close() {
	defer func() { _ = recover() }() // closed twice
	close(s.reqs)
	<-s.done
}

// bindMount mounts src on dst (both host paths, dst inside a container's root), read-only if
// asked. It must run on the sandbox's thread.
func bindMount(src, dst string, readOnly bool) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mounting %s on %s: %w", src, dst, err)
	}
	if readOnly {
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", dst, err)
		}
	}
	return nil
}

// devices are the /dev nodes a container's root gets, bound from the host's.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// ensureMountpoint creates the file or directory a mount lands on, inside root.
func ensureMountpoint(path string, dir bool) error {
	if dir {
		return os.MkdirAll(path, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
