package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"fnkit.dev/fn/gateway/h1"
)

// newTransport is the one transport to every function's pods: connections are kept alive and
// reused, nothing is proxied further, bodies pass through as they are.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // pods are reached directly, whatever HTTP_PROXY says
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second, // a pod that does not accept within 2 s is not there
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // never re-encode: the client asked for what it asked for
		ReadBufferSize:        16 << 10,
		WriteBufferSize:       16 << 10,
	}
}

// rewrite makes the request to the function's endpoint: the endpoint's address, the path without
// /f/NAMESPACE/NAME for path routing, the client's Host, and X-Forwarded-* headers. Headers and
// body pass untouched otherwise (CloudEvents' ce-* headers included).
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = c.ep.addr
	if c.strip {
		out.URL.Path, out.URL.RawPath = c.path, c.rawPath
		out.Header.Set("X-Forwarded-Prefix", c.prefix)
	}
	out.Host = pr.In.Host
	// The gateway runs behind the cluster's ingress or load balancer: extend its forwarding
	// headers rather than replace them.
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	for _, h := range [...]string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v := pr.In.Header[h]; len(v) > 0 {
			out.Header[h] = v
		}
	}
}

// proxyError answers a request the function's endpoint did not answer: 504 when the function's
// timeout passed, 502 otherwise, nothing when the client has gone.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	c := r.Context().Value(callKey{}).(*call)
	c.err = err
	switch {
	case c.parent.Err() != nil:
		c.rw.status = statusClientClosed
	case errors.Is(c.Context.Err(), context.DeadlineExceeded):
		http.Error(w, timeoutText(c.key, c.rt.fnTimeout), http.StatusGatewayTimeout)
	default:
		http.Error(w, unreachableText(c.key), http.StatusBadGateway)
	}
}

// timeoutText is the answer to a request its function did not answer in time.
func timeoutText(k key, timeout time.Duration) string {
	return fmt.Sprintf("function %q in namespace %q did not answer within its timeout of %s", k.name, k.ns, timeout)
}

// unreachableText is the answer to a request its function's endpoint could not take.
func unreachableText(k key) string {
	return fmt.Sprintf("function %q in namespace %q could not be reached: retry; fn describe %s -n %s shows its state", k.name, k.ns, k.name, k.ns)
}

// moveToOther moves a request in flight to from, an endpoint of function k that did not take
// its connection, to another ready endpoint of it, and returns that one (nil when there is
// none); from is passed over for a while.
func (g *Gateway) moveToOther(k key, from *endpoint) *endpoint {
	from.passOver(time.Now())
	rt := g.table.Load().lookup(k)
	if rt == nil {
		return nil
	}
	ep := rt.pickOther(from)
	if ep == nil {
		return nil
	}
	ep.inflight.Add(1)
	from.inflight.Add(-1)
	return ep
}

// retryingTransport sends a request whose endpoint refused the connection to another ready
// endpoint of the function: nothing was sent, so a request without a body can go again. It covers
// the moment between a pod going away and the routing table hearing of it.
type retryingTransport struct {
	g    *Gateway
	base http.RoundTripper
}

// dialRetries bounds the other endpoints a request tries.
const dialRetries = 2

func (t retryingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	c, _ := r.Context().Value(callKey{}).(*call)
	for try := 0; try < dialRetries && err != nil && c != nil && h1.Refused(err) && r.Context().Err() == nil &&
		(r.Body == nil || r.Body == http.NoBody); try++ {
		ep := t.g.moveToOther(c.rt.key, c.ep)
		if ep == nil {
			break
		}
		c.ep = ep
		r = r.Clone(r.Context())
		r.URL.Host = ep.addr
		resp, err = t.base.RoundTrip(r)
	}
	return resp, err
}
