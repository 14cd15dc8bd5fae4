package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"fnkit.dev/fn/internal/tcpproxy"
)

// Pods reach the API server as on any cluster: at the ClusterIP of the default namespace's
// kubernetes Service, named by KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT in every
// container (what client-go's in-cluster configuration reads). The local platform runs no
// kube-proxy, so each agent holds that ClusterIP on the host's loopback and forwards the
// connections made to it to the API server. Every agent listens on it with SO_REUSEPORT: the
// address answers while any agent runs. The API server's certificate names the ClusterIP.
// Other Services' ClusterIPs are not served: fn's components route by EndpointSlices.

// apiService is where pods reach the API server.
type apiService struct {
	ip   net.IP
	port int32
}

// env is the kubernetes Service's variables, as a kubelet sets them in every container.
func (s *apiService) env() []envVar {
	if s == nil {
		return nil
	}
	host, port := s.ip.String(), strconv.Itoa(int(s.port))
	addr := "tcp://" + net.JoinHostPort(host, port)
	prefix := "KUBERNETES_PORT_" + port + "_TCP"
	return []envVar{
		{"KUBERNETES_SERVICE_HOST", host},
		{"KUBERNETES_SERVICE_PORT", port},
		{"KUBERNETES_SERVICE_PORT_HTTPS", port},
		{"KUBERNETES_PORT", addr},
		{prefix, addr},
		{prefix + "_PROTO", "tcp"},
		{prefix + "_PORT", port},
		{prefix + "_ADDR", host},
	}
}

// startAPIService finds the kubernetes Service and serves its ClusterIP (with root); without
// root pods share the host's network and reach the API server where the agent does.
func (p *provider) startAPIService(ctx context.Context, upstream string) error {
	if !p.root {
		u, err := url.Parse(upstream)
		if err != nil {
			return err
		}
		port, _ := strconv.Atoi(cmp.Or(u.Port(), "443"))
		p.apiService = &apiService{ip: net.ParseIP(u.Hostname()), port: int32(port)}
		return nil
	}
	s, err := lookupAPIService(ctx, p.kube)
	if err != nil {
		return err
	}
	if err := s.serve(ctx, upstream, p.log); err != nil {
		return err
	}
	p.apiService = s
	return nil
}

// lookupAPIService reads the kubernetes Service, which the API server creates as it starts.
func lookupAPIService(ctx context.Context, kube kubernetes.Interface) (*apiService, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		svc, err := kube.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil {
			ip := net.ParseIP(svc.Spec.ClusterIP).To4()
			if ip == nil || len(svc.Spec.Ports) == 0 {
				return nil, fmt.Errorf("the kubernetes Service has no IPv4 ClusterIP or no port")
			}
			return &apiService{ip: ip, port: svc.Spec.Ports[0].Port}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading the kubernetes Service: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve holds the ClusterIP on loopback and forwards connections to it to the API server at
// upstream (its URL), until ctx ends.
func (s *apiService) serve(ctx context.Context, upstream string, log *slog.Logger) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("API server URL %q: %v", upstream, err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "443")
	}
	if err := holdLoopbackAddr(s.ip); err != nil {
		return err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(s.ip.String(), strconv.Itoa(int(s.port))))
	if err != nil {
		return fmt.Errorf("serving the kubernetes Service: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					log.Warn("kubernetes Service: accepting", "error", err)
				}
				return
			}
			go forward(ctx, c, target, log)
		}
	}()
	return nil
}

// forward splices c to a new connection to target, until either side closes or ctx ends.
func forward(ctx context.Context, c net.Conn, target string, log *slog.Logger) {
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		log.Warn("kubernetes Service: reaching the API server", "error", err)
		c.Close()
		return
	}
	tcpproxy.Splice(ctx, c, up)
}

// holdLoopbackAddr adds ip/32 to the loopback interface unless it is there already (another
// agent added it). It stays when the agent stops: another may still serve on it.
// RemoveLoopbackAddr takes it away once no agent runs.
func holdLoopbackAddr(ip net.IP) error { return loopbackAddr(ip, true) }

// RemoveLoopbackAddr removes ip/32 from the loopback interface, where agents held the
// kubernetes Service's ClusterIP: for the platform to call once its agents have stopped.
func RemoveLoopbackAddr(ip net.IP) error { return loopbackAddr(ip, false) }

// loopbackAddr adds (or removes) ip/32 on the loopback interface; that it is there already
// (or gone already) is no error.
func loopbackAddr(ip net.IP, add bool) error {
	nl, err := newNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	lo, err := nl.linkIndex("lo")
	if err != nil {
		return err
	}
	if add {
		if err := nl.addAddr(lo, ip); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	}
	if err := nl.delAddr(lo, ip); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	return nil
}
