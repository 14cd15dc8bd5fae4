package function

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/controller"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/controller/rollout"
)

// Figures gives a Deployment's request figures since a time, as the gateways reported them:
// the autoscaler keeps them.
type Figures interface {
	Figures(k types.NamespacedName, since, now time.Time) rollout.Figures
}

// plan is what the children run, as the rollout decided.
type plan struct {
	// stable is the template the function's own Deployment runs; stableReplicas, when set,
	// its replicas (a batched rollout's), else the autoscaler's.
	stable         v1alpha1.Template
	stableReplicas *int32
	// canary, when set, is the revision that runs beside it, with canaryReplicas replicas
	// when it is made (canaryFixed: also after, in a batched rollout).
	canary         *revision
	canaryReplicas int32
	canaryFixed    bool
	// requeue is when to look again (0: at the next change).
	requeue time.Duration
}

// reconcileRollout decides which revision the function's Deployment runs and which runs beside
// it, from the latest revision, the stable one and the rollout under way, and records it in
// the status.
// again is set when the spec changed to latest since the last reconcile: a rollout of it that
// ended before starts anew.
func (r *Reconciler) reconcileRollout(ctx context.Context, f *v1alpha1.Function, latest revision, revs []revision, again bool) (plan, error) {
	rec := controller.GetEventRecorder(ctx)
	stable, ok := find(revs, f.Status.StableRevision)
	if !ok {
		stable = latest // a new Function, or one made before revisions
		f.Status.StableRevision = latest.name()
	}
	if stable.name() == latest.name() {
		if err := r.release(ctx, latest); err != nil {
			return plan{}, err
		}
	}
	p := plan{stable: stable.template}
	ro := f.Status.Rollout
	strategy := f.Spec.StrategyOf()
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	switch {
	case latest.name() == stable.name():
		if ro != nil && !ro.Phase.Done() {
			ro.Phase, ro.Percent, ro.Reason = v1alpha1.RolloutAborted, 0, "Superseded"
			ro.Message = fmt.Sprintf("the spec is back to %s", stable.name())
			r.restoreBatched(f, ro, &p)
		}
		return p, nil
	case ro != nil && ro.Revision == latest.name() && ro.Phase.Done() && !again:
		return p, nil // rolled back or aborted: the stable revision keeps all until the spec changes
	case strategy == v1alpha1.RolloutRolling || latest.released():
		how := "Rolled out at once: the strategy is rolling"
		if strategy != v1alpha1.RolloutRolling {
			how = "Rolled out at once: it had all traffic before"
		}
		f.Status.StableRevision = latest.name()
		f.Status.Rollout = &v1alpha1.RolloutStatus{Revision: latest.name(), From: stable.name(), Strategy: v1alpha1.RolloutRolling,
			Phase: v1alpha1.RolloutSucceeded, Percent: 100, StepStarted: metav1.NewTime(now), Reason: "RolledOut", Message: how}
		rec.Eventf(f, corev1.EventTypeNormal, "RolledOut", "%s replaces %s. %s", latest.name(), stable.name(), how)
		p.stable = latest.template
		return p, r.release(ctx, latest)
	}

	own, _ := r.deploymentLister.Deployments(f.Namespace).Get(resources.DeploymentName(f))
	if ro == nil || ro.Revision != latest.name() || ro.Phase.Done() || again {
		if ro != nil && !ro.Phase.Done() && ro.Revision != latest.name() {
			rec.Eventf(f, corev1.EventTypeNormal, "RolloutSuperseded", "%s replaces %s's rollout", latest.name(), ro.Revision)
		}
		ro = &v1alpha1.RolloutStatus{Revision: latest.name(), From: stable.name(), Strategy: strategy,
			Phase: v1alpha1.RolloutProgressing, StepStarted: metav1.NewTime(now)}
		if strategy == v1alpha1.RolloutBatched {
			ro.Total = 1
			if own != nil && own.Spec.Replicas != nil && *own.Spec.Replicas > 0 {
				ro.Total = *own.Spec.Replicas
			}
			ro.Replicas = min(ro.Total, f.Spec.Rollout.Batch(ro.Total))
			ro.Percent = ro.Replicas * 100 / ro.Total
		}
		rec.Eventf(f, corev1.EventTypeNormal, "RolloutStarted", "%s rollout of %s over %s", strategy, latest.name(), stable.name())
	}
	obs := rollout.Observed{
		Now:        now,
		Rollout:    f.Spec.Rollout,
		Thresholds: thresholds(f.Spec.Rollout),
		Wanted:     1,
		Paused:     f.Annotations[fn.PausedAnnotation] == "true",
		Resumed:    f.Annotations[fn.ResumedAnnotation],
		Aborted:    f.Annotations[fn.AbortedAnnotation] == latest.name(),
	}
	if strategy == v1alpha1.RolloutBatched {
		obs.Wanted = ro.Replicas
	}
	if d, err := r.deploymentLister.Deployments(f.Namespace).Get(latest.name()); err == nil && metav1.IsControlledBy(d, f) {
		obs.Ready = d.Status.ReadyReplicas
	}
	if ro.Phase == v1alpha1.RolloutPromoting && own != nil {
		obs.StableRolledOut = rolledOut(own, latest.template.Image)
	}
	if r.figures != nil && strategy == v1alpha1.RolloutCanary {
		since := ro.StepStarted.Time
		obs.Old = r.figures.Figures(types.NamespacedName{Namespace: f.Namespace, Name: f.Name}, since, now)
		obs.New = r.figures.Figures(types.NamespacedName{Namespace: f.Namespace, Name: latest.name()}, since, now)
	}
	next, requeue := rollout.Next(*ro, obs)
	if next.Phase != ro.Phase || next.Step != ro.Step {
		kind := corev1.EventTypeNormal
		if next.Phase == v1alpha1.RolloutRolledBack || next.Phase == v1alpha1.RolloutAborted {
			kind = corev1.EventTypeWarning
		}
		rec.Eventf(f, kind, "Rollout"+string(next.Phase), "%s at %d%%: %s", next.Revision, next.Percent, next.Message)
	}
	f.Status.Rollout = &next
	p.requeue = requeue
	switch next.Phase {
	case v1alpha1.RolloutSucceeded:
		f.Status.StableRevision = latest.name()
		p.stable = latest.template
		return p, r.release(ctx, latest)
	case v1alpha1.RolloutRolledBack, v1alpha1.RolloutAborted:
		r.restoreBatched(f, &next, &p)
		return p, nil
	case v1alpha1.RolloutPromoting:
		p.stable = latest.template
		if strategy == v1alpha1.RolloutBatched {
			p.stableReplicas = &next.Total
		}
	default:
		if strategy == v1alpha1.RolloutBatched {
			left := next.Total - next.Replicas
			p.stableReplicas = &left
		}
	}
	p.canary = &latest
	p.canaryReplicas = 1
	if strategy == v1alpha1.RolloutBatched {
		p.canaryReplicas, p.canaryFixed = next.Replicas, true
	}
	return p, nil
}

