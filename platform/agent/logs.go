package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// maxLogLine is the longest log entry; longer lines are split into partial (P) entries, as
// container runtimes do.
const maxLogLine = 16 << 10

// Log rotation, as kubelets do it by default (containerLogMaxSize, containerLogMaxFiles): a
// container's log file is rotated once it would pass logMaxSize, and logMaxFiles files are kept
// (the current one and logMaxFiles-1 rotated ones, path.1 the newest).
const (
	logMaxSize  = 10 << 20
	logMaxFiles = 5
)

// logFile is a container instance's log file in the CRI format: one entry per line,
// "<RFC3339Nano time> <stream> <F|P> <text>". Both streams of the instance write to it.
type logFile struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
	wg   sync.WaitGroup
	done chan struct{} // closed once both streams ended
}

func createLogFile(path string) (*logFile, error) {
	return createRotatingLogFile(path, logMaxSize, logMaxFiles)
}

// createRotatingLogFile starts a log file at path, rotated past maxSize with maxFiles kept;
// rotated files of an earlier instance are removed.
func createRotatingLogFile(path string, maxSize int64, maxFiles int) (*logFile, error) {
	for i := 1; ; i++ {
		if err := os.Remove(rotatedLogPath(path, i)); err != nil {
			break
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, maxSize: maxSize, maxFiles: max(maxFiles, 1), f: f, done: make(chan struct{})}, nil
}

// rotatedLogPath is the i-th newest rotated file of the log at path.
func rotatedLogPath(path string, i int) string {
	return path + "." + strconv.Itoa(i)
}

// rotate moves the current file aside (dropping the oldest) and starts an empty one. A failure
// keeps writing to the current file: logs are not lost for a full disk's sake.
func (l *logFile) rotate() {
	if l.maxFiles > 1 {
		for i := l.maxFiles - 1; i >= 2; i-- {
			_ = os.Rename(rotatedLogPath(l.path, i-1), rotatedLogPath(l.path, i))
		}
		if err := os.Rename(l.path, rotatedLogPath(l.path, 1)); err != nil {
			return
		}
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return
	}
	l.f.Close()
	l.f, l.size = f, 0
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
	if l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize {
		l.rotate()
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
	l.mu.Unlock()
}

// closeWhenDone closes the file once every stream ended, and then done.
func (l *logFile) closeWhenDone() {
	go func() {
		l.wg.Wait()
		l.mu.Lock()
		l.f.Close()
		l.mu.Unlock()
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
		pw.CloseWithError(streamLogs(ctx, path, f, o, done, pw))
	}()
	return pr, nil
}

// streamLogs writes the entries of f, the log at path; following, it goes on to the new file
// when the log is rotated. It closes the file it reads last.
func streamLogs(ctx context.Context, path string, f *os.File, o logOptions, done <-chan struct{}, w io.Writer) error {
	defer func() { f.Close() }()
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
	var next *os.File // the file the log was rotated to, once seen
	defer func() {
		if next != nil {
			next.Close()
		}
	}()
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
		if next != nil { // f, read to its end after the rotation, is whole: go on with the new file
			f.Close()
			f, next = next, nil
			continue
		}
		if next = reopenIfRotated(path, f); next != nil {
			continue // what was written to f before the rotation is read first
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

// reopenIfRotated returns, when f is no longer the file at path (the log was rotated), the file
// written after f: f is now path.K, its successor path.K-1 (or path). When f is no longer kept at
// all (a reader further behind than the files kept), it is the oldest file kept. Else nil.
func reopenIfRotated(path string, f *os.File) *os.File {
	open, err := f.Stat()
	if err != nil {
		return nil
	}
	if cur, err := os.Stat(path); err != nil || os.SameFile(cur, open) {
		return nil
	}
	successor := path
	for i := 1; ; i++ {
		st, err := os.Stat(rotatedLogPath(path, i))
		if err != nil || os.SameFile(st, open) {
			break
		}
		successor = rotatedLogPath(path, i)
	}
	next, err := os.Open(successor)
	if err != nil {
		return nil
	}
	return next
}
