package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"fnkit.dev/fn/runtime"
)

// eventRecorder is a CloudEvents function that records the events it receives and answers with
// reply (nil for none).
type eventRecorder struct {
	mu     sync.Mutex
	events []event.Event
	reply  func(event.Event) (*event.Event, error)
}

func (r *eventRecorder) function() runtime.Function {
	return runtime.CloudEvents(func(_ context.Context, e event.Event) (*event.Event, error) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
		if r.reply == nil {
			return nil, nil
		}
		return r.reply(e)
	})
}

func (r *eventRecorder) received(t testing.TB) []event.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// eventFields is what the tests compare of an event.
type eventFields struct {
	SpecVersion, ID, Type, Source, Subject, DataContentType string
	Extensions                                              map[string]any
	Data                                                    string
}

func fieldsOf(e event.Event) eventFields {
	f := eventFields{
		SpecVersion: e.SpecVersion(), ID: e.ID(), Type: e.Type(), Source: e.Source(),
		Subject: e.Subject(), DataContentType: e.DataContentType(), Data: string(e.Data()),
	}
	if ext := e.Extensions(); len(ext) > 0 {
		f.Extensions = ext
	}
	return f
}

// replyEvent is the reply of the tests' functions: it names the event it answers.
func replyEvent(in event.Event) (*event.Event, error) {
	out := event.New()
	out.SetID("reply-" + in.ID())
	out.SetType("com.example.reply")
	out.SetSource("/fn")
	if err := out.SetData("application/json", map[string]string{"answering": in.ID()}); err != nil {
		return nil, err
	}
	return &out, nil
}

func TestCloudEventsBinaryMode(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = mode.timeout
			rec := &eventRecorder{reply: replyEvent}
			rs := start(t, rec.function(), cfg, true)

			req := newRequest(t, http.MethodPost, rs.url+"/", strings.NewReader(`{"n":1}`))
			req.Header.Set("Ce-Specversion", "1.0")
			req.Header.Set("Ce-Id", "evt-1")
			req.Header.Set("Ce-Type", "com.example.created")
			req.Header.Set("Ce-Source", "/tests/binary")
			req.Header.Set("Ce-Subject", "thing/7")
			req.Header.Set("Ce-Traceparent", "00-abc-def-01")
			req.Header.Set("Content-Type", "application/json")
			got := do(t, rs.client, req)

			events := rec.received(t)
			if len(events) != 1 {
				t.Fatalf("the function received %d events, want 1", len(events))
			}
			want := eventFields{
				SpecVersion: "1.0", ID: "evt-1", Type: "com.example.created", Source: "/tests/binary",
				Subject: "thing/7", DataContentType: "application/json", Data: `{"n":1}`,
				Extensions: map[string]any{"traceparent": "00-abc-def-01"},
			}
			if diff := diff(want, fieldsOf(events[0])); diff != "" {
				t.Errorf("received event mismatch (-want +got):\n%s", diff)
			}

			// The reply comes back in binary mode: attributes in ce- headers, data as the body.
			if got.Code != http.StatusOK {
				t.Fatalf("answer = %d %q, want 200", got.Code, got.Body)
			}
			wantHeader := map[string]string{
				"Ce-Specversion": "1.0", "Ce-Id": "reply-evt-1", "Ce-Type": "com.example.reply",
				"Ce-Source": "/fn", "Content-Type": "application/json",
			}
			gotHeader := map[string]string{}
			for k := range wantHeader {
				gotHeader[k] = got.Header.Get(k)
			}
			if diff := diff(wantHeader, gotHeader); diff != "" {
				t.Errorf("reply headers mismatch (-want +got):\n%s", diff)
			}
			assertJSONEqual(t, `{"answering":"evt-1"}`, got.Body)
		})
	}
}

