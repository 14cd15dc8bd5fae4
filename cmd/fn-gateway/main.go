// Command fn-gateway is the one HTTP entry for all functions: it routes requests to functions'
// pods by their EndpointSlices.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"fnkit.dev/fn/gateway"
)

func main() {
	addr := flag.String("addr", ":8080", "address to serve on")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: the in-cluster config, else $KUBECONFIG or ~/.kube/config)")
	domain := flag.String("domain", "fn.local", "domain of functions' host names: NAME.NAMESPACE.DOMAIN")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gateway.GCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// One access log line per request: batched, so that it costs no write per request.
	logs := gateway.NewLogBuffer(os.Stderr, 100*time.Millisecond)
	err := run(ctx, *addr, *kubeconfig, *domain, slog.New(slog.NewJSONHandler(logs, nil)), logs)
	_ = logs.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fn-gateway: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, kubeconfig, domain string, log *slog.Logger, access io.Writer) error {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{Domain: domain, Logger: log, AccessLog: access})
	if err != nil {
		return err
	}
	log.Info("serving", "addr", addr, "domain", domain)
	return gateway.Serve(ctx, addr, g)
}

// restConfig is the kubeconfig file's config when one is named, else the in-cluster config, else
// the one of $KUBECONFIG or ~/.kube/config.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	switch {
	case err != nil && kubeconfig != "":
		return nil, fmt.Errorf("reading the kubeconfig %s: %w", kubeconfig, err)
	case err != nil:
		return nil, fmt.Errorf("no cluster to watch: not in a cluster, and no kubeconfig (--kubeconfig or $KUBECONFIG): %w", err)
	}
	return cfg, nil
}
