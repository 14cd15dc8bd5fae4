package runtime

import (
	"context"
	"errors"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// serveEvent decodes a CloudEvent in binary or structured mode, calls h, and answers with h's
// reply event in the request's mode, or 202 Accepted when there is none.
func serveEvent(ctx context.Context, h EventFunc, w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// CloudEvents HTTP webhook abuse protection handshake.
		if origin := r.Header.Get("WebHook-Request-Origin"); origin != "" {
			w.Header().Set("WebHook-Allowed-Origin", origin)
			w.Header().Set("WebHook-Allowed-Rate", "*")
		}
		w.Header().Set("Allow", "POST, OPTIONS")
		w.WriteHeader(http.StatusOK)
		return nil
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed: send CloudEvents with POST", r.Method)
	}
	e, structured, err := decodeEvent(ctx, r)
	if err != nil {
		return err
	}
	reply, err := h(ctx, *e)
	if err != nil {
		var res *cehttp.Result
		if protocol.ResultAs(err, &res) && res.StatusCode >= 400 && res.StatusCode < 600 {
			return &httpError{code: res.StatusCode, msg: err.Error()}
		}
		return err
	}
	if reply == nil {
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	if err := reply.Validate(); err != nil {
		return errorf(http.StatusInternalServerError, "the function returned an invalid reply event: %v", err)
	}
	if structured {
		ctx = binding.WithForceStructured(ctx)
	} else {
		ctx = binding.WithForceBinary(ctx)
		if reply.DataContentType() == "" {
			// No Content-Type of net/http's guessing: the event has none, and a receiver
			// would read the guess as its datacontenttype.
			w.Header()["Content-Type"] = nil
		}
	}
	return cehttp.WriteResponseWriter(ctx, binding.ToMessage(reply), http.StatusOK, w)
}

// decodeEvent reads the CloudEvent of r and reports whether it came in structured mode. Its
// errors carry the status to answer: 400 for what is not a valid event, 413 for a body too large.
func decodeEvent(ctx context.Context, r *http.Request) (*event.Event, bool, error) {
	m := cehttp.NewMessageFromHttpRequest(r)
	defer func() { _ = m.Finish(nil) }()
	enc := m.ReadEncoding()
	if enc == binding.EncodingUnknown {
		return nil, false, errorf(http.StatusBadRequest, "request is not a CloudEvent: send ce-specversion, ce-id, ce-type and ce-source headers (binary mode) or a body of Content-Type application/cloudevents+json (structured mode)")
	}
	if _, ok := r.Header["Ce-"]; ok && enc == binding.EncodingBinary {
		// The SDK would index past the end of this header's name, and panic.
		return nil, false, errorf(http.StatusBadRequest, "malformed CloudEvent: header ce- names no attribute")
	}
	if enc == binding.EncodingBatch {
		return nil, false, errorf(http.StatusBadRequest, "batched CloudEvents are not supported: send one event per request")
	}
	e, err := binding.ToEvent(ctx, m)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, false, errorf(http.StatusRequestEntityTooLarge, "request body exceeds the limit of %d bytes (FN_MAX_BODY)", mbe.Limit)
		}
		return nil, false, errorf(http.StatusBadRequest, "malformed CloudEvent: %v", err)
	}
	if err := e.Validate(); err != nil {
		return nil, false, errorf(http.StatusBadRequest, "invalid CloudEvent: %v", err)
	}
	return e, enc == binding.EncodingStructured, nil
}
