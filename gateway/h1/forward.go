package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxDrain bounds what is read of a request body the handler left unread, so that the
// connection can serve the next request (net/http reads 256 KiB so): past it, the connection
// is closed after the answer (lingerClose).
const maxDrain = 256 << 10

// drained reads what the handler left of r's body, and reports whether it all came: the next
// request then starts where this one ends. Without, the loop would take the rest of the body
// for the next request's head.
func drained(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	n, err := io.CopyN(io.Discard, r.Body, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

// serveRequest answers one request read by the connection loop and reports whether the
// connection may serve another. A request the Router forwards goes on the loop's goroutine;
// everything else goes through its ServeHTTP, answered through a connResponse, with the client
// watched: one that goes away cancels the request's context (a request may be held there).
func (s *server) serveRequest(c *conn, r *http.Request) bool {
	f := &c.fwd
	*f = Forward{Start: time.Now(), Method: r.Method, URLPath: r.URL.Path}
	if !s.router.Route(r, f) {
		w := newConnResponse(c.bw, r)
		ctx, cancel := context.WithCancel(r.Context())
		c.watch.arm(cancel)
		s.router.ServeHTTP(w, r.WithContext(ctx))
		gone := c.watch.disarm()
		cancel()
		if !drained(r) {
			w.header.Set("Connection", "close")
			c.linger = true
		}
		return !gone && w.finish() && !c.linger && !s.closing.Load()
	}
	fw := forwarding{s: s, c: c, r: r, f: f}
	keep := fw.run()
	s.router.Done(f, fw.status, fw.err)
	return keep
}

// forwarding is one request forwarded by the connection loop.
type forwarding struct {
	s *server
	c *conn
	r *http.Request
	f *Forward

	status int   // answered to the client
	err    error // why the loop failed the request
}

// run forwards the request and writes the answer to the client's buffer; it reports whether the
// client connection may serve another request.
func (f *forwarding) run() bool {
	r := f.r
	clientClose := r.Close
	f.prepare()
	bodyless := r.ContentLength == 0
	// The client's body is read, and the answer written, within the request's deadline. (Its
	// connection's read deadline otherwise stays the idle one: the loop reads nothing of it
	// until the answer is written, but for the hang-up watch.)
	err := f.c.dl.writeBy(f.f.Deadline)
	if err == nil && !bodyless {
		err = f.c.dl.readBy(f.f.Deadline)
	}
	if err != nil {
		f.status, f.err = StatusClientClosed, err
		return false
	}
	var (
		bc     *backendConn
		resp   *http.Response
		reused bool
		werr   error
	)
	// A request goes to at most 1+dialRetries endpoints, each at most twice: first on a kept-alive
	// connection, then, when that one turns out closed, on a new one.
	switches, fresh := 0, false
	// A request that can go again on a new connection takes a kept-alive one unchecked: if the
	// function closed it meanwhile, the answer's read says so and the request goes again. That
	// saves a system call per request. One that cannot go again (a body, not idempotent) takes
	// only a connection seen open.
	retriable := bodyless && idempotent(r.Method)
	for {
		bc, reused, err = f.c.s.backends.get(f.f.Addr, fresh, !retriable)
		if err != nil {
			// Nothing was sent: any request may go to another ready endpoint.
			if Refused(err) && switches < dialRetries && f.switchEndpoint() {
				switches, fresh = switches+1, false
				continue
			}
			return f.fail(err)
		}
		_ = bc.dl.by(f.f.Deadline)
		if werr = writeRequest(bc.bw, r); werr == nil {
			werr = bc.bw.Flush()
		}
		if cbe := (*clientBodyError)(nil); errors.As(werr, &cbe) {
			// The function has half a request: closing its connection cancels it there.
			bc.close()
			return f.badBody(cbe)
		}
		// Even when the body could not be sent, the function may have answered (413): read it.
		watched := f.c.br.Buffered() == 0 // a pipelined request waiting says the client is there
		if watched {
			f.c.watch.arm(bc.close) // the function's server cancels the request
		}
		resp, err = http.ReadResponse(bc.br, r)
		if watched && f.c.watch.disarm() {
			bc.close()
			f.status, f.err = StatusClientClosed, errors.New("the client went away")
			return false
		}
		for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			f.writeInformational(resp) // 103 Early Hints and the like pass through
			resp, err = http.ReadResponse(bc.br, r)
		}
		if err == nil {
			break
		}
		bc.close()
		// A kept-alive connection the function closed just as it was reused (its idle timeout,
		// or the pod going away): an idempotent request without a body goes again, on a new
		// connection, since the endpoint's other idle ones may be as stale. A pod that is gone
		// refuses that one, and the request moves to another endpoint.
		if reused && retriable && !isTimeout(err) {
			fresh = true
			continue
		}
		return f.fail(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		bc.close()
		return f.fail(errors.New("the function switched protocols on a request that asked for no upgrade"))
	}
	f.status = resp.StatusCode
	keepBackend, keepClient := f.copyResponse(resp, bc, clientClose)
	if keepBackend && !resp.Close && werr == nil {
		resp.Body.Close()
		if bc.br.Buffered() == 0 {
			f.c.s.backends.put(bc)
		} else {
			bc.close() // bytes past the answer (its framing was wrong): not the next one's
		}
	} else {
		// Closed first: closing a response's body reads it to its end, which for a client
		// gone from a function still writing (or never done, as an event stream) is forever.
		bc.close()
		resp.Body.Close()
	}
	return keepClient && werr == nil
}

// prepare makes the client's request the request to the function's endpoint, in place: the path
// without /f/NAMESPACE/NAME for path routing, the client's Host, X-Forwarded-* headers extended,
// hop-by-hop headers dropped. Headers and body pass untouched otherwise (CloudEvents' ce-*).
func (f *forwarding) prepare() {
	r := f.r
	h := r.Header
	removeHopHeaders(h)
	fw := &f.c.forwarded
	set := func(i int, name, value string) {
		fw[i][0] = value
		h[name] = fw[i][:]
	}
	if f.f.Strip {
		r.URL.Path, r.URL.RawPath = f.f.Path, f.f.RawPath
		set(0, "X-Forwarded-Prefix", f.f.Prefix)
	}
	if prior, ok := h["X-Forwarded-For"]; ok {
		set(1, "X-Forwarded-For", strings.Join(prior, ", ")+", "+f.c.clientIP)
	} else {
		set(1, "X-Forwarded-For", f.c.clientIP)
	}
	if len(h["X-Forwarded-Host"]) == 0 {
		set(2, "X-Forwarded-Host", r.Host)
	}
	if len(h["X-Forwarded-Proto"]) == 0 {
		set(3, "X-Forwarded-Proto", "http")
	}
	r.Close = false // the client's connection, not the function's
}

// switchEndpoint moves the request to another upstream.
func (f *forwarding) switchEndpoint() bool { return f.s.router.Retry(f.f) }

// fail answers a request the function's endpoint did not answer: 504 when its deadline passed,
// 502 otherwise. The client connection is closed after it: its request body may be unread.
func (f *forwarding) fail(err error) bool {
	f.err = err
	if isTimeout(err) || !time.Now().Before(f.f.Deadline) {
		f.answerError(http.StatusGatewayTimeout, f.s.router.ErrorText(f.f, http.StatusGatewayTimeout))
	} else {
		f.answerError(http.StatusBadGateway, f.s.router.ErrorText(f.f, http.StatusBadGateway))
	}
	return false
}

// badBody ends a request whose body the client did not send whole: it went away (499, nothing
// to answer), its body is malformed (400), or too slow for the function's timeout (408).
func (f *forwarding) badBody(cbe *clientBodyError) bool {
	f.err = cbe
	switch {
	case errors.Is(cbe.err, io.ErrUnexpectedEOF) || errors.Is(cbe.err, net.ErrClosed) || errors.Is(cbe.err, syscall.ECONNRESET):
		f.status = StatusClientClosed
	case isTimeout(cbe.err):
		f.answerError(http.StatusRequestTimeout, f.s.router.ErrorText(f.f, http.StatusRequestTimeout))
	default:
		f.answerError(http.StatusBadRequest, "malformed request body: "+cbe.err.Error())
	}
	return false
}

// answerError answers the request with the gateway's own error, and closes the connection after
// it. The request's write deadline may have passed: the answer gets errorWriteTimeout.
func (f *forwarding) answerError(code int, msg string) {
	_ = f.c.dl.writeBy(time.Now().Add(errorWriteTimeout))
	w := newConnResponse(f.c.bw, f.r)
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
	f.status = w.status
	w.finish()
}

// errorWriteTimeout bounds the writing of the gateway's own error answer.
const errorWriteTimeout = 5 * time.Second

// writeInformational passes a 1xx response on to the client.
func (f *forwarding) writeInformational(resp *http.Response) {
	bw := f.c.bw
	writeStatusLine(bw, resp.StatusCode, reason(resp))
	removeHopHeaders(resp.Header)
	writeHeaders(bw, resp.Header)
	_, _ = bw.WriteString("\r\n")
	_ = bw.Flush()
}

// copyResponse writes the function's response to the client: its status and headers, framed
// anew (Content-Length when known, chunked otherwise), the body flushed whenever the function has
// nothing more buffered, so streamed responses stream. It reports whether the backend connection
// can be reused (the body was read whole) and whether the client's can.
func (f *forwarding) copyResponse(resp *http.Response, bc *backendConn, clientClose bool) (keepBackend, keepClient bool) {
	bw := f.c.bw
	noBody := f.r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	removeHopHeaders(resp.Header)
	delete(resp.Header, "Content-Length")
	writeStatusLine(bw, resp.StatusCode, reason(resp))
	writeHeaders(bw, resp.Header)
	chunked := false
	switch {
	case resp.ContentLength >= 0 && (!noBody || f.r.Method == http.MethodHead):
		writeFraming(bw, resp.ContentLength)
	case !noBody:
		chunked = true
		writeFraming(bw, -1)
	}
	keepClient = !clientClose && !f.c.s.closing.Load()
	if !keepClient {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if noBody {
		return true, keepClient
	}

	var dst io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	bufp := buffers.Get().(*[]byte)
	defer buffers.Put(bufp)
	buf := *bufp
	var written int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				f.status, f.err = StatusClientClosed, err
				return false, false
			}
			written += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The function failed mid-answer (or its deadline passed): the client sees a cut
			// response (no final chunk, or fewer bytes than announced) and the connection closes.
			f.err = rerr
			_ = bw.Flush()
			return false, false
		}
		if bc.br.Buffered() == 0 && (chunked || written < resp.ContentLength) {
			if err := bw.Flush(); err != nil { // more is coming later: send what there is
				f.status, f.err = StatusClientClosed, err
				return false, false
			}
		}
	}
	if chunked {
		_ = cw.Close()
		_, _ = bw.WriteString("\r\n") // no trailers
	}
	return true, keepClient
}

