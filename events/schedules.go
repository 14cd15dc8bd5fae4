package events

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Schedule is one of a function's schedules: a CloudEvent delivered as a call of the function
// at each tick. The engine keeps it as a scheduled message of FN_CALLS
// (fn.schedules.NS.FUNCTION.NAME) that it republishes to the function's subject at each tick,
// and fires once for ticks missed while it was down.
type Schedule struct {
	Namespace, Function, Name string
	// Cron is the expression as the engine takes it: six fields, or an @ form.
	Cron string
	// TimeZone is an IANA zone ("": UTC).
	TimeZone string
	// Type is the CloudEvent's type; Data its data, JSON, or nil.
	Type string
	Data []byte
}

func (s Schedule) subject() string {
	return "fn.schedules." + s.Namespace + "." + s.Function + "." + s.Name
}

// Source is the CloudEvent source of a schedule's ticks.
func (s Schedule) Source() string {
	return "/fn/schedules/" + s.Namespace + "/" + s.Function + "/" + s.Name
}

// msg is the scheduled message: its ticks are binary-mode CloudEvents, POSTed to the
// function's root (the dispatcher gives each its own id and time).
func (s Schedule) msg() *nats.Msg {
	m := nats.NewMsg(s.subject())
	m.Header.Set("Nats-Schedule", s.Cron)
	m.Header.Set("Nats-Schedule-Target", CallSubject(s.Namespace, s.Function))
	if s.TimeZone != "" {
		m.Header.Set("Nats-Schedule-Time-Zone", s.TimeZone)
	}
	m.Header.Set(hMethod, http.MethodPost)
	m.Header.Set(hPath, "/")
	m.Header.Set("Ce-Specversion", "1.0")
	m.Header.Set("Ce-Type", s.Type)
	m.Header.Set("Ce-Source", s.Source())
	m.Header.Set("Ce-Subject", s.Name)
	if len(s.Data) > 0 {
		m.Header.Set("Content-Type", "application/json")
	}
	m.Data = s.Data
	return m
}

// same reports whether stored message m is schedule s's message as msg makes it.
func (s Schedule) same(m *jetstream.RawStreamMsg) bool {
	want := s.msg()
	if !bytes.Equal(m.Data, want.Data) {
		return false
	}
	for k := range want.Header {
		if m.Header.Get(k) != want.Header.Get(k) {
			return false
		}
	}
	return m.Header.Get("Nats-Schedule-Time-Zone") == want.Header.Get("Nats-Schedule-Time-Zone")
}

// resyncEvery is how often a Scheduler compares the engine's schedules with the functions'
// even when nothing changed: it mends what another writer did meanwhile.
const resyncEvery = 5 * time.Minute

// A Scheduler keeps the engine's schedules as the functions say: it adds and changes those
// that differ, and removes those of no function. Gateways each run one; what they write is the
// same, and a schedule rewritten as it was is left alone.
type Scheduler struct {
	q    *Queue
	log  *slog.Logger
	mu   sync.Mutex
	want map[string]Schedule // by subject
	set  bool                // Sync was called
	kick chan struct{}
}

// NewScheduler starts a Scheduler that works until ctx ends; it writes nothing until Sync.
func NewScheduler(ctx context.Context, q *Queue, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{q: q, log: log, kick: make(chan struct{}, 1)}
	go s.run(ctx)
	return s
}

// Sync makes all every function's schedules: the complete set, as the functions say.
func (s *Scheduler) Sync(all []Schedule) {
	want := make(map[string]Schedule, len(all))
	for _, sc := range all {
		want[sc.subject()] = sc
	}
	s.mu.Lock()
	changed := !s.set || !maps.EqualFunc(want, s.want, func(a, b Schedule) bool {
		return a.Cron == b.Cron && a.TimeZone == b.TimeZone && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
	})
	s.want, s.set = want, true
	s.mu.Unlock()
	if changed {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Scheduler) run(ctx context.Context) {
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-s.q.Ready():
		}
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			err := s.reconcile(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			s.log.Warn("keeping the functions' schedules", "error", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// reconcile writes the schedules that differ from the engine's, and removes the engine's of
// no function.
func (s *Scheduler) reconcile(ctx context.Context) error {
	s.mu.Lock()
	if !s.set {
		s.mu.Unlock()
		return nil
	}
	want := s.want
	s.mu.Unlock()
	calls, _, _, err := s.q.set()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := calls.Info(ctx, jetstream.WithSubjectFilter("fn.schedules.>"))
	if err != nil {
		return err
	}
	var errs []error
	for subj, sc := range want {
		if info.State.Subjects[subj] > 0 {
			m, err := calls.GetLastMsgForSubject(ctx, subj)
			if err == nil && sc.same(m) {
				continue
			}
		}
		if _, err := s.q.js.PublishMsg(ctx, sc.msg(), jetstream.WithExpectStream(CallsStream)); err != nil {
			errs = append(errs, errors.New(sc.Namespace+"/"+sc.Function+" schedule "+sc.Name+": "+err.Error()))
			continue
		}
		s.log.Info("schedule set", "namespace", sc.Namespace, "function", sc.Function, "schedule", sc.Name, "cron", sc.Cron)
	}
	for subj := range info.State.Subjects {
		if _, ok := want[subj]; ok || !strings.HasPrefix(subj, "fn.schedules.") {
			continue
		}
		if err := calls.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("schedule removed", "subject", subj)
	}
	return errors.Join(errs...)
}
