package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"fnkit.dev/fn/platform/agent/containerinit"
)

// launch is how a container's processes start: the main one, and exec probes and hooks.
type launch struct {
	root      string // the container's root (host path)
	chroot    bool   // isolate the process in root (as root can); otherwise run from root as is
	exe       string // path inside root
	argv, env []string
	dir       string // working directory inside root
	uid, gid  uint32
	groups    []uint32

	// With chroot: what the container's processes may do.
	caps       []int // capabilities kept
	noNewPrivs bool
	seccomp    bool
	readOnly   bool   // the root is read-only
	procDir    string // where the container's /proc goes (host path inside root)
	// joinPid is the container's first process, whose PID and mount namespaces the process
	// joins (exec, probes, hooks); 0 for that first process itself.
	joinPid int
}

// command is the process that runs l: with chroot, the agent's own executable as
// containerinit, which turns into l's program inside the container; otherwise l's program.
// It starts with start.
func (l launch) command(stdout, stderr *os.File) *exec.Cmd {
	cmd := &exec.Cmd{
		Path: l.exe, Args: l.argv, Env: l.env, Dir: l.dir,
		Stdout: stdout, Stderr: stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true},
	}
	if !l.chroot {
		cmd.Path = filepath.Join(l.root, l.exe)
		cmd.Dir = filepath.Join(l.root, l.dir)
		return cmd
	}
	s := containerinit.Spec{
		Exe: l.exe, Argv: l.argv, Env: l.env, Dir: l.dir,
		UID: l.uid, GID: l.gid, Groups: l.groups,
		Caps: l.caps, NoNewPrivs: l.noNewPrivs, Seccomp: l.seccomp,
	}
	if s.Caps == nil {
		s.Caps = []int{}
	}
	if l.joinPid == 0 {
		s.Root, s.ReadOnly, s.ProcDir = l.root, l.readOnly, l.procDir
		s.DieWithParent = true
		// A PID namespace of its own (the program is its PID 1: when it exits, everything it
		// left is killed) and a mount namespace to pivot in.
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
	} else {
		// No Pdeathsig: in a PID namespace it did not create, the child's parent is outside
		// it, getppid says 0, and Go's check that the parent lives kills the child at once.
		// It needs none: it dies with the container's PID 1, which dies with the agent.
		cmd.SysProcAttr.Pdeathsig = 0
	}
	b, _ := json.Marshal(s)
	cmd.Path, cmd.Args, cmd.Dir = "/proc/self/exe", []string{containerinit.Arg0}, "/"
	cmd.Env = []string{containerinit.SpecEnv + "=" + string(b)}
	return cmd
}

// initTimeout bounds the time between forking a container's process and its program running.
const initTimeout = 30 * time.Second

// start starts cmd, made by l.command, in the sandbox: it returns once l's program runs, or
// with why it could not (a *containerinit.Error wrapping the errno of the step that failed).
func (l launch) start(sb *sandbox, cmd *exec.Cmd) error {
	if sb == nil {
		return errSandboxClosed
	}
	if !l.chroot {
		return sb.do(cmd.Start)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer errR.Close()
	cmd.ExtraFiles = []*os.File{errW}
	var pidns *os.File
	if l.joinPid != 0 {
		mnt, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", l.joinPid))
		if err != nil {
			errW.Close()
			return fmt.Errorf("the container's process is gone: %w", err)
		}
		defer mnt.Close()
		if pidns, err = os.Open(fmt.Sprintf("/proc/%d/ns/pid", l.joinPid)); err != nil {
			errW.Close()
			return fmt.Errorf("the container's process is gone: %w", err)
		}
		defer pidns.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, mnt)
	}
	err = sb.do(func() error {
		if pidns == nil {
			return cmd.Start()
		}
		// The thread's children start in the container's PID namespace; the thread itself
		// stays in the host's, and its next children too.
		host, err := hostNamespaces()
		if err != nil {
			return err
		}
		if err := unix.Setns(int(pidns.Fd()), unix.CLONE_NEWPID); err != nil {
			return fmt.Errorf("joining the container's PID namespace: %w", err)
		}
		serr := cmd.Start()
		if err := unix.Setns(host[unix.CLONE_NEWPID], unix.CLONE_NEWPID); err != nil {
			// A thread whose children would start in a container must not serve another.
			panic(fmt.Sprintf("leaving a container's PID namespace: %v", err))
		}
		return serr
	})
	errW.Close()
	if err != nil {
		return err
	}
	_ = errR.SetReadDeadline(time.Now().Add(initTimeout))
	msg, rerr := io.ReadAll(io.LimitReader(errR, 64<<10))
	if rerr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("the container's process did not start within %s: %w", initTimeout, rerr)
	}
	if err := containerinit.ParseError(msg); err != nil {
		_ = cmd.Wait()
		return err
	}
	return nil
}

// defaultCapabilities are those a container gets unless its securityContext says otherwise:
// the set container runtimes give.
var defaultCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}

// capabilityNumbers are the Linux capabilities by name.
var capabilityNumbers = map[string]int{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
	"SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
	"NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
	"SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
	"SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
	"SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
	"SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
	"BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

// capabilityNumber is the number of a capability named as Kubernetes allows ("NET_ADMIN" or
// "CAP_NET_ADMIN", any case).
func capabilityNumber(name corev1.Capability) (int, bool) {
	n, ok := capabilityNumbers[strings.TrimPrefix(strings.ToUpper(string(name)), "CAP_")]
	return n, ok
}

// capabilities are the capabilities a container keeps: the default set, less what it drops
// (ALL drops every one), plus what it adds. An unknown name is a configuration error.
func capabilities(sc *corev1.SecurityContext) ([]int, error) {
	keep := map[int]bool{}
	for _, name := range defaultCapabilities {
		keep[capabilityNumbers[name]] = true
	}
	if sc != nil && sc.Capabilities != nil {
		for _, name := range sc.Capabilities.Drop {
			if strings.EqualFold(string(name), "ALL") {
				clear(keep)
				continue
			}
			n, ok := capabilityNumber(name)
			if !ok {
				return nil, &configError{fmt.Sprintf("securityContext.capabilities.drop: unknown capability %q", name)}
			}
			delete(keep, n)
		}
		for _, name := range sc.Capabilities.Add {
			if strings.EqualFold(string(name), "ALL") {
				for _, n := range capabilityNumbers {
					keep[n] = true
				}
				continue
			}
			n, ok := capabilityNumber(name)
			if !ok {
				return nil, &configError{fmt.Sprintf("securityContext.capabilities.add: unknown capability %q", name)}
			}
			keep[n] = true
		}
	}
	caps := make([]int, 0, len(keep))
	for n := range keep {
		caps = append(caps, n)
	}
	return caps, nil
}

// seccompDefault reports whether a container runs with the runtime's default seccomp filter:
// when its profile (or else the pod's) is RuntimeDefault. Unconfined, or none, runs without
// one, as a kubelet does by default.
func seccompDefault(pod *corev1.Pod, c *corev1.Container) bool {
	var p *corev1.SeccompProfile
	if psc := pod.Spec.SecurityContext; psc != nil {
		p = psc.SeccompProfile
	}
	if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		p = c.SecurityContext.SeccompProfile
	}
	return p != nil && p.Type == corev1.SeccompProfileTypeRuntimeDefault
}

// noNewPrivs reports whether a container's processes run with no_new_privs: when it sets
// allowPrivilegeEscalation false.
func noNewPrivs(c *corev1.Container) bool {
	sc := c.SecurityContext
	return sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
}
