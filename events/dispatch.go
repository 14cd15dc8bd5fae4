package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Function is a function whose calls a Dispatcher delivers, and how.
type Function struct {
	Namespace, Name string
	Policy          Policy
	// DeadLetters keeps calls given up in the dead letters; without, they are only recorded.
	DeadLetters bool
	// Concurrency bounds its calls in delivery at once (default DefaultConcurrency): enough
	// to keep its replicas busy at its maximum scale, which the autoscaler then sees as load.
	Concurrency int
}

// DefaultConcurrency is a function's calls in delivery at once when it sets no bound.
const DefaultConcurrency = 100

// AckWait is how long the engine waits, without word from the gateway delivering a call,
// before it gives the call to another: a delivery in progress says it is alive each third of
// it, so a slow function is not given its call twice; a gateway that stopped is noticed after
// it.
const AckWait = 15 * time.Second

// Stats count a Dispatcher's deliveries since it started.
type Stats struct {
	// Attempts made; Done, Retried and Dead are their outcomes (Dead includes Failed).
	Attempts, Done, Retried, Dead atomic.Uint64
	// Redelivered counts attempts whose outcome an earlier gateway lost (Record.Redelivered).
	Redelivered atomic.Uint64
	// Settled counts deliveries of calls already settled (done or dead) whose acknowledgement
	// was lost: acknowledged without delivering them again.
	Settled atomic.Uint64
	// CallbacksFailed counts outcomes a callback URL did not take.
	CallbacksFailed atomic.Uint64
}

// A Dispatcher delivers functions' calls from the engine through an http.Handler (the
// gateway's routing, by path /f/NAMESPACE/NAME/..., so that a call wakes a function at zero and is spread over its replicas
// like any request). Dispatchers of several gateways share the work: each function's calls are
// one durable consumer's.
type Dispatcher struct {
	q    *Queue
	h    http.Handler
	log  *slog.Logger
	ctx  context.Context
	now  func() time.Time
	http *http.Client // for callbacks

	Stats Stats

	mu  sync.Mutex
	fns map[string]*consumer
}

// NewDispatcher returns a Dispatcher that delivers through h until ctx ends. It delivers
// nothing until Sync names functions.
func NewDispatcher(ctx context.Context, q *Queue, h http.Handler, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{q: q, h: h, log: log, ctx: ctx, now: time.Now, fns: map[string]*consumer{},
		http: &http.Client{Timeout: 10 * time.Second}}
}

// consumer delivers one function's calls.
type consumer struct {
	fn     atomic.Pointer[Function]
	cancel context.CancelFunc
	// inDelivery counts its calls being delivered now.
	inDelivery atomic.Int64
}

// Sync makes fns the functions delivered to: those new start, those gone stop (their calls
// wait in the engine), the others take their new settings.
func (d *Dispatcher) Sync(fns []Function) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := make(map[string]bool, len(fns))
	for _, f := range fns {
		f := f
		if f.Concurrency <= 0 {
			f.Concurrency = DefaultConcurrency
		}
		k := f.Namespace + "/" + f.Name
		keep[k] = true
		if c := d.fns[k]; c != nil {
			if old := c.fn.Load(); *old != f {
				c.fn.Store(&f)
				if old.Concurrency != f.Concurrency { // the consumer's bound: start it anew
					c.cancel()
					d.fns[k] = d.start(&f)
				}
			}
			continue
		}
		d.fns[k] = d.start(&f)
	}
	for k, c := range d.fns {
		if !keep[k] {
			c.cancel()
			delete(d.fns, k)
		}
	}
}

// InDelivery is how many of function namespace/name's calls this Dispatcher delivers now.
func (d *Dispatcher) InDelivery(namespace, name string) int64 {
	d.mu.Lock()
	c := d.fns[namespace+"/"+name]
	d.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.inDelivery.Load()
}

func (d *Dispatcher) start(f *Function) *consumer {
	ctx, cancel := context.WithCancel(d.ctx)
	c := &consumer{cancel: cancel}
	c.fn.Store(f)
	go d.consume(ctx, c)
	return c
}

// consumerName is the durable consumer of a function's calls. Namespaces and names are DNS
// labels, which hold no '_'.
func consumerName(namespace, name string) string { return namespace + "_" + name }

