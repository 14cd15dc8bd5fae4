package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The engine's streams, and the bucket of call records.
const (
	CallsStream   = "FN_CALLS"
	DeadStream    = "FN_DEAD"
	RecordsBucket = "fn-calls"
)

// Headers of a call's message, besides the request's own. A request's own header of one of
// these names, or of one NATS reserves (Nats-...), is not kept.
const (
	hMethod   = "Fn-Call-Method"
	hPath     = "Fn-Call-Path"
	hCallback = "Fn-Call-Callback"
	// hPolicy carries a call's own delivery (a Trigger's), JSON of callPolicy.
	hPolicy = "Fn-Call-Policy"
)

// Headers the function gets with each delivery.
const (
	// CallIDHeader carries the call's id, the same on every attempt: a function that must not
	// act twice on one call keys on it.
	CallIDHeader = "Fn-Call-Id"
	// AttemptHeader carries which attempt this is, from 1.
	AttemptHeader = "Fn-Call-Attempt"
)

// ErrUnavailable is returned while the engine cannot be reached or is not set up yet.
var ErrUnavailable = errors.New("the event engine is not available")

// ErrNoCall is returned for a call id the engine has no record of.
var ErrNoCall = errors.New("no such call")

// Options configure a Queue.
type Options struct {
	// URL is the engine's (nats://HOST:PORT, or several, comma-separated).
	URL string
	// Name names the connection in the engine's monitoring (default "fn").
	Name string
	// Duplicates is the window in which a repeated Idempotency-Key is refused (default 10m).
	Duplicates time.Duration
	// Retain is how long a call's record is kept after its last change (default 24h).
	Retain time.Duration
	// DeadRetain is how long dead letters are kept (default 14 days).
	DeadRetain time.Duration
	// Log receives the connection's changes and delivery failures (default: discarded).
	Log *slog.Logger
	// Dialer, when set, makes the connections to the engine instead of dialing URL's host
	// (the gateway's dials a Service's endpoints, found by its EndpointSlices).
	Dialer nats.CustomDialer
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "fn"
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 10 * time.Minute
	}
	if o.Retain <= 0 {
		o.Retain = 24 * time.Hour
	}
	if o.DeadRetain <= 0 {
		o.DeadRetain = 14 * 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Queue is a connection to the engine: it accepts calls and answers what became of them. It
// connects, and sets up the streams, in the background: until then its methods return
// ErrUnavailable, and so do they while the engine is unreachable.
type Queue struct {
	o  Options
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	ready   chan struct{} // closed once set up
	calls   jetstream.Stream
	dead    jetstream.Stream
	records jetstream.KeyValue
}

// Connect starts connecting to the engine at o.URL; the Queue is usable at once (see Queue).
// It stays connected, reconnecting as needed, until Close.
func Connect(ctx context.Context, o Options) (*Queue, error) {
	o.defaults()
	if o.URL == "" {
		return nil, errors.New("the event engine's URL is empty")
	}
	q := &Queue{o: o, ready: make(chan struct{})}
	nc, err := nats.Connect(o.URL, nats.Name(o.Name),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				o.Log.Warn("disconnected from the event engine", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { o.Log.Info("reconnected to the event engine") }),
		func(no *nats.Options) error {
			if o.Dialer != nil {
				no.CustomDialer = o.Dialer
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("the event engine at %s: %w", o.URL, err)
	}
	q.nc = nc
	if q.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, err
	}
	go q.setUp(ctx)
	return q, nil
}

// Close closes the connection.
func (q *Queue) Close() { q.nc.Close() }

// Ready is closed once the Queue is set up.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// setUp makes the streams and the bucket (or updates them to this version's settings), trying
// again until it succeeds or ctx ends.
func (q *Queue) setUp(ctx context.Context) {
	// At most a second apart: until it is set up, the gateway answers every async call 503.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := q.ensure(ctx)
		if err == nil {
			close(q.ready)
			return
		}
		q.o.Log.Warn("setting up the event engine's streams", "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (q *Queue) ensure(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	calls, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        CallsStream,
		Description: "fn: asynchronous calls, one subject per function, and the functions' schedules",
		Subjects:    []string{"fn.calls.>", "fn.schedules.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  q.o.Duplicates,
		// A schedule is a message of fn.schedules.NS.NAME.SCHEDULE that the engine republishes
		// to the function's subject at each tick.
		AllowMsgSchedules: true,
		AllowRollup:       true,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", CallsStream, err)
	}
	dead, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadStream,
		Description: "fn: calls given up, with their last answer",
		Subjects:    []string{"fn.dead.>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      q.o.DeadRetain,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", DeadStream, err)
	}
	records, err := q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RecordsBucket,
		Description: "fn: what became of each call, by NAMESPACE.FUNCTION.ID",
		TTL:         q.o.Retain,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", RecordsBucket, err)
	}
	q.mu.Lock()
	q.calls, q.dead, q.records = calls, dead, records
	q.mu.Unlock()
	return nil
}

// set is the Queue's streams and bucket, or ErrUnavailable.
func (q *Queue) set() (calls, dead jetstream.Stream, records jetstream.KeyValue, err error) {
	select {
	case <-q.ready:
	default:
		return nil, nil, nil, ErrUnavailable
	}
	if !q.nc.IsConnected() {
		return nil, nil, nil, ErrUnavailable
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls, q.dead, q.records, nil
}

// CallSubject is the subject of function namespace/name's calls. Namespaces and names are DNS
// labels, so neither holds a '.'.
func CallSubject(namespace, name string) string { return "fn.calls." + namespace + "." + name }

func deadSubject(namespace, name, id string) string {
	return "fn.dead." + namespace + "." + name + "." + id
}

func recordKey(namespace, name, id string) string { return namespace + "." + name + "." + id }

// Call is a request to deliver to a function later.
type Call struct {
	Namespace, Name string
	// Method, Path (with the query) and Header are the request as the function gets it.
	Method, Path string
	Header       http.Header
	Body         []byte
	// Key, when set, is the caller's Idempotency-Key: a call with the same key for the same
	// function within the Duplicates window is not accepted again.
	Key string
	// Callback, when set, is a URL that receives the outcome (POST: the function's last
	// answer, with Fn-Call-Id, Fn-Call-State and Fn-Call-Status).
	Callback string
	// Policy and DeadLetters, when set, are how this call is delivered, instead of its
	// function's way (a Trigger's delivery).
	Policy      *Policy
	DeadLetters *bool
}

// callPolicy is a call's own delivery, as its message carries it.
type callPolicy struct {
	Policy
	DeadLetters bool `json:"deadLetters"`
}

// Accepted is a call the engine holds.
type Accepted struct {
	// ID is the call's id: its sequence number in the calls stream.
	ID string
	// Duplicate is set when a call with the same Idempotency-Key was accepted within the window:
	// ID is that call's, and nothing new was accepted.
	Duplicate bool
}

// Enqueue hands c to the engine, and returns once the engine has stored it.
func (q *Queue) Enqueue(ctx context.Context, c Call) (Accepted, error) {
	if _, _, _, err := q.set(); err != nil {
		return Accepted{}, err
	}
	m := callMsg(c)
	var opts []jetstream.PublishOpt
	if c.Key != "" {
		opts = append(opts, jetstream.WithMsgID(c.Namespace+"/"+c.Name+"/"+c.Key))
	}
	ack, err := q.js.PublishMsg(ctx, m, append(opts, jetstream.WithExpectStream(CallsStream))...)
	if err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || !q.nc.IsConnected() {
			return Accepted{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return Accepted{}, err
	}
	return Accepted{ID: strconv.FormatUint(ack.Sequence, 10), Duplicate: ack.Duplicate}, nil
}

// callMsg is c as the engine stores it: the request's headers, method, path and callback as
// headers of the message, its body as the message's.
func callMsg(c Call) *nats.Msg {
	m := nats.NewMsg(CallSubject(c.Namespace, c.Name))
	for k, vs := range c.Header {
		if reservedHeader(k) {
			continue
		}
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	m.Header.Set(hMethod, c.Method)
	m.Header.Set(hPath, c.Path)
	if c.Callback != "" {
		m.Header.Set(hCallback, c.Callback)
	}
	if c.Policy != nil {
		cp := callPolicy{Policy: *c.Policy, DeadLetters: c.DeadLetters == nil || *c.DeadLetters}
		b, _ := json.Marshal(cp)
		m.Header.Set(hPolicy, string(b))
	}
	m.Data = c.Body
	return m
}

// reservedHeader reports whether a request's header k is not kept with its call: the engine's
// own (Nats-...), the call's (Fn-Call-...), and what belongs to a connection, not a request.
func reservedHeader(k string) bool {
	k = http.CanonicalHeaderKey(k)
	switch {
	case strings.HasPrefix(k, "Nats-"), strings.HasPrefix(k, "Fn-Call-"):
		return true
	}
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "Prefer", "Idempotency-Key", "Authorization", "Host":
		return true
	}
	return false
}

// State is what became of a call.
type State string

const (
	// StateQueued: accepted, not tried yet.
	StateQueued State = "queued"
	// StateRetrying: tried, failed, and waiting to be tried again.
	StateRetrying State = "retrying"
	// StateDone: the function answered it.
	StateDone State = "done"
	// StateDead: given up, its last answer in the dead letters.
	StateDead State = "dead"
	// StateFailed: given up, for a function whose dead letters are off.
	StateFailed State = "failed"
	// StateResent: a dead letter sent again, as the call Record.ResentAs.
	StateResent State = "resent"
)

// Record is what became of a call.
type Record struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace"`
	Function  string    `json:"function"`
	State     State     `json:"state"`
	Accepted  time.Time `json:"accepted"`
	Updated   time.Time `json:"updated,omitzero"`
	// Attempts is how many times it was tried; Status is the last answer's (0: none, the
	// function could not be reached).
	Attempts int `json:"attempts"`
	Status   int `json:"status,omitempty"`
	// Reason says why a call is dead or failed.
	Reason string `json:"reason,omitempty"`
	// Next is when a Retrying call is tried again.
	Next time.Time `json:"next,omitzero"`
	// Redelivered counts attempts whose outcome was lost, because the gateway delivering it
	// stopped before the answer: the function may have had the call more than once.
	Redelivered int `json:"redelivered,omitempty"`
	// ResentAs is the id of the call a dead letter was sent again as.
	ResentAs string `json:"resentAs,omitempty"`
}

// Call returns the record of call id of function namespace/name: ErrNoCall if the engine
// knows none (never accepted, or past its retention).
func (q *Queue) Call(ctx context.Context, namespace, name, id string) (Record, error) {
	calls, _, records, err := q.set()
	if err != nil {
		return Record{}, err
	}
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return Record{}, fmt.Errorf("%w: %q is not a call id (a number)", ErrNoCall, id)
	}
	if e, err := records.Get(ctx, recordKey(namespace, name, id)); err == nil {
		var r Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return Record{}, fmt.Errorf("call %s's record: %w", id, err)
		}
		return r, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, err
	}
	m, err := calls.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != CallSubject(namespace, name)) {
		return Record{}, ErrNoCall
	}
	if err != nil {
		return Record{}, err
	}
	return Record{ID: id, Namespace: namespace, Function: name, State: StateQueued, Accepted: m.Time}, nil
}

