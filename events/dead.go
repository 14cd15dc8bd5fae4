package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is a call given up: its record, the request, and the function's last answer.
type DeadLetter struct {
	Record  Record  `json:"record"`
	Request Request `json:"request"`
	Answer  Answer  `json:"answer"`
}

// Request is a call's request as the function gets it.
type Request struct {
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Header   http.Header `json:"header,omitempty"`
	Body     []byte      `json:"body,omitempty"`
	Callback string      `json:"callback,omitempty"`
}

// Answer is a function's answer to an attempt, its body cut at MaxAnswer.
type Answer struct {
	Status    int         `json:"status"`
	Header    http.Header `json:"header,omitempty"`
	Body      []byte      `json:"body,omitempty"`
	Truncated bool        `json:"truncated,omitempty"`
}

// MaxAnswer bounds the body of an answer kept with a dead letter.
const MaxAnswer = 64 << 10

// bury stores a dead letter, once: storing it again (a gateway that stopped after storing it,
// before acknowledging the call) keeps the first.
func (q *Queue) bury(ctx context.Context, dl DeadLetter) error {
	if _, _, _, err := q.set(); err != nil {
		return err
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	r := dl.Record
	m := nats.NewMsg(deadSubject(r.Namespace, r.Function, r.ID))
	m.Header.Set(CallIDHeader, r.ID)
	m.Data = b
	_, err = q.js.PublishMsg(ctx, m, jetstream.WithExpectStream(DeadStream),
		jetstream.WithMsgID("dead/"+r.Namespace+"/"+r.Function+"/"+r.ID))
	return err
}

// DeadLetters lists function namespace/name's dead letters (every function's of namespace
// when name is ""), oldest first, at most MaxList.
func (q *Queue) DeadLetters(ctx context.Context, namespace, name string) ([]DeadLetter, error) {
	_, dead, _, err := q.set()
	if err != nil {
		return nil, err
	}
	fn := name
	if fn == "" {
		fn = "*"
	}
	var out []DeadLetter
	for seq := uint64(1); len(out) < MaxList; {
		m, err := dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("fn.dead."+namespace+"."+fn+".*"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		var dl DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			return nil, fmt.Errorf("dead letter %d of %s: %w", m.Sequence, DeadStream, err)
		}
		out = append(out, dl)
		seq = m.Sequence + 1
	}
	return out, nil
}

// Resend sends dead letter id of function namespace/name again, as a new call, and removes the
// dead letter; its record then says which call it became.
func (q *Queue) Resend(ctx context.Context, namespace, name, id string) (Accepted, error) {
	_, dead, _, err := q.set()
	if err != nil {
		return Accepted{}, err
	}
	m, err := dead.GetLastMsgForSubject(ctx, deadSubject(namespace, name, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Accepted{}, fmt.Errorf("%w: function %s/%s has no dead letter %s", ErrNoCall, namespace, name, id)
	}
	if err != nil {
		return Accepted{}, err
	}
	var dl DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		return Accepted{}, err
	}
	rq := dl.Request
	acc, err := q.Enqueue(ctx, Call{Namespace: namespace, Name: name, Method: rq.Method, Path: rq.Path, Header: rq.Header, Body: rq.Body, Callback: rq.Callback,
		// Sent again once, whoever asks twice.
		Key: "resend/" + id})
	if err != nil {
		return Accepted{}, err
	}
	r := dl.Record
	r.State, r.ResentAs, r.Updated = StateResent, acc.ID, time.Now()
	if err := q.putRecord(ctx, r); err != nil {
		return acc, err
	}
	return acc, dead.DeleteMsg(ctx, m.Sequence)
}

// PurgeDead removes function namespace/name's dead letters (every function's of namespace
// when name is ""), and returns how many there were.
func (q *Queue) PurgeDead(ctx context.Context, namespace, name string) (uint64, error) {
	_, dead, _, err := q.set()
	if err != nil {
		return 0, err
	}
	fn := name
	if fn == "" {
		fn = "*"
	}
	subject := "fn.dead." + namespace + "." + fn + ".*"
	info, err := dead.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, dead.Purge(ctx, jetstream.WithPurgeSubject(subject))
}

// ParseID checks a call id.
func ParseID(id string) error {
	if n, err := strconv.ParseUint(id, 10, 64); err != nil || n == 0 {
		return fmt.Errorf("%q is not a call id (a number from 1)", id)
	}
	return nil
}
