package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fnkit.dev/fn/gateway/h1"
)

// rawConn is a client connection to the gateway that writes bytes as given and reads responses.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, f *fixture) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response for a request of method, and returns it with its body.
func (r *rawConn) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("reading a response's body: %v", err)
	}
	return resp, string(body)
}

// TestConnectionLoop: what the gateway's own HTTP/1.1 loop does with requests on the wire, and
// what it hands to net/http, one connection at a time.
func TestConnectionLoop(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/upgrade":
			if r.Header.Get("Upgrade") != "echo" {
				http.Error(w, "no upgrade", http.StatusBadRequest)
				return
			}
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = brw.WriteString("echo: " + line)
			_ = brw.Flush()
		default:
			fmt.Fprintf(w, "%s %s %s %s\n", r.Proto, r.Method, r.URL.Path, r.Header.Get("Connection"))
		}
	})
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))

	t.Run("keep-alive and pipelining", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("GET /f/ns/hello/one HTTP/1.1\r\nHost: gw\r\n\r\nGET /f/ns/hello/two HTTP/1.1\r\nHost: gw\r\n\r\n")
		for _, want := range []string{"HTTP/1.1 GET /one \n", "HTTP/1.1 GET /two \n"} {
			if resp, body := c.read("GET"); resp.StatusCode != 200 || body != want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
			}
		}
		c.send("HEAD /f/ns/hello/three HTTP/1.1\r\nHost: gw\r\n\r\n")
		if resp, body := c.read("HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("HTTP/1.1 HEAD /three \n")) {
			t.Errorf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
		}
		c.send("DELETE /f/ns/hello/empty HTTP/1.1\r\nHost: gw\r\n\r\n")
		if resp, body := c.read("DELETE"); resp.StatusCode != 204 || body != "" {
			t.Errorf("204: %d %q", resp.StatusCode, body)
		}
		// A chunked request body is passed on whole.
		c.send("POST /f/ns/hello/chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
		if resp, _ := c.read("POST"); resp.StatusCode != 200 || string(b.last(t).Body) != "abcde" {
			t.Errorf("chunked body: %d, function got %q", resp.StatusCode, b.last(t).Body)
		}
	})

	t.Run("the gateway's own answer leaves no body behind", func(t *testing.T) {
		// A request with a body that the gateway answers itself, unread (404): the rest of
		// the body is not taken for the next request.
		c := dialRaw(t, f)
		c.send("POST /f/ns/nosuch/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 7\r\n\r\n{\"n\":1}" +
			"POST /f/ns/nosuch/ HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
			"GET /f/ns/hello/after HTTP/1.1\r\nHost: gw\r\n\r\n")
		for _, want := range []int{404, 404, 200} {
			if resp, body := c.read("POST"); resp.StatusCode != want {
				t.Errorf("got %d %q, want %d", resp.StatusCode, body, want)
			}
		}
	})

	t.Run("an answer before a large body is read reaches the client", func(t *testing.T) {
		// Past what the loop reads of a body left unread, it closes the connection, after
		// the answer, without resetting it under the client still sending.
		for range 3 {
			resp, err := http.Post(f.srv.URL+"/f/ns/nosuch/", "text/plain", strings.NewReader(strings.Repeat("x", 8<<20)))
			if err != nil {
				t.Fatalf("posting 8 MiB to an unknown function: %v, want its 404", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || !resp.Close {
				t.Errorf("got %d (close %v), want 404 and the connection closed", resp.StatusCode, resp.Close)
			}
		}
	})

	t.Run("Connection: close is the client's, not the function's", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("GET /f/ns/hello/ HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != 200 || body != "HTTP/1.1 GET / \n" || !resp.Close {
			t.Errorf("got %d %q close=%v, want 200, no Connection header at the function, and the client's connection closed", resp.StatusCode, body, resp.Close)
		}
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("connection still open after Connection: close (%v)", err)
		}
	})

	t.Run("HTTP/1.0 goes to net/http", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("GET /f/ns/hello/old HTTP/1.0\r\nHost: gw\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "HTTP/1.1 GET /old \n" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})

	t.Run("Expect: 100-continue goes to net/http", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("POST /f/ns/hello/expect HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		resp, _ := c.read("POST")
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("got %d, want 100 Continue before the body is sent", resp.StatusCode)
		}
		c.send("hello")
		if resp, body := c.read("POST"); resp.StatusCode != 200 || body != "HTTP/1.1 POST /expect \n" || string(b.last(t).Body) != "hello" {
			t.Errorf("got %d %q, function got %q", resp.StatusCode, body, b.last(t).Body)
		}
	})

	t.Run("an upgrade after plain requests on one connection", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("GET /f/ns/hello/first HTTP/1.1\r\nHost: gw\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "HTTP/1.1 GET /first \n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		c.send("GET /f/ns/hello/upgrade HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		c.send("ping\n")
		if line, err := c.br.ReadString('\n'); line != "echo: ping\n" {
			t.Errorf("through the upgraded connection: %q %v", line, err)
		}
	})

	t.Run("a head larger than the read buffer goes to net/http", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("GET /f/ns/hello/big HTTP/1.1\r\nHost: gw\r\nX-Big: " + strings.Repeat("x", 2*h1.BufferSize) + "\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "HTTP/1.1 GET /big \n" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})

	t.Run("a malformed request is answered 400 and the connection closed", func(t *testing.T) {
		c := dialRaw(t, f)
		c.send("GET /f/ns/hello/ HTTP/1.1\r\nHost: gw\r\nBad Header\r\n\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "malformed") {
			t.Errorf("got %d %q, want 400", resp.StatusCode, body)
		}
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("connection still open after a malformed request (%v)", err)
		}
	})
}

// TestClosedKeptAliveConnection: a function's server closes a kept-alive connection (its idle
// timeout, a restart); the next request through the gateway does not fail on it.
func TestClosedKeptAliveConnection(t *testing.T) {
	t.Parallel()
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from a\n")
	}))
	b.Config.IdleTimeout = 50 * time.Millisecond
	b.Start()
	t.Cleanup(b.Close)
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	for i := range 5 {
		r, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/f/ns/hello/", strings.NewReader("not idempotent"))
		if resp, body := f.do(t, r); resp.StatusCode != 200 || body != "hello from a\n" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(150 * time.Millisecond) // the function closes the idle connection
	}
}

