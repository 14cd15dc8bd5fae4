package function

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/kmeta"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// revision is one of a Function's revisions: a ControllerRevision holding what runs.
type revision struct {
	cr       *appsv1.ControllerRevision
	template v1alpha1.Template
}

func (r revision) name() string   { return r.cr.Name }
func (r revision) released() bool { return r.cr.Annotations[fn.ReleasedAnnotation] == "true" }

// revisions lists Function f's revisions, newest first, and the highest number of any revision
// of a Function of its name: one deleted before and made again numbers on from the old one's,
// whose revisions (and their Deployments) the garbage collector may not have removed yet.
func (r *Reconciler) revisions(f *v1alpha1.Function) ([]revision, int64, error) {
	crs, err := r.revisionLister.ControllerRevisions(f.Namespace).List(labels.SelectorFromSet(labels.Set{fn.FunctionLabelKey: f.Name}))
	if err != nil {
		return nil, 0, fmt.Errorf("listing revisions: %w", err)
	}
	out := make([]revision, 0, len(crs))
	var highest int64
	for _, cr := range crs {
		highest = max(highest, cr.Revision)
		if !metav1.IsControlledBy(cr, f) {
			continue
		}
		var t v1alpha1.Template
		if err := json.Unmarshal(cr.Data.Raw, &t); err != nil {
			continue // not one of fn's: never written so
		}
		out = append(out, revision{cr: cr, template: t})
	}
	slices.SortFunc(out, func(a, b revision) int { return int(b.cr.Revision - a.cr.Revision) })
	return out, highest, nil
}

// reconcileRevisions finds the revision of what f's spec runs, making it when it is new, and
// removes the oldest beyond the history kept (never the stable one or one under rollout). It
// returns the latest revision and all those kept, newest first.
func (r *Reconciler) reconcileRevisions(ctx context.Context, f *v1alpha1.Function) (revision, []revision, error) {
	revs, highest, err := r.revisions(f)
	if err != nil {
		return revision{}, nil, err
	}
	t := f.Spec.TemplateOf()
	hash := t.Hash()
	var latest revision
	for _, rv := range revs {
		if rv.cr.Annotations[fn.RevisionHashAnnotation] == hash {
			latest = rv
			break
		}
	}
	if latest.cr == nil {
		n := highest + 1
		data, err := json.Marshal(t)
		if err != nil {
			return revision{}, nil, err
		}
		name := v1alpha1.RevisionName(f.Name, n)
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{
				Name:            name,
				Namespace:       f.Namespace,
				Labels:          map[string]string{fn.FunctionLabelKey: f.Name, fn.RevisionLabelKey: name},
				Annotations:     map[string]string{fn.RevisionHashAnnotation: hash},
				OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(f)},
			},
			Data:     runtime.RawExtension{Raw: data},
			Revision: n,
		}
		cr, err = r.kube.AppsV1().ControllerRevisions(f.Namespace).Create(ctx, cr, metav1.CreateOptions{})
		if apierrs.IsAlreadyExists(err) {
			// Made by an earlier reconcile the lister has not seen yet: tried again when it has.
			return revision{}, nil, fmt.Errorf("revision %s exists, not yet in the cache: %w", name, err)
		}
		if err != nil {
			return revision{}, nil, fmt.Errorf("creating revision %s: %w", name, err)
		}
		controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Revision", "Created revision %s (image %s)", name, t.Image)
		latest = revision{cr: cr, template: t}
		revs = append([]revision{latest}, revs...)
	}
	keep := int(f.Spec.RevisionHistoryOf())
	var kept []revision
	for i, rv := range revs {
		if i < keep || rv.name() == latest.name() || rv.name() == f.Status.StableRevision ||
			(f.Status.Rollout != nil && rv.name() == f.Status.Rollout.From) {
			kept = append(kept, rv)
			continue
		}
		if err := r.kube.AppsV1().ControllerRevisions(f.Namespace).Delete(ctx, rv.name(), metav1.DeleteOptions{}); err != nil && !apierrs.IsNotFound(err) {
			return revision{}, nil, fmt.Errorf("removing revision %s: %w", rv.name(), err)
		}
	}
	return latest, kept, nil
}

// release marks rv as having had all traffic: rolled out at once when it is asked for again.
func (r *Reconciler) release(ctx context.Context, rv revision) error {
	if rv.released() {
		return nil
	}
	patch := []byte(`{"metadata":{"annotations":{"` + fn.ReleasedAnnotation + `":"true"}}}`)
	if _, err := r.kube.AppsV1().ControllerRevisions(rv.cr.Namespace).Patch(ctx, rv.cr.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("marking revision %s released: %w", rv.cr.Name, err)
	}
	return nil
}

// find is the revision named name among revs.
func find(revs []revision, name string) (revision, bool) {
	for _, rv := range revs {
		if rv.name() == name {
			return rv, true
		}
	}
	return revision{}, false
}

// revisionStatus lists revs in f's status with their shares of traffic.
func revisionStatus(f *v1alpha1.Function, revs []revision) {
	f.Status.Revisions = f.Status.Revisions[:0]
	canary, share := "", int32(0)
	if ro := f.Status.Rollout; ro != nil && !ro.Phase.Done() {
		canary, share = ro.Revision, ro.Percent
	}
	for _, rv := range revs {
		rs := v1alpha1.RevisionStatus{Name: rv.name(), Number: rv.cr.Revision, Image: rv.template.Image, Created: rv.cr.CreationTimestamp}
		switch rv.name() {
		case canary:
			rs.Percent = share
		case f.Status.StableRevision:
			rs.Percent = 100 - share
		}
		f.Status.Revisions = append(f.Status.Revisions, rs)
	}
}
