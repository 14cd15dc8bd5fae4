package agent

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A warmPool keeps pod sandboxes made ahead of need: their namespaces and their network (the
// veth pair, the pod's IP and routes) cost 4 to 10 ms of a pod's start, in the middle of a
// scale from zero. A pod of the usual kind (its own network, UTS and IPC namespaces, no
// privilege escalation: every Function's pod) takes one and only sets its hostname; the pool is
// refilled refillDelay later, once the pod that took one has started, not while it starts.
// Other pods make their sandbox as before.
type warmPool struct {
	net  *podNetwork
	log  *slog.Logger
	size int

	mu      sync.Mutex
	ready   []warmSandbox
	closed  bool
	filling bool        // a fill is due or under way
	timer   *time.Timer // the due fill's
	wg      sync.WaitGroup
}

// warmSandbox is a sandbox of warmOptions with its network attached under netID.
type warmSandbox struct {
	sb    *sandbox
	ip    net.IP
	netID string
}

// warmOptions are the sandbox options the pool makes (the hostname is set when one is taken).
var warmOptions = sandboxOptions{net: true, mounts: true, uts: true, ipc: true, noNewPrivs: true}

// refillDelay is how long after a sandbox is taken the pool makes another.
const refillDelay = time.Second

func newWarmPool(n *podNetwork, log *slog.Logger, size int) *warmPool {
	w := &warmPool{net: n, log: log, size: size}
	w.fillLater(0)
	return w
}

// take returns a warm sandbox for a pod of options o, with o's hostname set, or false when o is
// not what the pool makes or none is ready.
func (w *warmPool) take(o sandboxOptions) (warmSandbox, bool) {
	want := o
	want.hostname = ""
	if w == nil || want != warmOptions {
		return warmSandbox{}, false
	}
	w.mu.Lock()
	if len(w.ready) == 0 || w.closed {
		w.mu.Unlock()
		return warmSandbox{}, false
	}
	ws := w.ready[len(w.ready)-1]
	w.ready = w.ready[:len(w.ready)-1]
	w.mu.Unlock()
	w.fillLater(refillDelay)
	if o.hostname != "" {
		h := o.hostname
		if len(h) > 63 {
			h = h[:63]
		}
		if err := ws.sb.do(func() error { return unix.Sethostname([]byte(h)) }); err != nil {
			w.discard(ws)
			return warmSandbox{}, false
		}
	}
	ws.sb.o.hostname = o.hostname
	return ws, true
}

// fillLater fills the pool after d, unless a fill is already due.
func (w *warmPool) fillLater(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.filling || w.closed {
		return
	}
	w.filling = true
	w.wg.Add(1)
	w.timer = time.AfterFunc(d, func() {
		defer w.wg.Done()
		w.fill()
	})
}

func (w *warmPool) fill() {
	for {
		w.mu.Lock()
		if w.closed || len(w.ready) >= w.size {
			w.filling = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		ws, err := w.make()
		w.mu.Lock()
		if err != nil || w.closed {
			w.filling = false
			w.mu.Unlock()
			if err != nil {
				w.log.Warn("making a warm pod sandbox", "error", err) // pods make their own
			} else {
				w.discard(ws)
			}
			return
		}
		w.ready = append(w.ready, ws)
		w.mu.Unlock()
	}
}

func (w *warmPool) make() (warmSandbox, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return warmSandbox{}, err
	}
	sb, err := newSandbox(warmOptions)
	if err != nil {
		return warmSandbox{}, err
	}
	id := "warm-" + hex.EncodeToString(b[:])
	ip, err := w.net.attach(sb, id)
	if err != nil {
		sb.close()
		return warmSandbox{}, err
	}
	return warmSandbox{sb: sb, ip: ip, netID: id}, nil
}

func (w *warmPool) discard(ws warmSandbox) {
	if err := w.net.detach(ws.netID, ws.ip); err != nil {
		w.log.Warn("removing a warm sandbox's network", "error", err)
	}
	ws.sb.close()
}

// close removes the sandboxes no pod took, and makes no more.
func (w *warmPool) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.closed = true
	if w.timer != nil && w.timer.Stop() {
		w.wg.Done() // the due fill will not run
	}
	w.mu.Unlock()
	w.wg.Wait() // a fill under way ends (and discards what it made)
	w.mu.Lock()
	ready := w.ready
	w.ready = nil
	w.mu.Unlock()
	for _, ws := range ready {
		w.discard(ws)
	}
}
