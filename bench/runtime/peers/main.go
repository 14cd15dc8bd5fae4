// Command peers serves examples/hello and examples/echo-event as the frameworks users would
// pick instead of fn's runtime serve them, for bench/runtime to load beside it: PEER=ff-http
// (GoogleCloudPlatform/functions-framework-go, hello as an HTTP function), PEER=ff-cloudevent
// (functions-framework-go, echo-event's handler as a CloudEvent function: that framework has
// no reply event, so it answers 200 with no body), PEER=sdk-receiver (cloudevents/sdk-go's
// client.StartReceiver, echo-event replying). It listens on $PORT. A module of its own, so that
// fn's own does not depend on them.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	echo "fnkit.dev/fn/examples/echo-event"
	hello "fnkit.dev/fn/examples/hello"
)

func main() {
	ctx := context.Background()
	port := os.Getenv("PORT")
	var err error
	switch peer := os.Getenv("PEER"); peer {
	case "ff-http":
		if err = funcframework.RegisterHTTPFunctionContext(ctx, "/", hello.Handle); err == nil {
			err = funcframework.StartHostPort("127.0.0.1", port)
		}
	case "ff-cloudevent":
		handle := func(ctx context.Context, e event.Event) error {
			_, err := echo.Handle(ctx, e)
			return err
		}
		if err = funcframework.RegisterCloudEventFunctionContext(ctx, "/", handle); err == nil {
			err = funcframework.StartHostPort("127.0.0.1", port)
		}
	case "sdk-receiver":
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:"+port); err != nil {
			break
		}
		var c cloudevents.Client
		if c, err = cloudevents.NewClientHTTP(cloudevents.WithListener(ln)); err != nil {
			break
		}
		err = c.StartReceiver(ctx, echo.Handle)
	default:
		err = fmt.Errorf("PEER=%q: ff-http, ff-cloudevent or sdk-receiver", peer)
	}
	if err != nil {
		log.Fatal(err)
	}
}
