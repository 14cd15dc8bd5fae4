package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMisbehavingFunctions: functions that write without end, never read their body, sleep past
// their timeout or close mid-answer are each answered as documented — the flood streams and
// stops when its client goes, the deaf one's client gets its answer, the sleeper 504, the cut
// one a truncated body — while another function behind the same gateway answers every request.
func TestMisbehavingFunctions(t *testing.T) {
	t.Parallel()
	const floodLimit = 1 << 30 // the most the flood would write
	var floodWritten atomic.Int64
	floodStopped := make(chan error, 1)
	flood := newBackend(t, "flood", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for floodWritten.Load() < floodLimit {
			n, err := w.Write(chunk)
			floodWritten.Add(int64(n))
			if err != nil {
				floodStopped <- err
				return
			}
		}
		floodStopped <- nil
	})
	// (newBackend reads every body; this one reads none.)
	deafRaw := newBackendRaw(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "not listening\n")
	})
	sleepy := newBackend(t, "sleepy", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	cut := newBackendRaw(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "only half")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
	})
	good := newBackend(t, "good", nil)
	f := newFixture(t, Options{},
		function("flood", "ns"), slice("flood-1", "ns", "flood", withEndpoint(flood.URL, true)),
		function("deaf", "ns"), slice("deaf-1", "ns", "deaf", withEndpoint(deafRaw.URL, true)),
		function("sleepy", "ns", withTimeout(200*time.Millisecond)), slice("sleepy-1", "ns", "sleepy", withEndpoint(sleepy.URL, true)),
		function("cut", "ns"), slice("cut-1", "ns", "cut", withEndpoint(cut.URL, true)),
		function("good", "ns"), slice("good-1", "ns", "good", withEndpoint(good.URL, true)))

	// Meanwhile: the well-behaved function answers every request.
	stop := make(chan struct{})
	var goodDone sync.WaitGroup
	var goodOK, goodFailed atomic.Int64
	goodDone.Add(1)
	go func() {
		defer goodDone.Done()
		for i := 0; i < 10000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/good/")
			if err != nil {
				goodFailed.Add(1)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "hello from good\n" {
				goodOK.Add(1)
			} else {
				goodFailed.Add(1)
			}
		}
	}()

	// The flood: the client reads 1 MiB and goes; the function's writes fail soon after.
	resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/flood/")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil || n != 1<<20 {
		t.Fatalf("reading the flood: %d %v", n, err)
	}
	resp.Body.Close()
	select {
	case err := <-floodStopped:
		if err == nil {
			t.Errorf("the flood wrote all %d bytes though its client went after 1 MiB", floodWritten.Load())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("the flood still writes 20 s after its client went (%d bytes)", floodWritten.Load())
	}

	// The deaf one: 8 MiB sent that it never reads; its answer still comes back.
	r, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/f/ns/deaf/", bytes.NewReader(make([]byte, 8<<20)))
	if resp, err := f.srv.Client().Do(r); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "not listening\n" {
			t.Errorf("the deaf function: %d %q", resp.StatusCode, body)
		}
	} else if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("the deaf function: %v", err)
	}

	// The sleeper: 504 at its timeout.
	if resp, body := f.get(t, "/f/ns/sleepy/"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("the sleeper: %d %q, want 504", resp.StatusCode, body)
	}

	// The cut one: its client sees the answer end early, not a whole one.
	if resp, err := f.srv.Client().Get(f.srv.URL + "/f/ns/cut/"); err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && len(body) == 100 {
			t.Errorf("the cut function's answer arrived whole: %q", body)
		}
	}

	close(stop)
	goodDone.Wait()
	if goodFailed.Load() > 0 || goodOK.Load() == 0 {
		t.Errorf("the well-behaved function beside them: %d answered, %d failed", goodOK.Load(), goodFailed.Load())
	}
}

// newBackendRaw is a function's pod whose handler is h alone: it reads nothing of the body.
func newBackendRaw(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// rawFunction is a function on loopback that writes its answers byte by byte: serve gets each
// connection, on a goroutine of its own, and it is closed after. It returns the function's URL.
func rawFunction(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestBytesPastTheAnswer: a function that writes more than its Content-Length leaves bytes on
// its connection; the gateway does not keep that connection, so the next request is not
// answered with them (a POST, which is not sent again on a new connection).
func TestBytesPastTheAnswer(t *testing.T) {
	t.Parallel()
	url := rawFunction(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			// 5 bytes announced, 9 sent, in one write: the extra 4 arrive with the answer.
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHelloXXXX"); err != nil {
				return
			}
		}
	})
	f := newFixture(t, Options{}, function("sloppy", "ns"), slice("sloppy-1", "ns", "sloppy", withEndpoint(url, true)))
	for i := range 3 {
		resp, err := f.srv.Client().Post(f.srv.URL+"/f/ns/sloppy/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "Hello" {
			t.Fatalf("POST %d: %d %q, want 200 \"Hello\"", i+1, resp.StatusCode, b)
		}
	}
}
