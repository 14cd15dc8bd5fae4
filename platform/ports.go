package platform

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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
// previous platform of the same home (its command line names home) is freed by killing it: its
// platform is gone, so nothing else would stop it. A port held by another live process fails at
// once, naming it; one held by a process that is exiting (or by one this process cannot see) is
// waited for, up to portReleaseWait, saying so once on progress.
func waitPortsFree(ctx context.Context, ports []int, home string, progress io.Writer) error {
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
				switch {
				case pid > 0 && home != "" && strings.Contains(cmd, home) && pid != os.Getpid():
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