// restoreBatched gives the function's Deployment back the replicas a batched rollout took.
func (r *Reconciler) restoreBatched(_ *v1alpha1.Function, ro *v1alpha1.RolloutStatus, p *plan) {
	if ro.Strategy == v1alpha1.RolloutBatched && ro.Total > 0 {
		p.stableReplicas = &ro.Total
	}
}

// rolledOut reports whether Deployment d runs image on all its replicas, every one ready.
func rolledOut(d *appsv1.Deployment, image string) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if len(d.Spec.Template.Spec.Containers) == 0 || d.Spec.Template.Spec.Containers[0].Image != image {
		return false
	}
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= want &&
		d.Status.Replicas == d.Status.UpdatedReplicas && d.Status.ReadyReplicas >= want
}

// thresholds are the analysis's bounds of rollout ro.
func thresholds(ro *v1alpha1.Rollout) rollout.Thresholds {
	t := rollout.Thresholds{
		MaxErrorRateIncrease: float64(v1alpha1.DefaultMaxErrorIncrease) / 100,
		MaxP99Ratio:          float64(v1alpha1.DefaultMaxLatencyPct) / 100,
		MinP99Increase:       rollout.DefaultThresholds.MinP99Increase,
		MinRequests:          uint64(v1alpha1.DefaultMinRequests),
		Pause:                ro.PauseOf(v1alpha1.DefaultCanaryPause * time.Second),
	}
	if ro != nil && ro.Analysis != nil {
		a := ro.Analysis
		if a.MaxErrorIncrease != nil {
			t.MaxErrorRateIncrease = float64(*a.MaxErrorIncrease) / 100
		}
		if a.MaxLatencyPercent != nil {
			t.MaxP99Ratio = float64(*a.MaxLatencyPercent) / 100
		}
		if a.MinRequests != nil {
			t.MinRequests = uint64(*a.MinRequests)
		}
	}
	return t
}

