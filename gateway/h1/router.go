package h1

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Router is what the loop asks of each request. It is also the http.Handler of the requests
// it does not forward and of the connections handed to net/http.
type Router interface {
	http.Handler
	// Route fills f for a request to forward and reports true; false lets ServeHTTP answer r.
	Route(r *http.Request, f *Forward) bool
	// Retry moves f to another upstream after f.Addr refused the connection (nothing was
	// sent); false when there is none.
	Retry(f *Forward) bool
	// ErrorText is the body of the loop's own answer with code (502, 504, 408) to f.
	ErrorText(f *Forward, code int) string
	// Done records the end of f: the status answered (StatusClientClosed when the client went
	// away first) and, when the loop failed it, why.
	Done(f *Forward, status int, err error)
}

// Forward is one request on its way to an upstream. The loop keeps one per connection and
// clears it for each request: a Router's fields cost no allocation.
type Forward struct {
	// Addr is the upstream's host:port; Deadline when the whole answer must be written.
	Addr     string
	Deadline time.Time
	// With Strip, the request goes with Path and RawPath, and Prefix in X-Forwarded-Prefix.
	Strip                 bool
	Path, RawPath, Prefix string
	// Route and Upstream are the Router's own (pointers, so storing them allocates nothing);
	// Start, Method and URLPath are the request's arrival and what it asked, before rewriting.
	Route, Upstream any
	Start           time.Time
	Method, URLPath string
}

// StatusClientClosed is the status recorded for requests whose client went away first.
const StatusClientClosed = 499

// ShutdownTimeout bounds the wait for requests in flight at shutdown: below Kubernetes' default
// grace period of 30 s.
const ShutdownTimeout = 25 * time.Second

// dialRetries bounds the other upstreams a request tries.
const dialRetries = 2

// Refused reports whether err is a failure to connect, before anything of the request was sent.
func Refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// BufferPool recycles copy buffers (32 KiB); it is an httputil.BufferPool too.
type BufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Get returns a buffer.
func (BufferPool) Get() []byte { return *buffers.Get().(*[]byte) }

// Put returns b to the pool.
func (BufferPool) Put(b []byte) { buffers.Put(&b) }
