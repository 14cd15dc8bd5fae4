package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// maxLogLine is the longest log entry; longer lines are split into partial (P) entries, as
// container runtimes do.
const maxLogLine = 16 << 10

// logFile is a container instance's log file in the CRI format: one entry per line,
// "<RFC3339Nano time> <stream> <F|P> <text>". Both streams of the instance write to it.
type logFile struct {
	mu   sync.Mutex
	f    *os.File
	wg   sync.WaitGroup
	done chan struct{} // closed once both streams ended
}

func createLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &logFile{f: f, done: make(chan struct{})}, nil
}

// copyStream writes what r (a pipe from the process) yields as entries of stream.
func (l *logFile) copyStream(stream string, r io.ReadCloser) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer r.Close()
		br := bufio.NewReaderSize(r, maxLogLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				tag := "P"
				if line[len(line)-1] == '\n' {
					tag, line = "F", line[:len(line)-1]
				} else if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
					tag = "F" // the stream ended without a final newline
				}
				l.write(stream, tag, line)
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
}

func (l *logFile) write(stream, tag string, msg []byte) {
	b := make([]byte, 0, len(msg)+48)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, msg...)
	b = append(b, '\n')
	l.mu.Lock()
	_, _ = l.f.Write(b)
	l.mu.Unlock()
}

// closeWhenDone closes the file once every stream ended, and then done.
func (l *logFile) closeWhenDone() {
	go func() {
		l.wg.Wait()
		l.f.Close()
		close(l.done)
	}()
}

// logEntry is one parsed line of a log file.
type logEntry struct {
	time    time.Time
	partial bool
	msg     []byte
}

func parseLogLine(line []byte) (logEntry, bool) {
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return logEntry{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return logEntry{}, false
	}
	_, rest, ok = bytes.Cut(rest, []byte(" ")) // the stream
	if !ok {
		return logEntry{}, false
	}
	tag, msg, _ := bytes.Cut(rest, []byte(" "))
	return logEntry{time: t, partial: string(tag) == "P", msg: msg}, true
}

// logOptions select and format what a log read returns (the kubelet API's options).
type logOptions struct {
	tail       int // lines from the end, <0 for all
	limitBytes int // 0 for no limit
	timestamps bool
	since      time.Time
	follow     bool
}

// logFormatter renders entries as kubectl shows them.
type logFormatter struct {
	o         logOptions
	midLine   bool // the last entry was partial
	remaining int  // bytes left under limitBytes, when limited
}

func (f *logFormatter) format(buf *bytes.Buffer, e logEntry) {
	if !f.o.since.IsZero() && e.time.Before(f.o.since) {
		return
	}
	if f.o.timestamps && !f.midLine {
		buf.WriteString(e.time.Format(time.RFC3339Nano))
		buf.WriteByte(' ')
	}
	buf.Write(e.msg)
	if !e.partial {
		buf.WriteByte('\n')
	}
	f.midLine = e.partial
}

// readLogs streams the log file at path as o asks. When following, it keeps reading what is
// appended until done is closed (the instance ended) and everything was read, or ctx is done.
func readLogs(ctx context.Context, path string, o logOptions, done <-chan struct{}) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer f.Close()
		pw.CloseWithError(streamLogs(ctx, f, o, done, pw))
	}()
	return pr, nil
}

func streamLogs(ctx context.Context, f *os.File, o logOptions, done <-chan struct{}, w io.Writer) error {
	fm := &logFormatter{o: o, remaining: o.limitBytes}
	emit := func(b []byte) (bool, error) {
		if o.limitBytes > 0 {
			if len(b) >= fm.remaining {
				_, err := w.Write(b[:fm.remaining])
				return true, err
			}
			fm.remaining -= len(b)
		}
		_, err := w.Write(b)
		return false, err
	}
	// What the file holds now: complete lines only, a last partial write waits.
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end := bytes.LastIndexByte(data, '\n') + 1
	pending := append([]byte(nil), data[end:]...)
	lines := bytes.SplitAfter(data[:end], []byte("\n"))
	var entries []logEntry
	for _, l := range lines {
		if e, ok := parseLogLine(bytes.TrimSuffix(l, []byte("\n"))); ok {
			entries = append(entries, e)
		}
	}
	if o.tail >= 0 {
		entries = tailEntries(entries, o.tail)
	}
	var buf bytes.Buffer
	for _, e := range entries {
		fm.format(&buf, e)
	}
	if stop, err := emit(buf.Bytes()); stop || err != nil {
		return err
	}
	if !o.follow {
		return nil
	}
	chunk := make([]byte, 32<<10)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	finished := false
	for {
		n, err := f.Read(chunk)
		if n > 0 {
			pending = append(pending, chunk[:n]...)
			buf.Reset()
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				if e, ok := parseLogLine(pending[:i]); ok {
					fm.format(&buf, e)
				}
				pending = pending[i+1:]
			}
			if stop, err := emit(buf.Bytes()); stop || err != nil {
				return err
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			finished = true // read what was written before the end, then stop
		case <-tick.C:
		}
	}
}

// tailEntries keeps the entries of the last n lines (a line may span partial entries).
func tailEntries(entries []logEntry, n int) []logEntry {
	if n == 0 {
		return nil
	}
	lines := 0
	for i := len(entries) - 1; i >= 0; i-- {
		if !entries[i].partial || i == len(entries)-1 {
			if lines == n {
				return entries[i+1:]
			}
			lines++
		}
	}
	return entries
}
