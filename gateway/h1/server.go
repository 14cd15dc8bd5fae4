package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The loop serves HTTP/1.1 on its own: one goroutine per client connection
// reads a request with the standard library's parser (http.ReadRequest), forwards it on a pooled
// connection to the function's endpoint on the same goroutine (a request writer of its own, then
// http.ReadResponse) and writes the answer back. Compared with net/http's server and Transport,
// which hand each request between several goroutines (a background read per request, a read and
// a write loop per upstream connection), this doubles the gateway's throughput on a small
// machine (bench/results/gateway.md). A connection whose next request is anything else -
// HTTP/1.0, an Upgrade, Expect: 100-continue, HTTP/2 or a head that does not fit the read buffer
// - is handed for the rest of its life to a net/http server with the Router as its handler.

const (
	// readHeaderTimeout bounds the arrival of a request's head once its first byte came.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes a client connection that sends no request for that long.
	idleTimeout = 2 * time.Minute
	// BufferSize is the size of each client connection's read and write buffers; a request head
	// must fit the read buffer to take the fast path.
	BufferSize = 16 << 10
)

// server is the listener loop.
type server struct {
	router   Router
	backends *backendPool

	slow    *http.Server  // serves the connections handed off
	handoff *connListener // feeds them to it

	closing  atomic.Bool
	buffered atomic.Int64 // connections holding buffers
	mu       sync.Mutex
	conns    map[*conn]struct{}
	wg       sync.WaitGroup
}

