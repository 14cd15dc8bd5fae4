package gitbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Reasons a build ends without an image.
var (
	ErrSuperseded = errors.New("superseded by a newer build of the same Function")
	ErrTimeout    = errors.New("the build ran past its timeout")
)

// Job is one build the Service runs: a commit of a repository, for one Function.
type Job struct {
	Function string // "NAMESPACE/NAME"
	Repo     Repo
	Commit   string
	Options  BuildOptions
	// Out receives the build's progress (a pusher's remote: lines, a build's log).
	Out io.Writer
	// CloneURL, when set, is where the commit is fetched from first (into a mirror under
	// MirrorDir), with Auth: a webhook's build. Fetching is part of the build, after the queue,
	// so that deliveries enter the queue in the order they arrived.
	CloneURL  string
	Auth      *Auth
	MirrorDir string
	// Started, if set, is called as the build begins to run (after waiting its turn).
	Started func()
}

// Service runs Jobs through the queue's Plan: the newest trigger of a Function wins (older
// builds end with ErrSuperseded, running or waiting), at most Max build at once, each ended
// with ErrTimeout past Timeout.
type Service struct {
	Max     int
	Timeout time.Duration
	// Build runs one job (BuildCommit, in production); it must end when ctx is canceled.
	Build func(ctx context.Context, j Job) (CommitBuild, error)
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	seq  int
	jobs map[string]*queued
}

type queued struct {
	QueuedBuild
	job    Job
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	result CommitBuild
	err    error
}

// Run queues j and waits until it ends: its image, or why not (ErrSuperseded, ErrTimeout, the
// build's error, or ctx's when the caller gives up).
func (s *Service) Run(ctx context.Context, j Job) (CommitBuild, error) {
	return s.wait(ctx, s.submit(ctx, j))
}

// wait waits until q ends, or ends it when ctx is done.
func (s *Service) wait(ctx context.Context, q *queued) (CommitBuild, error) {
	select {
	case <-q.done:
		return q.result, q.err
	case <-ctx.Done():
		s.mu.Lock()
		s.end(q, context.Cause(ctx))
		s.planLocked() // another may start in its place
		s.mu.Unlock()
		<-q.done
		return q.result, q.err
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) submit(ctx context.Context, j Job) *queued {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = map[string]*queued{}
	}
	s.seq++
	// Ids sort in submission order (Plan breaks ties of Created by id).
	id := fmt.Sprintf("%012d", s.seq)
	bctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	q := &queued{
		QueuedBuild: QueuedBuild{ID: id, Function: j.Function, Created: s.now(), State: Pending},
		job:         j, ctx: bctx, cancel: cancel, done: make(chan struct{}),
	}
	s.jobs[id] = q
	s.planLocked()
	return q
}

// planLocked applies the queue's Plan; the caller holds s.mu.
func (s *Service) planLocked() {
	builds := make([]QueuedBuild, 0, len(s.jobs))
	for _, q := range s.jobs {
		builds = append(builds, q.QueuedBuild)
	}
	a := Plan(builds, max(s.Max, 1), s.Timeout, s.now())
	for _, id := range a.Supersede {
		s.end(s.jobs[id], ErrSuperseded)
	}
	for _, id := range a.TimeOut {
		s.end(s.jobs[id], ErrTimeout)
	}
	for _, id := range a.Start {
		q := s.jobs[id]
		q.State, q.Started = Running, s.now()
		go s.run(q)
		if s.Timeout > 0 {
			time.AfterFunc(s.Timeout+time.Millisecond, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.planLocked()
			})
		}
	}
}

// end ends q with err: a waiting build at once, a running one by canceling it (it reports
// Done when it returns); the caller holds s.mu.
func (s *Service) end(q *queued, err error) {
	switch q.State {
	case Done:
		return
	case Pending:
		q.State, q.err = Done, err
		delete(s.jobs, q.ID)
		close(q.done)
		return
	}
	q.cancel(err)
}

func (s *Service) run(q *queued) {
	if q.job.Started != nil {
		q.job.Started()
	}
	cb, err := s.Build(q.ctx, q.job)
	if cause := context.Cause(q.ctx); cause != nil {
		err = cause // superseded, timed out, or given up: not the error the cancellation caused
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q.result, q.err, q.State = cb, err, Done
	delete(s.jobs, q.ID)
	close(q.done)
	s.planLocked()
}

// Queued is how many builds wait or run, for metrics and tests.
func (s *Service) Queued() (pending, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.jobs {
		if q.State == Running {
			running++
		} else {
			pending++
		}
	}
	return pending, running
}
