// Package echo is an example CloudEvents function that answers every event with a copy of it.
package echo

import (
	"bytes"
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// ReplyType is the type of every reply event.
const ReplyType = "dev.fnkit.echo"

// ReplySource is the source of every reply event.
const ReplySource = "fn/echo-event"

// EchoedIDExtension names the reply's extension that holds the incoming event's id.
const EchoedIDExtension = "echoedid"

// Handle replies to e with a new event that carries e's data, data content type and id.
func Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	reply := event.New()
	reply.SetID(uuid.NewString())
	reply.SetType(ReplyType)
	reply.SetSource(ReplySource)
	reply.SetExtension(EchoedIDExtension, e.ID())
	reply.SetDataContentType(e.DataContentType())
	reply.DataEncoded = bytes.Clone(e.Data())
	reply.DataBase64 = e.DataBase64
	return &reply, nil
}
