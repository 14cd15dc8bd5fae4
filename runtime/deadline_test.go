package runtime

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

type ctxKey struct{}

// The request context under FN_TIMEOUT keeps the context contract: Err and Done agree, with the
// parent, with derived contexts and with context.Cause, whichever is asked first.
func TestDeadlineContext(t *testing.T) {
	if cancelCtxKey == nil {
		t.Fatal("the context package's cancel key was not found")
	}
	ended := func(t *testing.T, c context.Context, want error) {
		t.Helper()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done was not closed")
		}
		if err := c.Err(); !errors.Is(err, want) {
			t.Fatalf("Err = %v, want %v", err, want)
		}
		if err := context.Cause(c); !errors.Is(err, want) {
			t.Fatalf("Cause = %v, want %v", err, want)
		}
	}
	live := func(t *testing.T, c context.Context) {
		t.Helper()
		select {
		case <-c.Done():
			t.Fatal("Done is closed before the end")
		default:
		}
		if err := c.Err(); err != nil {
			t.Fatalf("Err = %v before the end", err)
		}
	}

	t.Run("deadline and values", func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")
		want := time.Now().Add(time.Minute)
		c := newDeadlineContext(parent, want)
		if d, ok := c.Deadline(); !ok || !d.Equal(want) || c.sooner {
			t.Fatalf("Deadline = %v, %v, want %v", d, ok, want)
		}
		if v := c.Value(ctxKey{}); v != "v" {
			t.Fatalf("Value = %v, want the parent's", v)
		}
		near, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		pd, _ := near.Deadline()
		c = newDeadlineContext(near, time.Now().Add(time.Hour))
		if d, _ := c.Deadline(); !d.Equal(pd) || !c.sooner {
			t.Fatalf("Deadline = %v, want the parent's earlier %v", d, pd)
		}
		live(t, c)
	})
	t.Run("ends at the deadline, Done asked before", func(t *testing.T) {
		c := newDeadlineContext(context.Background(), time.Now().Add(time.Minute))
		_ = c.Done() // asked before the end: watched from now on
		live(t, c)
		c.end(context.DeadlineExceeded)
		ended(t, c, context.DeadlineExceeded)
		c.end(context.Canceled) // a second end changes nothing
		ended(t, c, context.DeadlineExceeded)
	})
	t.Run("ends at the deadline, Done asked after", func(t *testing.T) {
		c := newDeadlineContext(context.Background(), time.Now().Add(time.Minute))
		c.end(context.DeadlineExceeded)
		ended(t, c, context.DeadlineExceeded)
	})
	t.Run("the parent's end, watched", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newDeadlineContext(parent, time.Now().Add(time.Minute))
		_ = c.Done() // asked before the end: watched from now on
		cancel()
		ended(t, c, context.Canceled)
	})
	t.Run("the parent's end, not watched", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newDeadlineContext(parent, time.Now().Add(time.Minute))
		cancel()
		if err := c.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want the parent's", err)
		}
		ended(t, c, context.Canceled)
	})
	t.Run("derived contexts end with it", func(t *testing.T) {
		c := newDeadlineContext(context.Background(), time.Now().Add(time.Minute))
		child, cancel := context.WithCancel(c)
		defer cancel()
		timed, cancelTimed := context.WithTimeout(c, time.Hour)
		defer cancelTimed()
		live(t, child)
		c.end(context.DeadlineExceeded)
		ended(t, child, context.DeadlineExceeded)
		ended(t, timed, context.DeadlineExceeded)
	})
	t.Run("derived contexts cost no goroutine", func(t *testing.T) {
		c := newDeadlineContext(context.Background(), time.Now().Add(time.Minute))
		before := runtime.NumGoroutine()
		var cancels []context.CancelFunc
		for range 100 {
			_, cancel := context.WithCancel(c)
			cancels = append(cancels, cancel)
		}
		if n := runtime.NumGoroutine() - before; n >= 50 {
			t.Fatalf("100 derived contexts started %d goroutines", n)
		}
		for _, cancel := range cancels {
			cancel()
		}
		c.end(context.Canceled)
	})
	t.Run("AfterFunc runs at the end unless stopped", func(t *testing.T) {
		c := newDeadlineContext(context.Background(), time.Now().Add(time.Minute))
		ran := make(chan string, 2)
		context.AfterFunc(c, func() { ran <- "kept" })
		stop := context.AfterFunc(c, func() { ran <- "stopped" })
		if !stop() {
			t.Fatal("stop before the end reported it had not stopped the function")
		}
		c.end(context.Canceled)
		if got := <-ran; got != "kept" {
			t.Fatalf("ran %q", got)
		}
		select {
		case got := <-ran:
			t.Fatalf("a stopped function ran: %q", got)
		case <-time.After(50 * time.Millisecond):
		}
		late := make(chan struct{})
		stop = context.AfterFunc(c, func() { close(late) })
		<-late // registered after the end: runs at once
		if stop() {
			t.Fatal("stop after the end reported it stopped the function")
		}
	})
}
