package agent

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWarmPool: a pod of the usual kind takes a sandbox made ahead, with its own hostname and a
// network that answers; a pod of another kind does not; the pool refills, and closing it removes
// the links of what no pod took.
func TestWarmPool(t *testing.T) {
	if testing.Short() {
		t.Skip("changes the host's network")
	}
	requireRoot(t)
	n, err := newPodNetwork("10.252.0.0/24", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := newWarmPool(n, slog.New(slog.DiscardHandler), 1)
	readyCount := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.ready)
	}
	waitReady := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); readyCount() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no warm sandbox %s", what)
			}
		}
	}
	waitReady("at the start")

	other := warmOptions
	other.noNewPrivs = false // a container that may gain privileges
	if _, ok := w.take(other); ok {
		t.Fatal("a pod whose options differ took a warm sandbox")
	}
	o := warmOptions
	o.hostname = "fn-warm-test"
	ws, ok := w.take(o)
	if !ok {
		t.Fatal("a pod of the usual kind got no warm sandbox")
	}
	t.Cleanup(func() {
		_ = n.detach(ws.netID, ws.ip)
		ws.sb.close()
	})
	var uts unix.Utsname
	if err := ws.sb.do(func() error { return unix.Uname(&uts) }); err != nil {
		t.Fatal(err)
	}
	if h := unix.ByteSliceToString(uts.Nodename[:]); h != o.hostname {
		t.Errorf("the warm sandbox's hostname is %q, want %q", h, o.hostname)
	}
	var ln net.Listener
	if err := ws.sb.do(func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "warm") })}
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s:8080/", ws.ip))
	if err != nil {
		t.Fatalf("host to the pod in a warm sandbox (%s): %v", ws.ip, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "warm" {
		t.Errorf("the pod answered %q", b)
	}

	waitReady("after one was taken")
	w.mu.Lock()
	left := w.ready[0]
	w.mu.Unlock()
	if left.ip.Equal(ws.ip) {
		t.Errorf("the refilled sandbox has the taken one's IP %s", ws.ip)
	}
	w.close()
	nl, err := newNetlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	if _, err := nl.linkIndex(n.linkName(left.netID)); err == nil {
		t.Error("the link of a warm sandbox no pod took is still there after close")
	}
	if _, err := nl.linkIndex(n.linkName(ws.netID)); err != nil {
		t.Errorf("closing the pool removed the link of a taken sandbox: %v", err)
	}
	if _, ok := w.take(o); ok {
		t.Error("a closed pool gave a sandbox")
	}
}
