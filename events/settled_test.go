package events

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestSettledNotDeliveredAgain: a call delivered again whose outcome was recorded (a gateway
// that stopped between recording it and acknowledging it) is acknowledged without reaching the
// function again; one whose outcome was not recorded is delivered, and the attempt lost counted.
func TestSettledNotDeliveredAgain(t *testing.T) {
	q, _ := StartTestEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	settled, _ := q.Enqueue(ctx, Call{Namespace: "default", Name: "f", Method: "POST", Path: "/settled"})
	lost, _ := q.Enqueue(ctx, Call{Namespace: "default", Name: "f", Method: "POST", Path: "/lost"})
	// A first delivery of each by a gateway that then stopped: the first one's outcome was
	// recorded, the second's was not; neither was acknowledged.
	calls, _, _, _ := q.set()
	cons, err := calls.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: consumerName("default", "f"),
		FilterSubject: CallSubject("default", "f"), AckPolicy: jetstream.AckExplicitPolicy, AckWait: AckWait, MaxDeliver: -1, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		md, _ := m.Metadata()
		if id := strconv.FormatUint(md.Sequence.Stream, 10); id == settled.ID {
			if err := q.putRecord(ctx, Record{ID: id, Namespace: "default", Function: "f", State: StateDone, Attempts: 1, Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		_ = m.Nak() // as the engine does after AckWait, at once
	}
	if n != 2 {
		t.Fatalf("fetched %d calls, want 2", n)
	}

	var reached atomic.Int32
	var paths []string
	done := make(chan struct{}, 2)
	d := NewDispatcher(ctx, q, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		paths = append(paths, r.URL.Path)
		done <- struct{}{}
	}), nil)
	d.Sync([]Function{{Namespace: "default", Name: "f", Policy: DefaultPolicy}})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the call whose outcome was lost was not delivered again")
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.Stats.Settled.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if reached.Load() != 1 || paths[0] != "/f/default/f/lost" {
		t.Errorf("the function got %v, want /lost only", paths)
	}
	if d.Stats.Settled.Load() != 1 {
		t.Errorf("settled %d, want the call recorded done", d.Stats.Settled.Load())
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		r, err := q.Call(ctx, "default", "f", lost.ID)
		if err == nil && r.State == StateDone {
			if r.Attempts != 2 || r.Redelivered != 1 {
				t.Errorf("the call whose outcome was lost: %+v, want 2 attempts, 1 redelivered", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s: %+v %v", lost.ID, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := calls.GetMsg(ctx, mustSeq(t, settled.ID)); err == nil {
		t.Errorf("the settled call is still in the stream: not acknowledged")
	}
}

func mustSeq(t *testing.T, id string) uint64 {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
