package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/mux"
)

// processStart approximates the moment the process started, for the cold-start metric.
var processStart = time.Now()

// Main serves f with the configuration of the environment until SIGTERM or SIGINT, then drains
// and exits. It is what fn's generated main calls.
func Main(f Function) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		fatal("the function's configuration is invalid", err, 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Once draining, a second signal stops the process at once, as it would without the runtime.
	context.AfterFunc(ctx, stop)
	if err := New(f, cfg).Run(ctx); err != nil {
		fatal("the function stopped", err, 1)
	}
}

// fatal logs err as the runtime logs everything else (a JSON line on stderr, so it reads as the
// function's, not as an fn command's) and exits with code.
func fatal(msg string, err error, code int) {
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error(msg, "error", err.Error())
	os.Exit(code)
}

// Server serves one Function.
type Server struct {
	fn     Function
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	router *mux.Router

	metrics  metrics
	inflight atomic.Int64
	started  atomic.Bool
	draining atomic.Bool
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: JSON lines on stderr at the configured level).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithListener makes Run serve on ln instead of listening on the configured port.
func WithListener(ln net.Listener) Option { return func(s *Server) { s.ln = ln } }

// New returns a Server for f.
func New(f Function, cfg Config, opts ...Option) *Server {
	s := &Server{fn: f, cfg: cfg}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	}
	r := mux.NewRouter()
	r.HandleFunc("/_fn/live", s.serveLive).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/_fn/ready", s.serveReady).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/_fn/metrics", s.serveMetrics).Methods(http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writePlain(w, http.StatusNotFound, "no such runtime endpoint "+r.URL.Path+": /_fn/ serves live, ready and metrics")
	})
	s.router = r
	return s
}

// ServeHTTP routes /_fn/ to the runtime's own endpoints and every other path to the function.
// The function's path bypasses the router: it is the hot path and needs no route variables.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fn/") {
		s.router.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	n := s.inflight.Add(1)
	code, abort := s.serveFunction(w, r, start, n)
	s.inflight.Add(-1)
	d := time.Since(start)
	s.metrics.observe(code, d)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", code), slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.Bool("aborted", abort))
	}
	if abort {
		// Part of the response is already out: abort the connection so the client sees an error,
		// not a truncated answer that looks complete.
		panic(http.ErrAbortHandler)
	}
}

// Run serves until ctx is done, then stops taking new requests, drains in-flight ones (bounded by
// the drain timeout) and calls the Stop hook. It calls the Start hook after the listener is open;
// the function is ready only once Start returned.
func (s *Server) Run(ctx context.Context) error {
	ln := s.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))); err != nil {
			return fmt.Errorf("listening on port %d: %w (set PORT to a free port)", s.cfg.Port, err)
		}
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "kind", s.fn.kind)

	if start := s.fn.hooks.Start; start != nil {
		if err := start(ctx, environ()); err != nil {
			_ = srv.Close()
			return fmt.Errorf("function Start failed: %w", err)
		}
	}
	s.started.Store(true)
	cold := time.Since(processStart)
	s.metrics.coldStart.Store(int64(cold))
	s.log.Info("ready", "cold_start", cold.String())

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	if d := s.cfg.ShutdownDelay; d > 0 {
		s.log.Info("shutting down: not ready, still serving", "delay", d.String())
		time.Sleep(d)
	}
	drain := s.cfg.drainTimeout()
	s.log.Info("shutting down: draining in-flight requests", "in_flight", s.inflight.Load(), "timeout", drain.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		s.log.Warn("drain timeout reached: closing remaining connections", "in_flight", s.inflight.Load())
		_ = srv.Close()
	}
	if stop := s.fn.hooks.Stop; stop != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := callHook(func() error { return stop(stopCtx) }); err != nil {
			s.log.Error("function Stop failed", "error", err.Error())
		}
	}
	s.log.Info("stopped")
	return nil
}

