package events

import (
	"context"
	"net"
	"testing"
	"time"

	"fnkit.dev/fn/events/engine"
)

// StartTestEngine runs a real engine (an embedded NATS server with JetStream) on a free port
// of loopback, its store in a test directory, and returns a Queue set up on it, and its
// address. For this package's tests, of both packages.
func StartTestEngine(t *testing.T) (*Queue, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := engine.Start(engine.Options{Dir: t.TempDir(), Addr: addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	q, err := Connect(ctx, Options{URL: "nats://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	select {
	case <-q.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the queue was not set up in 10s")
	}
	return q, addr
}