// writeRequest writes r to the function's endpoint as HTTP/1.1, its body framed as it came:
// with its Content-Length, or chunked (trailers are not passed on).
func writeRequest(bw *bufio.Writer, r *http.Request) error {
	_, _ = bw.WriteString(r.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(r.URL.RequestURI())
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(r.Host)
	_, _ = bw.WriteString("\r\n")
	delete(r.Header, "Host")
	delete(r.Header, "Content-Length")
	writeHeaders(bw, r.Header)
	switch {
	case r.ContentLength > 0:
		writeFraming(bw, r.ContentLength)
		_, _ = bw.WriteString("\r\n")
		_, err := io.CopyN(bw, bodyReader{r.Body}, r.ContentLength)
		return err
	case r.ContentLength < 0:
		writeFraming(bw, -1)
		_, _ = bw.WriteString("\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, bodyReader{r.Body}); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := bw.WriteString("\r\n")
		return err
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		_, err := bw.WriteString("Content-Length: 0\r\n\r\n")
		return err
	default:
		_, err := bw.WriteString("\r\n")
		return err
	}
}

// clientBodyError is a failure to read the client's request body, as opposed to one to send it.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// bodyReader marks the errors of the client's request body.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientBodyError{err}
	}
	return n, err
}

// writeHeaders writes h in HTTP/1.1 form, in map order: names and values come from a parser
// that refused line breaks in them, or from the gateway.
func writeHeaders(bw *bufio.Writer, h http.Header) {
	for name, values := range h {
		for _, v := range values {
			_, _ = bw.WriteString(name)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
}

// reason is the reason phrase of resp's status line, or the standard one when it gave none.
func reason(resp *http.Response) string {
	if r := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))); r != "" {
		return r
	}
	return http.StatusText(resp.StatusCode)
}

