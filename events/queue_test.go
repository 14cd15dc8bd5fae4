package events_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fnkit.dev/fn/events"
)

// startEngine: a real engine and a Queue set up on it (events.StartTestEngine).
func startEngine(t *testing.T) (*events.Queue, string) { return events.StartTestEngine(t) }

func waitRecord(t *testing.T, q *events.Queue, ns, name, id string, want events.State) events.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := q.Call(context.Background(), ns, name, id)
		if err == nil && r.State == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s: %+v, %v; want state %s", id, r, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDelivery: calls are delivered with their request, tried again on 5xx with the policy's
// backoff, given up on other 4xx to the dead letters with the answer, and a repeated key is
// not accepted twice.
func TestDelivery(t *testing.T) {
	q, _ := startEngine(t)
	ctx := context.Background()

	var mu sync.Mutex
	seen := map[string][]time.Time{} // by call id: when each attempt came
	bodies := map[string]string{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		id := r.Header.Get(events.CallIDHeader)
		mu.Lock()
		seen[id] = append(seen[id], time.Now())
		n := len(seen[id])
		bodies[id] = r.Method + " " + r.URL.String() + " " + r.Header.Get("X-Test") + " " + string(b)
		mu.Unlock()
		if r.Header.Get(events.AttemptHeader) != fmt.Sprint(n) {
			http.Error(w, "attempt header "+r.Header.Get(events.AttemptHeader), http.StatusTeapot)
			return
		}
		switch r.URL.Path {
		case "/flaky":
			if n < 3 {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
		case "/bad":
			w.Header().Set("Content-Type", "text/plain")
			http.Error(w, "no such order", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	d := events.NewDispatcher(dctx, q, http.StripPrefix("/f/default/f", h), nil) // as the gateway routes
	policy := events.Policy{Attempts: 4, Backoff: 200 * time.Millisecond, MaxBackoff: time.Second, MaxAge: time.Hour}
	d.Sync([]events.Function{{Namespace: "default", Name: "f", Policy: policy, DeadLetters: true}})

	call := func(path, key string) events.Accepted {
		t.Helper()
		a, err := q.Enqueue(ctx, events.Call{Namespace: "default", Name: "f", Method: http.MethodPut, Path: path,
			Header: http.Header{"X-Test": {"yes"}, "Nats-Msg-Id": {"forged"}, "Authorization": {"Bearer secret"}}, Body: []byte("body"), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ok := call("/ok?x=1", "k1")
	again := call("/ok?x=1", "k1")
	if !again.Duplicate || again.ID != ok.ID {
		t.Errorf("repeated key: %+v, want a duplicate of %s", again, ok.ID)
	}
	flaky := call("/flaky", "")
	bad := call("/bad", "")

	r := waitRecord(t, q, "default", "f", ok.ID, events.StateDone)
	if r.Attempts != 1 || r.Status != 200 {
		t.Errorf("ok: %+v", r)
	}
	mu.Lock()
	if got := bodies[ok.ID]; got != "PUT /ok?x=1 yes body" {
		t.Errorf("the function got %q", got)
	}
	mu.Unlock()
	r = waitRecord(t, q, "default", "f", flaky.ID, events.StateDone)
	if r.Attempts != 3 {
		t.Errorf("flaky: %+v, want 3 attempts", r)
	}
	mu.Lock()
	at := seen[flaky.ID]
	mu.Unlock()
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		if gap := at[i+1].Sub(at[i]); gap < want*8/10 || gap > want*12/10+100*time.Millisecond {
			t.Errorf("flaky: wait before attempt %d was %s, want %s within 20%%", i+2, gap, want)
		}
	}
	r = waitRecord(t, q, "default", "f", bad.ID, events.StateDead)
	if r.Attempts != 1 || r.Status != 400 || r.Reason == "" {
		t.Errorf("bad: %+v", r)
	}
	dead, err := q.DeadLetters(ctx, "default", "f")
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters: %v, %v; want 1", dead, err)
	}
	dl := dead[0]
	if dl.Record.ID != bad.ID || dl.Answer.Status != 400 || string(dl.Answer.Body) != "no such order\n" || dl.Request.Path != "/bad" {
		t.Errorf("dead letter: %+v", dl)
	}
	if dl.Request.Header.Get("Authorization") != "" || dl.Request.Header.Get("Nats-Msg-Id") != "" {
		t.Errorf("the call kept headers it must not: %v", dl.Request.Header)
	}

	// Sent again: a new call, the dead letter gone, the old record pointing at the new.
	re, err := q.Resend(ctx, "default", "f", bad.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitRecord(t, q, "default", "f", re.ID, events.StateDead)
	if r := waitRecord(t, q, "default", "f", bad.ID, events.StateResent); r.ResentAs != re.ID {
		t.Errorf("resent: %+v", r)
	}
	if n, err := q.PurgeDead(ctx, "default", "f"); err != nil || n != 1 {
		t.Errorf("purged %d, %v; want the resent one", n, err)
	}
	list, err := q.Calls(ctx, "default", "")
	if err != nil || len(list) != 4 {
		t.Errorf("calls: %+v, %v; want 4", list, err)
	}
	if _, err := q.Call(ctx, "default", "f", "999"); !errors.Is(err, events.ErrNoCall) {
		t.Errorf("unknown call: %v", err)
	}
	if _, err := q.Call(ctx, "default", "other", ok.ID); !errors.Is(err, events.ErrNoCall) {
		t.Errorf("another function's call: %v", err)
	}
}

// TestSchedules: a function's schedule fires as calls of CloudEvents, each with an id of its
// own; changing it replaces it, and a schedule of no function is removed.
func TestSchedules(t *testing.T) {
	q, _ := startEngine(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mu sync.Mutex
	var got []*http.Request
	var bodies []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, string(b))
		mu.Unlock()
	})
	d := events.NewDispatcher(ctx, q, h, nil)
	d.Sync([]events.Function{{Namespace: "default", Name: "f", Policy: events.DefaultPolicy}})
	s := events.NewScheduler(ctx, q, nil)
	tick := events.Schedule{Namespace: "default", Function: "f", Name: "tick", Cron: "@every 1s", Type: "dev.fnkit.schedule", Data: []byte(`{"n":1}`)}
	s.Sync([]events.Schedule{tick})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	deadline := time.Now().Add(10 * time.Second)
	for count() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if len(got) < 2 {
		t.Fatalf("%d ticks in 10s", len(got))
	}
	r := got[0]
	if r.Method != http.MethodPost || r.URL.Path != "/f/default/f/" || r.Header.Get("Ce-Type") != "dev.fnkit.schedule" ||
		r.Header.Get("Ce-Source") != "/fn/schedules/default/f/tick" || r.Header.Get("Ce-Specversion") != "1.0" ||
		r.Header.Get("Content-Type") != "application/json" || bodies[0] != `{"n":1}` || r.Header.Get("Ce-Time") == "" {
		t.Errorf("a tick: %s %s %v %q", r.Method, r.URL, r.Header, bodies[0])
	}
	if a, b := got[0].Header.Get("Ce-Id"), got[1].Header.Get("Ce-Id"); a == "" || a == b || a != got[0].Header.Get(events.CallIDHeader) {
		t.Errorf("tick ids %q and %q: want each its own, the call's id", a, b)
	}
	for k := range r.Header {
		if strings.HasPrefix(k, "Nats-") {
			t.Errorf("a tick carries the engine's header %s", k)
		}
	}
	mu.Unlock()

	// Changed: the new data from the next tick on.
	tick.Data = []byte(`{"n":2}`)
	s.Sync([]events.Schedule{tick})
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		last := bodies[len(bodies)-1]
		mu.Unlock()
		if last == `{"n":2}` {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if last := bodies[len(bodies)-1]; last != `{"n":2}` {
		t.Errorf("after the change, ticks carry %s", last)
	}
	mu.Unlock()

	// Removed: no tick after it.
	s.Sync(nil)
	time.Sleep(300 * time.Millisecond) // the removal is written
	n := count()
	time.Sleep(2500 * time.Millisecond)
	if m := count(); m > n+1 { // one may have been on its way
		t.Errorf("%d ticks after the schedule was removed", m-n)
	}
}

// TestCallback: a call's callback URL gets its outcome once it is settled: the function's last
// answer, with the call's id, state and status.
func TestCallback(t *testing.T) {
	q, _ := startEngine(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	got := make(chan *http.Request, 4)
	bodies := make(chan string, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- string(b)
	}))
	defer cb.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/bad") {
			http.Error(w, "refused", http.StatusUnprocessableEntity)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"shipped":true}`)
	})
	d := events.NewDispatcher(ctx, q, h, nil)
	d.Sync([]events.Function{{Namespace: "default", Name: "f", Policy: events.DefaultPolicy, DeadLetters: true}})
	for _, c := range []struct{ path, state, status, body string }{
		{"/ok", "done", "200", `{"shipped":true}`},
		{"/bad", "dead", "422", "refused\n"},
	} {
		acc, err := q.Enqueue(ctx, events.Call{Namespace: "default", Name: "f", Method: http.MethodPost, Path: c.path, Callback: cb.URL + "/outcome"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			body := <-bodies
			if r.URL.Path != "/outcome" || r.Header.Get(events.CallIDHeader) != acc.ID || r.Header.Get("Fn-Call-State") != c.state ||
				r.Header.Get("Fn-Call-Status") != c.status || body != c.body {
				t.Errorf("callback of %s: %s %v %q", c.path, r.URL, r.Header, body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no callback for %s in 10s", c.path)
		}
	}
	if n := d.Stats.CallbacksFailed.Load(); n != 0 {
		t.Errorf("%d callbacks counted failed", n)
	}
}
