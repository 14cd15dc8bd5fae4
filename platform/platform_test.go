package platform

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	if Alive(0) || Alive(-1) {
		t.Error("pid 0 or -1 alive")
	}
	// A child that exited and was not waited for is a zombie: not alive, though kill(pid, 0) finds it.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Skip("no procfs")
		}
		if strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d never became a zombie: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) {
		t.Errorf("zombie %d counted as alive: a killed platform would look up", pid)
	}
}

func TestWaitPortsFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := ln.Addr().(*net.TCPAddr).Port
	var progress bytes.Buffer
	start := time.Now()
	err = waitPortsFree(context.Background(), []int{held}, "/nonexistent/fn-home", nil, &progress)
	// A live process holds it: fail at once, naming the process, without waiting for it.
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d is in use by pid %d", held, os.Getpid())) {
		t.Errorf("held port: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("waited %s for a port a live process holds", time.Since(start))
	}
	ln.Close()
	if err := waitPortsFree(context.Background(), []int{held}, "/nonexistent/fn-home", nil, &progress); err != nil {
		t.Errorf("free port: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("progress for ports that needed no wait: %q", progress.String())
	}
}

// TestWaitPortsFreeKillsLeftovers: a process of a previous platform of the same home that still
// holds a port (its platform crashed; nothing else will stop it) is killed, and the port waited
// for.
func TestWaitPortsFreeKillsLeftovers(t *testing.T) {
	home := t.TempDir()
	// A listener whose command line names the home, as the platform's components' do: this
	// test binary, run as TestHelperHoldPort.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldPort$", "--", home)
	cmd.Env = append(os.Environ(), "FN_TEST_HOLD_PORT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	var port int
	if _, err := fmt.Fscan(out, &port); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	// Not proven the platform's when its executable is not one of the platform's.
	start := time.Now()
	if err := waitPortsFree(context.Background(), []int{port}, home, []string{"/usr/bin/other"}, &progress); err == nil || !strings.Contains(err.Error(), "in use by pid") {
		t.Fatalf("port held by a process naming the home with another executable: %v, want it named, not killed", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("waited %s for a port a live process holds", time.Since(start))
	}
	if err := waitPortsFree(context.Background(), []int{port}, home, []string{self}, &progress); err != nil {
		t.Fatalf("port held by a leftover: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the leftover still runs")
	}
	if !strings.Contains(progress.String(), fmt.Sprintf("pid %d, left over from a previous platform", cmd.Process.Pid)) {
		t.Errorf("progress %q does not say what was stopped", progress.String())
	}
}

// TestHelperHoldPort is the process TestWaitPortsFreeKillsLeftovers starts: it listens on a
// loopback port, prints it, and waits to be killed.
func TestHelperHoldPort(t *testing.T) {
	if os.Getenv("FN_TEST_HOLD_PORT") == "" {
		t.Skip("the helper process of TestWaitPortsFreeKillsLeftovers")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	time.Sleep(time.Minute)
	os.Exit(0)
}

// Only a process proven the platform's is killed: its executable the platform's (or under its
// home) and an argument naming its home, not a command line that merely contains it.
func TestPlatformProcess(t *testing.T) {
	own := []string{"/opt/fn/bin/fn", "/cache/k8s/etcd"}
	for _, c := range []struct {
		name string
		exe  string
		args []string
		want bool
	}{
		{"the platform", "/opt/fn/bin/fn", []string{"internal", "platform", "--home", "/h/fn"}, true},
		{"etcd with its data dir", "/cache/k8s/etcd", []string{"--data-dir=/h/fn/cluster/etcd"}, true},
		{"a pod's process, unpacked under the home", "/h/fn/agent/pods/x/rootfs/ko-app/hello", nil, true},
		{"another program naming the home", "/usr/bin/python3", []string{"-m", "http.server", "--directory", "/h/fn"}, false},
		{"fn with the home only in a longer path", "/opt/fn/bin/fn", []string{"--home", "/h/fn-other"}, false},
		{"fn with the home inside an argument", "/opt/fn/bin/fn", []string{"--note=see /h/fn"}, false},
		{"fn with a relative path", "/opt/fn/bin/fn", []string{"h/fn"}, false},
		{"fn of another home", "/opt/fn/bin/fn", []string{"internal", "platform", "--home", "/h/other"}, false},
		{"an executable beside the home", "/h/fn-other/x", nil, false},
		{"no executable (no permission)", "", []string{"--home", "/h/fn"}, false},
	} {
		if got := platformProcess(c.exe, c.args, "/h/fn", own); got != c.want {
			t.Errorf("%s: platformProcess(%s %v) = %v, want %v", c.name, c.exe, c.args, got, c.want)
		}
	}
	if platformProcess("/opt/fn/bin/fn", []string{"--home", "/"}, "relative/home", own) {
		t.Error("a relative home proves a process")
	}
}
