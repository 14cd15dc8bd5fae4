package gateway

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
)

// RevisionHeader asks for one revision of a function, by number or name, as the path
// /f/NS/NAME@REVISION/ does: the stable one, or a canary under rollout whatever its share.
const RevisionHeader = "Fn-Revision"

// SessionHeader, or the cookie SessionCookie, keeps a client's requests on one revision while
// a canary takes a share: the same session falls on the same side of the share at every
// gateway, and stays on the canary as its share grows.
const (
	SessionHeader = "Fn-Session"
	SessionCookie = "fn-session"
)

// split chooses the route that serves a request of function route rt: its canary's for the
// canary's share of requests (by session when the request names one, else at random), else
// rt. A canary with no route yet (its endpoints not known) takes none.
func (t *table) split(rt *route, r *http.Request) *route {
	if rt.canary.name == "" || rt.percent <= 0 {
		return rt
	}
	c := t.revs[rt.canary]
	if c == nil || (len(c.eps) == 0 && len(rt.eps) > 0) {
		return rt // no canary yet, or none ready: not held while the stable revision serves
	}
	if sessionBucket(r) < int(rt.percent) {
		return c
	}
	return rt
}

// sessionBucket is a request's place in [0, 100): its session's hash, else a random one.
func sessionBucket(r *http.Request) int {
	s := r.Header.Get(SessionHeader)
	if s == "" {
		if ck, err := r.Cookie(SessionCookie); err == nil {
			s = ck.Value
		}
	}
	if s == "" {
		return rand.IntN(100)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return int(h.Sum32() % 100)
}

// revision is the route of function route rt's revision rev (a number or a name): rt for its
// stable revision, its canary's for the one under rollout; else nil and why.
func (t *table) revision(rt *route, rev string) (*route, string) {
	name := rev
	if n, err := strconv.ParseInt(rev, 10, 64); err == nil && n > 0 {
		name = fmt.Sprintf("%s-%05d", rt.name, n)
	}
	switch {
	case name == rt.stable || (rt.stable == "" && name == rt.name):
		return rt, ""
	case name == rt.canary.name:
		if c := t.revs[rt.canary]; c != nil {
			return c, ""
		}
	}
	if !strings.HasPrefix(name, rt.name+"-") {
		return nil, fmt.Sprintf("no revision %q of function %q: revisions are named %s-NNNNN or numbered; fn revisions %s lists them", rev, rt.name, rt.name, rt.name)
	}
	return nil, fmt.Sprintf("revision %s of function %q does not run: only the stable revision (%s) and a canary under rollout answer; fn rollback %s %s runs it", name, rt.name, rt.stable, rt.name, name)
}