// Serve serves the connections of ln with router until ctx is done, then shuts down
// gracefully: it stops accepting connections and waits for requests in flight (up to
// ShutdownTimeout) before returning. log receives net/http's complaints.
func Serve(ctx context.Context, ln net.Listener, router Router, log *slog.Logger) error {
	s := &server{
		router:   router,
		backends: newBackendPool(),
		handoff:  newConnListener(ln.Addr()),
		conns:    map[*conn]struct{}{},
	}
	s.slow = &http.Server{
		Handler:           router,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
	// HTTP/2 without TLS (prior knowledge, as behind a TLS-terminating load balancer) is served
	// there too; functions are reached over HTTP/1.1 either way.
	s.slow.Protocols.SetHTTP1(true)
	s.slow.Protocols.SetUnencryptedHTTP2(true)
	slowDone := make(chan error, 1)
	go func() { slowDone <- s.slow.Serve(s.handoff) }()
	reaperDone := make(chan struct{})
	go s.backends.reap(reaperDone)
	defer close(reaperDone)

	accepted := make(chan error, 1)
	go func() { accepted <- s.accept(ln) }()
	var serveErr error
	select {
	case err := <-accepted:
		serveErr = fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	ln.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := s.shutdown(sctx)
	if serr := s.slow.Shutdown(sctx); serr != nil && err == nil {
		err = serr
	}
	<-slowDone
	s.backends.closeIdle()
	if serveErr != nil {
		return serveErr
	}
	if err != nil {
		_ = s.slow.Close()
		return fmt.Errorf("shutting down: requests still in flight after %s: %w", ShutdownTimeout, err)
	}
	return nil
}

// accept serves each connection of ln until ln is closed.
func (s *server) accept(ln net.Listener) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var temp interface{ Temporary() bool }
			if errors.As(err, &temp) && temp.Temporary() { // out of file descriptors: pause
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := &conn{s: s, nc: nc, cr: &connReader{nc: nc}}
		c.acquire() // a new connection's request is usually on its way
		c.watch.c = c
		c.dl.nc = nc
		c.remoteAddr = nc.RemoteAddr().String()
		c.clientIP, _, _ = net.SplitHostPort(c.remoteAddr)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// shutdown stops the connection loop: connections waiting for a request are closed, those with
// a request in flight finish it and close. It returns when none is left or ctx is done, then
// closing what remains.
func (s *server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for c := range s.conns {
		if c.idle.Load() {
			_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// conn is one client connection on the fast path.
type conn struct {
	s        *server
	nc       net.Conn
	cr       *connReader // what br reads
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string
	// remoteAddr is the client's address, computed once for all its requests.
	remoteAddr string
	// forwarded holds the values of the X-Forwarded-* headers the gateway sets on a request,
	// so that setting them allocates nothing; a request's headers do not outlive it.
	forwarded [4][1]string
	idle      atomic.Bool // waiting for the next request
	watch     clientWatch
	dl        deadlines
	fwd       Forward // the request being forwarded
	// linger is set when the connection closes with a request body left unread: it is
	// closed as net/http closes it then (lingerClose).
	linger bool
}

// connReader reads a client connection, first giving back a byte read ahead (by a cold
// connection's wait, or by a clientWatch).
type connReader struct {
	nc      net.Conn
	pending byte
	has     bool
	one     [1]byte
}

// HotIdle is how long a connection keeps its read and write buffers (16 KiB each, pooled)
// while it waits for a request: past it they go back to the pool, so that idle keep-alive
// connections cost little more than their goroutines.
const HotIdle = time.Second

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, BufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, BufferSize) }}
)

// acquire gives the connection its buffers.
func (c *conn) acquire() {
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c.cr)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(c.nc)
	c.s.buffered.Add(1)
}

// release gives the connection's buffers back; what they hold is dropped.
func (c *conn) release() {
	if c.br == nil {
		return
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.bw.Reset(nil)
	writers.Put(c.bw)
	c.br, c.bw = nil, nil
	c.s.buffered.Add(-1)
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.has && len(p) > 0 {
		p[0], r.has = r.pending, false
		return 1, nil
	}
	return r.nc.Read(p)
}

// ClientWatchDelay is how long a request waits for its answer before the gateway watches its
// client's connection: net/http reads every connection in the background for each request; the
// connection loop does so only for the requests that take long enough for it to matter.
const ClientWatchDelay = 100 * time.Millisecond

// clientWatch notices a client that goes away while its request waits for the function: it
// calls the request's gone func, which closes the connection to the function (the function's
// server cancels the request) or cancels a request held while the function starts. One per
// connection, armed for each request that waits.
type clientWatch struct {
	c       *conn
	timer   *time.Timer
	mu      sync.Mutex
	armed   bool // the current request is waiting
	reading bool // the watch is reading the client's connection
	done    chan struct{}
	onGone  func()
	gone    bool
}

// arm starts watching the client after ClientWatchDelay; onGone is called if it goes away.
func (w *clientWatch) arm(onGone func()) {
	w.mu.Lock()
	w.armed, w.reading, w.gone, w.onGone = true, false, false, onGone
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(ClientWatchDelay, w.fire)
	} else {
		w.timer.Reset(ClientWatchDelay)
	}
}

func (w *clientWatch) fire() {
	w.mu.Lock()
	if !w.armed || w.reading { // a late fire of the previous request's timer
		w.mu.Unlock()
		return
	}
	w.reading = true
	w.done = make(chan struct{})
	onGone := w.onGone
	w.mu.Unlock()
	var b [1]byte
	n, err := w.c.nc.Read(b[:])
	if n == 1 { // the next request's first byte: keep it for the loop
		w.c.cr.pending, w.c.cr.has = b[0], true
	} else if err != nil && !isTimeout(err) {
		w.gone = true
		onGone()
	}
	close(w.done)
}

// disarm stops watching and reports whether the client went away meanwhile.
func (w *clientWatch) disarm() bool {
	w.mu.Lock()
	w.armed = false
	reading := w.reading
	w.mu.Unlock()
	if !reading {
		w.timer.Stop()
		return false
	}
	_ = w.c.dl.readExactly(time.Unix(1, 0)) // end the watch's read
	<-w.done
	return w.gone
}

func (c *conn) serve() {
	handedOff := false
	defer func() {
		switch {
		case handedOff:
		case c.linger:
			lingerClose(c.nc)
		default:
			c.nc.Close()
		}
		c.release()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
	}()
	for {
		c.idle.Store(true)
		if c.br == nil { // cold: wait for a request without buffers
			if err := c.dl.readExactly(time.Now().Add(idleTimeout)); err != nil {
				return
			}
			if c.s.closing.Load() {
				return
			}
			if n, _ := c.nc.Read(c.cr.one[:]); n == 0 {
				return // closed, or idle too long
			}
			c.cr.pending, c.cr.has = c.cr.one[0], true
			c.acquire()
		} else {
			if err := c.dl.readBy(time.Now().Add(HotIdle)); err != nil {
				return
			}
			if c.s.closing.Load() {
				return
			}
			if _, err := c.br.Peek(1); err != nil {
				if isTimeout(err) && c.br.Buffered() == 0 && !c.s.closing.Load() {
					c.release() // idle for HotIdle: wait cold
					continue
				}
				return
			}
		}
		c.idle.Store(false)
		head, err := c.peekHead()
		if errors.Is(err, errHandOff) || err == nil && !fastPath(head) {
			handedOff = c.handOff()
			return
		}
		if err != nil {
			return // the client went away or its head timed out: nothing to answer
		}
		req, err := http.ReadRequest(c.br)
		if err != nil {
			c.answerBadRequest(err)
			return
		}
		req.RemoteAddr = c.remoteAddr
		if !c.s.serveRequest(c, req) || req.Close || c.s.closing.Load() {
			_ = c.bw.Flush()
			return
		}
		if c.br.Buffered() == 0 { // no pipelined request waiting: send the answer now
			if err := c.bw.Flush(); err != nil {
				return
			}
		}
	}
}

// lingerWait is how long a connection closed with a body left unread waits for its client.
const lingerWait = 500 * time.Millisecond

// lingerClose closes a connection whose client may still be sending a request body (the
// answer came first, a 413): it ends the writing side, then reads and drops what comes for a
// while before it closes. A close with data unread would reset the connection, and the client,
// still writing, would see the reset instead of the answer.
func lingerClose(nc net.Conn) {
	if tc, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(lingerWait))
		_, _ = io.Copy(io.Discard, nc)
	}
	_ = nc.Close()
}

