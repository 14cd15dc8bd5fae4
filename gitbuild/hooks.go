package gitbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// Target is a Function a push may build: what it watches and the secret its hooks are signed
// with (its own, or its namespace's).
type Target struct {
	Function string // "NAMESPACE/NAME"
	Ref, Dir string
	Secret   []byte
}

// Hooks serves POST /hooks/github, /hooks/gitea and /hooks/gitlab: a delivery is read whole (at
// most MaxBody, else 413), routed by its repository's clone URL to the Functions built from it,
// verified with each one's secret in constant time (none matches: 401, logged with the delivery
// id, nothing built), de-duplicated by delivery id, and answered at once: 200 to a ping, 202 to
// a push, whose builds are queued, not waited for.
type Hooks struct {
	// Targets are the Functions built from repository url (any form the hosts send: https,
	// with or without .git).
	Targets func(ctx context.Context, url string) ([]Target, error)
	// Seen reports whether delivery id of host h was recorded; Record records it, once its
	// builds are queued. The record must outlive the builder's restarts.
	Seen   func(ctx context.Context, h Host, id string) (bool, error)
	Record func(ctx context.Context, h Host, id string) error
	// Build queues a build of push for target t.
	Build func(ctx context.Context, t Target, h Host, deliveryID string, push *PushEvent) error
	Log   *slog.Logger
}

func (hk *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := Host(strings.TrimPrefix(r.URL.Path, "/hooks/"))
	switch h {
	case GitHub, Gitea, GitLab:
	default:
		http.Error(w, "no such hook: POST /hooks/github, /hooks/gitea or /hooks/gitlab", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "hooks take POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("the delivery is over %d MiB", MaxBody>>20), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the delivery: "+err.Error(), http.StatusBadRequest)
		return
	}
	// Read before verifying only to find whose secret signs it: nothing is acted on until a
	// secret matches.
	d, err := Read(h, r.Header, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log := hk.Log.With("host", string(h), "delivery", d.ID)
	url := cloneURL(h, body)
	targets, err := hk.Targets(r.Context(), url)
	if err != nil {
		log.Error("finding the Functions of a delivery", "repository", url, "error", err)
		http.Error(w, "finding the Functions built from "+url, http.StatusServiceUnavailable)
		return
	}
	var verified []Target
	for _, t := range targets {
		if Verify(h, r.Header, body, t.Secret) == nil {
			verified = append(verified, t)
		}
	}
	if len(verified) == 0 {
		log.Warn("a delivery no secret verifies: nothing built", "repository", url, "functions", len(targets))
		http.Error(w, "the delivery's signature matches no Function's webhook secret", http.StatusUnauthorized)
		return
	}
	if d.Kind == Ping {
		io.WriteString(w, "pong\n")
		return
	}
	if d.Kind != Push {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "not a push: nothing to build\n")
		return
	}
	seen, err := hk.Seen(r.Context(), h, d.ID)
	if err != nil {
		log.Error("recording a delivery", "error", err)
		http.Error(w, "recording the delivery: retry it", http.StatusServiceUnavailable)
		return
	}
	if seen {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "delivery seen before: nothing built again\n")
		return
	}
	var queued []string
	for _, t := range verified {
		if !d.Push.Builds(t.Ref, t.Dir) {
			continue
		}
		if err := hk.Build(r.Context(), t, h, d.ID, d.Push); err != nil {
			log.Error("queueing a build", "function", t.Function, "error", err)
			http.Error(w, "queueing the build of "+t.Function+": "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		queued = append(queued, t.Function)
	}
	if err := hk.Record(r.Context(), h, d.ID); err != nil {
		// The builds are queued: a host that delivers again builds the same commit again,
		// which supersedes the first.
		log.Error("recording a delivery", "error", err)
	}
	log.Info("push delivered", "ref", d.Push.Ref, "commit", d.Push.After, "builds", queued)
	w.WriteHeader(http.StatusAccepted)
	if len(queued) == 0 {
		io.WriteString(w, "no Function is built from that ref and path: nothing built\n")
		return
	}
	fmt.Fprintf(w, "building %s\n", strings.Join(queued, ", "))
}

// cloneURL is the repository a delivery is about (any kind of delivery names it).
func cloneURL(h Host, body []byte) string {
	var p struct {
		Repository struct {
			CloneURL string `json:"clone_url"`
		} `json:"repository"`
		Project struct {
			HTTPURL string `json:"git_http_url"`
		} `json:"project"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	if h == GitLab {
		return p.Project.HTTPURL
	}
	return p.Repository.CloneURL
}
