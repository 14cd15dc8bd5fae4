// Command fn-controller reconciles Functions into Deployments, Services and autoscalers, and runs
// the concurrency and rps autoscaler: every replica takes the gateways' reports on
// --autoscaler-addr; the one elected through the fn-autoscaler Lease decides.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"

	fncontroller "fnkit.dev/fn/controller"
	"fnkit.dev/fn/controller/autoscaler"
	"fnkit.dev/fn/controller/reconciler/function"
	"fnkit.dev/fn/controller/reconciler/trigger"
)

func main() {
	addr := flag.String("autoscaler-addr", ":8081", "address the autoscaler takes the gateways' reports on")
	cfg := injection.ParseAndGetRESTConfigOrDie()
	// A new Function costs five API writes (its Deployment, Service and status; the autoscaler's
	// reason and the status that reflects it). At client-go's default of 5 per second a thousand
	// take many minutes; at 100 (and 4 workers) 26 s, bound by the client. The API server's
	// priority and fairness keeps a busy controller from starving others.
	// --kube-api-qps and --kube-api-burst still override this.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = fncontroller.DefaultQPS, fncontroller.DefaultBurst
	}
	ctx := signals.NewContext()
	as, err := startAutoscaler(ctx, cfg, *addr)
	if err != nil {
		log.Fatalf("fn-controller: %v", err)
	}
	ctx = function.WithFigures(ctx, as) // canaries are judged on the gateways' reports
	controller.DefaultThreadsPerController = fncontroller.DefaultWorkers
	sharedmain.MainWithConfig(ctx, "fn-controller", cfg, function.NewController, trigger.NewController)
}

// startAutoscaler starts the autoscaler and its report endpoint on addr.
func startAutoscaler(ctx context.Context, cfg *rest.Config, addr string) (*autoscaler.Autoscaler, error) {
	zl, err := zap.NewProduction()
	if err != nil {
		return nil, err
	}
	ns := os.Getenv("SYSTEM_NAMESPACE")
	if ns == "" {
		ns = autoscaler.DefaultNamespace
	}
	id := os.Getenv("POD_NAME")
	if id == "" {
		id = "fn-controller-" + string(uuid.NewUUID())
	}
	as, err := autoscaler.Start(ctx, cfg, autoscaler.StartOptions{
		Options:  autoscaler.Options{Logger: zl.Sugar().Named("autoscaler")},
		Election: autoscaler.Election{Namespace: ns, Identity: id},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("autoscaler: listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: as, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			zl.Error("autoscaler endpoint", zap.Error(err))
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return as, nil
}
