package function

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	appsv1listers "k8s.io/client-go/listers/apps/v1"
	autoscalingv2listers "k8s.io/client-go/listers/autoscaling/v2"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"
	pkgreconciler "knative.dev/pkg/reconciler"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	functionreconciler "fnkit.dev/fn/controller/client/injection/reconciler/fn/v1alpha1/function"
	"fnkit.dev/fn/controller/reconciler/function/resources"
)

// Reconciler materializes Functions.
type Reconciler struct {
	kube             kubernetes.Interface
	deploymentLister appsv1listers.DeploymentLister
	serviceLister    corev1listers.ServiceLister
	hpaLister        autoscalingv2listers.HorizontalPodAutoscalerLister
	cfg              resources.Config
}

var _ functionreconciler.Interface = (*Reconciler)(nil)

// ReconcileKind creates what is missing, updates what differs, and reports the children's state
// in the Function's status (written once, by the generated reconciler, when it changed).
func (r *Reconciler) ReconcileKind(ctx context.Context, f *v1alpha1.Function) pkgreconciler.Event {
	f.SetDefaults(ctx)
	f.Status.InitializeConditions()
	f.Status.Image = f.Spec.Image

	if err := r.reconcileDeployment(ctx, f); err != nil {
		return err
	}
	if err := r.reconcileService(ctx, f); err != nil {
		return err
	}
	if err := r.reconcileHPA(ctx, f); err != nil {
		return err
	}
	return nil
}

func (r *Reconciler) reconcileDeployment(ctx context.Context, f *v1alpha1.Function) error {
	want := resources.MakeDeployment(f, r.cfg)
	have, err := r.deploymentLister.Deployments(f.Namespace).Get(want.Name)
	switch {
	case apierrs.IsNotFound(err):
		have, err = r.kube.AppsV1().Deployments(f.Namespace).Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			f.Status.MarkDeploymentFailed("CreateFailed", err)
			return fmt.Errorf("creating Deployment %s: %w", want.Name, err)
		}
		controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Created", "Created Deployment %q", want.Name)
	case err != nil:
		return fmt.Errorf("getting Deployment %s: %w", want.Name, err)
	case !metav1.IsControlledBy(have, f):
		f.Status.MarkDeploymentNotOwned(want.Name)
		return controller.NewPermanentError(fmt.Errorf("function %s does not own Deployment %s", f.Name, want.Name))
	default:
		// Replicas belong to the autoscaler once the Deployment exists; the selector is immutable.
		want.Spec.Replicas, want.Spec.Selector = have.Spec.Replicas, have.Spec.Selector
		updated := have.DeepCopy()
		changed, err := syncChild(&updated.ObjectMeta, &updated.Spec, &want.ObjectMeta, want.Spec)
		if err != nil {
			return err
		}
		if changed {
			if have, err = r.kube.AppsV1().Deployments(f.Namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				f.Status.MarkDeploymentFailed("UpdateFailed", err)
				return fmt.Errorf("updating Deployment %s: %w", want.Name, err)
			}
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Updated", "Updated Deployment %q", want.Name)
		}
	}
	desired := int32(1)
	if have.Spec.Replicas != nil {
		desired = *have.Spec.Replicas
	}
	switch {
	case desired == 0 && have.Status.Replicas == 0:
		f.Status.MarkScaledToZero()
	default:
		f.Status.PropagateDeploymentStatus(&have.Status)
		ready := f.Status.GetCondition(v1alpha1.FunctionConditionDeploymentReady)
		// Rolling out until the Deployment saw the current spec, every replica runs it, and no
		// replica of an older version is left.
		rolling := have.Status.ObservedGeneration < have.Generation || have.Status.UpdatedReplicas < desired ||
			have.Status.Replicas > have.Status.UpdatedReplicas
		if rolling && ready != nil && ready.Status == corev1.ConditionTrue {
			f.Status.MarkDeploymentRollingOut(have.Status.UpdatedReplicas, desired)
		}
	}
	return nil
}

func (r *Reconciler) reconcileService(ctx context.Context, f *v1alpha1.Function) error {
	want := resources.MakeService(f)
	have, err := r.serviceLister.Services(f.Namespace).Get(want.Name)
	switch {
	case apierrs.IsNotFound(err):
		if _, err := r.kube.CoreV1().Services(f.Namespace).Create(ctx, want, metav1.CreateOptions{}); err != nil {
			f.Status.MarkServiceFailed("CreateFailed", err)
			return fmt.Errorf("creating Service %s: %w", want.Name, err)
		}
		controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Created", "Created Service %q", want.Name)
	case err != nil:
		return fmt.Errorf("getting Service %s: %w", want.Name, err)
	case !metav1.IsControlledBy(have, f):
		f.Status.MarkServiceNotOwned(want.Name)
		return controller.NewPermanentError(fmt.Errorf("function %s does not own Service %s", f.Name, want.Name))
	default:
		updated := have.DeepCopy()
		changed, err := syncChild(&updated.ObjectMeta, &updated.Spec, &want.ObjectMeta, want.Spec)
		if err != nil {
			return err
		}
		if changed {
			if _, err := r.kube.CoreV1().Services(f.Namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				f.Status.MarkServiceFailed("UpdateFailed", err)
				return fmt.Errorf("updating Service %s: %w", want.Name, err)
			}
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Updated", "Updated Service %q", want.Name)
		}
	}
	f.Status.MarkServiceReady()
	f.Status.SetAddress(
		apis.HTTP(fmt.Sprintf("%s.%s.svc.cluster.local", want.Name, f.Namespace)),
		r.functionURL(f),
	)
	return nil
}

