// Command fn-gateway is the one HTTP entry for all functions: it routes requests to functions'
// pods by their EndpointSlices.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"fnkit.dev/fn/events"
	"fnkit.dev/fn/gateway"
	"fnkit.dev/fn/internal/restconfig"
)

func main() {
	addr := flag.String("addr", ":8080", "address to serve functions on")
	internal := flag.String("internal-addr", ":9090", "address of the gateway's own endpoints, /_gw/health and /_gw/metrics: keep it from the public")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: the in-cluster config, else $KUBECONFIG or ~/.kube/config)")
	domain := flag.String("domain", "fn.local", "domain of functions' host names: NAME.NAMESPACE.DOMAIN")
	var o gateway.Options
	flag.StringVar(&o.AutoscalerService, "autoscaler-service", "", "NAMESPACE/NAME of the autoscaler's Service: every ready endpoint of it gets this gateway's load reports, and requests for functions at zero are held while they start")
	urls := flag.String("autoscaler-url", "", "comma-separated base URLs of autoscalers to report to (instead of, or beside, --autoscaler-service)")
	flag.IntVar(&o.MaxHeld, "max-held", gateway.DefaultMaxHeld, "requests held per function while it starts; past it, 503")
	flag.StringVar(&o.PeerService, "peer-service", "", "NAMESPACE/NAME of the gateways' own Service: each applies its share of a function's rate limit (the limit over its ready endpoints)")
	eventsURL := flag.String("events", "", "URL of the NATS (JetStream) servers of asynchronous calls, nats://HOST:PORT[,...]; without (and without --events-service), async calls are answered 503")
	eventsService := flag.String("events-service", "", "NAMESPACE/NAME of fn's event engine's Service, reached by its EndpointSlices (instead of --events)")
	flag.Parse()
	if *urls != "" {
		o.AutoscalerURLs = strings.Split(*urls, ",")
	}
	o.ID = os.Getenv("POD_NAME")
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gateway.GCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// One access log line per request: batched, so that it costs no write per request.
	logs := gateway.NewLogBuffer(os.Stderr, 100*time.Millisecond)
	o.Domain, o.Logger, o.AccessLog = *domain, slog.New(slog.NewJSONHandler(logs, nil)), logs
	if *eventsURL == "" && *eventsService != "" {
		o.EventsDialer = &gateway.ServiceDialer{Service: *eventsService}
		_, name, _ := strings.Cut(*eventsService, "/")
		*eventsURL = "nats://" + name + ":4222" // the dialer's to resolve
	}
	if *eventsURL != "" {
		eo := events.Options{URL: *eventsURL, Name: "fn-gateway " + o.ID, Log: o.Logger}
		if o.EventsDialer != nil {
			eo.Dialer = o.EventsDialer
		}
		q, err := events.Connect(ctx, eo)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fn-gateway: %v\n", err)
			os.Exit(2)
		}
		defer q.Close()
		o.Events = q
	}
	err := run(ctx, *addr, *internal, *kubeconfig, o)
	_ = logs.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fn-gateway: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, internal, kubeconfig string, o gateway.Options) error {
	cfg, err := restconfig.Load(kubeconfig)
	if err != nil {
		return err
	}
	g, err := gateway.New(ctx, cfg, o)
	if err != nil {
		return err
	}
	o.Logger.Info("serving", "addr", addr, "internal", internal, "domain", o.Domain, "autoscaler", o.AutoscalerService, "autoscalerURLs", o.AutoscalerURLs)
	errs := make(chan error, 1)
	go func() { errs <- gateway.ServeInternal(ctx, internal, g) }()
	go func() { errs <- gateway.Serve(ctx, addr, g) }()
	return <-errs
}
