package h1

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// nowhere is a Router that forwards nothing and answers 404.
type nowhere struct{ http.Handler }

func (nowhere) Route(*http.Request, *Forward) bool { return false }
func (nowhere) Retry(*Forward) bool                { return false }
func (nowhere) ErrorText(*Forward, int) string     { return "" }
func (nowhere) Done(*Forward, int, error)          {}

// TestBuffersGivenBack: a connection holds its buffers while it is busy or was just used, gives
// them back after HotIdle, takes them again for its next request, and gives them back when it
// closes.
func TestBuffersGivenBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{router: nowhere{http.NotFoundHandler()}, backends: newBackendPool(), handoff: newConnListener(ln.Addr()), conns: map[*conn]struct{}{}}
	go func() { _ = s.accept(ln) }()
	t.Cleanup(func() { ln.Close() })
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	eventually("buffers held by the new connection", func() bool { return s.buffered.Load() == 1 })
	eventually("buffers given back after HotIdle", func() bool { return s.buffered.Load() == 0 })
	if _, err := io.WriteString(cl, "G"); err != nil {
		t.Fatal(err)
	}
	eventually("buffers taken again for a request", func() bool { return s.buffered.Load() == 1 })
	cl.Close()
	eventually("buffers given back when the connection closed", func() bool { return s.buffered.Load() == 0 })
}
