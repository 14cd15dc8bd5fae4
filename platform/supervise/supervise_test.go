package supervise

import (
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Reset: time.Minute, GiveUp: 4, Within: 2 * time.Minute}
	t0 := time.Unix(1000, 0)
	var h History
	for i, s := range []struct {
		started, exited time.Duration // since t0
		delay           time.Duration
		giveUp          bool
		what            string
	}{
		{0, time.Second, 100 * time.Millisecond, false, "a first crash"},
		{1100 * time.Millisecond, 2 * time.Second, 200 * time.Millisecond, false, "in a row: doubled"},
		{2200 * time.Millisecond, 3 * time.Second, 400 * time.Millisecond, false, "doubled again"},
		// A run of more than Reset: the crash that ends it counts as a first one, and the
		// exits more than Within before no longer count.
		{3 * time.Second, 130 * time.Second, 100 * time.Millisecond, false, "after a long run"},
		{131 * time.Second, 132 * time.Second, 200 * time.Millisecond, false, "in a row again"},
		{133 * time.Second, 134 * time.Second, 400 * time.Millisecond, false, "3 exits within the window"},
		{135 * time.Second, 136 * time.Second, 0, true, "the 4th exit within the window"},
	} {
		var delay time.Duration
		var giveUp bool
		h, delay, giveUp = p.Exited(h, t0.Add(s.started), t0.Add(s.exited))
		if delay != s.delay || giveUp != s.giveUp {
			t.Errorf("step %d (%s): delay %s, give up %v; want %s, %v (history %+v)", i, s.what, delay, giveUp, s.delay, s.giveUp, h)
		}
	}
	// The delay stops growing at Max.
	var long History
	var d time.Duration
	for i := range 3 {
		long, d, _ = Policy{Initial: time.Second, Max: 3 * time.Second, Reset: time.Hour, GiveUp: 100, Within: time.Minute}.Exited(long, t0, t0.Add(time.Duration(i)*time.Second))
	}
	if d != 3*time.Second {
		t.Errorf("third delay %s, want Max 3s", d)
	}
}

// TestProcess supervises a real process: killed, it starts again (a new pid, one restart more),
// each change is notified with why; one that keeps exiting is given up with an error saying
// so; a stopped one is stopped.
func TestProcess(t *testing.T) {
	fast := Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Reset: time.Minute, GiveUp: 3, Within: time.Minute}
	var mu sync.Mutex
	var lines []string
	notify := func(st Status, why string) {
		mu.Lock()
		lines = append(lines, st.State+": "+why)
		mu.Unlock()
	}
	p, err := Start("sleeper", func() *exec.Cmd { return exec.Command("sleep", "60") }, fast, notify)
	if err != nil {
		t.Fatal(err)
	}
	p.Supervise()
	first := p.Status()
	if first.State != Running || first.PID == 0 {
		t.Fatalf("status %+v", first)
	}
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st := p.Status(); st.Restarts != 1 || st.State != Running; st = p.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("not started again: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := p.Status(); st.PID == first.PID || st.LastExit != "was killed by killed" {
		t.Errorf("after the kill: %+v", st)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Error(err)
	}
	if st := p.Status(); st.State != Stopped || p.Err() != nil {
		t.Errorf("stopped: %+v %v", st, p.Err())
	}
	mu.Lock()
	got := strings.Join(lines, "\n")
	mu.Unlock()
	for _, want := range []string{"running: started", "restarting: was killed by killed; starting again in 10ms", "running: started again", "stopped: stopped"} {
		if !strings.Contains(got, want) {
			t.Errorf("notified:\n%s\nwant a line %q", got, want)
		}
	}

	// It lives long enough to be supervised before its first exit.
	crasher, err := Start("crasher", func() *exec.Cmd { return exec.Command("sh", "-c", "sleep 0.2; exit 3") }, fast, nil)
	if err != nil {
		t.Fatal(err)
	}
	crasher.Supervise()
	select {
	case <-crasher.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a process that keeps exiting was not given up")
	}
	if st := crasher.Status(); st.State != Failed || crasher.Err() == nil || !strings.Contains(crasher.Err().Error(), "exited with code 3, its 3rd exit within 1m0s: given up") {
		t.Errorf("given up: %+v %v", st, crasher.Err())
	}

	// Before Supervise, an exit ends it.
	once, err := Start("once", func() *exec.Cmd { return exec.Command("sh", "-c", "exit 1") }, fast, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-once.Done()
	if st := once.Status(); st.State != Failed || st.Restarts != 0 {
		t.Errorf("unsupervised exit: %+v", st)
	}
}
