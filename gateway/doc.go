// Package gateway is fn's one HTTP entry for all functions: it routes each request by path
// (/f/NAMESPACE/NAME/...) or host (NAME.NAMESPACE.DOMAIN) to a ready endpoint of the function's
// EndpointSlices, applies the function's timeout, and counts requests for metrics and autoscaling.
//
// Its HTTP/1.1 data path is the connection loop of package h1, with the gateway as its Router
// (loop.go): each client connection's requests are parsed with http.ReadRequest and forwarded,
// on the same goroutine, over a pooled kept-alive connection to the endpoint. That keeps twice
// the throughput of net/http's server and Transport on a small machine. A connection whose
// request is anything else (HTTP/1.0, Upgrade, Expect: 100-continue, HTTP/2, an oversized head)
// is handed, for the rest of its life, to a net/http server running Gateway.ServeHTTP, the same
// routing over httputil.ReverseProxy; the loop also answers through ServeHTTP whatever is not a
// forward to a ready endpoint (the gateway's own answers, requests held while a function
// starts: activator.go).
//
// Known differences from the net/http path: trailers (of requests or responses) are not passed
// on; the client's connection is watched for a hang-up only once a request has waited
// h1.ClientWatchDelay.
package gateway
