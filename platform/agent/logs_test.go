package agent

import (
	"context"
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
