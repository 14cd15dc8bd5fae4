// Package h1 serves HTTP/1.1 client connections on a loop of its own and forwards their
// requests to upstreams over pooled, kept-alive connections: each client connection's requests
// are parsed with http.ReadRequest and forwarded on the same goroutine (a request writer of its
// own, then http.ReadResponse). A Router says where each request goes and records how it ended;
// what it does not forward, and every connection the loop does not take (HTTP/1.0, Upgrade,
// Expect: 100-continue, HTTP/2, an oversized head), its http.Handler answers.
package h1
