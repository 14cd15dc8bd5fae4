package function

import (
	"context"
	"fmt"
	"sort"

	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// reconcileBuilds reports the Function's latest git build in its BuildSucceeded condition and
// deletes its finished builds past the newest FunctionBuildsKept.
func (r *Reconciler) reconcileBuilds(ctx context.Context, f *v1alpha1.Function) error {
	if r.buildLister == nil {
		return nil
	}
	all, err := r.buildLister.FunctionBuilds(f.Namespace).List(labels.SelectorFromSet(labels.Set{v1alpha1.FunctionLabel: f.Name}))
	if err != nil {
		return fmt.Errorf("listing the Function's builds: %w", err)
	}
	var owned []*v1alpha1.FunctionBuild
	for _, b := range all {
		if metav1.IsControlledBy(b, f) {
			owned = append(owned, b)
		}
	}
	latest, prune := sortBuilds(owned, v1alpha1.FunctionBuildsKept)
	f.Status.PropagateLatestBuild(latest)
	for _, b := range prune {
		err := r.fn.FnkitV1alpha1().FunctionBuilds(b.Namespace).Delete(ctx, b.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &b.UID}})
		if err != nil && !apierrs.IsNotFound(err) {
			return fmt.Errorf("deleting the old build %s: %w", b.Name, err)
		}
	}
	return nil
}

// sortBuilds returns the newest of builds (nil if none) and the finished builds past the newest
// keep, oldest first. Newest is by creation, ties broken by name (builds are named in order);
// a build still running is never pruned.
func sortBuilds(builds []*v1alpha1.FunctionBuild, keep int) (latest *v1alpha1.FunctionBuild, prune []*v1alpha1.FunctionBuild) {
	if len(builds) == 0 {
		return nil, nil
	}
	bs := append([]*v1alpha1.FunctionBuild(nil), builds...)
	sort.Slice(bs, func(i, j int) bool {
		ti, tj := bs[i].CreationTimestamp, bs[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return bs[i].Name > bs[j].Name
	})
	for i := len(bs) - 1; i >= keep; i-- {
		if bs[i].Status.IsDone() {
			prune = append(prune, bs[i])
		}
	}
	return bs[0], prune
}
