package platform

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// portReleaseWait bounds how long Serve waits for a port held by a process that is exiting: after
// a crash, the killed platform's components die with it, but a large process (kube-apiserver,
// etcd) closes its sockets only once its last thread is gone, which can be a while after its
// command line has already vanished from /proc.
const portReleaseWait = 30 * time.Second

// waitPortsFree returns once every port can be bound on loopback. A port held by a process of a
// previous platform of the same home (platformProcess: one of the platform's executables, own,
// run with home as an argument) is freed by killing it: its platform is gone, so nothing else
// would stop it. A port held by another live process fails at once, naming it; one held by a
// process that is exiting (or by one this process cannot see) is waited for, up to
// portReleaseWait, saying so once on progress.
func waitPortsFree(ctx context.Context, ports []int, home string, own []string, progress io.Writer) error {
	deadline := time.Now().Add(portReleaseWait)
	for _, port := range ports {
		for checked := false; ; checked = true {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				ln.Close()
				break
			}
			if !checked { // who holds it, once: then only whether it is free yet
				pid, cmd := portHolder(port)
				exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
				switch {
				case pid > 0 && pid != os.Getpid() && platformProcess(exe, procArgs(pid), home, own):
					fmt.Fprintf(progress, "stopping pid %d, left over from a previous platform, which holds port %d\n", pid, port)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				case pid > 0 && cmd != "" && !exiting(pid):
					return fmt.Errorf("port %d is in use by pid %d (%s): stop it, or is another fn up running with another FN_HOME?", port, pid, cmd)
				default:
					fmt.Fprintf(progress, "waiting for port %d to be released (a process of a previous platform is exiting)\n", port)
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("port %d is still in use after %s: stop what holds it (another fn up with another FN_HOME?)", port, portReleaseWait)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// platformProcess reports whether a process (its executable and arguments) is proven to be
// one of the platform of home: its executable lies under home (a pod's, unpacked there), or it
// is one the platform runs (own: fn itself, the Kubernetes binaries, metrics-server) and one of
// its arguments is home or a path under it, alone or as a flag's value (--home H,
// --data-dir=H/cluster/etcd). A command line that merely contains home somewhere proves
// nothing.
func platformProcess(exe string, args []string, home string, own []string) bool {
	if exe == "" || home == "" || !filepath.IsAbs(home) {
		return false
	}
	home = filepath.Clean(home)
	under := func(p string) bool { return p == home || strings.HasPrefix(p, home+"/") }
	if under(exe) {
		return true
	}
	if !slices.Contains(own, exe) {
		return false
	}
	for _, a := range args {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		if under(filepath.Clean(a)) && filepath.IsAbs(a) {
			return true
		}
	}
	return false
}

// procArgs is a process's arguments (argv without argv[0]), from /proc.
func procArgs(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 2 {
		return nil
	}
	return args[1:]
}

// portHolder finds the process listening on the TCP port, and its command line, from /proc. It
// returns 0 when none is found (no procfs, another network namespace, or no permission).
func portHolder(port int) (pid int, cmdline string) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, ino := range listeningInodes(table, port) {
			inodes["socket:["+ino+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		n, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && inodes[target] {
				b, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
				return n, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
	return 0, ""
}

// listeningInodes reads a /proc/net/tcp table and returns the inodes of the sockets listening on
// port.
func listeningInodes(table string, port int) []string {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	suffix := fmt.Sprintf(":%04X", port)
	var inodes []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], suffix) {
			continue
		}
		inodes = append(inodes, fields[9])
	}
	return inodes
}

// exiting reports whether pid is on its way out: a zombie or dead (state Z, X), or killed with
// the signal not yet acted on (SIGKILL pending).
func exiting(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return true
	}
	if status, err := os.ReadFile(dir + "/status"); err == nil {
		for line := range strings.SplitSeq(string(status), "\n") {
			name, mask, ok := strings.Cut(line, ":")
			if !ok || name != "SigPnd" && name != "ShdPnd" {
				continue
			}
			if m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64); err == nil && m&(1<<(syscall.SIGKILL-1)) != 0 {
				return true
			}
		}
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		switch s[i+2] {
		case 'Z', 'X', 'x':
			return true
		}
	}
	return false
}

// platformExecutables are the programs a platform of cfg runs: this executable (the platform
// and its agents), the agents' command, the Kubernetes binaries and metrics-server.
func platformExecutables(cfg Config) []string {
	var own []string
	if exe, err := os.Executable(); err == nil {
		own = append(own, exe)
	}
	if len(cfg.Command) > 0 {
		own = append(own, cfg.Command[0])
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		own = append(own, filepath.Join(cfg.BinDir, b))
	}
	if b := os.Getenv("FN_METRICS_SERVER"); b != "" {
		own = append(own, b)
	}
	if d, err := os.UserCacheDir(); err == nil {
		found, _ := filepath.Glob(filepath.Join(d, "fn", "metrics-server", "*", "metrics-server"))
		own = append(own, found...)
	}
	for i, p := range own { // /proc names executables by their real paths
		if r, err := filepath.EvalSymlinks(p); err == nil {
			own[i] = r
		}
	}
	return own
}
