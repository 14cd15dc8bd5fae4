package agent

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// A sandbox is a pod's set of namespaces, held by one OS thread the agent keeps for the pod:
// the thread unshares a network, mount, UTS and IPC namespace, and every process of the pod is
// forked from it, so it starts inside them. Mounts (the containers' read-only roots, volumes,
// /dev nodes, /etc/hosts) live in the pod's mount namespace only, so nothing of them shows on
// the host, and when the pod ends (or the agent dies) its namespaces, and the veth inside the
// network one, go away with its processes.
//
// Processes forked from the thread get SIGKILL when the thread exits (Pdeathsig): the pod's
// processes never outlive the agent. Linux ties that signal to the forking thread, not to the
// process, so a sandbox's thread must never exit while the agent runs: a thread locked for a
// sandbox is any thread of the process, one that may have forked other programs' children
// before. So sandbox threads stay locked for good: when a pod ends, its thread rejoins the
// host's namespaces and waits, in a pool, for the next pod.
type sandbox struct {
	mu     sync.Mutex
	t      *sandboxThread
	o      sandboxOptions
	closed bool
	netns  int // the pod's network namespace (a file descriptor), -1 when it has none
}

type sandboxOptions struct {
	net, mounts, uts, ipc bool // namespaces to create
	hostname              string
	noNewPrivs            bool // processes cannot gain privileges (setuid binaries, file capabilities)
}

var errSandboxClosed = errors.New("pod sandbox closed")

// sandboxThread is an OS thread locked by a goroutine that runs what it is sent, forever.
type sandboxThread struct {
	reqs       chan func()
	noNewPrivs bool // set for good on the thread
	tid        int
}

// threadPool holds the sandbox threads no pod uses, by their no_new_privs setting (which
// cannot be unset).
var threadPool struct {
	sync.Mutex
	idle map[bool][]*sandboxThread
}

func getSandboxThread(noNewPrivs bool) (*sandboxThread, error) {
	threadPool.Lock()
	if n := len(threadPool.idle[noNewPrivs]); n > 0 {
		t := threadPool.idle[noNewPrivs][n-1]
		threadPool.idle[noNewPrivs] = threadPool.idle[noNewPrivs][:n-1]
		threadPool.Unlock()
		return t, nil
	}
	threadPool.Unlock()
	t := &sandboxThread{reqs: make(chan func()), noNewPrivs: noNewPrivs}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, and the goroutine never returns: see sandbox
		if unix.Gettid() == unix.Getpid() {
			// The main thread: what the process shows of itself in /proc/self (its namespaces,
			// /proc/self/net) is this thread's, so it must stay in the host's namespaces. Keep
			// it parked here for good, so that no sandbox ever gets it, and take another.
			ready <- errMainThread
			select {}
		}
		t.tid = unix.Gettid()
		if noNewPrivs {
			if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
				ready <- fmt.Errorf("setting no_new_privs: %w", err)
				select {} // keep the thread: it may have forked others' children
			}
		}
		ready <- nil
		for f := range t.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		if errors.Is(err, errMainThread) {
			return getSandboxThread(noNewPrivs)
		}
		return nil, err
	}
	return t, nil
}

var errMainThread = errors.New("the main thread")

func putSandboxThread(t *sandboxThread) {
	threadPool.Lock()
	defer threadPool.Unlock()
	if threadPool.idle == nil {
		threadPool.idle = map[bool][]*sandboxThread{}
	}
	threadPool.idle[t.noNewPrivs] = append(threadPool.idle[t.noNewPrivs], t)
}

// hostNamespaces are file descriptors of the agent's own namespaces, which sandbox threads
// rejoin when their pod ends.
var hostNamespaces = sync.OnceValues(func() (map[int]int, error) {
	fds := map[int]int{}
	for flag, name := range map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWNS: "mnt", unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWPID: "pid"} {
		// The process's main thread is in the host's namespaces.
		fd, err := unix.Open("/proc/self/ns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the host's %s namespace: %w", name, err)
		}
		fds[flag] = fd
	}
	return fds, nil
})

func newSandbox(o sandboxOptions) (*sandbox, error) {
	if o.net || o.mounts || o.uts || o.ipc {
		if _, err := hostNamespaces(); err != nil {
			return nil, err
		}
	}
	t, err := getSandboxThread(o.noNewPrivs)
	if err != nil {
		return nil, err
	}
	s := &sandbox{t: t, o: o, netns: -1}
	if err := s.run(s.setup); err != nil {
		if rerr := s.run(s.restore); rerr == nil {
			putSandboxThread(t)
		}
		return nil, err
	}
	return s, nil
}

// run runs f on the sandbox's thread.
func (s *sandbox) run(f func() error) error {
	errc := make(chan error, 1)
	s.t.reqs <- func() { errc <- f() }
	return <-errc
}

func (s *sandbox) setup() error {
	var flags int
	o := s.o
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
	return nil
}

// restore brings the thread back into the host's namespaces.
func (s *sandbox) restore() error {
	if s.netns >= 0 {
		unix.Close(s.netns)
		s.netns = -1
	}
	host, err := hostNamespaces()
	if err != nil {
		return nil // no namespace was created
	}
	var errs []error
	for _, ns := range []struct {
		on   bool
		flag int
	}{{s.o.net, unix.CLONE_NEWNET}, {s.o.mounts, unix.CLONE_NEWNS}, {s.o.uts, unix.CLONE_NEWUTS}, {s.o.ipc, unix.CLONE_NEWIPC}} {
		if ns.on {
			if err := unix.Setns(host[ns.flag], ns.flag); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// do runs f on the sandbox's thread, inside the pod's namespaces.
func (s *sandbox) do(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSandboxClosed
	}
	return s.run(f)
}

// close leaves the pod's namespaces, which go away once no process is left in them, and puts
// the thread back in the pool. The pod's processes must be gone.
func (s *sandbox) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if err := s.run(s.restore); err != nil {
		return // a thread that could not leave the pod's namespaces stays parked, unused
	}
	putSandboxThread(s.t)
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