// serveFunction applies admission (readiness, concurrency, body size), calls the function with
// the per-request deadline, and returns the status code answered and whether the connection must
// be aborted.
func (s *Server) serveFunction(w http.ResponseWriter, r *http.Request, start time.Time, inflight int64) (int, bool) {
	if !s.started.Load() {
		w.Header().Set("Retry-After", "1")
		writePlain(w, http.StatusServiceUnavailable, "function is starting")
		return http.StatusServiceUnavailable, false
	}
	if c := s.cfg.Concurrency; c > 0 && inflight > int64(c) {
		w.Header().Set("Retry-After", "1")
		writePlain(w, http.StatusServiceUnavailable, "function is at its concurrency limit ("+strconv.Itoa(c)+" in-flight requests); retry later")
		return http.StatusServiceUnavailable, false
	}
	if max := s.cfg.MaxBody; max > 0 {
		if r.ContentLength > max {
			writePlain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes (FN_MAX_BODY)", r.ContentLength, max))
			return http.StatusRequestEntityTooLarge, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}

	if s.cfg.Timeout <= 0 {
		rw := newResponseWriter(w, false)
		defer rw.release()
		res := s.call(r.Context(), rw, r)
		return s.finish(rw, r, res)
	}

	// The handler runs on this goroutine (no goroutine per request: that costs a quarter of the
	// throughput); at the deadline a callback answers 504 through the guarded writer while the
	// handler, whose context is now done, finishes.
	ctx := newDeadlineContext(r.Context(), start.Add(s.cfg.Timeout))
	defer ctx.end(context.Canceled)
	rw := newResponseWriter(w, true)
	// One timer ends both the context and the writer at the deadline; pooled, with what it acts
	// on, so that a request makes neither a timer nor a closure.
	timer := s.expiry(ctx, rw, r)
	res := s.call(ctx, rw, r)
	if ctx.Err() != nil && r.Context().Err() == nil {
		if wrote, _ := rw.written(); !wrote {
			// The handler returned at its deadline without answering (say with ctx.Err()), perhaps
			// before the callback ran: that is a timeout too, not its error or an empty 200.
			rw.expire(s.timeoutMessage())
		}
	}
	if timer.stop() {
		// The callback never ran and never will: rw is ours alone again.
		defer rw.release()
	}
	if timedOut, answered := rw.seal(); timedOut {
		s.log.Warn("request timed out", "method", r.Method, "path", r.URL.Path, "timeout", s.cfg.Timeout.String())
		return http.StatusGatewayTimeout, !answered
	}
	return s.finish(rw, r, res)
}

// expiryTimer answers 504 through a request's guarded writer at its deadline; one is reused
// for request after request.
type expiryTimer struct {
	t   *time.Timer
	s   *Server
	ctx *deadlineContext
	rw  *responseWriter
	r   *http.Request
}

var expiryTimers sync.Pool

// expiry arms an expiry timer for ctx, rw and r, at ctx's deadline.
func (s *Server) expiry(ctx *deadlineContext, rw *responseWriter, r *http.Request) *expiryTimer {
	e, _ := expiryTimers.Get().(*expiryTimer)
	if e == nil {
		e = &expiryTimer{}
		e.t = time.AfterFunc(time.Hour, e.fire)
		e.t.Stop()
	}
	e.s, e.ctx, e.rw, e.r = s, ctx, rw, r
	d := s.cfg.Timeout // from the request's start, a few microseconds ago: the timer fires that late
	if ctx.sooner {
		d = time.Until(ctx.deadline)
	}
	e.t.Reset(d)
	return e
}

// fire ends the context first: once the 504 is out the client may close the connection, which
// cancels the request's context, and the handler must see DeadlineExceeded, not Canceled. A
// handler that returns before the 504 is written is answered by serveFunction.
func (e *expiryTimer) fire() {
	e.ctx.end(context.DeadlineExceeded)
	if e.r.Context().Err() == nil {
		e.rw.expire(e.s.timeoutMessage())
	}
}

// stop stops the timer and reports whether it had not fired: only then is the timer, and what it
// acts on, the caller's alone again (the timer goes back to the pool).
func (e *expiryTimer) stop() bool {
	if !e.t.Stop() {
		return false // fire ran or runs: it keeps e
	}
	e.s, e.ctx, e.rw, e.r = nil, nil, nil, nil
	expiryTimers.Put(e)
	return true
}

func (s *Server) timeoutMessage() string {
	return "function did not answer within its timeout of " + s.cfg.Timeout.String() + " (FN_TIMEOUT)"
}

type result struct {
	err      error
	panicked bool
	abort    bool
}

// call runs the function, turning a panic into a result.
func (s *Server) call(ctx context.Context, rw *responseWriter, r *http.Request) (res result) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				res.abort = true
				return
			}
			res.panicked = true
			s.log.Error("function panicked", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	res.err = s.fn.serve(ctx, rw, r)
	return res
}

// finish answers for a handler that returned an error or panicked, when it has not answered yet,
// and returns the status answered and whether the connection must be aborted.
func (s *Server) finish(rw *responseWriter, r *http.Request, res result) (int, bool) {
	wrote, code := rw.written()
	switch {
	case res.abort:
		return code, true
	case res.panicked:
		if wrote {
			return http.StatusInternalServerError, true
		}
		writePlain(rw, http.StatusInternalServerError, "function panicked (see the function's logs)")
		return http.StatusInternalServerError, false
	case res.err != nil:
		if !wrote {
			code = statusOf(res.err, http.StatusInternalServerError)
			writePlain(rw, code, res.err.Error())
		}
		level := slog.LevelDebug
		if code >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "function returned an error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", code), slog.String("error", res.err.Error()))
		return code, false
	case !wrote:
		// A handler that wrote nothing answers 200 with an empty body, as net/http does.
		return http.StatusOK, false
	}
	return code, false
}

func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	if alive := s.fn.hooks.Alive; alive != nil {
		if ok, err := probe(r.Context(), alive); !ok {
			writePlain(w, http.StatusServiceUnavailable, "not alive: "+err)
			return
		}
	}
	writePlain(w, http.StatusOK, "ok")
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writePlain(w, http.StatusServiceUnavailable, "shutting down")
		return
	case !s.started.Load():
		writePlain(w, http.StatusServiceUnavailable, "starting")
		return
	}
	if ready := s.fn.hooks.Ready; ready != nil {
		if ok, err := probe(r.Context(), ready); !ok {
			writePlain(w, http.StatusServiceUnavailable, "not ready: "+err)
			return
		}
	}
	writePlain(w, http.StatusOK, "ok")
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, s)
}

// probe calls a Ready or Alive hook; a panic or an error counts as a failure, described in the
// returned text.
func probe(ctx context.Context, hook func(context.Context) (bool, error)) (ok bool, why string) {
	var err error
	perr := callHook(func() error {
		ok, err = hook(ctx)
		return nil
	})
	switch {
	case perr != nil:
		return false, perr.Error()
	case err != nil:
		return false, err.Error()
	case !ok:
		return false, "the function reported false"
	}
	return true, ""
}

// callHook runs f, turning a panic into an error.
func callHook(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

func environ() map[string]string {
	env := os.Environ()
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// httpError is an error answered with a given status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string   { return e.msg }
func (e *httpError) StatusCode() int { return e.code }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// readBody reads a request body whole, answering 413 beyond the size limit.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "request body exceeds the limit of %d bytes (FN_MAX_BODY)", mbe.Limit)
		}
		return nil, errorf(http.StatusBadRequest, "reading request body: %v", err)
	}
	return b, nil
}
