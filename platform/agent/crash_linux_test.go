package agent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain doubles as the helper processes of TestCrash: a pod sandbox holder, and a process
// that sleeps.
func TestMain(m *testing.M) {
	switch os.Getenv("FN_AGENT_TEST_HELPER") {
	case "sleep":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
		os.Exit(0)
	case "sandbox":
		os.Exit(sandboxHelper())
	}
	os.Exit(m.Run())
}

// sandboxHelper is a stand-in for an agent: it makes a pod sandbox with a network, starts a
// process in it, prints the process's pid and the pod's link, and waits to be killed.
func sandboxHelper() int {
	n, err := newPodNetwork("10.253.0.0/24", os.Getenv("FN_AGENT_TEST_DIR"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	sb, err := newSandbox(sandboxOptions{net: true, mounts: true, uts: true, ipc: true})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if _, err := n.attach(sb, "crash"); err != nil {
		fmt.Println(err)
		return 1
	}
	exe, _ := os.Executable()
	// As a container's process starts (containerinit), in a group of its own: a change of
	// credentials clears the parent-death signal the fork set.
	// Its root: the host's, bound in the pod's mount namespace.
	root := filepath.Join(os.Getenv("FN_AGENT_TEST_DIR"), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		fmt.Println(err)
		return 1
	}
	if err := sb.do(func() error { return bindMount("/", root, false) }); err != nil {
		fmt.Println(err)
		return 1
	}
	l := launch{chroot: true, root: root, procDir: root + "/proc", exe: exe, argv: []string{exe}, env: []string{"FN_AGENT_TEST_HELPER=sleep"}, dir: "/",
		gid: 65532, caps: []int{}}
	cmd := l.command(nil, nil)
	if err := l.start(sb, cmd); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(cmd.Process.Pid, n.linkName("crash"))
	select {}
}

// TestCrash kills an agent-like process with SIGKILL and checks that the container's process it
// started in a pod sandbox (through containerinit, with another group) dies too, and that the
// pod's network goes away.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("changes the host's network")
	}
	requireRoot(t)
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "FN_AGENT_TEST_HELPER=sandbox", "FN_AGENT_TEST_DIR="+dir)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	var pid int
	var link string
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscan(line, &pid, &link); err != nil || serr != nil {
		t.Fatalf("helper said %q: %v %v", line, err, serr)
	}
	if _, err := net.InterfaceByName(link); err != nil {
		t.Fatalf("link %s: %v", link, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the pod's process: %v", err)
	}
	_ = helper.Process.Kill()
	_ = helper.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, linkErr := net.InterfaceByName(link)
		procErr := syscall.Kill(pid, 0)
		if linkErr != nil && procErr != nil {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("5 s after the agent died: process %d (%v), link %s (%v)", pid, procErr, link, linkErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSandboxKeepsThreads checks that pod sandboxes never end the threads they lock (Linux
// sends Pdeathsig to the children a thread forked when it exits, and any thread may have forked
// others' children before a sandbox locked it), and that a closed sandbox's thread is back in
// the host's namespaces. The main thread is never one: /proc/self shows its namespaces.
func TestSandboxKeepsThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("creates namespaces")
	}
	requireRoot(t)
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	var tids []int
	for range 8 {
		sb, err := newSandbox(sandboxOptions{net: true, mounts: true, uts: true, ipc: true, hostname: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var tid int
		var podNet string
		_ = sb.do(func() error {
			tid = unix.Gettid()
			podNet, _ = os.Readlink("/proc/thread-self/ns/net")
			return nil
		})
		if podNet == hostNet {
			t.Errorf("sandbox thread %d in the host's network namespace", tid)
		}
		if tid == os.Getpid() {
			t.Errorf("the main thread is a sandbox thread: /proc/self would show the pod's namespaces")
		}
		tids = append(tids, tid)
		sb.close()
	}
	time.Sleep(100 * time.Millisecond)
	for _, tid := range tids {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); err != nil {
			t.Errorf("sandbox thread %d ended: %v", tid, err)
		}
	}
	// A thread back in the pool is in the host's namespaces again.
	sb, err := newSandbox(sandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.close()
	_ = sb.do(func() error {
		for _, ns := range []string{"net", "mnt", "uts", "ipc"} {
			mine, _ := os.Readlink("/proc/thread-self/ns/" + ns)
			host, _ := os.Readlink("/proc/self/ns/" + ns)
			if mine != host {
				t.Errorf("a reused sandbox thread's %s namespace is %s, the host's %s", ns, mine, host)
			}
		}
		return nil
	})
}
