package function

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
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

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	functionreconciler "fnkit.dev/fn/controller/client/injection/reconciler/fn/v1alpha1/function"
	fnlisters "fnkit.dev/fn/controller/client/listers/fn/v1alpha1"
	"fnkit.dev/fn/controller/reconciler/function/resources"
)

// Reconciler materializes Functions.
type Reconciler struct {
	kube             kubernetes.Interface
	deploymentLister appsv1listers.DeploymentLister
	serviceLister    corev1listers.ServiceLister
	hpaLister        autoscalingv2listers.HorizontalPodAutoscalerLister
	// fn and buildLister delete and list FunctionBuilds (nil buildLister: builds are not
	// reported).
	fn          versioned.Interface
	buildLister fnlisters.FunctionBuildLister
	cfg         resources.Config
	// revisionLister lists the Functions' revisions (ControllerRevisions).
	revisionLister appsv1listers.ControllerRevisionLister
	// figures are the gateways' figures of revisions, for canaries' analysis (nil: none, and
	// a canary waits for traffic).
	figures Figures
	now     func() time.Time
}

var _ functionreconciler.Interface = (*Reconciler)(nil)

// ReconcileKind creates what is missing, updates what differs, and reports the children's state
// in the Function's status (written once, by the generated reconciler, when it changed).
func (r *Reconciler) ReconcileKind(ctx context.Context, f *v1alpha1.Function) pkgreconciler.Event {
	f.SetDefaults(ctx)
	f.Status.InitializeConditions()
	latest, revs, err := r.reconcileRevisions(ctx, f)
	if err != nil {
		return err
	}
	// A spec that changed to a revision rolled back before asks for it again.
	again := f.Status.LatestRevision != "" && f.Status.LatestRevision != latest.name()
	f.Status.LatestRevision = latest.name()
	p, err := r.reconcileRollout(ctx, f, latest, revs, again)
	if err != nil {
		return err
	}
	f.Status.Image = p.stable.Image
	revisionStatus(f, revs)
	f.Status.PropagateRollout()
	if err := r.reconcileDeployment(ctx, f, p); err != nil {
		return err
	}
	if err := r.reconcileCanary(ctx, f, p); err != nil {
		return err
	}
	if err := r.reconcileService(ctx, f); err != nil {
		return err
	}
	if err := r.reconcileAutoscaler(ctx, f); err != nil {
		return err
	}
	if err := r.reconcileBuilds(ctx, f); err != nil {
		return err
	}
	f.Status.MarkReadyScaledToZero()
	if p.requeue > 0 {
		return controller.NewRequeueAfter(p.requeue)
	}
	return nil
}

func (r *Reconciler) deployments(f *v1alpha1.Function) child[*appsv1.Deployment] {
	c := r.kube.AppsV1().Deployments(f.Namespace)
	return child[*appsv1.Deployment]{
		kind: "Deployment",
		get:  func(ns, name string) (*appsv1.Deployment, error) { return r.deploymentLister.Deployments(ns).Get(name) },
		create: func(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, error) {
			return c.Create(ctx, d, metav1.CreateOptions{})
		},
		update: func(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, error) {
			return c.Update(ctx, d, metav1.UpdateOptions{})
		},
		sync: func(have, want *appsv1.Deployment) (*appsv1.Deployment, bool, error) {
			// Replicas belong to the autoscaler once the Deployment exists; the selector is immutable.
			want.Spec.Replicas, want.Spec.Selector = have.Spec.Replicas, have.Spec.Selector
			updated := have.DeepCopy()
			changed, err := syncChild(&updated.ObjectMeta, &updated.Spec, &want.ObjectMeta, want.Spec)
			return updated, changed, err
		},
		notOwned: f.Status.MarkDeploymentNotOwned,
		failed:   f.Status.MarkDeploymentFailed,
	}
}

func (r *Reconciler) services(f *v1alpha1.Function) child[*corev1.Service] {
	c := r.kube.CoreV1().Services(f.Namespace)
	return child[*corev1.Service]{
		kind: "Service",
		get:  func(ns, name string) (*corev1.Service, error) { return r.serviceLister.Services(ns).Get(name) },
		create: func(ctx context.Context, s *corev1.Service) (*corev1.Service, error) {
			return c.Create(ctx, s, metav1.CreateOptions{})
		},
		update: func(ctx context.Context, s *corev1.Service) (*corev1.Service, error) {
			return c.Update(ctx, s, metav1.UpdateOptions{})
		},
		sync: func(have, want *corev1.Service) (*corev1.Service, bool, error) {
			updated := have.DeepCopy()
			changed, err := syncChild(&updated.ObjectMeta, &updated.Spec, &want.ObjectMeta, want.Spec)
			return updated, changed, err
		},
		notOwned: f.Status.MarkServiceNotOwned,
		failed:   f.Status.MarkServiceFailed,
	}
}

