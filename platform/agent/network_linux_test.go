package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// TestPodNetwork gives two sandboxes their own IPs and checks that a server in each, both on
// port 8080, answers the host, that the pods reach each other and the host at the gateway, and
// that detaching leaves no link behind.
func TestPodNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("changes the host's network")
	}
	requireRoot(t)
	n, err := newPodNetwork("10.251.0.0/24", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type pod struct {
		uid string
		sb  *sandbox
		ip  net.IP
	}
	var pods []*pod
	for i := range 2 {
		sb, err := newSandbox(sandboxOptions{net: true, mounts: true, uts: true, ipc: true, hostname: fmt.Sprintf("pod%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		p := &pod{uid: fmt.Sprintf("uid-%d-%d", i, time.Now().UnixNano()), sb: sb}
		pods = append(pods, p)
		t.Cleanup(func() {
			_ = n.detach(p.uid, p.ip)
			sb.close()
		})
		if p.ip, err = n.attach(sb, p.uid); err != nil {
			t.Fatal(err)
		}
		var ln net.Listener
		if err := sb.do(func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("pod %d", i)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, msg) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	// The range is routed nowhere but to its pods: an address no pod has fails at once.
	if err := n.claimRange(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.releaseRange() })
	if _, err := net.DialTimeout("tcp", "10.251.0.250:8080", 5*time.Second); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("dialing an address of the range no pod has: %v, want no route to host", err)
	}
	if pods[0].ip.Equal(pods[1].ip) || pods[0].ip.IsLoopback() {
		t.Fatalf("pod IPs %s and %s", pods[0].ip, pods[1].ip)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for i, p := range pods {
		resp, err := client.Get(fmt.Sprintf("http://%s:8080/", p.ip))
		if err != nil {
			t.Fatalf("host to pod %d (%s): %v", i, p.ip, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != fmt.Sprintf("pod %d", i) {
			t.Errorf("pod %d answered %q", i, b)
		}
	}
	// pod 0 to pod 1, and pod 0 to a server of the host's on the gateway address.
	hostLn, err := net.Listen("tcp", n.gateway().String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "host")
			c.Close()
		}
	}()
	for _, target := range []string{pods[1].ip.String() + ":8080", hostLn.Addr().String()} {
		err := pods[0].sb.do(func() error {
			c, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		})
		if err != nil {
			t.Errorf("pod 0 to %s: %v", target, err)
		}
	}
	for _, p := range pods {
		if err := n.detach(p.uid, p.ip); err != nil {
			t.Error(err)
		}
		if _, err := net.InterfaceByName(n.linkName(p.uid)); err == nil {
			t.Errorf("link %s left after detach", n.linkName(p.uid))
		}
	}
}
