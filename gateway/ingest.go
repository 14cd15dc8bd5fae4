package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"k8s.io/apimachinery/pkg/labels"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/events"
)

// The ingest: POST /events/NAMESPACE takes a CloudEvent (binary or structured mode) and hands
// it, as an asynchronous call, to the Function of every Ready Trigger of the namespace whose
// filter it matches. It answers 202 with the calls made (none when nothing matched).

const ingestPrefix = "/events/"

// Routed is one call the ingest made of an event.
type Routed struct {
	Trigger  string `json:"trigger"`
	Function string `json:"function"`
	ID       string `json:"id"`
	// Duplicate: the same event (source and id) was routed by this Trigger within the window.
	Duplicate bool `json:"duplicate,omitempty"`
}

func (g *Gateway) serveIngest(w http.ResponseWriter, r *http.Request, start time.Time) {
	status := g.ingest(w, r)
	g.logRequest(r.Context(), key{}, r.Method, r.URL.Path, status, time.Since(start), "", nil)
}

func (g *Gateway) ingest(w http.ResponseWriter, r *http.Request) int {
	ns := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, ingestPrefix), "/")
	fail := func(code int, format string, args ...any) int {
		http.Error(w, fmt.Sprintf(format, args...), code)
		return code
	}
	switch {
	case !dnsLabel(ns):
		return fail(http.StatusNotFound, "events are published to /events/NAMESPACE")
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		return fail(http.StatusMethodNotAllowed, "events are published with POST")
	case g.async == nil || g.triggers == nil:
		return fail(http.StatusServiceUnavailable, "events need the event engine, and this gateway runs without one")
	case r.ContentLength > MaxAsyncBody:
		return tooLarge(w)
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxAsyncBody)
	e, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(w)
		}
		return fail(http.StatusBadRequest, "not a CloudEvent (binary mode with ce- headers, or structured with Content-Type application/cloudevents+json): %v", err)
	}
	if err := e.Validate(); err != nil {
		return fail(http.StatusBadRequest, "the CloudEvent is not valid: %v", err)
	}
	all, err := g.triggers.Triggers(ns).List(labels.Everything())
	if err != nil {
		return fail(http.StatusServiceUnavailable, "listing the Triggers of namespace %s: %v", ns, err)
	}
	slices.SortFunc(all, func(a, b *v1alpha1.Trigger) int { return strings.Compare(a.Name, b.Name) })
	var matched []*v1alpha1.Trigger
	for _, t := range all {
		if t.IsReady() && t.Spec.Filter.Matches(attribute(e)) {
			matched = append(matched, t)
		}
	}
	// A private function's events come from those who may call it.
	for _, t := range matched {
		if rt := g.table.Load().routes[key{ns, t.Spec.Function}]; rt != nil && rt.private {
			if f := g.accepted(rt, r, time.Now()); f.status != 0 {
				refuse(w, f)
				return f.status
			}
			break
		}
	}
	calls := []Routed{}
	for _, t := range matched {
		c, err := eventCall(r.Context(), e, ns, t)
		if err != nil {
			return fail(http.StatusBadRequest, "encoding the event for trigger %s: %v", t.Name, err)
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		acc, err := g.async.q.Enqueue(ctx, c)
		cancel()
		if err != nil {
			w.Header().Set("Retry-After", "1")
			// The calls made before stay: publishing the event again makes them again only for
			// the Triggers that did not take it (each de-duplicates by the event's source and id).
			return fail(http.StatusServiceUnavailable, "trigger %s did not take the event: %v; publish it again", t.Name, err)
		}
		calls = append(calls, Routed{Trigger: t.Name, Function: t.Spec.Function, ID: acc.ID, Duplicate: acc.Duplicate})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(struct {
		Matched int      `json:"matched"`
		Calls   []Routed `json:"calls"`
	}{len(calls), calls})
	return http.StatusAccepted
}

// attribute reads a CloudEvent's attributes by name, extensions included.
func attribute(e *event.Event) func(string) (string, bool) {
	return func(name string) (string, bool) {
		switch name {
		case "specversion":
			return e.SpecVersion(), true
		case "id":
			return e.ID(), true
		case "type":
			return e.Type(), true
		case "source":
			return e.Source(), true
		case "subject":
			return e.Subject(), e.Subject() != ""
		case "datacontenttype":
			return e.DataContentType(), e.DataContentType() != ""
		case "dataschema":
			return e.DataSchema(), e.DataSchema() != ""
		}
		v, ok := e.Extensions()[name]
		if !ok {
			return "", false
		}
		return fmt.Sprint(v), true
	}
}

// eventCall is event e as a call of trigger t's function: a binary-mode CloudEvent POSTed to
// its root, de-duplicated by the event's source and id.
func eventCall(ctx context.Context, e *event.Event, ns string, t *v1alpha1.Trigger) (events.Call, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://fn/", nil)
	if err := cehttp.WriteRequest(binding.WithForceBinary(ctx), binding.ToMessage(e), req); err != nil {
		return events.Call{}, err
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return events.Call{}, err
	}
	c := events.Call{Namespace: ns, Name: t.Spec.Function, Method: http.MethodPost, Path: "/", Header: req.Header, Body: body,
		Key: "trigger/" + t.Name + "/" + e.Source() + "/" + e.ID()}
	if d := t.Spec.Delivery; d != nil {
		p, dead := policyOf(d)
		c.Policy, c.DeadLetters = &p, &dead
	}
	return c, nil
}
