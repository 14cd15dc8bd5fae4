// Package trigger reconciles Triggers: a Trigger is Ready when its spec is valid and its
// Function exists; the gateway routes events only through Ready Triggers.
package trigger

import (
	"context"

	apierrs "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/logging"
	pkgreconciler "knative.dev/pkg/reconciler"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	functioninformer "fnkit.dev/fn/controller/client/injection/informers/fn/v1alpha1/function"
	triggerinformer "fnkit.dev/fn/controller/client/injection/informers/fn/v1alpha1/trigger"
	triggerreconciler "fnkit.dev/fn/controller/client/injection/reconciler/fn/v1alpha1/trigger"
	fnlisters "fnkit.dev/fn/controller/client/listers/fn/v1alpha1"
)

// Reconciler sets a Trigger's status from its spec and its Function.
type Reconciler struct {
	functions fnlisters.FunctionLister
}

var _ triggerreconciler.Interface = (*Reconciler)(nil)

// ReconcileKind marks t Ready, or not Ready with the reason.
func (r *Reconciler) ReconcileKind(ctx context.Context, t *v1alpha1.Trigger) pkgreconciler.Event {
	t.Status.InitializeConditions()
	if err := t.Validate(ctx); err != nil {
		t.Status.MarkInvalid(err.Error())
		return nil
	}
	if _, err := r.functions.Functions(t.Namespace).Get(t.Spec.Function); apierrs.IsNotFound(err) {
		t.Status.MarkFunctionNotFound(t.Spec.Function)
		return nil
	} else if err != nil {
		return err
	}
	t.Status.MarkFunctionFound()
	return nil
}

// NewController wires the reconciler to the Trigger informer, and to the Function informer:
// a Function made or deleted has the Triggers of its namespace that name it reconciled.
func NewController(ctx context.Context, _ configmap.Watcher) *controller.Impl {
	triggers := triggerinformer.Get(ctx)
	functions := functioninformer.Get(ctx)
	impl := triggerreconciler.NewImpl(ctx, &Reconciler{functions: functions.Lister()})
	logger := logging.FromContext(ctx)
	if _, err := triggers.Informer().AddEventHandler(controller.HandleAll(impl.Enqueue)); err != nil {
		logger.Fatalw("watching Triggers", "error", err)
	}
	naming := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		f, ok := obj.(*v1alpha1.Function)
		if !ok {
			return
		}
		list, _ := triggers.Lister().Triggers(f.Namespace).List(labels.Everything())
		for _, t := range list {
			if t.Spec.Function == f.Name {
				impl.Enqueue(t)
			}
		}
	}
	if _, err := functions.Informer().AddEventHandler(controller.HandleAll(naming)); err != nil {
		logger.Fatalw("watching Functions for Triggers", "error", err)
	}
	return impl
}