// writeStatusLine writes an HTTP/1.1 status line.
func writeStatusLine(bw *bufio.Writer, code int, reason string) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.WriteString(strconv.Itoa(code))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(reason)
	_, _ = bw.WriteString("\r\n")
}

// writeFraming writes the header framing a body: its Content-Length, or chunked for -1.
func writeFraming(bw *bufio.Writer, length int64) {
	if length < 0 {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
		return
	}
	_, _ = bw.WriteString("Content-Length: ")
	_, _ = bw.WriteString(strconv.FormatInt(length, 10))
	_, _ = bw.WriteString("\r\n")
}

// hopHeaders are the headers of one connection, not passed on (RFC 9110, 7.6.1).
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopHeaders drops the hop-by-hop headers of h, and those its Connection header names.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// backendConn is a kept-alive connection to one endpoint.
type backendConn struct {
	addr      string
	nc        net.Conn
	fd        int // for the liveness check of an idle connection
	dl        deadlines
	peek      [1]byte
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

func (bc *backendConn) close() { bc.nc.Close() }

// alive reports whether an idle connection is still open: a function's server closes idle
// connections (at shutdown, after its idle timeout), and a closed one must not take a request.
// One non-blocking peek, instead of a goroutine reading every connection all the time.
func (bc *backendConn) alive() bool {
	if bc.fd < 0 {
		return true
	}
	n, _, err := syscall.Recvfrom(bc.fd, bc.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	_ = n // 0 with no error is the end of the stream; any byte is one the function should not have sent
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}

// backendPool keeps idle connections to endpoints, by address, most recently used first.
type backendPool struct {
	dialer net.Dialer
	mu     sync.Mutex
	idle   map[string][]*backendConn
}

const (
	// maxIdlePerEndpoint bounds the idle connections kept to one endpoint.
	maxIdlePerEndpoint = 256
	// backendIdleTimeout closes connections idle that long.
	backendIdleTimeout = 90 * time.Second
)

func newBackendPool() *backendPool {
	return &backendPool{
		dialer: net.Dialer{
			Timeout:   2 * time.Second, // a pod that does not accept within 2 s is not there
			KeepAlive: 30 * time.Second,
		},
		idle: map[string][]*backendConn{},
	}
}

// get returns an idle connection to addr, or dials one (always when fresh); reused says which.
// With check, an idle one is taken only if it is still open (the others are closed).
func (p *backendPool) get(addr string, fresh, check bool) (bc *backendConn, reused bool, err error) {
	for !fresh {
		p.mu.Lock()
		list := p.idle[addr]
		n := len(list)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		bc = list[n-1]
		list[n-1] = nil
		p.idle[addr] = list[:n-1]
		p.mu.Unlock()
		if !check || bc.alive() {
			return bc, true, nil
		}
		bc.close()
	}
	nc, err := p.dialer.Dial("tcp", addr)
	if err != nil {
		return nil, false, err
	}
	bc = &backendConn{addr: addr, nc: nc, fd: -1, br: bufio.NewReaderSize(nc, BufferSize), bw: bufio.NewWriterSize(nc, BufferSize)}
	bc.dl.nc = nc
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { bc.fd = int(fd) })
		}
	}
	return bc, false, nil
}

