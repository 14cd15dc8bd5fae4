package runtime

import (
	"net/http"
	"strconv"
	"sync"
)

// responseWriter records the status a handler answers with and, when the request has a
// deadline, guards the connection's writer: after the deadline the runtime answers 504 and the
// handler's late writes fail with http.ErrHandlerTimeout. In guarded mode the handler gets a header
// map of its own, so that the runtime never touches a map the handler may still be writing.
type responseWriter struct {
	rw      http.ResponseWriter
	header  http.Header
	guarded bool

	mu       sync.Mutex
	status   int
	wrote    bool
	closed   bool // the deadline passed: the handler's writes fail
	answered bool // the deadline passed and the runtime answered 504
	sealed   bool // the handler returned: the deadline no longer applies
}

var writerPool = sync.Pool{New: func() any { return new(responseWriter) }}

func newResponseWriter(w http.ResponseWriter, guarded bool) *responseWriter {
	rw := writerPool.Get().(*responseWriter)
	*rw = responseWriter{rw: w, guarded: guarded, header: rw.header}
	return rw
}

// release returns w to the pool, keeping its (emptied) header map for the next request: the
// values were handed to the connection's header, but the map itself was not.
func (w *responseWriter) release() {
	h := w.header
	clear(h)
	*w = responseWriter{header: h}
	writerPool.Put(w)
}

func (w *responseWriter) Header() http.Header {
	if !w.guarded {
		return w.rw.Header()
	}
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *responseWriter) WriteHeader(code int) {
	w.mu.Lock()
	w.writeHeaderLocked(code)
	w.mu.Unlock()
}

func (w *responseWriter) writeHeaderLocked(code int) {
	if w.wrote || w.closed {
		return
	}
	if w.guarded {
		dst := w.rw.Header()
		for k, v := range w.header {
			dst[k] = v
		}
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational responses (e.g. 103 Early Hints) may precede the real one.
		w.rw.WriteHeader(code)
		return
	}
	w.wrote, w.status = true, code
	w.rw.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, http.ErrHandlerTimeout
	}
	if !w.wrote {
		w.writeHeaderLocked(http.StatusOK)
	}
	return w.rw.Write(p)
}

// Flush sends buffered data to the client, for streaming handlers.
func (w *responseWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if !w.wrote {
		w.writeHeaderLocked(http.StatusOK)
	}
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer (deadlines, hijacking).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.rw }

// written reports whether the response status has been sent, and which.
func (w *responseWriter) written() (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wrote, w.status
}

// expire is called at the request's deadline, on another goroutine than the handler's. Unless
// the handler has returned, it makes the handler's further writes fail and, when nothing was
// written yet, answers 504 and flushes it, so the client has its answer even while the handler
// keeps running.
func (w *responseWriter) expire(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed {
		return
	}
	w.closed = true
	if w.wrote {
		return
	}
	w.wrote, w.status, w.answered = true, http.StatusGatewayTimeout, true
	// The handler may still hold this connection: don't let the client queue requests behind it.
	w.rw.Header().Set("Connection", "close")
	// With its length known, the client has the whole answer now: a chunked one would end only
	// when the handler returns.
	w.rw.Header().Set("Content-Length", strconv.Itoa(len(msg)+1))
	writePlain(w.rw, http.StatusGatewayTimeout, msg)
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
	}
}

// seal is called when the handler returned. It reports whether the deadline had passed, and if
// so whether a 504 was answered (else part of the handler's response was already out).
func (w *responseWriter) seal() (timedOut, answered bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sealed = true
	return w.closed, w.answered
}

// writePlain writes a short text/plain response on w.
func writePlain(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}
