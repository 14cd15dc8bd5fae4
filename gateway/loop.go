package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"fnkit.dev/fn/gateway/h1"
)

// loopRouter is the gateway as the connection loop's Router: a request for a function with a
// ready endpoint is forwarded by the loop; everything else (the gateway's own answers, requests
// held while a function starts) goes to Gateway.ServeHTTP.
type loopRouter struct{ *Gateway }

var _ h1.Router = loopRouter{}

// Route picks the endpoint of a request's function and counts the request in flight.
func (g loopRouter) Route(r *http.Request, f *h1.Forward) bool {
	t, ok := g.match(r)
	if !ok || internalPath(t.functionPath(r)) || preferAsync(r.Header) {
		return false // Gateway.ServeHTTP answers, or accepts an asynchronous call
	}
	tbl := g.table.Load()
	fnRt := tbl.routes[t.key]
	if fnRt == nil {
		return false
	}
	// Served by the revision chosen; admitted as the function's.
	if t.revision == "" {
		t.revision = r.Header.Get(RevisionHeader)
	}
	rt := fnRt
	if t.revision != "" {
		if rt, _ = tbl.revision(fnRt, t.revision); rt == nil {
			return false // Gateway.ServeHTTP says why
		}
	} else {
		rt = tbl.split(fnRt, r)
	}
	ep := rt.pick()
	if ep == nil {
		return false
	}
	if g.admitted(fnRt, r, f.Start).status != 0 {
		return false // Gateway.ServeHTTP answers (and admits again: a token may be there now)
	}
	rt.stats.inflight.Add(1)
	rt.stats.arrivals.Add(1)
	ep.inflight.Add(1)
	f.Addr, f.Deadline = ep.addr, f.Start.Add(rt.timeout)
	f.Strip, f.Path, f.RawPath, f.Prefix = t.strip, t.path, t.rawPath, t.prefix
	f.Route, f.Upstream = rt, ep
	return true
}

// Retry moves a request whose endpoint refused the connection to another ready endpoint.
func (g loopRouter) Retry(f *h1.Forward) bool {
	rt, from := f.Route.(*route), f.Upstream.(*endpoint)
	ep := g.moveToOther(rt.key, from)
	if ep == nil {
		return false
	}
	f.Upstream, f.Addr = ep, ep.addr
	return true
}

// ErrorText is the gateway's text of the loop's own answers.
func (g loopRouter) ErrorText(f *h1.Forward, code int) string {
	rt := f.Route.(*route)
	switch code {
	case http.StatusGatewayTimeout:
		return timeoutText(rt.key, rt.fnTimeout)
	case http.StatusRequestTimeout:
		return fmt.Sprintf("the request body did not arrive within the timeout of function %q (%s)", rt.name, rt.fnTimeout)
	default:
		return unreachableText(rt.key)
	}
}

// Done records a forwarded request: in flight no more, its metrics, its access log line.
func (g loopRouter) Done(f *h1.Forward, status int, err error) {
	rt, ep := f.Route.(*route), f.Upstream.(*endpoint)
	ep.inflight.Add(-1)
	rt.stats.inflight.Add(-1)
	d := time.Since(f.Start)
	rt.stats.observe(status, d)
	g.logRequest(context.Background(), rt.key, f.Method, f.URLPath, status, d, ep.addr, err)
}