// put keeps bc for reuse.
func (p *backendPool) put(bc *backendConn) {
	bc.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle[bc.addr]) >= maxIdlePerEndpoint {
		p.mu.Unlock()
		bc.close()
		return
	}
	p.idle[bc.addr] = append(p.idle[bc.addr], bc)
	p.mu.Unlock()
}

// reap closes connections idle longer than backendIdleTimeout, until done is closed: those to
// endpoints gone go too.
func (p *backendPool) reap(done <-chan struct{}) {
	tick := time.NewTicker(backendIdleTimeout / 3)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-backendIdleTimeout)
		var old []*backendConn
		p.mu.Lock()
		for addr, list := range p.idle {
			kept := list[:0]
			for _, bc := range list {
				if bc.idleSince.Before(cutoff) {
					old = append(old, bc)
				} else {
					kept = append(kept, bc)
				}
			}
			clear(list[len(kept):])
			if len(kept) == 0 {
				delete(p.idle, addr)
			} else {
				p.idle[addr] = kept
			}
		}
		p.mu.Unlock()
		for _, bc := range old {
			bc.close()
		}
	}
}

// closeIdle closes every idle connection.
func (p *backendPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*backendConn{}
	p.mu.Unlock()
	for _, list := range idle {
		for _, bc := range list {
			bc.close()
		}
	}
}
