// Package tcpproxy splices TCP connections: what the local platform's Service addresses (the
// kubernetes Service's ClusterIP, the gateway's load balancer) do with each connection.
package tcpproxy

import (
	"context"
	"io"
	"net"
	"sync"
)

// Splice copies between a and b both ways until both directions end or ctx does, passing each
// side's end of writing on to the other (a half-close), then closes both.
func Splice(ctx context.Context, a, b net.Conn) {
	defer a.Close()
	defer b.Close()
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
}
