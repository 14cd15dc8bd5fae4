package runtime

import (
	"context"
	"sync"
	"time"
)

// deadlineContext is a request's context under FN_TIMEOUT: the request's context with a
// deadline. It behaves as context.WithDeadline's but costs less on the hot path: it makes no
// timer (the runtime's pooled expiry timer ends it) and registers nothing with its parent until
// something asks for Done. A handler that never waits on its context, the common case, costs one
// allocation; with context.WithDeadline the registration and the timer took a twentieth of the
// runtime's time per request.
type deadlineContext struct {
	parent   context.Context
	deadline time.Time
	sooner   bool // the deadline is parent's, sooner than FN_TIMEOUT's

	mu      sync.Mutex
	done    chan struct{}   // made by the first Done
	err     error           // set once, when the context ends
	unwatch func() bool     // stops watching parent (set with done)
	after   []*afterFuncRef // AfterFunc callbacks still to run
}

type afterFuncRef struct{ f func() }

// closedChan is the Done of a context that ended before anything asked for it.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// cancelCtxKey is the key context.Cause (and the context package's own derivations) look up to
// find a context's nearest *context.cancelCtx. A deadlineContext must not answer it with its
// parent's: before Go 1.26 Cause would then report the parent's cause (none) after the deadline. The key is unexported; it is found once,
// by asking Cause of a context that records what it is asked for.
var cancelCtxKey = func() any {
	p := &keyProbe{Context: context.Background()}
	_ = context.Cause(p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

// Err is not nil, so that Cause goes on to look the key up.
func (p *keyProbe) Err() error { return context.Canceled }

func (p *keyProbe) Value(k any) any {
	if p.key == nil {
		p.key = k
	}
	return nil
}

// newDeadlineContext returns parent with deadline, or with parent's own deadline if that is
// sooner.
func newDeadlineContext(parent context.Context, deadline time.Time) *deadlineContext {
	c := &deadlineContext{parent: parent, deadline: deadline}
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		c.deadline, c.sooner = pd, true
	}
	return c
}

func (c *deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineContext) Value(key any) any {
	if key == cancelCtxKey {
		return nil
	}
	return c.parent.Value(key)
}

func (c *deadlineContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.syncParentLocked()
		if c.err != nil {
			c.done = closedChan
			return c.done
		}
		c.done = make(chan struct{})
		c.unwatch = context.AfterFunc(c.parent, func() { c.end(c.parent.Err()) })
	}
	return c.done
}

func (c *deadlineContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncParentLocked()
	return c.err
}

// syncParentLocked ends c if its parent ended while nothing watched it, so that Err and Done
// never disagree with the parent.
func (c *deadlineContext) syncParentLocked() {
	if c.err != nil {
		return
	}
	if err := c.parent.Err(); err != nil {
		c.endLocked(err)
	}
}

// AfterFunc lets contexts derived from c (context.WithCancel(c), context.AfterFunc(c, f)) be told
// of its end without a goroutine each: the context package uses this method when a parent has it.
func (c *deadlineContext) AfterFunc(f func()) (stop func() bool) {
	ref := &afterFuncRef{f: f}
	_ = c.Done() // c watches its parent from now on
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	c.after = append(c.after, ref)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, r := range c.after {
			if r == ref {
				c.after = append(c.after[:i], c.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

// end ends c with err (context.DeadlineExceeded at the deadline, context.Canceled when the
// request is over), if it has not ended yet.
func (c *deadlineContext) end(err error) {
	c.mu.Lock()
	c.endLocked(err)
	c.mu.Unlock()
}

func (c *deadlineContext) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
		c.unwatch()
	}
	for _, r := range c.after {
		go r.f()
	}
	c.after = nil
}

func (c *deadlineContext) String() string { return "fn request context with FN_TIMEOUT deadline" }
