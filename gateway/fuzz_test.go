package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzRequestHead sends any bytes to the gateway's connection loop as a client would: it
// answers with a well-formed response or closes the connection, within the deadline, never
// panics, and serves the next client's request as before.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET /f/ns/hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /f/ns/hello/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /f/ns/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
		"POST /f/ns/hello/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /f/ns/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"GET /f/ns/hello/ HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n",
		"GET /f/ns/hello/ HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET /f/ns/hello/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET /f/ns/hello/ HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\r\n\r\n",
		"GET /f/ns/hello/\x00 HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	b := newBackend(f, "a", nil)
	fx := newFixture(f, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	addr := strings.TrimPrefix(fx.srv.URL, "http://")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write(data)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // all it sends: the gateway must not wait for more forever
		}
		br := bufio.NewReader(c)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("no answer and no close within 10s for %q", data)
				}
				break // closed, or what follows is not a response: both fine
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("a response body that never ends for %q", data)
			}
			if resp.StatusCode < 100 || resp.StatusCode > 599 {
				t.Fatalf("status %d for %q", resp.StatusCode, data)
			}
		}
		if resp, body := fx.get(t, "/f/ns/hello/"); resp.StatusCode != http.StatusOK || body != "hello from a\n" {
			t.Fatalf("after %q, a normal request: %d %q", data, resp.StatusCode, body)
		}
	})
}

// FuzzFunctionResponse has a function answer any bytes (bad Content-Length, truncated chunks,
// huge headers, a close mid-answer): the gateway answers its client with a well-formed response
// (the function's, or a 502) within the deadline, never panics, and serves the next request.
func FuzzFunctionResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Big: "+strings.Repeat("v", 1000)+"\r\n", 80) + "\r\n",
		"HTTP/1.1 999 What\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n0123456789",
		"garbage",
		"",
	} {
		f.Add([]byte(s))
	}
	answer := make(chan []byte, 1)
	url := rawFunction(f, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		select {
		case a := <-answer:
			_, _ = c.Write(a)
		default:
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		}
	})
	fx := newFixture(f, Options{}, function("odd", "ns", withTimeout(2*time.Second)), slice("odd-1", "ns", "odd", withEndpoint(url, true)))
	f.Fuzz(func(t *testing.T, data []byte) {
		answer <- data
		client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(fx.srv.URL + "/f/ns/odd/")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the gateway hung on a function answering %q", data)
		}
		select { // not taken: the request never reached the function
		case <-answer:
		default:
		}
		resp, err = client.Get(fx.srv.URL + "/f/ns/odd/")
		if err != nil {
			t.Fatalf("after a function answered %q, the next request: %v", data, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("after a function answered %q, the next request: %d %q", data, resp.StatusCode, body)
		}
	})
}
