// Package containerinit is the first moments of every process the node agent starts in a
// container: the agent forks its own executable under the name Arg0 into the container's
// namespaces, and before any other code of it runs, this package's init turns the process
// into the container's program. It pivots into the container's root (or joins the mount
// namespace of a running container, for exec and probes), mounts the container's own /proc,
// drops capabilities to those asked for, sets the user, no_new_privs and the seccomp filter,
// and executes the program. What fails before that is written to file descriptor 3, which the
// agent reads; an exec that succeeds closes it.
//
// It is an init function, not a command, so that it runs in any binary that links the agent
// (fn, and the agent's tests) with nothing of the program's own start-up done first.
package containerinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Arg0 is the name the agent gives the process (os.Args[0]): this package's init acts only
// on it.
const Arg0 = "fn-container-init"

// SpecEnv is the environment variable that carries the Spec, as JSON. The program's own
// environment replaces it at exec.
const SpecEnv = "FN_CONTAINER_INIT"

// Descriptors the agent passes: where errors go, and (when joining) the running container's
// mount namespace.
const (
	ErrorFD   = 3
	JoinMntFD = 4
)

// Spec is what the process becomes.
type Spec struct {
	// Root is the container's root, a path of the pod's mount namespace, when the process is
	// the container's first (in a new PID and mount namespace); ProcDir is where its /proc
	// goes, resolved inside Root. Root is empty when the process joins a running container
	// (the mount namespace passed on JoinMntFD; the agent put it in the PID namespace).
	Root     string `json:"root,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	ProcDir  string `json:"procDir,omitempty"`

	Exe  string   `json:"exe"` // inside the container's root
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`

	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`

	Caps       []int `json:"caps"` // capabilities kept (numbers); every other one is dropped
	NoNewPrivs bool  `json:"noNewPrivs,omitempty"`
	Seccomp    bool  `json:"seccomp,omitempty"` // the runtime's default filter

	// DieWithParent has the program killed when the agent's thread that forked it exits
	// (the agent dies). The fork set it, but changing the user clears it: it is set again.
	DieWithParent bool `json:"dieWithParent,omitempty"`
}

// Error is a failure before the program ran, as the agent reads it from ErrorFD.
type Error struct {
	Errno syscall.Errno // 0 when the failure was no system call's
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// ParseError reads what the init process wrote on ErrorFD: nil when it wrote nothing (the
// program runs).
func ParseError(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	code, msg, ok := strings.Cut(string(b), " ")
	n, err := strconv.Atoi(code)
	if !ok || err != nil {
		return &Error{Msg: string(b)}
	}
	return &Error{Errno: syscall.Errno(n), Msg: msg}
}

func init() {
	if len(os.Args) == 0 || os.Args[0] != Arg0 {
		return
	}
	// Capabilities, no_new_privs, the seccomp filter and the root are the thread's: the one
	// that executes the program must be the one that set them.
	runtime.LockOSThread()
	_, _ = unix.FcntlInt(ErrorFD, unix.F_SETFD, unix.FD_CLOEXEC)
	err := become()
	var errno syscall.Errno
	errors.As(err, &errno)
	msg := fmt.Sprintf("%d %v", errno, err)
	_, _ = unix.Write(ErrorFD, []byte(msg))
	os.Exit(127)
}

// become makes the process the container's program; it returns only on failure.
func become() error {
	var s Spec
	if err := json.Unmarshal([]byte(os.Getenv(SpecEnv)), &s); err != nil {
		return fmt.Errorf("reading the container's spec: %w", err)
	}
	if s.Root != "" {
		if err := enterRoot(&s); err != nil {
			return err
		}
	} else if err := joinRoot(); err != nil {
		return err
	}
	if err := unix.Chdir(s.Dir); err != nil {
		return fmt.Errorf("working directory %s: %w", s.Dir, err)
	}
	keep := map[int]bool{}
	for _, c := range s.Caps {
		keep[c] = true
	}
	if err := dropBounding(keep); err != nil {
		return err
	}
	// A filter needs no_new_privs or CAP_SYS_ADMIN: without the one, install it while the
	// other is still held. It lets through what follows (setuid, capset, prctl, execve).
	if s.Seccomp && !s.NoNewPrivs {
		if err := installSeccomp(); err != nil {
			return err
		}
	}
	if err := setUser(&s); err != nil {
		return err
	}
	if err := setCaps(keep); err != nil {
		return err
	}
	if s.DieWithParent {
		if err := dieWithParent(); err != nil {
			return err
		}
	}
	if s.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
		if s.Seccomp {
			if err := installSeccomp(); err != nil {
				return err
			}
		}
	}
	err := unix.Exec(s.Exe, s.Argv, s.Env)
	return fmt.Errorf("starting %s: %w", s.Exe, err)
}

// dieWithParent sets the parent-death signal again (a change of user cleared the one set at
// the fork), then makes sure the parent did not die before: its end of the error pipe is
// closed then. (getppid cannot tell: in a PID namespace of its own, the parent is outside it
// and getppid says 0 either way.)
func dieWithParent() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the parent-death signal: %w", err)
	}
	fds := []unix.PollFd{{Fd: ErrorFD, Events: unix.POLLOUT}}
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&unix.POLLERR != 0 {
		os.Exit(137) // as if the signal had come: nobody is left to read an error
	}
	return nil
}

// enterRoot makes the container's root the process's, in its own mount namespace: the root
// (with what the agent mounted in it) becomes a mount of its own, gets a /proc of the new PID
// namespace, and is pivoted into; the pod's mounts are unmounted from view.
func enterRoot(s *Spec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the container's mounts private: %w", err)
	}
	if err := unix.Mount(s.Root, s.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the container's root: %w", err)
	}
	if s.ReadOnly {
		if err := unix.Mount("", s.Root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("making the container's root read-only: %w", err)
		}
	}
	if s.ProcDir != "" {
		if err := mountProc(s.ProcDir, s.Root+"/dev/null"); err != nil {
			return err
		}
	}
	if err := unix.Chdir(s.Root); err != nil {
		return fmt.Errorf("entering the container's root: %w", err)
	}
	// The old root goes on top of the new one and is detached from there: no directory of
	// the host is needed to hold it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the container's root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the pod's root: %w", err)
	}
	return unix.Chdir("/")
}

// joinRoot enters the mount namespace of a running container (passed on JoinMntFD), whose
// root is the container's.
func joinRoot() error {
	// A thread of a multi-threaded process joins a mount namespace only once it has a
	// filesystem context of its own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unsharing the filesystem context: %w", err)
	}
	if err := unix.Setns(JoinMntFD, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("joining the container's mount namespace: %w", err)
	}
	return unix.Close(JoinMntFD)
}

// Paths of /proc a container reads as a container runtime gives them: masked (the host's
// memory, keys, timers) or read-only (kernel settings, interrupts, sysrq).
var (
	maskedProc   = []string{"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "acpi", "scsi"}
	readOnlyProc = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}
)

// mountProc mounts a proc of the process's PID namespace on dir, with the usual paths masked
// (files by devNull, directories by an empty read-only tmpfs) or read-only.
func mountProc(dir, devNull string) error {
	if err := unix.Mount("proc", dir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	for _, p := range maskedProc {
		path := dir + "/" + p
		fi, err := os.Lstat(path)
		if err != nil {
			continue // not in this kernel
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", path, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount(devNull, path, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking /proc/%s: %w", p, err)
		}
	}
	for _, p := range readOnlyProc {
		path := dir + "/" + p
		if _, err := os.Lstat(path); err != nil {
			continue
		}
		if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding /proc/%s: %w", p, err)
		}
		if err := unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("making /proc/%s read-only: %w", p, err)
		}
	}
	return nil
}

// lastCap is the highest capability this kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	return n
}

// dropBounding drops from the bounding set every capability not kept: no program the
// container runs can gain one (not through a setuid binary, not through file capabilities).
func dropBounding(keep map[int]bool) error {
	for c := 0; c <= lastCap(); c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// setUser sets the groups, group and user, keeping the capabilities for setCaps.
func setUser(s *Spec) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keeping capabilities: %w", err)
	}
	groups := make([]int, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = int(g)
	}
	// syscall's, not unix's: these change every thread of the process, as POSIX wants.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setting the groups: %w", err)
	}
	if err := syscall.Setresgid(int(s.GID), int(s.GID), int(s.GID)); err != nil {
		return fmt.Errorf("setting group %d: %w", s.GID, err)
	}
	if err := syscall.Setresuid(int(s.UID), int(s.UID), int(s.UID)); err != nil {
		return fmt.Errorf("setting user %d: %w", s.UID, err)
	}
	return nil
}

// setCaps makes the kept capabilities the thread's permitted, effective and inheritable sets,
// and empties its ambient set. As with container runtimes, a program running as root has
// them; one running as another user has none in effect (only through file capabilities or a
// setuid binary, which the bounding set and no_new_privs bound).
func setCaps(keep map[int]bool) error {
	var data [2]unix.CapUserData
	for c := range keep {
		data[c/32].Permitted |= 1 << (uint(c) % 32)
	}
	for i := range data {
		data[i].Effective, data[i].Inheritable = data[i].Permitted, data[i].Permitted
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	return nil
}