func (r *Reconciler) hpas(f *v1alpha1.Function) child[*autoscalingv2.HorizontalPodAutoscaler] {
	c := r.kube.AutoscalingV2().HorizontalPodAutoscalers(f.Namespace)
	type hpa = autoscalingv2.HorizontalPodAutoscaler
	return child[*hpa]{
		kind:   "HorizontalPodAutoscaler",
		get:    func(ns, name string) (*hpa, error) { return r.hpaLister.HorizontalPodAutoscalers(ns).Get(name) },
		create: func(ctx context.Context, h *hpa) (*hpa, error) { return c.Create(ctx, h, metav1.CreateOptions{}) },
		update: func(ctx context.Context, h *hpa) (*hpa, error) { return c.Update(ctx, h, metav1.UpdateOptions{}) },
		sync: func(have, want *hpa) (*hpa, bool, error) {
			updated := have.DeepCopy()
			changed, err := syncChild(&updated.ObjectMeta, &updated.Spec, &want.ObjectMeta, want.Spec)
			return updated, changed, err
		},
		notOwned: f.Status.MarkAutoscalerNotOwned,
		failed:   f.Status.MarkAutoscalerFailed,
	}
}

// reconcileDeployment makes the function's own Deployment run the template p gives it: the
// stable revision's, or the new one's as it is promoted.
func (r *Reconciler) reconcileDeployment(ctx context.Context, f *v1alpha1.Function, p plan) error {
	rf := f.DeepCopy()
	p.stable.Apply(&rf.Spec)
	dc := r.deployments(f)
	if p.stableReplicas != nil {
		sync, fixed := dc.sync, *p.stableReplicas
		dc.sync = func(have, want *appsv1.Deployment) (*appsv1.Deployment, bool, error) {
			updated, changed, err := sync(have, want)
			if err == nil && (updated.Spec.Replicas == nil || *updated.Spec.Replicas != fixed) {
				updated.Spec.Replicas, changed = &fixed, true
			}
			return updated, changed, err
		}
	}
	have, err := dc.reconcile(ctx, f, resources.MakeDeployment(rf, r.cfg))
	if err != nil {
		return err
	}
	desired := int32(1)
	if have.Spec.Replicas != nil {
		desired = *have.Spec.Replicas
	}
	f.Status.DesiredReplicas = desired
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
	if _, err := r.services(f).reconcile(ctx, f, want); err != nil {
		return err
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

// reconcileAutoscaler makes the HorizontalPodAutoscaler of metric cpu, or removes one left
// from it, and reports the autoscaler's own state: fn's autoscaler records its reason on the
// Function (fn.ScaleReasonAnnotation), an HPA in its conditions.
func (r *Reconciler) reconcileAutoscaler(ctx context.Context, f *v1alpha1.Function) error {
	name := resources.HPAName(f)
	if !resources.WantsHPA(f) {
		have, err := r.hpaLister.HorizontalPodAutoscalers(f.Namespace).Get(name)
		if err != nil && !apierrs.IsNotFound(err) {
			return fmt.Errorf("getting HorizontalPodAutoscaler %s: %w", name, err)
		}
		// The concurrency and rps autoscaler is fn's own; remove an HPA left from metric cpu.
		if err == nil && metav1.IsControlledBy(have, f) {
			if err := r.kube.AutoscalingV2().HorizontalPodAutoscalers(f.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrs.IsNotFound(err) {
				f.Status.MarkAutoscalerFailed("DeleteFailed", err)
				return fmt.Errorf("deleting HorizontalPodAutoscaler %s: %w", name, err)
			}
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Deleted", "Deleted HorizontalPodAutoscaler %q: metric is %s", name, f.Spec.Scale.Metric)
		}
		f.Status.PropagateScaleReason(f.Annotations[fn.ScaleReasonAnnotation])
		return nil
	}
	h, err := r.hpas(f).reconcile(ctx, f, resources.MakeHPA(f))
	if err != nil {
		return err
	}
	f.Status.PropagateHPAStatus(&h.Status)
	return nil
}