func TestCloudEventsStructuredMode(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = mode.timeout
			rec := &eventRecorder{reply: replyEvent}
			rs := start(t, rec.function(), cfg, true)

			body := `{"specversion":"1.0","id":"evt-2","type":"com.example.created","source":"/tests/structured",` +
				`"datacontenttype":"application/json","myext":"x","data":{"n":2}}`
			got := rs.post(t, "/", "application/cloudevents+json; charset=utf-8", body)

			events := rec.received(t)
			if len(events) != 1 {
				t.Fatalf("the function received %d events, want 1", len(events))
			}
			want := eventFields{
				SpecVersion: "1.0", ID: "evt-2", Type: "com.example.created", Source: "/tests/structured",
				DataContentType: "application/json", Data: `{"n":2}`, Extensions: map[string]any{"myext": "x"},
			}
			if diff := diff(want, fieldsOf(events[0])); diff != "" {
				t.Errorf("received event mismatch (-want +got):\n%s", diff)
			}

			// The reply comes back in structured mode: the whole event as the JSON body.
			if got.Code != http.StatusOK {
				t.Fatalf("answer = %d %q, want 200", got.Code, got.Body)
			}
			if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
				t.Errorf("reply Content-Type = %q, want application/cloudevents+json", ct)
			}
			if id := got.Header.Get("Ce-Id"); id != "" {
				t.Errorf("structured reply has a Ce-Id header %q", id)
			}
			assertJSONEqual(t, `{"specversion":"1.0","id":"reply-evt-2","type":"com.example.reply","source":"/fn",`+
				`"datacontenttype":"application/json","data":{"answering":"evt-2"}}`, got.Body)
		})
	}
}

// TestCloudEventsSDKInterop sends events written by the CloudEvents SDK in both modes and reads
// the replies with it.
func TestCloudEventsSDKInterop(t *testing.T) {
	rec := &eventRecorder{reply: replyEvent}
	rs := start(t, rec.function(), testConfig(t), true)

	sent := event.New()
	sent.SetID("sdk-1")
	sent.SetType("com.example.sdk")
	sent.SetSource("https://example.com/sdk")
	sent.SetSubject("s")
	sent.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
	sent.SetExtension("count", 3)
	if err := sent.SetData("application/json", map[string]int{"n": 3}); err != nil {
		t.Fatal(err)
	}

	for _, structured := range []bool{false, true} {
		name := "binary"
		ctx := binding.WithForceBinary(context.Background())
		if structured {
			name = "structured"
			ctx = binding.WithForceStructured(context.Background())
		}
		t.Run(name, func(t *testing.T) {
			before := len(rec.received(t))
			req := newRequest(t, http.MethodPost, rs.url+"/", nil)
			if err := cehttp.WriteRequest(ctx, binding.ToMessage(&sent), req); err != nil {
				t.Fatal(err)
			}
			if structured != strings.HasPrefix(req.Header.Get("Content-Type"), "application/cloudevents+json") {
				t.Fatalf("the SDK wrote Content-Type %q, not the mode asked for", req.Header.Get("Content-Type"))
			}
			res, err := rs.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("answer = %d %q, want 200", res.StatusCode, b)
			}
			m := cehttp.NewMessageFromHttpResponse(res)
			wantEnc := binding.EncodingBinary
			if structured {
				wantEnc = binding.EncodingStructured
			}
			if enc := m.ReadEncoding(); enc != wantEnc {
				t.Errorf("reply encoding = %v, want %v", enc, wantEnc)
			}
			reply, err := binding.ToEvent(context.Background(), m)
			if err != nil {
				t.Fatalf("the SDK cannot read the reply: %v", err)
			}
			want, _ := replyEvent(sent)
			if diff := diff(fieldsOf(*want), fieldsOf(*reply)); diff != "" {
				t.Errorf("reply mismatch (-want +got):\n%s", diff)
			}

			events := rec.received(t)
			if len(events) != before+1 {
				t.Fatalf("the function received %d events, want %d", len(events), before+1)
			}
			got := events[len(events)-1]
			if diff := diff(fieldsOf(sent), fieldsOf(got)); diff != "" {
				// Extension values may come back as strings in binary mode; compare them as text.
				if !equalAsText(fieldsOf(sent), fieldsOf(got)) {
					t.Errorf("received event mismatch (-want +got):\n%s", diff)
				}
			}
			if !got.Time().Equal(sent.Time()) {
				t.Errorf("received time %v, want %v", got.Time(), sent.Time())
			}
		})
	}
}

func equalAsText(a, b eventFields) bool {
	text := func(m map[string]any) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			b, _ := json.Marshal(v)
			out[k] = strings.Trim(string(b), `"`)
		}
		return out
	}
	ea, eb := text(a.Extensions), text(b.Extensions)
	a.Extensions, b.Extensions = nil, nil
	return reflect.DeepEqual(a, b) && reflect.DeepEqual(ea, eb)
}