// consume delivers c's calls until ctx ends, setting its consumer up again whenever the engine
// loses it (an engine restarted without its store).
func (d *Dispatcher) consume(ctx context.Context, c *consumer) {
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		err := d.consumeOnce(ctx, c)
		if ctx.Err() != nil {
			return
		}
		f := c.fn.Load()
		d.log.Warn("delivering calls", "namespace", f.Namespace, "function", f.Name, "error", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (d *Dispatcher) consumeOnce(ctx context.Context, c *consumer) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.q.Ready():
	}
	f := c.fn.Load()
	calls, _, _, err := d.q.set()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := calls.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
		Durable:       consumerName(f.Namespace, f.Name),
		Description:   "fn: deliveries of " + f.Namespace + "/" + f.Name + "'s calls",
		FilterSubject: CallSubject(f.Namespace, f.Name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxDeliver:    -1, // Decide gives up, not the engine
		MaxAckPending: f.Concurrency,
	})
	cancel()
	if err != nil {
		return err
	}
	lost := make(chan error, 1)
	// Deliveries outlive the consumer's loop (restarted for a new bound, stopped for a
	// function gone): one under way ends with its answer, not cut off.
	cc, err := cons.Consume(func(m jetstream.Msg) { go d.deliver(d.ctx, c, m) },
		jetstream.PullMaxMessages(f.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case lost <- err:
				default:
				}
			}
		}))
	if err != nil {
		return err
	}
	defer cc.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-lost:
		return err
	}
}

// deliver makes one attempt of call m, then settles it as Decide says: acknowledged (done, or
// dead and buried), or handed back to the engine to be tried again after the backoff.
func (d *Dispatcher) deliver(ctx context.Context, c *consumer, m jetstream.Msg) {
	c.inDelivery.Add(1)
	defer c.inDelivery.Add(-1)
	f := c.fn.Load()
	if v := m.Headers().Get(hPolicy); v != "" { // the call's own delivery
		var cp callPolicy
		if json.Unmarshal([]byte(v), &cp) == nil && cp.Policy.Validate() == nil {
			own := *f
			own.Policy, own.DeadLetters = cp.Policy, cp.DeadLetters
			f = &own
		}
	}
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term() // not a message of JetStream's: nothing to deliver
		return
	}
	id := strconv.FormatUint(md.Sequence.Stream, 10)
	attempt := int(md.NumDelivered)
	rec := Record{ID: id, Namespace: f.Namespace, Function: f.Name, Accepted: md.Timestamp}
	if attempt > 1 {
		prev, ok, err := d.q.record(ctx, f.Namespace, f.Name, id)
		if err != nil {
			_ = m.NakWithDelay(time.Second) // the record is needed to count the attempts
			return
		}
		if ok {
			switch prev.State {
			case StateDone, StateDead, StateFailed, StateResent: // settled; only its acknowledgement was lost
				d.Stats.Settled.Add(1)
				_ = m.Ack()
				return
			}
			rec.Redelivered = prev.Redelivered
		}
		if lost := attempt - 1 - prev.Attempts; lost > 0 {
			rec.Redelivered += lost
			d.Stats.Redelivered.Add(uint64(lost))
		}
	}

	// Alive while it works, so that the engine does not give the call to another gateway.
	alive := time.NewTicker(AckWait / 3)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-alive.C:
				_ = m.InProgress()
			}
		}
	}()
	d.Stats.Attempts.Add(1)
	req := request(ctx, f.Namespace, f.Name, m, id, attempt)
	rw := &recorder{header: http.Header{}}
	d.h.ServeHTTP(rw, req)
	alive.Stop()
	close(done)
	if ctx.Err() != nil {
		// Stopping: not an answer of the function's. Another gateway, or this one started
		// again, tries it (counted then as an attempt whose outcome was lost).
		_ = m.Nak()
		return
	}
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	now := d.now()
	dec := Decide(f.Policy, Attempt{N: attempt, Status: status, RetryAfter: retryAfter(rw.header.Get("Retry-After"), now)},
		md.Timestamp, now, rand.Float64())
	rec.Attempts, rec.Status, rec.Updated = attempt, status, now
	switch dec.Verdict {
	case Retry:
		d.Stats.Retried.Add(1)
		rec.State, rec.Next = StateRetrying, now.Add(dec.After)
		if err := d.q.putRecord(ctx, rec); err != nil {
			d.log.Warn("recording a call", "namespace", f.Namespace, "function", f.Name, "call", id, "error", err.Error())
		}
		_ = m.NakWithDelay(dec.After)
		return
	case Done:
		d.Stats.Done.Add(1)
		rec.State = StateDone
	case Dead:
		d.Stats.Dead.Add(1)
		rec.State, rec.Reason = StateFailed, dec.Reason
		if f.DeadLetters {
			rec.State = StateDead
			dl := DeadLetter{Record: rec, Request: requestOf(m),
				Answer: Answer{Status: status, Header: rw.header, Body: rw.body.Bytes(), Truncated: rw.truncated}}
			if err := d.q.bury(ctx, dl); err != nil {
				// Not acknowledged: tried again, and buried then.
				d.log.Warn("storing a dead letter", "namespace", f.Namespace, "function", f.Name, "call", id, "error", err.Error())
				_ = m.NakWithDelay(time.Second)
				return
			}
		}
	}
	// The record first: a gateway that stops between the two leaves a call the next one finds
	// settled, and acknowledges without delivering it again.
	if err := d.q.putRecord(ctx, rec); err != nil {
		d.log.Warn("recording a call", "namespace", f.Namespace, "function", f.Name, "call", id, "error", err.Error())
	}
	if err := m.DoubleAck(ctx); err != nil {
		d.log.Warn("acknowledging a call", "namespace", f.Namespace, "function", f.Name, "call", id, "error", err.Error())
	}
	if cb := m.Headers().Get(hCallback); cb != "" {
		d.callback(ctx, cb, rec, rw)
	}
}

