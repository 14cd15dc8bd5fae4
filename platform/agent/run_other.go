//go:build !linux

package agent

import (
	"context"
	"errors"
	"net"
)

// Run fails: the node agent runs pods as Linux processes.
func Run(ctx context.Context, o Options) error {
	return errors.New("fn's node agent runs on Linux only")
}

// RemoveLoopbackAddr does nothing: agents hold no address off Linux.
func RemoveLoopbackAddr(net.IP) error { return nil }
