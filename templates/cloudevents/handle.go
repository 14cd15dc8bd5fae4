// Package function is a CloudEvents function.
package function

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Handle answers e with a reply event that carries e's data.
func Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	reply := event.New()
	reply.SetID(e.ID() + "-reply")
	reply.SetType("dev.fnkit.reply")
	reply.SetSource("fn/function")
	reply.SetDataContentType(e.DataContentType())
	reply.DataEncoded = e.Data()
	reply.DataBase64 = e.DataBase64
	return &reply, nil
}
