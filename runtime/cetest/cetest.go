// Package cetest holds the CloudEvents conformance cases and their check, for the tests of
// everything that carries events to a function: the runtime itself, and the gateway in front
// of it. The function under test answers each event with Echo.
package cetest

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Echo is the conformance function's answer: the event it received, with id "reply-" + its id.
func Echo(in event.Event) (*event.Event, error) {
	out := in.Clone()
	out.SetID("reply-" + in.ID())
	return &out, nil
}

// Case is one event of the spec's cases: its data and how it is typed.
type Case struct {
	Name        string
	ContentType string // "" for no datacontenttype
	Data        []byte // nil for no data
	Extensions  map[string]any
}

// Cases are the events sent, in both spec versions and both modes.
var Cases = []Case{
	{"text", "text/plain; charset=utf-8", []byte("hello, events"), nil},
	{"json", "application/json", []byte(`{"n":1,"s":"x"}`), nil},
	{"xml", "application/xml", []byte(`<order id="7"/>`), nil},
	{"binary data", "application/octet-stream", []byte{0, 1, 2, 0xff, 0xfe, '\n'}, nil},
	{"no data", "", nil, nil},
	{"data without a content type", "", []byte("untyped bytes"), nil},
	{"extensions", "application/json", []byte(`{}`), map[string]any{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "partitionkey": "p-1"}},
}

// Run sends every case to url, in CloudEvents 1.0 and 0.3, binary and structured mode, and
// checks what received (the events the function got, newest last) and the answer carry:
// every attribute sent, the data byte for byte, and a Content-Type only when the event has a
// datacontenttype. Then events missing a required attribute must get 400 without reaching
// the function.
func Run(t *testing.T, client *http.Client, url string, received func() []event.Event) {
	when := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, specVersion := range []string{event.CloudEventsVersionV1, event.CloudEventsVersionV03} {
		for _, structured := range []bool{false, true} {
			mode := "binary"
			if structured {
				mode = "structured"
			}
			for _, c := range Cases {
				if structured && c.ContentType == "" && c.Data != nil {
					continue // structured JSON carries data of no declared type as JSON only
				}
				t.Run(specVersion+"/"+mode+"/"+c.Name, func(t *testing.T) {
					e := event.New(specVersion)
					e.SetID("id-" + strings.ReplaceAll(c.Name, " ", "-"))
					e.SetType("com.example.conformance")
					e.SetSource("/tests/conformance")
					e.SetSubject("subject/1")
					e.SetTime(when)
					if c.Data != nil {
						e.DataEncoded = c.Data
						if c.ContentType != "" {
							e.SetDataContentType(c.ContentType)
						}
					}
					for k, v := range c.Extensions {
						e.SetExtension(k, v)
					}
					check(t, client, url, &e, structured, received)
				})
			}
		}
	}
	for _, missing := range []string{"Ce-Id", "Ce-Source", "Ce-Type", "Ce-Specversion"} {
		h := http.Header{}
		for k, v := range map[string]string{"Ce-Id": "x", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Specversion": "1.0"} {
			if k != missing {
				h.Set(k, v)
			}
		}
		refused(t, client, url, h, `{}`, "binary event without "+missing, received)
	}
	for _, missing := range []string{"id", "source", "type", "specversion"} {
		attrs := map[string]string{"id": "x", "source": "/s", "type": "t", "specversion": "1.0"}
		delete(attrs, missing)
		var parts []string
		for k, v := range attrs {
			parts = append(parts, fmt.Sprintf("%q:%q", k, v))
		}
		refused(t, client, url, http.Header{"Content-Type": {"application/cloudevents+json"}}, "{"+strings.Join(parts, ",")+"}", "structured event without "+missing, received)
	}
}

func check(t *testing.T, client *http.Client, url string, e *event.Event, structured bool, received func() []event.Event) {
	t.Helper()
	ctx := binding.WithForceBinary(context.Background())
	if structured {
		ctx = binding.WithForceStructured(context.Background())
	}
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(e), req); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %d", resp.StatusCode)
	}
	ct, hasCT := resp.Header["Content-Type"]
	switch {
	case !structured && e.DataContentType() == "" && hasCT:
		t.Errorf("binary reply to an event without datacontenttype has Content-Type %q", ct)
	case !structured && e.DataContentType() != "" && resp.Header.Get("Content-Type") != e.DataContentType():
		t.Errorf("binary reply Content-Type %q, want the event's %q", resp.Header.Get("Content-Type"), e.DataContentType())
	case structured && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/cloudevents+json"):
		t.Errorf("structured reply Content-Type %q", resp.Header.Get("Content-Type"))
	}
	reply, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpResponse(resp))
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	events := received()
	if len(events) == 0 || events[len(events)-1].ID() != e.ID() {
		t.Fatalf("the function did not receive %q", e.ID())
	}
	got := events[len(events)-1]
	for what, ev := range map[string]event.Event{"received": got, "replied": *reply} {
		want := e.Clone()
		if what == "replied" {
			want.SetID("reply-" + e.ID())
		}
		if w, g := Attributes(want), Attributes(ev); !reflect.DeepEqual(w, g) {
			t.Errorf("%s event's attributes:\n-want %v\n+got  %v", what, w, g)
		}
		if string(ev.Data()) != string(e.Data()) {
			t.Errorf("%s event's data %q, want %q", what, ev.Data(), e.Data())
		}
	}
}

func refused(t *testing.T, client *http.Client, url string, h http.Header, body, what string, received func() []event.Event) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	before := len(received())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(received()) != before {
		t.Errorf("%s: %d, want 400 and the function not called", what, resp.StatusCode)
	}
}

// Attributes are an event's context attributes and extensions, as strings.
func Attributes(e event.Event) map[string]string {
	a := map[string]string{
		"specversion": e.SpecVersion(), "id": e.ID(), "type": e.Type(), "source": e.Source(),
		"subject": e.Subject(), "datacontenttype": e.DataContentType(), "dataschema": e.DataSchema(),
		"time": e.Time().UTC().Format(time.RFC3339Nano),
	}
	for k, v := range e.Extensions() {
		s, _ := types.Format(v)
		a["ext:"+k] = s
	}
	return a
}
