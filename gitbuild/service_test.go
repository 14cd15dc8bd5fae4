package gitbuild

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeBuilds is a Build whose builds run until the test releases them (or their context ends).
type fakeBuilds struct {
	mu      sync.Mutex
	started []string // commits, in start order
	release map[string]chan error
}

func (f *fakeBuilds) build(ctx context.Context, j Job) (CommitBuild, error) {
	f.mu.Lock()
	f.started = append(f.started, j.Commit)
	ch := f.release[j.Commit]
	f.mu.Unlock()
	select {
	case err := <-ch:
		return CommitBuild{}, err
	case <-ctx.Done():
		return CommitBuild{}, ctx.Err()
	}
}

func (f *fakeBuilds) startedNow() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.started...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestServiceSupersedes: a newer build of a Function cancels the running one, which ends
// ErrSuperseded; the newer runs and succeeds; builds of other Functions wait for the bound.
func TestServiceSupersedes(t *testing.T) {
	f := &fakeBuilds{release: map[string]chan error{"a1": make(chan error), "a2": make(chan error), "b1": make(chan error), "c1": make(chan error)}}
	s := &Service{Max: 2, Timeout: time.Hour, Build: f.build}
	ctx := context.Background()
	type res struct {
		commit string
		err    error
	}
	results := make(chan res, 4)
	next := func() res {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for a build to end")
			return res{}
		}
	}
	run := func(fn, commit string) {
		go func() {
			_, err := s.Run(ctx, Job{Function: fn, Commit: commit})
			results <- res{commit, err}
		}()
	}
	run("ns/a", "a1")
	waitUntil(t, "a1 to start", func() bool { return len(f.startedNow()) == 1 })
	run("ns/b", "b1")
	waitUntil(t, "b1 to start", func() bool { return len(f.startedNow()) == 2 })
	run("ns/c", "c1") // the bound of 2 is reached: c1 waits
	waitUntil(t, "c1 to be queued", func() bool { p, _ := s.Queued(); return p == 1 })
	run("ns/a", "a2") // supersedes a1; a1's slot goes to c1 (older trigger), a2 waits
	r := next()
	if r.commit != "a1" || !errors.Is(r.err, ErrSuperseded) {
		t.Fatalf("first result %s %v, want a1 superseded", r.commit, r.err)
	}
	waitUntil(t, "c1 to start in a1's slot", func() bool { return len(f.startedNow()) == 3 })
	if got := f.startedNow(); got[2] != "c1" {
		t.Errorf("started %v, want c1 third (it was queued before a2)", got)
	}
	if p, running := s.Queued(); p != 1 || running != 2 {
		t.Errorf("%d waiting and %d running, want a2 waiting beside b1 and c1", p, running)
	}
	f.release["b1"] <- nil
	if r := next(); r.commit != "b1" || r.err != nil {
		t.Errorf("b1: %v", r.err)
	}
	waitUntil(t, "a2 to start", func() bool { return len(f.startedNow()) == 4 })
	f.release["a2"] <- nil
	f.release["c1"] <- errors.New("c1 does not compile")
	for range 2 {
		r := next()
		switch {
		case r.commit == "a2" && r.err != nil:
			t.Errorf("a2: %v", r.err)
		case r.commit == "c1" && (r.err == nil || r.err.Error() != "c1 does not compile"):
			t.Errorf("c1: %v, want its build's error", r.err)
		}
	}
	if p, running := s.Queued(); p != 0 || running != 0 {
		t.Errorf("%d waiting and %d running at the end", p, running)
	}
}

// TestServiceGivesUpAndTimesOut: a caller that goes ends its waiting build; a build past its
// timeout ends ErrTimeout.
func TestServiceGivesUpAndTimesOut(t *testing.T) {
	f := &fakeBuilds{release: map[string]chan error{"a": make(chan error), "b": make(chan error)}}
	s := &Service{Max: 1, Timeout: time.Hour, Build: f.build}
	go s.Run(context.Background(), Job{Function: "ns/a", Commit: "a"})
	waitUntil(t, "a to start", func() bool { return len(f.startedNow()) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.Run(ctx, Job{Function: "ns/b", Commit: "b"}); done <- err }()
	waitUntil(t, "b to wait", func() bool { p, _ := s.Queued(); return p == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("a waiting build whose caller went: %v, want canceled", err)
	}
	if p, running := s.Queued(); p != 0 || running != 1 {
		t.Errorf("%d waiting, %d running after b was given up, want a alone", p, running)
	}

	short := &Service{Max: 1, Timeout: 20 * time.Millisecond, Build: (&fakeBuilds{release: map[string]chan error{}}).build}
	if _, err := short.Run(context.Background(), Job{Function: "ns/x", Commit: "x"}); !errors.Is(err, ErrTimeout) {
		t.Errorf("a build past its timeout: %v, want ErrTimeout", err)
	}
}
