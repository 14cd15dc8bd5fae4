package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"fnkit.dev/fn/runtime"
	"fnkit.dev/fn/runtime/cetest"
)

// TestCloudEventsConformanceThroughGateway runs the CloudEvents conformance cases through the
// gateway to fn's runtime serving the echo function: the gateway adds, drops and rewrites
// nothing of an event, in either mode or spec version.
func TestCloudEventsConformanceThroughGateway(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		events []event.Event
	)
	fn := runtime.CloudEvents(func(_ context.Context, e event.Event) (*event.Event, error) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		return cetest.Echo(e)
	})
	cfg, err := runtime.ConfigFromLookup(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runtime.New(fn, cfg, runtime.WithListener(ln), runtime.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the runtime did not stop")
		}
	})
	f := newFixture(t, Options{}, function("events", "ns"), slice("events-1", "ns", "events", withEndpoint("http://"+ln.Addr().String(), true)))
	eventually(t, "the runtime to be ready", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/_fn/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cetest.Run(t, f.srv.Client(), f.srv.URL+"/f/ns/events/", func() []event.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]event.Event(nil), events...)
	})
}
