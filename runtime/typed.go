package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
)

// serveTyped decodes the JSON request body into In, calls h, and answers with its result encoded
// as JSON. Undecodable input answers 400; an error from h answers {"error": "..."} with 500 or
// the error's StatusCode().
func serveTyped[In, Out any](ctx context.Context, h func(context.Context, In) (Out, error), w http.ResponseWriter, r *http.Request) error {
	in, err := decodeTyped[In](r)
	if err != nil {
		writeJSON(w, statusOf(err, http.StatusBadRequest), map[string]string{"error": err.Error()})
		return err
	}
	out, err := h(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			// The request's deadline passed (or its client left): the runtime answers, 504.
			return err
		}
		writeJSON(w, statusOf(err, http.StatusInternalServerError), map[string]string{"error": err.Error()})
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encoding the function's result as JSON: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// decodeTyped reads the request body as a JSON value of type In.
func decodeTyped[In any](r *http.Request) (In, error) {
	var in In
	body, err := readBody(r)
	if err != nil {
		return in, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return in, errorf(http.StatusBadRequest, "request body is empty: send a JSON value of type %s", reflect.TypeFor[In]())
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return in, errorf(http.StatusBadRequest, "request body is not a JSON value of type %s: %v", reflect.TypeFor[In](), err)
	}
	return in, nil
}