// errHandOff marks a request the fast path leaves to net/http.
var errHandOff = errors.New("hand off")

// peekHead returns the request head (through its empty line) without consuming it, reading more
// until it is complete. A head that does not fit the buffer is errHandOff: net/http answers it
// (431 past its limit).
func (c *conn) peekHead() ([]byte, error) {
	timed := false
	for {
		n := c.br.Buffered()
		b, _ := c.br.Peek(n)
		if end := headEnd(b); end > 0 {
			return b[:end], nil
		}
		if n >= c.br.Size() {
			return nil, errHandOff
		}
		if !timed { // the head did not come in one read: bound the wait for the rest
			timed = true
			if err := c.dl.readExactly(time.Now().Add(readHeaderTimeout)); err != nil {
				return nil, err
			}
		}
		if _, err := c.br.Peek(n + 1); err != nil {
			return nil, err
		}
	}
}

// headEnd is the length of the request head in b through the empty line ending it (lines end in
// CRLF or LF), or 0 when b does not hold all of it yet.
func headEnd(b []byte) int {
	for i, first := 0, true; ; first = false {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		line := b[i : i+j]
		i += j + 1
		if !first && (len(line) == 0 || len(line) == 1 && line[0] == '\r') {
			return i
		}
	}
}

// fastPath reports whether the request of head is plain HTTP/1.1 the connection loop serves:
// not HTTP/1.0 or 2, no Upgrade, no Expect, no CONNECT.
func fastPath(head []byte) bool {
	nl := bytes.IndexByte(head, '\n')
	line := bytes.TrimRight(head[:nl], "\r")
	if !bytes.HasSuffix(line, []byte(" HTTP/1.1")) || bytes.HasPrefix(line, []byte("CONNECT ")) {
		return false
	}
	for rest := head[nl+1:]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		h := rest[:i]
		rest = rest[i+1:]
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			continue
		}
		name := h[:colon]
		if bytes.EqualFold(name, []byte("Upgrade")) || bytes.EqualFold(name, []byte("Expect")) {
			return false
		}
	}
	return true
}

// handOff gives the connection, with what was read of it, to the net/http server.
func (c *conn) handOff() bool {
	_ = c.dl.readExactly(time.Time{})
	buffered, _ := c.br.Peek(c.br.Buffered())
	pc := &prefixConn{Conn: c.nc, r: io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), c.cr)}
	return c.s.handoff.give(pc)
}

// answerBadRequest answers a request head the parser refused, as net/http does, and the
// connection is closed after it.
func (c *conn) answerBadRequest(err error) {
	msg := "malformed HTTP request: " + err.Error()
	fmt.Fprintf(c.bw, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	_ = c.bw.Flush()
}

// prefixConn is a connection whose first bytes were already read into r.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// connListener is a net.Listener of the connections handed off.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// give hands c to the listener's server; it reports false when the listener is closed.
func (l *connListener) give(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
