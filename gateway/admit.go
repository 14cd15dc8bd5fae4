package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// Admission: before a request is routed, a private function's token is checked and every
// function's rate limit applied. Both answer at once, without the function.

// minTokenLen is the shortest value of the access Secret taken as a token: a shorter one
// would be guessed.
const minTokenLen = 16

// tokenSet is the SHA-256 of each token of one namespace.
type tokenSet [][sha256.Size]byte

// accessTokens are the tokens of the namespaces' access Secrets, from the Secret informer.
type accessTokens struct {
	mu   sync.RWMutex
	byNS map[string]tokenSet
}

func (a *accessTokens) set(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	s, ok := obj.(*corev1.Secret)
	if !ok || s.Name != v1alpha1.AccessSecretName {
		return
	}
	var set tokenSet
	if !deleted {
		for _, v := range s.Data {
			if len(v) >= minTokenLen {
				set = append(set, sha256.Sum256(v))
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byNS == nil {
		a.byNS = map[string]tokenSet{}
	}
	if len(set) == 0 {
		delete(a.byNS, s.Namespace)
		return
	}
	a.byNS[s.Namespace] = set
}

// valid reports whether token is one of namespace ns's. It compares the token's hash with
// every one of the namespace's, in constant time, so its time tells nothing of how near a
// wrong token came.
func (a *accessTokens) valid(ns, token string) bool {
	h := sha256.Sum256([]byte(token))
	a.mu.RLock()
	set := a.byNS[ns]
	a.mu.RUnlock()
	match := 0
	for i := range set {
		match |= subtle.ConstantTimeCompare(h[:], set[i][:])
	}
	return match == 1
}

// bearer is the token of an Authorization: Bearer header, and whether there is one.
func bearer(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}

// bucket is a token bucket: its state, and a pure function of it and now.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time // zero: full
}

// take takes a token for a request at now from a bucket refilled at rate per second up to
// burst: ok, or how long until one is there.
func (b *bucket) take(now time.Time, rate, burst float64) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// limit is a function's rate limit at this gateway: its share of the function's, as the
// gateway's replicas split requests evenly.
type limit struct {
	rps, burst int32
}

func limitOf(r *v1alpha1.RateLimit) limit {
	if r == nil || r.RPS < 1 {
		return limit{}
	}
	l := limit{rps: r.RPS, burst: r.RPS}
	if r.Burst != nil && *r.Burst > 0 {
		l.burst = *r.Burst
	}
	return l
}

// share is this gateway's rate and burst when n gateways serve the function: a burst of at
// least one request.
func (l limit) share(n int) (rate, burst float64) {
	n = max(n, 1)
	return float64(l.rps) / float64(n), math.Max(1, float64(l.burst)/float64(n))
}

// refusal is why a request is not let through: its status and text; status 0 lets it through.
type refusal struct {
	status     int
	text       string
	retryAfter time.Duration
}

// admit checks r against its function's access and rate limit, at now. It changes nothing of
// r: a request refused on the connection loop's path is admitted again by ServeHTTP, token
// and all; the caller removes a private function's token from a request admitted.
func (g *Gateway) admit(rt *route, r *http.Request, now time.Time) refusal {
	return g.admitAs(rt, r, now, rt.private, rt.limit.rps > 0)
}

// admitAs is admit, checking the token (of a private function) and the rate limit as told.
func (g *Gateway) admitAs(rt *route, r *http.Request, now time.Time, token, limited bool) refusal {
	if token {
		tok, ok := bearer(r.Header)
		switch {
		case !ok:
			return refusal{status: http.StatusUnauthorized, text: fmt.Sprintf("function %q in namespace %q is private: send a token of the namespace's Secret %s as Authorization: Bearer TOKEN (fn token -n %s prints one; fn invoke sends it)", rt.name, rt.ns, v1alpha1.AccessSecretName, rt.ns)}
		case !g.tokens.valid(rt.ns, tok):
			return refusal{status: http.StatusForbidden, text: fmt.Sprintf("function %q in namespace %q is private, and the token sent is not one of the namespace's Secret %s", rt.name, rt.ns, v1alpha1.AccessSecretName)}
		}
	}
	if limited {
		rate, burst := rt.limit.share(g.peers())
		if ok, wait := rt.stats.limiter.take(now, rate, burst); !ok {
			return refusal{status: http.StatusTooManyRequests, retryAfter: wait,
				text: fmt.Sprintf("function %q in namespace %q is over its rate limit of %d requests/s: retry after %s", rt.name, rt.ns, rt.limit.rps, retryAfterSeconds(wait))}
		}
	}
	return refusal{}
}

// admitted is admit for a request about to be forwarded: when it is let through, a private
// function's token is removed from it (the function never sees it).
// An asynchronous call is checked twice: its token when it is accepted (it is not stored),
// the rate limit when it is delivered (a 429 is tried again later).
func (g *Gateway) admitted(rt *route, r *http.Request, now time.Time) refusal {
	if !rt.private && rt.limit.rps == 0 {
		return refusal{}
	}
	f := g.admitAs(rt, r, now, rt.private && !delivered(r), rt.limit.rps > 0)
	if f.status == 0 && rt.private {
		r.Header.Del("Authorization")
	}
	return f
}

// accepted is admitted for an asynchronous call being accepted: its token only.
func (g *Gateway) accepted(rt *route, r *http.Request, now time.Time) refusal {
	if !rt.private {
		return refusal{}
	}
	return g.admitAs(rt, r, now, true, false)
}

// retryAfterSeconds is wait as a Retry-After: whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// refuse answers a request admit refused.
func refuse(w http.ResponseWriter, f refusal) {
	switch f.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="fn"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds(f.retryAfter))
	}
	http.Error(w, f.text, f.status)
}

// peers is the number of gateways sharing requests: the ready endpoints of Options.PeerService,
// at least 1.
func (g *Gateway) peers() int {
	if g.opts.PeerService == "" {
		return 1
	}
	n := g.peerCount.Load()
	return max(int(n), 1)
}
