package containerinit

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The default filter, as container runtimes give RuntimeDefault: every system call is let
// through but those that reach beyond the container, which fail with EPERM — the kernel's
// modules, keyrings, clocks, swap, reboot, mounts and namespaces, BPF and performance events,
// handles to arbitrary files — and a clone that asks for new namespaces. clone3 fails with
// ENOSYS (its flags are out of the filter's reach), so C libraries fall back to clone. A
// program of another architecture (or the x32 ABI) is killed.
//
// Unlike Docker's profile it denies these whatever capabilities the container was given.

// BPF instructions of classic BPF, as seccomp takes them.
const (
	bpfLdAbs  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJge    = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJset   = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRet    = unix.BPF_RET | unix.BPF_K
	offNr     = 0  // seccomp_data.nr
	offArch   = 4  // seccomp_data.arch
	offArg0Lo = 16 // the low 32 bits of seccomp_data.args[0] (little-endian)
)

// namespaceFlags are clone's flags that create namespaces.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// defaultFilter is the default filter's program.
func defaultFilter() ([]unix.SockFilter, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("fn's node agent has no default seccomp filter for this architecture: set seccompProfile Unconfined")
	}
	errno := func(e unix.Errno) unix.SockFilter {
		return unix.SockFilter{Code: bpfRet, K: unix.SECCOMP_RET_ERRNO | uint32(e)}
	}
	allow := unix.SockFilter{Code: bpfRet, K: unix.SECCOMP_RET_ALLOW}
	prog := []unix.SockFilter{
		{Code: bpfLdAbs, K: offArch},
		{Code: bpfJeq, K: auditArch, Jt: 1},
		{Code: bpfRet, K: unix.SECCOMP_RET_KILL_PROCESS},
		{Code: bpfLdAbs, K: offNr},
	}
	if x32Bit != 0 {
		prog = append(prog, unix.SockFilter{Code: bpfJge, K: x32Bit, Jf: 1}, unix.SockFilter{Code: bpfRet, K: unix.SECCOMP_RET_KILL_PROCESS})
	}
	for _, nr := range deniedSyscalls {
		prog = append(prog, unix.SockFilter{Code: bpfJeq, K: uint32(nr), Jf: 1}, errno(unix.EPERM))
	}
	prog = append(prog,
		unix.SockFilter{Code: bpfJeq, K: unix.SYS_CLONE3, Jf: 1}, errno(unix.ENOSYS),
		unix.SockFilter{Code: bpfJeq, K: unix.SYS_CLONE, Jf: 3},
		unix.SockFilter{Code: bpfLdAbs, K: cloneFlagsOffset},
		unix.SockFilter{Code: bpfJset, K: namespaceFlags, Jf: 1}, errno(unix.EPERM),
		allow)
	return prog, nil
}

// installSeccomp installs the default filter on the calling thread.
func installSeccomp() error {
	prog, err := defaultFilter()
	if err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("installing the seccomp filter: %w", err)
	}
	return nil
}