func TestCloudEventsAnswers(t *testing.T) {
	binary := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"id-1"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"},
	}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	structured := http.Header{"Content-Type": {"application/cloudevents+json"}}
	tests := []struct {
		name       string
		method     string
		header     http.Header
		body       string
		reply      func(event.Event) (*event.Event, error)
		wantCode   int
		wantBody   []string          // parts of the body
		wantHeader map[string]string // headers of the answer
		wantCalls  int
	}{
		{
			name: "no reply", method: "POST", header: binary, body: "data",
			wantCode: http.StatusAccepted, wantCalls: 1,
		},
		{
			name: "no reply, structured", method: "POST", header: structured,
			body:     `{"specversion":"1.0","id":"1","type":"t","source":"/s"}`,
			wantCode: http.StatusAccepted, wantCalls: 1,
		},
		{
			name: "specversion 0.3", method: "POST", header: with(binary, "Ce-Specversion", "0.3"),
			wantCode: http.StatusAccepted, wantCalls: 1,
		},
		{
			name: "plain request", method: "POST", header: http.Header{"Content-Type": {"application/json"}}, body: `{"a":1}`,
			wantCode: http.StatusBadRequest, wantBody: []string{"not a CloudEvent", "ce-specversion", "application/cloudevents+json"},
		},
		{
			name: "unknown specversion", method: "POST", header: with(binary, "Ce-Specversion", "9.9"),
			wantCode: http.StatusBadRequest, wantBody: []string{"not a CloudEvent"},
		},
		{
			name: "binary without an id", method: "POST", header: with(binary, "Ce-Id", ""),
			wantCode: http.StatusBadRequest, wantBody: []string{"id"},
		},
		{
			name: "binary with a bad time", method: "POST", header: with(binary, "Ce-Time", "yesterday"),
			wantCode: http.StatusBadRequest, wantBody: []string{"CloudEvent"},
		},
		{
			name: "binary with an empty extension name", method: "POST", header: with(binary, "Ce-", "x"),
			wantCode: http.StatusBadRequest,
		},
		{
			name: "structured, not JSON", method: "POST", header: structured, body: `{"specversion":`,
			wantCode: http.StatusBadRequest, wantBody: []string{"malformed CloudEvent"},
		},
		{
			name: "structured without a source", method: "POST", header: structured,
			body:     `{"specversion":"1.0","id":"1","type":"t"}`,
			wantCode: http.StatusBadRequest, wantBody: []string{"source"},
		},
		{
			name: "batch", method: "POST", header: http.Header{"Content-Type": {"application/cloudevents-batch+json"}},
			body:     `[{"specversion":"1.0","id":"1","type":"t","source":"/s"}]`,
			wantCode: http.StatusBadRequest, wantBody: []string{"batch"},
		},
		{
			name: "GET", method: "GET", header: binary,
			wantCode: http.StatusMethodNotAllowed, wantBody: []string{"POST"},
			wantHeader: map[string]string{"Allow": "POST, OPTIONS"},
		},
		{
			name: "PUT", method: "PUT", header: binary, body: "x",
			wantCode: http.StatusMethodNotAllowed, wantHeader: map[string]string{"Allow": "POST, OPTIONS"},
		},
		{
			name: "webhook handshake", method: "OPTIONS", header: http.Header{"Webhook-Request-Origin": {"eventemitter.example.com"}},
			wantCode: http.StatusOK,
			wantHeader: map[string]string{
				"Webhook-Allowed-Origin": "eventemitter.example.com", "Webhook-Allowed-Rate": "*", "Allow": "POST, OPTIONS",
			},
		},
		{
			name: "OPTIONS without an origin", method: "OPTIONS",
			wantCode: http.StatusOK, wantHeader: map[string]string{"Webhook-Allowed-Origin": "", "Allow": "POST, OPTIONS"},
		},
		{
			name: "invalid reply", method: "POST", header: binary,
			reply: func(event.Event) (*event.Event, error) {
				e := event.New()
				e.SetType("t") // no id, no source
				return &e, nil
			},
			wantCode: http.StatusInternalServerError, wantBody: []string{"invalid reply"}, wantCalls: 1,
		},
		{
			name: "handler error", method: "POST", header: binary,
			reply:    func(event.Event) (*event.Event, error) { return nil, errors.New("queue is full") },
			wantCode: http.StatusInternalServerError, wantBody: []string{"queue is full"}, wantCalls: 1,
		},
		{
			name: "handler error with StatusCode", method: "POST", header: binary,
			reply:    func(event.Event) (*event.Event, error) { return nil, statusErr{http.StatusConflict, "seen it"} },
			wantCode: http.StatusConflict, wantBody: []string{"seen it"}, wantCalls: 1,
		},
		{
			name: "handler error as an SDK result", method: "POST", header: binary,
			reply: func(event.Event) (*event.Event, error) {
				return nil, cehttp.NewResult(http.StatusTooManyRequests, "slow down")
			},
			wantCode: http.StatusTooManyRequests, wantBody: []string{"slow down"}, wantCalls: 1,
		},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cfg := testConfig(t)
					cfg.Timeout = mode.timeout
					rec := &eventRecorder{reply: tt.reply}
					rs := start(t, rec.function(), cfg, true)
					var body io.Reader
					if tt.body != "" {
						body = strings.NewReader(tt.body)
					}
					req := newRequest(t, tt.method, rs.url+"/", body)
					for k, v := range tt.header {
						req.Header[k] = v
					}
					got := do(t, rs.client, req)
					if got.Code != tt.wantCode {
						t.Errorf("answer = %d %q, want %d", got.Code, got.Body, tt.wantCode)
					}
					for _, part := range tt.wantBody {
						if !strings.Contains(got.Body, part) {
							t.Errorf("answer %q does not mention %q", got.Body, part)
						}
					}
					for k, v := range tt.wantHeader {
						if g := got.Header.Get(k); g != v {
							t.Errorf("header %s = %q, want %q", k, g, v)
						}
					}
					if n := len(rec.received(t)); n != tt.wantCalls {
						t.Errorf("the function was called %d times, want %d", n, tt.wantCalls)
					}
				})
			}
		})
	}
}

