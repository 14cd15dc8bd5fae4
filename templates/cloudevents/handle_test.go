package function

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestHandle(t *testing.T) {
	in := event.New()
	in.SetID("42")
	in.SetType("dev.fnkit.test")
	in.SetSource("test")
	if err := in.SetData(event.ApplicationJSON, map[string]string{"message": "hi"}); err != nil {
		t.Fatal(err)
	}

	reply, err := Handle(context.Background(), in)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if err := reply.Validate(); err != nil {
		t.Fatalf("reply is not a valid event: %v", err)
	}
	if reply.ID() != "42-reply" || reply.Type() != "dev.fnkit.reply" || reply.Source() != "fn/function" {
		t.Errorf("reply id, type, source = %q, %q, %q; want 42-reply, dev.fnkit.reply, fn/function",
			reply.ID(), reply.Type(), reply.Source())
	}
	if got, want := string(reply.Data()), `{"message":"hi"}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	if got := reply.DataContentType(); got != event.ApplicationJSON {
		t.Errorf("data content type = %q, want %q", got, event.ApplicationJSON)
	}
}