// MaxList bounds the calls Calls lists.
const MaxList = 1000

// Calls lists the records of function namespace/name's calls (of every function of namespace
// when name is ""), queued ones first, at most MaxList.
func (q *Queue) Calls(ctx context.Context, namespace, name string) ([]Record, error) {
	calls, _, records, err := q.set()
	if err != nil {
		return nil, err
	}
	fn := name
	if fn == "" {
		fn = "*"
	}
	var out []Record
	seen := map[string]bool{}
	// StateQueued: in the stream, without a record yet.
	for seq := uint64(1); len(out) < MaxList; {
		m, err := calls.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("fn.calls."+namespace+"."+fn))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		id := strconv.FormatUint(m.Sequence, 10)
		f := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		seen[recordKey(namespace, f, id)] = true
		out = append(out, Record{ID: id, Namespace: namespace, Function: f, State: StateQueued, Accepted: m.Time})
		seq = m.Sequence + 1
	}
	lister, err := records.ListKeysFiltered(ctx, namespace+"."+fn+".*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = lister.Stop() }()
	for k := range lister.Keys() {
		e, err := records.Get(ctx, k)
		if err != nil {
			continue // expired or purged meanwhile
		}
		var r Record
		if json.Unmarshal(e.Value(), &r) != nil {
			continue
		}
		if seen[k] { // tried once, in the stream still: the record says more
			for i := range out {
				if out[i].ID == r.ID && out[i].Function == r.Function {
					out[i] = r
				}
			}
			continue
		}
		if len(out) < MaxList {
			out = append(out, r)
		}
	}
	return out, nil
}

// Pending is how many of function namespace/name's calls wait in the engine, not yet
// delivered or waiting to be tried again.
func (q *Queue) Pending(ctx context.Context, namespace, name string) (uint64, error) {
	calls, _, _, err := q.set()
	if err != nil {
		return 0, err
	}
	info, err := calls.Info(ctx, jetstream.WithSubjectFilter(CallSubject(namespace, name)))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[CallSubject(namespace, name)], nil
}

func (q *Queue) putRecord(ctx context.Context, r Record) error {
	_, _, records, err := q.set()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	_, err = records.Put(ctx, recordKey(r.Namespace, r.Function, r.ID), b)
	return err
}

func (q *Queue) record(ctx context.Context, namespace, name, id string) (Record, bool, error) {
	_, _, records, err := q.set()
	if err != nil {
		return Record{}, false, err
	}
	e, err := records.Get(ctx, recordKey(namespace, name, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, false, err
	}
	return r, true, nil
}