func assertJSONEqual(t testing.TB, want, got string) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%q is not JSON: %v", got, err)
	}
	if diff := diff(w, g); diff != "" {
		t.Errorf("JSON mismatch (-want +got):\n%s", diff)
	}
}

// FuzzCloudEventDecode fuzzes the attributes and body of an event sent in binary or structured
// mode: when the function is called the event is valid and the answer is 2xx; otherwise the
// answer is 400 or 413; never 500 or a crash. Replies are read back with the SDK.
func FuzzCloudEventDecode(f *testing.F) {
	type seed struct {
		structured                     bool
		specversion, id, typ, source   string
		contentType, timeAttr, extName string
		extValue                       string
		body                           []byte
		reply                          bool
	}
	for _, s := range []seed{
		{false, "1.0", "id-1", "com.example.t", "/src", "application/json", "", "", "", []byte(`{"n":1}`), true},
		{false, "1.0", "id-1", "com.example.t", "/src", "text/plain", "2024-01-02T03:04:05Z", "myext", "v", []byte("hello"), false},
		{false, "0.3", "id-1", "t", "https://example.com/x", "", "", "", "", nil, true},
		{false, "1.0", "", "t", "/s", "", "", "", "", nil, false},
		{false, "1.0", "id", "t", "/s", "", "not a time", "", "", nil, false},
		{false, "1.0", "id", "t", "/s", "", "", "", "x", nil, false},
		{false, "1.0", "id", "t", "%zz", "bad/type/x", "", "BadExt", "x", nil, true},
		{false, "2.0", "id", "t", "/s", "", "", "", "", nil, false},
		{true, "", "", "", "", "application/cloudevents+json", "", "", "", []byte(`{"specversion":"1.0","id":"1","type":"t","source":"/s","data":{"a":[1,2]}}`), true},
		{true, "", "", "", "", "application/cloudevents+json", "", "", "", []byte(`{"specversion":"1.0","id":"1","type":"t","source":"/s","data_base64":"aGk=","datacontenttype":"text/plain"}`), true},
		{true, "", "", "", "", "application/cloudevents+json; charset=utf-8", "", "", "", []byte(`{"specversion":"0.3","id":"1","type":"t","source":"/s","datacontentencoding":"base64","data":"aGk="}`), false},
		{true, "", "", "", "", "application/cloudevents+json", "", "", "", []byte(`{"specversion":"1.0","id":"1","type":"t","source":"/s","time":"x"}`), false},
		{true, "", "", "", "", "application/cloudevents+json", "", "", "", []byte(`{"specversion":"1.0","id":1}`), false},
		{true, "", "", "", "", "application/cloudevents+json", "", "", "", []byte(`{`), false},
		{true, "", "", "", "", "application/cloudevents-batch+json", "", "", "", []byte(`[]`), false},
		{true, "", "", "", "", "text/plain", "", "", "", []byte(`x`), false},
	} {
		f.Add(s.structured, s.specversion, s.id, s.typ, s.source, s.contentType, s.timeAttr, s.extName, s.extValue, s.body, s.reply)
	}

	cfg := testConfig(f)
	cfg.MaxBody = 64 << 10
	var (
		mu       sync.Mutex
		called   bool
		validErr error
		received event.Event
	)
	s := startDirect(f, runtime.CloudEvents(func(_ context.Context, e event.Event) (*event.Event, error) {
		mu.Lock()
		defer mu.Unlock()
		called, validErr, received = true, e.Validate(), e
		if e.ID() == "reply-none" {
			return nil, nil
		}
		return &e, nil // echo
	}), cfg)

	f.Fuzz(func(t *testing.T, structured bool, specversion, id, typ, source, contentType, timeAttr, extName, extValue string, body []byte, reply bool) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		set := func(k, v string) bool {
			if v == "" {
				return true
			}
			if !validHeaderValue(v) {
				return false
			}
			req.Header.Set(k, strings.Trim(v, " \t")) // as a server reading the request would
			return true
		}
		ok := set("Content-Type", contentType)
		if !structured {
			ok = ok && set("Ce-Specversion", specversion) && set("Ce-Id", id) && set("Ce-Type", typ) &&
				set("Ce-Source", source) && set("Ce-Time", timeAttr)
			if extName != "" || extValue != "" {
				if !validToken(extName) {
					return
				}
				ok = ok && set("Ce-"+extName, extValue)
			}
			if !reply {
				ok = ok && set("Ce-Id", "reply-none")
			}
		}
		if !ok {
			return // not a request an HTTP server would pass on
		}
		mu.Lock()
		called, validErr = false, nil
		mu.Unlock()

		rec := serveDirect(s, req)

		mu.Lock()
		wasCalled, verr, got := called, validErr, received
		mu.Unlock()
		if wasCalled {
			if verr != nil {
				t.Errorf("the function was called with an invalid event: %v", verr)
			}
			if rec.Code != http.StatusOK && rec.Code != http.StatusAccepted {
				t.Fatalf("the function was called but the answer is %d %q", rec.Code, rec.Body)
			}
			if rec.Code == http.StatusOK {
				// The echoed event reads back with the SDK.
				res := rec.Result()
				// A header set to nil (no Content-Type for an event without one) is not sent
				// over HTTP, but the recorder keeps its key, and the SDK indexes its first value.
				for k, v := range res.Header {
					if len(v) == 0 {
						delete(res.Header, k)
					}
				}
				back, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpResponse(res))
				if err != nil {
					t.Fatalf("the SDK cannot read the reply %v %q: %v", res.Header, rec.Body, err)
				}
				if back.ID() != got.ID() || back.Type() != got.Type() || back.Source() != got.Source() {
					t.Errorf("reply %v does not echo the event %v", back, got)
				}
				if gotStructured := strings.HasPrefix(res.Header.Get("Content-Type"), "application/cloudevents+json"); gotStructured != (format.Lookup(req.Header.Get("Content-Type")) != nil) {
					t.Errorf("reply Content-Type %q is not in the request's mode", res.Header.Get("Content-Type"))
				}
			}
			return
		}
		switch rec.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("the function was not called and the answer is %d %q, want 400 or 413 (headers %v, body %q)",
				rec.Code, rec.Body, req.Header, body)
		}
	})
}

// validHeaderValue reports whether v can be sent as an HTTP header value (no control characters
// but tab), as net/http checks.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validToken reports whether s is a valid HTTP header name suffix (a token, possibly empty).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c <= ' ' || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 || c == 0x7f {
			return false
		}
	}
	return true
}