// TestClientGoneCancelsFunction: a client that goes away while its request waits for the
// function cancels the request at the function (its context is done), and the gateway records
// 499. A request that is merely slow, and a pipelined request sent while the first waits, are
// answered whole on the same connection.
func TestClientGoneCancelsFunction(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{}, 1)
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/block":
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(20 * time.Second):
			}
		case "/slow":
			time.Sleep(3 * h1.ClientWatchDelay)
			_, _ = io.WriteString(w, "slow\n")
		default:
			_, _ = io.WriteString(w, "fast "+r.URL.Path+"\n")
		}
	})
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))

	c := dialRaw(t, f)
	c.send("GET /f/ns/hello/slow HTTP/1.1\r\nHost: gw\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "slow\n" {
		t.Errorf("slow: %d %q", resp.StatusCode, body)
	}
	// The second request arrives while the first waits: the watch reads its first byte.
	c.send("GET /f/ns/hello/slow HTTP/1.1\r\nHost: gw\r\n\r\n")
	time.Sleep(2 * h1.ClientWatchDelay)
	c.send("GET /f/ns/hello/next HTTP/1.1\r\nHost: gw\r\n\r\n")
	for _, want := range []string{"slow\n", "fast /next\n"} {
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != want {
			t.Errorf("got %d %q, want %q", resp.StatusCode, body, want)
		}
	}

	gone := dialRaw(t, f)
	gone.send("GET /f/ns/hello/block HTTP/1.1\r\nHost: gw\r\n\r\n")
	time.Sleep(h1.ClientWatchDelay / 2)
	gone.c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the function's request was not cancelled after its client went away")
	}
	eventually(t, "a 499 logged for the request whose client went away", func() bool {
		for _, l := range f.logs.lines(t) {
			if l["path"] == "/f/ns/hello/block" && l["status"] == 499.0 {
				return true
			}
		}
		return false
	})
}

// TestHTTP2PriorKnowledge: a client speaking HTTP/2 without TLS is served (through net/http).
func TestHTTP2PriorKnowledge(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello over "+r.URL.Path+"\n")
	})
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(f.srv.URL + "/f/ns/hello/h2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "hello over /h2\n" {
		t.Errorf("got %s %d %q, want HTTP/2 200", resp.Proto, resp.StatusCode, body)
	}
}

// TestClientBodyCut: a client that goes away in the middle of its request body gets its request
// cancelled at the function at once, not when the function's timeout passes; a malformed
// chunked body is answered 400.
func TestClientBodyCut(t *testing.T) {
	t.Parallel()
	readErr := make(chan error, 1)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	t.Cleanup(b.Close)
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))

	// Past the gateway's buffer, the function has started reading the body.
	c := dialRaw(t, f)
	c.send("POST /f/ns/hello/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 3*h1.BufferSize))
	time.Sleep(50 * time.Millisecond)
	c.c.Close()
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("the function read a whole body the client never sent")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the function still waits for the rest of a body whose client went away")
	}
	eventually(t, "a 499 logged for the cut body", func() bool {
		for _, l := range f.logs.lines(t) {
			if l["status"] == 499.0 && strings.Contains(fmt.Sprint(l["error"]), "request body") {
				return true
			}
		}
		return false
	})

	c = dialRaw(t, f)
	c.send("POST /f/ns/hello/ HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n")
	if resp, body := c.read("POST"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "malformed request body") {
		t.Errorf("malformed chunked body: %d %q, want 400", resp.StatusCode, body)
	}
}

// TestIdleConnectionsGiveBackBuffers: a connection idle for h1.HotIdle returns its buffers to the
// pool and takes them again when its next request comes, which is served as any other.
func TestIdleConnectionsGiveBackBuffers(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	f := newFixture(t, Options{}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	c := dialRaw(t, f)
	for i := range 2 {
		c.send("GET /f/ns/hello/ HTTP/1.1\r\nHost: gw\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "hello from a\n" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(h1.HotIdle + 300*time.Millisecond) // the connection goes cold
	}

}