// request is call m of function ns/name, with its id and attempt, as the gateway routes it:
// to path /f/NS/NAME followed by the call's own.
func request(ctx context.Context, ns, name string, m jetstream.Msg, id string, attempt int) *http.Request {
	rq := requestOf(m)
	if rq.Method == "" {
		rq.Method = http.MethodPost
	}
	if rq.Path == "" || rq.Path[0] != '/' {
		rq.Path = "/" + rq.Path
	}
	// As the gateway routes it by path.
	prefix := "/f/" + ns + "/" + name
	r, err := http.NewRequestWithContext(ctx, rq.Method, prefix+rq.Path, bytes.NewReader(rq.Body))
	if err != nil { // a path that is no URL path: delivered to the root, the function answers
		r, _ = http.NewRequestWithContext(ctx, rq.Method, prefix+"/", bytes.NewReader(rq.Body))
	}
	r.Header = rq.Header
	if r.Header == nil {
		r.Header = http.Header{}
	}
	if sched := m.Headers().Get("Nats-Scheduler"); sched != "" {
		// A schedule's tick: a CloudEvent of its own each time.
		r.Header.Set("Ce-Id", id)
		if md, err := m.Metadata(); err == nil {
			r.Header.Set("Ce-Time", md.Timestamp.UTC().Format(time.RFC3339Nano))
		}
	}
	r.Header.Set(CallIDHeader, id)
	r.Header.Set(AttemptHeader, strconv.Itoa(attempt))
	r.ContentLength = int64(len(rq.Body))
	r.RequestURI = r.URL.RequestURI()
	return r
}

// requestOf is the request call m holds.
func requestOf(m jetstream.Msg) Request {
	rq := Request{Header: http.Header{}, Body: m.Data()}
	for k, vs := range m.Headers() {
		switch {
		case k == hMethod:
			rq.Method = first(vs)
		case k == hPath:
			rq.Path = first(vs)
		case k == hCallback:
			rq.Callback = first(vs)
		case k == hPolicy:
		case strings.HasPrefix(k, "Nats-"):
		default:
			rq.Header[k] = append([]string(nil), vs...)
		}
	}
	return rq
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// retryAfter is what a Retry-After asks for (seconds, or a date), 0 for nothing.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// callback posts a settled call's outcome to url: the function's last answer, its id, state
// and status. Once: a callback that fails is counted and logged, not tried again.
func (d *Dispatcher) callback(ctx context.Context, url string, rec Record, rw *recorder) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(rw.body.Bytes()))
	if err == nil {
		if ct := rw.header.Get("Content-Type"); ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set(CallIDHeader, rec.ID)
		req.Header.Set("Fn-Call-State", string(rec.State))
		req.Header.Set("Fn-Call-Status", strconv.Itoa(rec.Status))
		req.Header.Set("Fn-Call-Function", rec.Namespace+"/"+rec.Function)
		var resp *http.Response
		if resp, err = d.http.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				err = errors.New(resp.Status)
			}
		}
	}
	if err != nil {
		d.Stats.CallbacksFailed.Add(1)
		d.log.Warn("posting a call's outcome to its callback", "namespace", rec.Namespace, "function", rec.Function, "call", rec.ID, "error", err.Error())
	}
}

// recorder is the ResponseWriter of a delivery: the status, the header, and the body up to
// MaxAnswer.
type recorder struct {
	header    http.Header
	status    int
	body      bytes.Buffer
	truncated bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := MaxAnswer - r.body.Len(); room < len(b) {
		r.truncated = true
		r.body.Write(b[:max(room, 0)])
	} else {
		r.body.Write(b)
	}
	return len(b), nil
}

// Flush is a no-op: the answer is kept whole, up to MaxAnswer.
func (r *recorder) Flush() {}
