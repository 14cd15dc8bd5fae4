package h1

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httputil"
	"time"
)

// connResponse is the http.ResponseWriter of a request the connection loop answers through the
// Router's ServeHTTP (for the gateway: its own answers, and requests held while a function
// starts). Like net/http's, it sends a small body with its Content-Length, and switches to chunked
// encoding past maxBuffered or on Flush.
type connResponse struct {
	bw     *bufio.Writer
	method string
	header http.Header
	status int
	body   []byte
	head   bool           // the status line and headers were written
	chunks io.WriteCloser // set once streaming
	err    error
}

// maxBuffered is the body a connResponse holds before streaming it.
const maxBuffered = 64 << 10

func newConnResponse(bw *bufio.Writer, r *http.Request) *connResponse {
	return &connResponse{bw: bw, method: r.Method, header: http.Header{}}
}

func (w *connResponse) Header() http.Header { return w.header }

func (w *connResponse) WriteHeader(code int) {
	if w.status != 0 || code < 200 { // informational answers are not passed on from here
		return
	}
	w.status = code
}

func (w *connResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed() {
		return len(p), nil
	}
	if w.chunks != nil {
		n, err := w.chunks.Write(p)
		w.err = err
		return n, err
	}
	w.body = append(w.body, p...)
	if len(w.body) > maxBuffered {
		w.stream()
	}
	return len(p), w.err
}

// Flush sends what was written so far: the answer streams from then on.
func (w *connResponse) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.head {
		w.stream()
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
}

func (w *connResponse) bodyAllowed() bool {
	return w.method != http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

// stream writes the head with chunked encoding and what the body holds.
func (w *connResponse) stream() {
	w.writeHead(-1)
	if !w.bodyAllowed() {
		return
	}
	w.chunks = httputil.NewChunkedWriter(w.bw)
	if len(w.body) > 0 {
		_, w.err = w.chunks.Write(w.body)
	}
	w.body = nil
}

// writeHead writes the status line and headers; length is the body's, or -1 for chunked.
func (w *connResponse) writeHead(length int) {
	w.head = true
	bw := w.bw
	h := w.header
	keepLength := w.method == http.MethodHead && len(h["Content-Length"]) > 0
	if !keepLength {
		delete(h, "Content-Length")
	}
	delete(h, "Transfer-Encoding")
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	if _, ok := h["Content-Type"]; !ok && length > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.body)}
	}
	writeStatusLine(bw, w.status, http.StatusText(w.status))
	_ = h.Write(bw) // the handler's headers: Header.Write also drops line breaks in values
	if w.bodyAllowed() {
		writeFraming(bw, int64(length))
	}
	_, w.err = bw.WriteString("\r\n")
}

// finish completes the answer and reports whether the connection may serve another request.
func (w *connResponse) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case !w.head:
		w.writeHead(len(w.body))
		if w.bodyAllowed() && w.err == nil {
			_, w.err = w.bw.Write(w.body)
		}
	case w.chunks != nil:
		if w.err == nil {
			w.err = w.chunks.Close()
		}
		if w.err == nil {
			_, w.err = w.bw.WriteString("\r\n")
		}
	}
	return w.err == nil && w.header.Get("Connection") != "close"
}
