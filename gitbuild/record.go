package gitbuild

import (
	"context"
	"errors"
	"io"
	"sync"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// Trigger is what starts a build: whose it is, the commit, and where it comes from.
type Trigger struct {
	Function string // "NAMESPACE/NAME"
	Kind     v1alpha1.BuildTrigger
	Delivery string // a webhook's delivery id
	User     string // who pushed
	URL      string // the repository
	Ref      string
	Commit   string
	Path     string
	// Source, if set, becomes the Function's source with the build (a Function the build
	// creates, or moves to git); nil keeps the Function's own.
	Source *v1alpha1.GitSource
}

// Recorder keeps the record of builds: FunctionBuilds, in production (KubeRecorder).
type Recorder interface {
	// Record records a build as it is queued.
	Record(ctx context.Context, t Trigger) (Record, error)
}

// Record is one build's record, updated as the build goes.
type Record interface {
	// Name is the record's name (the FunctionBuild's).
	Name() string
	// Running says the build began; Log is called with its log so far now and then.
	Running(ctx context.Context)
	Log(ctx context.Context, log string)
	// End records how it ended: the image deployed, or err (whose Reason is the failure's).
	End(ctx context.Context, image string, err error, log string)
}

// Errors a build ends with, besides ErrSuperseded and ErrTimeout: the commit could not be
// fetched, or the Function could not take the image built.
type (
	cloneError  struct{ error }
	deployError struct{ error }
)

func (e cloneError) Unwrap() error  { return e.error }
func (e deployError) Unwrap() error { return e.error }

// Reason is the FunctionBuild reason of a build that ended with err.
func Reason(err error) string {
	var ce cloneError
	var de deployError
	switch {
	case err == nil:
		return v1alpha1.BuildReasonSucceeded
	case errors.Is(err, ErrSuperseded):
		return v1alpha1.BuildReasonSuperseded
	case errors.Is(err, ErrTimeout):
		return v1alpha1.BuildReasonTimeout
	case errors.As(err, &ce):
		return v1alpha1.BuildReasonClone
	case errors.As(err, &de):
		return v1alpha1.BuildReasonDeploy
	}
	return v1alpha1.BuildReasonFailed
}

// logTail keeps the end of a build's log (twice what a record keeps, so a record's tail can
// begin at a line).
type logTail struct {
	mu  sync.Mutex
	buf []byte
	n   int64 // bytes written in all
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += int64(len(p))
	l.buf = append(l.buf, p...)
	if max := 2 * v1alpha1.FunctionBuildLogTail; len(l.buf) > max {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-max:]...)
	}
	return len(p), nil
}

// snapshot is the tail, and how many bytes were written in all.
func (l *logTail) snapshot() (string, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf), l.n
}

// tee writes to every writer, whatever each answers: a pusher who hung up does not stop the
// build's log.
type tee []io.Writer

func (t tee) Write(p []byte) (int, error) {
	for _, w := range t {
		_, _ = w.Write(p)
	}
	return len(p), nil
}
