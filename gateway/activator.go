package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// DefaultMaxHeld is the default bound on the requests held per function.
const DefaultMaxHeld = 1000

// holding reports whether requests for a function without a ready endpoint are held: only when
// an autoscaler can start it.
func (g *Gateway) holding() bool { return g.reports != nil }

// await is the path of a request for a function without a ready endpoint. With an autoscaler,
// the request is held (up to MaxHeld per function) and the autoscaler poked, until an endpoint
// is ready (returned), the function's pods cannot start (503 with the reason), the request's
// deadline passes (504) or its client goes (dropped). Without one, it is answered 503 at once.
func (g *Gateway) await(c *call) *endpoint {
	if !g.holding() {
		c.err = errors.New("no ready endpoint")
		c.rw.Header().Set("Retry-After", "1")
		http.Error(&c.rw, fmt.Sprintf("function %q in namespace %q has no ready endpoint: retry shortly; fn describe %s -n %s shows why", c.name, c.ns, c.name, c.ns), http.StatusServiceUnavailable)
		return nil
	}
	st := c.rt.stats
	if n := st.held.Add(1); n > int64(g.opts.MaxHeld) {
		st.held.Add(-1)
		c.err = errors.New("too many held requests")
		c.rw.Header().Set("Retry-After", "1")
		http.Error(&c.rw, fmt.Sprintf("function %q in namespace %q is starting and already holds %d requests: retry shortly", c.name, c.ns, g.opts.MaxHeld), http.StatusServiceUnavailable)
		return nil
	}
	defer st.held.Add(-1)
	g.reports.poke(c.rt.key) // the function's, or its canary's
	rt := c.rt
	for {
		if rt.failure != "" {
			c.err = errors.New("cannot start: " + rt.failure)
			c.rw.Header().Set("Retry-After", strconv.Itoa(int(failureRetryAfter.Seconds())))
			http.Error(&c.rw, fmt.Sprintf("function %q in namespace %q cannot start: %s; fn describe %s -n %s shows more", c.name, c.ns, rt.failure, c.name, c.ns), http.StatusServiceUnavailable)
			return nil
		}
		select {
		case <-rt.ready:
		case <-c.Done():
			if c.parent.Err() != nil {
				c.err = c.parent.Err()
				c.rw.status = statusClientClosed
				return nil
			}
			c.err = errors.New("no ready endpoint within the timeout")
			http.Error(&c.rw, fmt.Sprintf("function %q in namespace %q got no ready replica within its timeout (%s); fn describe %s -n %s shows why", c.name, c.ns, rt.fnTimeout, c.name, c.ns), http.StatusGatewayTimeout)
			return nil
		}
		t := g.table.Load()
		if rt = t.lookup(c.rt.key); rt == nil && c.rt.revisionOf != "" {
			rt = t.routes[c.key] // a canary gone (promoted or rolled back): its function serves
		}
		if rt == nil {
			c.err = errors.New("function deleted")
			http.Error(&c.rw, fmt.Sprintf("no function %q in namespace %q: fn list shows the deployed ones", c.name, c.ns), http.StatusNotFound)
			return nil
		}
		if ep := rt.pick(); ep != nil {
			c.cold = true
			return ep
		}
	}
}

// failureRetryAfter is the Retry-After of a function whose pods cannot start.
const failureRetryAfter = 5 * time.Second
