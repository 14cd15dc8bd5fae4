package echo

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func newEvent(t *testing.T, id string) event.Event {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetType("dev.fnkit.test")
	e.SetSource("test/echo-event")
	return e
}

func TestHandleEchoesData(t *testing.T) {
	in := newEvent(t, "abc-123")
	if err := in.SetData(event.ApplicationJSON, map[string]string{"message": "hi"}); err != nil {
		t.Fatal(err)
	}

	reply, err := Handle(context.Background(), in)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if reply == nil {
		t.Fatal("Handle returned no reply")
	}
	if err := reply.Validate(); err != nil {
		t.Errorf("reply is not a valid event: %v", err)
	}
	if got := reply.Type(); got != "dev.fnkit.echo" {
		t.Errorf("type = %q, want dev.fnkit.echo", got)
	}
	if got := reply.Source(); got != "fn/echo-event" {
		t.Errorf("source = %q, want fn/echo-event", got)
	}
	if reply.ID() == "" || reply.ID() == in.ID() {
		t.Errorf("id = %q, want a new id (incoming %q)", reply.ID(), in.ID())
	}
	if got := reply.Extensions()["echoedid"]; got != "abc-123" {
		t.Errorf("extension echoedid = %v, want abc-123", got)
	}
	if got := reply.DataContentType(); got != event.ApplicationJSON {
		t.Errorf("data content type = %q, want %q", got, event.ApplicationJSON)
	}
	if got, want := string(reply.Data()), `{"message":"hi"}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	var data map[string]string
	if err := reply.DataAs(&data); err != nil || data["message"] != "hi" {
		t.Errorf("DataAs = %v, %v; want message hi", data, err)
	}
}

func TestHandleEchoesBinaryData(t *testing.T) {
	in := newEvent(t, "bin-1")
	payload := []byte{0x00, 0xff, 0x10}
	if err := in.SetData("application/octet-stream", payload); err != nil {
		t.Fatal(err)
	}

	reply, err := Handle(context.Background(), in)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if got := reply.DataContentType(); got != "application/octet-stream" {
		t.Errorf("data content type = %q, want application/octet-stream", got)
	}
	if string(reply.Data()) != string(payload) || !reply.DataBase64 {
		t.Errorf("data = %x (base64 %t), want %x (base64 true)", reply.Data(), reply.DataBase64, payload)
	}
	in.DataEncoded[0] = 0x42
	if reply.Data()[0] != 0x00 {
		t.Error("reply shares its data with the incoming event")
	}
}

func TestHandleEventWithoutData(t *testing.T) {
	in := newEvent(t, "empty-1")

	reply, err := Handle(context.Background(), in)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if err := reply.Validate(); err != nil {
		t.Errorf("reply is not a valid event: %v", err)
	}
	if reply.Data() != nil {
		t.Errorf("data = %q, want none", reply.Data())
	}
	if got := reply.DataContentType(); got != "" {
		t.Errorf("data content type = %q, want none", got)
	}
	if got := reply.Extensions()["echoedid"]; got != "empty-1" {
		t.Errorf("extension echoedid = %v, want empty-1", got)
	}
}

func TestHandleGivesEachReplyANewID(t *testing.T) {
	in := newEvent(t, "same")
	a, err := Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() {
		t.Errorf("two replies share the id %q", a.ID())
	}
}
