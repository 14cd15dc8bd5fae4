package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fnkit.dev/fn/runtime"
)

type greetIn struct {
	Name  string `json:"name"`
	Times int    `json:"times"`
}

type greetOut struct {
	Greeting string   `json:"greeting"`
	Words    []string `json:"words"`
}

func greet(_ context.Context, in greetIn) (greetOut, error) {
	switch in.Name {
	case "teapot":
		return greetOut{}, statusErr{http.StatusTeapot, "teapots are not greeted"}
	case "unknown":
		return greetOut{}, fmt.Errorf("looking up %q: %w", in.Name, statusErr{http.StatusUnprocessableEntity, "no such person"})
	case "crash":
		return greetOut{}, errors.New("greeter broke")
	}
	words := make([]string, 0, in.Times)
	for i := 0; i < in.Times; i++ {
		words = append(words, "hello")
	}
	return greetOut{Greeting: "hello " + in.Name, Words: words}, nil
}

func TestTyped(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantJSON  string   // the whole answer, compared as JSON values
		wantError []string // parts of the "error" of an error answer
	}{
		{
			name: "valid", body: `{"name":"Ada","times":2}`, wantCode: 200,
			wantJSON: `{"greeting":"hello Ada","words":["hello","hello"]}`,
		},
		{
			name: "unknown fields are ignored", body: ` {"name":"Bo","extra":[1,2]} `, wantCode: 200,
			wantJSON: `{"greeting":"hello Bo","words":[]}`,
		},
		{
			name: "null decodes to the zero value", body: `null`, wantCode: 200,
			wantJSON: `{"greeting":"hello ","words":[]}`,
		},
		{name: "invalid JSON", body: `{"name":`, wantCode: 400, wantError: []string{"greetIn", "not a JSON value"}},
		{name: "wrong type", body: `{"name":42}`, wantCode: 400, wantError: []string{"greetIn"}},
		{name: "not an object", body: `"Ada"`, wantCode: 400, wantError: []string{"greetIn"}},
		{name: "trailing garbage", body: `{"name":"Ada"} x`, wantCode: 400, wantError: []string{"greetIn"}},
		{name: "empty body", body: ``, wantCode: 400, wantError: []string{"empty", "greetIn"}},
		{name: "blank body", body: " \n\t", wantCode: 400, wantError: []string{"empty", "greetIn"}},
		{name: "error with StatusCode", body: `{"name":"teapot"}`, wantCode: 418, wantError: []string{"teapots are not greeted"}},
		{name: "wrapped error with StatusCode", body: `{"name":"unknown"}`, wantCode: 422, wantError: []string{"no such person", `"unknown"`}},
		{name: "plain error", body: `{"name":"crash"}`, wantCode: 500, wantError: []string{"greeter broke"}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = mode.timeout
			rs := start(t, runtime.Typed(greet), cfg, true)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got := rs.post(t, "/", "application/json", tt.body)
					if got.Code != tt.wantCode {
						t.Fatalf("POST %q = %d %s, want %d", tt.body, got.Code, got.Body, tt.wantCode)
					}
					if ct := got.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type = %q, want application/json", ct)
					}
					if tt.wantJSON != "" {
						var want, have any
						if err := json.Unmarshal([]byte(tt.wantJSON), &want); err != nil {
							t.Fatal(err)
						}
						if err := json.Unmarshal([]byte(got.Body), &have); err != nil {
							t.Fatalf("answer %q is not JSON: %v", got.Body, err)
						}
						if diff := diff(want, have); diff != "" {
							t.Errorf("answer mismatch (-want +got):\n%s", diff)
						}
						return
					}
					msg := errorMessage(t, got.Body)
					for _, part := range tt.wantError {
						if !strings.Contains(msg, part) {
							t.Errorf("error %q does not mention %q", msg, part)
						}
					}
				})
			}
		})
	}
}

