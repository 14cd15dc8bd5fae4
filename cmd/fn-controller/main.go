// Command fn-controller reconciles Functions into Deployments, Services and autoscalers.
package main

import (
	"knative.dev/pkg/injection/sharedmain"

	"fnkit.dev/fn/controller/reconciler/function"
)

func main() {
	sharedmain.Main("fn-controller", function.NewController)
}