// functionURL is where the function answers through the gateway.
func (r *Reconciler) functionURL(f *v1alpha1.Function) *apis.URL {
	if r.cfg.GatewayURL != "" {
		if u, err := apis.ParseURL(fmt.Sprintf("%s/f/%s/%s/", r.cfg.GatewayURL, f.Namespace, f.Name)); err == nil {
			return u
		}
	}
	return apis.HTTP(fmt.Sprintf("%s.%s.%s", f.Name, f.Namespace, r.cfg.Domain))
}

func (r *Reconciler) reconcileHPA(ctx context.Context, f *v1alpha1.Function) error {
	name := resources.HPAName(f)
	have, err := r.hpaLister.HorizontalPodAutoscalers(f.Namespace).Get(name)
	if err != nil && !apierrs.IsNotFound(err) {
		return fmt.Errorf("getting HorizontalPodAutoscaler %s: %w", name, err)
	}
	if !resources.WantsHPA(f) {
		// The concurrency and rps autoscaler is fn's own; remove an HPA left from metric cpu.
		if err == nil && metav1.IsControlledBy(have, f) {
			if err := r.kube.AutoscalingV2().HorizontalPodAutoscalers(f.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrs.IsNotFound(err) {
				f.Status.MarkAutoscalerFailed("DeleteFailed", err)
				return fmt.Errorf("deleting HorizontalPodAutoscaler %s: %w", name, err)
			}
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Deleted", "Deleted HorizontalPodAutoscaler %q: metric is %s", name, f.Spec.Scale.Metric)
		}
		f.Status.MarkAutoscalerReady()
		return nil
	}
	want := resources.MakeHPA(f)
	switch {
	case apierrs.IsNotFound(err):
		if _, err := r.kube.AutoscalingV2().HorizontalPodAutoscalers(f.Namespace).Create(ctx, want, metav1.CreateOptions{}); err != nil {
			f.Status.MarkAutoscalerFailed("CreateFailed", err)
			return fmt.Errorf("creating HorizontalPodAutoscaler %s: %w", name, err)
		}
		controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Created", "Created HorizontalPodAutoscaler %q", name)
	case !metav1.IsControlledBy(have, f):
		f.Status.MarkAutoscalerNotOwned(name)
		return controller.NewPermanentError(fmt.Errorf("function %s does not own HorizontalPodAutoscaler %s", f.Name, name))
	default:
		updated := have.DeepCopy()
		changed, err := syncChild(&updated.ObjectMeta, &updated.Spec, &want.ObjectMeta, want.Spec)
		if err != nil {
			return err
		}
		if changed {
			if _, err := r.kube.AutoscalingV2().HorizontalPodAutoscalers(f.Namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				f.Status.MarkAutoscalerFailed("UpdateFailed", err)
				return fmt.Errorf("updating HorizontalPodAutoscaler %s: %w", name, err)
			}
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Updated", "Updated HorizontalPodAutoscaler %q", name)
		}
	}
	f.Status.MarkAutoscalerReady()
	return nil
}

// owned is what the reconciler compares and overlays of a child: its labels, owner references
// and spec. Status and server-managed metadata are not the reconciler's.
type owned[S any] struct {
	Labels          map[string]string       `json:"labels,omitempty"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
	Spec            S                       `json:"spec"`
}

// syncChild overlays want's labels, owner references and spec on a child (a copy of what the API
// server has), and reports whether that changed anything.
func syncChild[S any](have *metav1.ObjectMeta, haveSpec *S, want *metav1.ObjectMeta, wantSpec S) (bool, error) {
	h := owned[S]{have.Labels, have.OwnerReferences, *haveSpec}
	w := owned[S]{want.Labels, want.OwnerReferences, wantSpec}
	if ok, err := contains(h, w); err != nil || ok {
		return false, err
	}
	var out owned[S]
	if err := overlay(h, w, &out); err != nil {
		return false, err
	}
	have.Labels, have.OwnerReferences, *haveSpec = out.Labels, out.OwnerReferences, out.Spec
	return true, nil
}
