// Package engine runs fn's event engine: a NATS server with JetStream, embedded, its store on
// local disk. The local platform runs it as a process of its own ("fn internal events"); on a
// cluster fn uses a NATS deployment of the cluster's instead.
package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the engine.
type Options struct {
	// Dir is JetStream's store: streams, consumers and their state survive restarts in it.
	Dir string
	// Addr is the client address, HOST:PORT.
	Addr string
	// MonitorAddr, when set, serves NATS's monitoring endpoints (/healthz, /varz, /jsz).
	MonitorAddr string
	// MaxPayload bounds a message (default MaxPayload).
	MaxPayload int32
	// MaxMemory and MaxStore bound JetStream's memory and file storage (default: NATS's own,
	// a share of the machine's memory and of the store's disk).
	MaxMemory, MaxStore int64
}

// MaxPayload is the engine's default bound on a message: the gateway's bound on an async
// call's body, plus its request head.
const MaxPayload = 8 << 20

// startWait bounds how long the server may take to accept connections; it takes a few tens of
// milliseconds, more when it recovers a large store.
const startWait = time.Minute

// Run serves the engine until ctx is done, then shuts it down, which leaves its store
// consistent (JetStream syncs it; a crash loses at most what the last sync had not written).
func Run(ctx context.Context, o Options, logf func(string, ...any)) error {
	s, err := Start(o, logf)
	if err != nil {
		return err
	}
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// Start starts the engine and returns once it accepts connections.
func Start(o Options, logf func(string, ...any)) (*server.Server, error) {
	if o.Dir == "" || o.Addr == "" {
		return nil, errors.New("the engine's store directory and address are required")
	}
	host, port, err := splitAddr(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("the engine's address: %w", err)
	}
	opts := &server.Options{
		ServerName: "fn-events", Host: host, Port: port,
		JetStream: true, StoreDir: o.Dir, JetStreamMaxMemory: o.MaxMemory, JetStreamMaxStore: o.MaxStore,
		MaxPayload: o.MaxPayload, NoSigs: true,
		// Without: a server that starts with no cluster waits, then logs, about its peers.
		DisableJetStreamBanner: true,
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = MaxPayload
	}
	if o.MonitorAddr != "" {
		if opts.HTTPHost, opts.HTTPPort, err = splitAddr(o.MonitorAddr); err != nil {
			return nil, fmt.Errorf("the engine's monitoring address: %w", err)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring the event engine: %w", err)
	}
	if logf != nil {
		s.SetLoggerV2(logger{logf}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(startWait) {
		s.Shutdown()
		return nil, fmt.Errorf("the event engine did not accept connections on %s within %s (store %s)", o.Addr, startWait, o.Dir)
	}
	return s, nil
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a port number", p)
	}
	return host, port, nil
}

// logger sends the server's notices, warnings and errors to logf, one line each.
type logger struct{ logf func(string, ...any) }

func (l logger) Noticef(format string, v ...any) { l.logf("notice: "+format, v...) }
func (l logger) Warnf(format string, v ...any)   { l.logf("warning: "+format, v...) }
func (l logger) Fatalf(format string, v ...any)  { l.logf("fatal: "+format, v...) }
func (l logger) Errorf(format string, v ...any)  { l.logf("error: "+format, v...) }
func (l logger) Debugf(string, ...any)           {}
func (l logger) Tracef(string, ...any)           {}
