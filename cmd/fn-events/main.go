// Command fn-events is fn's event engine on a cluster: NATS with JetStream, embedded, its store
// on the volume at --dir. fn install runs it when it is given no NATS of the cluster's; the
// gateways find it by its Service's EndpointSlices.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"fnkit.dev/fn/events/engine"
)

func main() {
	dir := flag.String("dir", "/data", "JetStream's store: the calls, dead letters and records")
	addr := flag.String("addr", ":4222", "address NATS clients connect to")
	monitor := flag.String("monitor-addr", ":8222", "address of NATS's monitoring endpoints (/healthz for probes)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := engine.Run(ctx, engine.Options{Dir: *dir, Addr: *addr, MonitorAddr: *monitor},
		func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }); err != nil {
		fmt.Fprintf(os.Stderr, "fn-events: %v\n", err)
		os.Exit(1)
	}
}