// reconcileCanary makes the Deployment and Service of the revision that runs beside the
// function's own, and removes those of revisions that no longer do.
func (r *Reconciler) reconcileCanary(ctx context.Context, f *v1alpha1.Function, p plan) error {
	want := ""
	if p.canary != nil {
		want = p.canary.name()
		rf := f.DeepCopy()
		p.canary.template.Apply(&rf.Spec)
		d := resources.MakeRevisionDeployment(rf, want, p.canaryReplicas, r.cfg)
		dc := r.deployments(f)
		sync := dc.sync
		dc.sync = func(have, want *appsv1.Deployment) (*appsv1.Deployment, bool, error) {
			fixed := want.Spec.Replicas
			updated, changed, err := sync(have, want)
			if err == nil && p.canaryFixed && (updated.Spec.Replicas == nil || *updated.Spec.Replicas != *fixed) {
				updated.Spec.Replicas, changed = fixed, true
			}
			return updated, changed, err
		}
		if _, err := dc.reconcile(ctx, f, d); err != nil {
			return err
		}
		if _, err := r.services(f).reconcile(ctx, f, resources.MakeRevisionService(f, want)); err != nil {
			return err
		}
	}
	// Revisions' Deployments and Services other than want go.
	for _, rs := range f.Status.Revisions {
		if rs.Name == want {
			continue
		}
		r.removeRevisionChildren(ctx, f, rs.Name)
	}
	if ro := f.Status.Rollout; ro != nil && ro.Revision != want {
		r.removeRevisionChildren(ctx, f, ro.Revision)
	}
	return nil
}

// removeRevisionChildren deletes revision rev's Deployment and Service, if f controls them.
func (r *Reconciler) removeRevisionChildren(ctx context.Context, f *v1alpha1.Function, rev string) {
	if rev == f.Name {
		return
	}
	if d, err := r.deploymentLister.Deployments(f.Namespace).Get(rev); err == nil && metav1.IsControlledBy(d, f) {
		if err := r.kube.AppsV1().Deployments(f.Namespace).Delete(ctx, rev, metav1.DeleteOptions{}); err == nil {
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Deleted", "Deleted Deployment %q: revision %s takes no traffic", rev, rev)
		} else if !apierrs.IsNotFound(err) {
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeWarning, "DeleteFailed", "Deleting Deployment %q: %v", rev, err)
		}
	}
	if s, err := r.serviceLister.Services(f.Namespace).Get(rev); err == nil && metav1.IsControlledBy(s, f) {
		if err := r.kube.CoreV1().Services(f.Namespace).Delete(ctx, rev, metav1.DeleteOptions{}); err != nil && !apierrs.IsNotFound(err) {
			controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeWarning, "DeleteFailed", "Deleting Service %q: %v", rev, err)
		}
	}
}
