// Command fn-controller reconciles Functions into Deployments, Services and autoscalers.
package main

import (
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"

	"fnkit.dev/fn/controller/reconciler/function"
)

func main() {
	cfg := injection.ParseAndGetRESTConfigOrDie()
	// A Function costs three to four API writes; client-go's default of 5 per second would take
	// minutes to settle a thousand. --kube-api-qps and --kube-api-burst still override this.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 100, 200
	}
	controller.DefaultThreadsPerController = 4
	sharedmain.MainWithConfig(signals.NewContext(), "fn-controller", cfg, function.NewController)
}
