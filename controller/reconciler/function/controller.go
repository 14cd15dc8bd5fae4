package function

import (
	"context"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	revisioninformer "knative.dev/pkg/client/injection/kube/informers/apps/v1/controllerrevision"
	deploymentinformer "knative.dev/pkg/client/injection/kube/informers/apps/v1/deployment"
	hpainformer "knative.dev/pkg/client/injection/kube/informers/autoscaling/v2/horizontalpodautoscaler"
	serviceinformer "knative.dev/pkg/client/injection/kube/informers/core/v1/service"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/kmeta"
	"knative.dev/pkg/logging"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnclient "fnkit.dev/fn/controller/client/injection/client"
	functioninformer "fnkit.dev/fn/controller/client/injection/informers/fn/v1alpha1/function"
	functionbuildinformer "fnkit.dev/fn/controller/client/injection/informers/fn/v1alpha1/functionbuild"
	functionreconciler "fnkit.dev/fn/controller/client/injection/reconciler/fn/v1alpha1/function"
	"fnkit.dev/fn/controller/reconciler/function/resources"
)

// NewController wires the Function reconciler to its informers: Functions, and the
// Deployments, Services, HorizontalPodAutoscalers and FunctionBuilds that Functions own. The gateway's domain and
// URL come from FN_DOMAIN and FN_GATEWAY_URL.
func NewController(ctx context.Context, _ configmap.Watcher) *controller.Impl {
	cfg := resources.DefaultConfig
	if d := os.Getenv("FN_DOMAIN"); d != "" {
		cfg.Domain = d
	}
	cfg.GatewayURL = os.Getenv("FN_GATEWAY_URL")
	return NewControllerWithConfig(ctx, nil, cfg)
}

// NewControllerWithConfig is NewController with the children's configuration given.
func NewControllerWithConfig(ctx context.Context, _ configmap.Watcher, cfg resources.Config) *controller.Impl {
	deployments := deploymentinformer.Get(ctx)
	services := serviceinformer.Get(ctx)
	hpas := hpainformer.Get(ctx)
	builds := functionbuildinformer.Get(ctx)
	revisions := revisioninformer.Get(ctx)
	r := &Reconciler{
		revisionLister:   revisions.Lister(),
		figures:          FiguresFrom(ctx),
		now:              time.Now,
		fn:               fnclient.Get(ctx),
		buildLister:      builds.Lister(),
		kube:             kubeclient.Get(ctx),
		deploymentLister: deployments.Lister(),
		serviceLister:    services.Lister(),
		hpaLister:        hpas.Lister(),
		cfg:              cfg,
	}
	impl := functionreconciler.NewImpl(ctx, r)

	logger := logging.FromContext(ctx)
	if _, err := functioninformer.Get(ctx).Informer().AddEventHandler(controller.HandleAll(impl.Enqueue)); err != nil {
		logger.Fatalw("watching Functions", "error", err)
	}
	owned := cache.FilteringResourceEventHandler{
		FilterFunc: controller.FilterController(&v1alpha1.Function{}),
		Handler:    controller.HandleAll(enqueueControllerOfAfter(impl, childDelay)),
	}
	for _, inf := range []cache.SharedIndexInformer{deployments.Informer(), services.Informer(), hpas.Informer(), builds.Informer(), revisions.Informer()} {
		if _, err := inf.AddEventHandler(owned); err != nil {
			logger.Fatalw("watching the children of Functions", "error", err)
		}
	}
	return impl
}

// childDelay is how long after a change of a child its Function is reconciled. A scale from
// zero changes the Deployment three or four times within 100 ms (its replicas, then its
// status as the ReplicaSet, the Pod and its readiness follow) while the Deployment controller,
// the scheduler and the node agent wait on the API server: reconciling at each change wrote the
// Function's status as often, among those writes, and in conflict with the autoscaler's
// annotation. Changes of the Function itself are reconciled at once.
const childDelay = 150 * time.Millisecond

// enqueueControllerOfAfter enqueues the controller of a child d after its change; changes
// within d are reconciled once.
func enqueueControllerOfAfter(impl *controller.Impl, d time.Duration) func(any) {
	return func(obj any) {
		object, err := kmeta.DeletionHandlingAccessor(obj)
		if err != nil {
			return
		}
		if owner := metav1.GetControllerOf(object); owner != nil {
			impl.EnqueueKeyAfter(types.NamespacedName{Namespace: object.GetNamespace(), Name: owner.Name}, d)
		}
	}
}

type figuresKey struct{}

// WithFigures gives the controllers made with ctx the source of revisions' figures for canaries'
// analysis: the autoscaler, which takes the gateways' reports.
func WithFigures(ctx context.Context, f Figures) context.Context {
	return context.WithValue(ctx, figuresKey{}, f)
}

// FiguresFrom is ctx's source of figures, or nil.
func FiguresFrom(ctx context.Context) Figures {
	f, _ := ctx.Value(figuresKey{}).(Figures)
	return f
}
