package runtime

import (
	"context"
	"errors"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"
)

// A Function is a user's handler in one of the forms the runtime serves, plus its optional
// lifecycle hooks. fn's generated main builds it with HTTP, CloudEvents or Typed, so the compiler
// checks the user's signature; the runtime never reflects over handlers.
type Function struct {
	kind  string
	serve func(ctx context.Context, w *responseWriter, r *http.Request) error
	hooks Hooks
}

// Kind names the function's form: "http", "cloudevents" or "typed".
func (f Function) Kind() string { return f.kind }

// Hooks are the optional lifecycle methods of an instanced function.
type Hooks struct {
	// Start runs once before the function is ready; cfg holds the process environment.
	Start func(ctx context.Context, cfg map[string]string) error
	// Stop runs once after the last in-flight request has finished at shutdown.
	Stop func(ctx context.Context) error
	// Ready answers the readiness probe (after Start returned).
	Ready func(ctx context.Context) (bool, error)
	// Alive answers the liveness probe.
	Alive func(ctx context.Context) (bool, error)
}

// WithHooks returns f with the given lifecycle hooks.
func (f Function) WithHooks(h Hooks) Function {
	f.hooks = h
	return f
}

// HTTPFunc is the normalized form of an HTTP handler. A non-nil error answers 500 (or the
// error's StatusCode()) unless the handler already wrote a response.
type HTTPFunc func(ctx context.Context, w http.ResponseWriter, r *http.Request) error

// HTTP serves an HTTP handler.
func HTTP(h HTTPFunc) Function {
	return Function{kind: "http", serve: func(ctx context.Context, w *responseWriter, r *http.Request) error {
		return h(ctx, w, r)
	}}
}

// EventFunc is the normalized form of a CloudEvents handler: it receives the event and may
// return a reply event, which is sent back to the caller.
type EventFunc func(ctx context.Context, e event.Event) (*event.Event, error)

// CloudEvents serves a CloudEvents handler, in binary and structured content mode.
func CloudEvents(h EventFunc) Function {
	return Function{kind: "cloudevents", serve: func(ctx context.Context, w *responseWriter, r *http.Request) error {
		return serveEvent(ctx, h, w, r)
	}}
}

// Typed serves a function of JSON values: the request body is decoded into In and the result is
// encoded as the JSON response.
func Typed[In, Out any](h func(ctx context.Context, in In) (Out, error)) Function {
	return Function{kind: "typed", serve: func(ctx context.Context, w *responseWriter, r *http.Request) error {
		return serveTyped(ctx, h, w, r)
	}}
}

// TypedNoContext is Typed for a handler that takes no context.
func TypedNoContext[In, Out any](h func(in In) (Out, error)) Function {
	return Typed(func(_ context.Context, in In) (Out, error) { return h(in) })
}

// StatusError is an error that answers with a chosen HTTP status code. Handlers need not import
// fn to use it: any error with a StatusCode() int method is honoured.
type StatusError interface {
	error
	StatusCode() int
}

// statusOf returns the status an error answers with: its StatusCode() when it has one in range,
// else def.
func statusOf(err error, def int) int {
	var se StatusError
	if errors.As(err, &se) {
		if c := se.StatusCode(); c >= 400 && c < 600 {
			return c
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return def
}
