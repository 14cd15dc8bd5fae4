package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkConnectionLoop forwards GET requests, one at a time on one kept-alive client
// connection, through the connection loop to a function's server: the gateway's cost per
// request beyond the loopback round trips (allocations included).
func BenchmarkConnectionLoop(b *testing.B) {
	be := newBackend(&testing.T{}, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Hello, world!\n")
	})
	defer be.Close()
	f := newFixture(b, Options{AccessLog: io.Discard}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(be.URL, true)))
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /f/ns/hello/ HTTP/1.1\r\nHost: gw\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	get := &http.Request{Method: http.MethodGet}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, get)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
