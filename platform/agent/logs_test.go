package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLog writes a log file as a container instance would, from its two streams.
func writeLog(t *testing.T, path, stdout, stderr string) *logFile {
	t.Helper()
	lf, err := createLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for stream, data := range map[string]string{"stdout": stdout, "stderr": stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		lf.copyStream(stream, r)
		go func() { io.WriteString(w, data); w.Close() }()
	}
	lf.closeWhenDone()
	return lf
}

func readAll(t *testing.T, path string, o logOptions, done <-chan struct{}) string {
	t.Helper()
	rc, err := readLogs(context.Background(), path, o, done)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	long := strings.Repeat("x", maxLogLine+10)
	lf := writeLog(t, path, "one\ntwo\n"+long+"\nthree\nno newline", "")
	<-lf.done
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], " stdout F one") || !strings.Contains(lines[2], " stdout P xxx") || !strings.HasSuffix(lines[3], " stdout F xxxxxxxxxx") {
		t.Fatalf("log file:\n%.300s", raw)
	}
	all := readAll(t, path, logOptions{tail: -1}, lf.done)
	if want := "one\ntwo\n" + long + "\nthree\nno newline\n"; all != want {
		t.Errorf("all: %.100q, want %.100q", all, want)
	}
	if got := readAll(t, path, logOptions{tail: 2}, lf.done); got != "three\nno newline\n" {
		t.Errorf("tail 2: %q", got)
	}
	if got := readAll(t, path, logOptions{tail: 3}, lf.done); got != long+"\nthree\nno newline\n" {
		t.Errorf("tail 3 (a long line counts once): %.50q", got)
	}
	if got := readAll(t, path, logOptions{tail: -1, limitBytes: 6}, lf.done); got != "one\ntw" {
		t.Errorf("limitBytes 6: %q", got)
	}
	if got := readAll(t, path, logOptions{tail: -1, since: time.Now().Add(time.Hour)}, lf.done); got != "" {
		t.Errorf("since the future: %q", got)
	}
	ts := readAll(t, path, logOptions{tail: 1, timestamps: true}, lf.done)
	if e, ok := parseLogLine([]byte(strings.Replace(strings.TrimSpace(ts), " ", " stdout F ", 1))); !ok || string(e.msg) != "no newline" || time.Since(e.time) > time.Minute {
		t.Errorf("timestamps: %q", ts)
	}
}

func TestLogsFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	lf, err := createLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	lf.copyStream("stdout", r)
	lf.closeWhenDone()
	io.WriteString(w, "first\n")
	rc, err := readLogs(context.Background(), path, logOptions{tail: -1, follow: true}, lf.done)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(rc)
		got <- string(b)
	}()
	time.Sleep(300 * time.Millisecond)
	io.WriteString(w, "second\nthi")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(w, "rd\n")
	w.Close() // the instance ends: following stops once everything was read
	select {
	case s := <-got:
		if s != "first\nsecond\nthird\n" {
			t.Errorf("followed %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("following did not stop when the instance ended")
	}
	// Following stops when the reader goes, too.
	ctx, cancel := context.WithCancel(context.Background())
	never := make(chan struct{})
	rc, err = readLogs(ctx, path, logOptions{tail: -1, follow: true}, never)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { io.ReadAll(rc); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("following did not stop with its context")
	}
}

// TestLogRotation: past its size a log is rotated, the newest rotated file first and no more
// than the files kept; a reader following it reads every line, in order, across rotations; a
// new instance's log starts without the rotated files of the last.
func TestLogRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	lf, err := createRotatingLogFile(path, 2<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := readLogs(context.Background(), path, logOptions{tail: -1, follow: true}, lf.done)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(rc); got <- string(b) }()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	lf.copyStream("stdout", r)
	lf.closeWhenDone()
	var want strings.Builder
	for i := range 400 {
		line := fmt.Sprintf("line %03d %s\n", i, strings.Repeat("x", 40))
		want.WriteString(line)
		if _, err := io.WriteString(w, line); err != nil {
			t.Fatal(err)
		}
		if i%30 == 29 {
			// Less than a file between the follower's polls: a follower further behind than
			// the files kept loses lines, as with a kubelet's rotation.
			time.Sleep(300 * time.Millisecond)
		}
	}
	w.Close()
	select {
	case g := <-got:
		if g != want.String() {
			t.Errorf("followed %d bytes, want %d: lines lost or reordered across rotations", len(g), want.Len())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower did not finish")
	}

	for i, p := range []string{path, rotatedLogPath(path, 1), rotatedLogPath(path, 2)} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 2<<10 || st.Size() == 0 {
			t.Errorf("file %d (%s): %v, size %v, want at most 2 KiB", i, p, err, st)
		}
	}
	if _, err := os.Stat(rotatedLogPath(path, 3)); !os.IsNotExist(err) {
		t.Errorf("a fourth file is kept: %v", err)
	}
	// Without following, the current file only (as kubectl logs reads it).
	if last := readAll(t, path, logOptions{tail: -1}, lf.done); !strings.HasSuffix(last, "line 399 "+strings.Repeat("x", 40)+"\n") || len(last) > 2<<10 {
		t.Errorf("current file: %d bytes ending %q", len(last), last[max(0, len(last)-60):])
	}

	lf2, err := createRotatingLogFile(path, 2<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	lf2.closeWhenDone()
	if _, err := os.Stat(rotatedLogPath(path, 1)); !os.IsNotExist(err) {
		t.Errorf("a new instance's log kept the last one's rotated files: %v", err)
	}
}