// errorMessage returns the "error" of a typed function's JSON error answer, failing the test when
// the answer is not one.
func errorMessage(t testing.TB, body string) string {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error answer %q is not JSON: %v", body, err)
	}
	msg, ok := e["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("error answer %q has no \"error\" string", body)
	}
	return msg
}

func TestTypedNoContext(t *testing.T) {
	f := runtime.TypedNoContext(func(in []int) (int, error) {
		sum := 0
		for _, v := range in {
			sum += v
		}
		return sum, nil
	})
	rs := start(t, f, testConfig(t), true)
	if got := rs.post(t, "/", "application/json", `[1,2,3]`); got.Code != 200 || got.Body != "6\n" {
		t.Errorf("POST [1,2,3] = %d %q, want 200 \"6\\n\"", got.Code, got.Body)
	}
}

func TestTypedUnencodableResult(t *testing.T) {
	f := runtime.Typed(func(context.Context, string) (func(), error) { return func() {}, nil })
	rs := start(t, f, testConfig(t), true)
	got := rs.post(t, "/", "application/json", `"x"`)
	if got.Code != http.StatusInternalServerError {
		t.Fatalf("POST = %d %q, want 500", got.Code, got.Body)
	}
	if msg := errorMessage(t, got.Body); !strings.Contains(msg, "JSON") {
		t.Errorf("error %q does not say the result could not be encoded as JSON", msg)
	}
}

// FuzzTypedDecode fuzzes the body of a request to a typed function: whatever the body, the answer
// is 200, 400 or 413, never 500 or a crash, and a 400 is a JSON object with an "error".
func FuzzTypedDecode(f *testing.F) {
	for _, seed := range []string{
		`{"name":"Ada","times":2}`,
		`{"name":"Ada","times":-1}`,
		`{"name":"\u00e9\ud83d\ude00","times":0}`,
		`null`,
		`{}`,
		`[]`,
		`{"name":`,
		`{"times":1e400}`,
		`{"times":"2"}`,
		``,
		"\xff\xfe",
		`{"name":"a"}{"name":"b"}`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte(`{"name":"Ada"}`), true)

	cfg := testConfig(f)
	cfg.MaxBody = 64 << 10
	type in struct {
		Name  string            `json:"name"`
		Times int               `json:"times"`
		Tags  map[string]string `json:"tags"`
		Next  *greetIn          `json:"next"`
	}
	s := startDirect(f, runtime.Typed(func(_ context.Context, in in) (in, error) { return in, nil }), cfg)

	f.Fuzz(func(t *testing.T, body []byte, unknownLength bool) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if unknownLength {
			req.ContentLength = -1
		}
		rec := serveDirect(s, req)
		switch rec.Code {
		case http.StatusOK:
			// The function echoes its input: the answer is the body decoded and encoded again.
			var v in
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("body %q answered 200, but does not decode: %v", body, err)
			}
			want, _ := json.Marshal(v)
			if got := bytes.TrimSuffix(rec.Body.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
				t.Errorf("body %q answered %s, want %s", body, got, want)
			}
		case http.StatusBadRequest:
			var e map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("400 answer %q is not a JSON object: %v", rec.Body, err)
			}
			if msg, ok := e["error"].(string); !ok || msg == "" {
				t.Errorf("400 answer %q has no \"error\"", rec.Body)
			}
		case http.StatusRequestEntityTooLarge:
			if len(body) <= int(cfg.MaxBody) {
				t.Errorf("a %d-byte body answered 413 under a limit of %d", len(body), cfg.MaxBody)
			}
		default:
			t.Fatalf("body %q answered %d %q, want 200, 400 or 413", body, rec.Code, rec.Body)
		}
		if len(body) > int(cfg.MaxBody) && rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("a %d-byte body answered %d under a limit of %d, want 413", len(body), rec.Code, cfg.MaxBody)
		}
		if json.Valid(body) && rec.Code == http.StatusBadRequest && !strings.Contains(rec.Body.String(), "type") {
			t.Errorf("400 for valid JSON %q does not name the type: %s", body, rec.Body)
		}
	})
}
