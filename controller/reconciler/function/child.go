package function

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/controller"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// object is a child of a Function: a Kubernetes object with a spec.
type object interface {
	metav1.Object
	comparable
}

// child is how the reconciler reads, writes and reports one kind of child.
type child[T object] struct {
	kind   string // for messages and events: "Deployment"
	get    func(namespace, name string) (T, error)
	create func(ctx context.Context, obj T) (T, error)
	update func(ctx context.Context, obj T) (T, error)
	// sync overlays on a copy of have what the Function owns of want, and reports whether
	// that changed anything.
	sync func(have, want T) (T, bool, error)
	// notOwned and failed report on the Function's status.
	notOwned func(name string)
	failed   func(reason string, err error)
}

// reconcile gets the child from the lister, creates it when missing, updates it when what the
// Function owns of it differs, and refuses one the Function does not control. It returns the
// child as the API server has it.
func (c child[T]) reconcile(ctx context.Context, f *v1alpha1.Function, want T) (T, error) {
	var zero T
	name := want.GetName()
	have, err := c.get(f.Namespace, name)
	switch {
	case apierrs.IsNotFound(err):
		have, err = c.create(ctx, want)
		if err != nil {
			c.failed("CreateFailed", err)
			return zero, fmt.Errorf("creating %s %s: %w", c.kind, name, err)
		}
		controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Created", "Created %s %q", c.kind, name)
		return have, nil
	case err != nil:
		return zero, fmt.Errorf("getting %s %s: %w", c.kind, name, err)
	case !metav1.IsControlledBy(have, f):
		c.notOwned(name)
		return zero, controller.NewPermanentError(fmt.Errorf("function %s does not own %s %s", f.Name, c.kind, name))
	}
	updated, changed, err := c.sync(have, want)
	if err != nil || !changed {
		return have, err
	}
	if have, err = c.update(ctx, updated); err != nil {
		// A conflict is the lister's copy being older than the server's (another writer, such
		// as the autoscaler, came between): the key is tried again once it has caught up. Not
		// a failure to show: fn deploy would take it for one.
		if !apierrs.IsConflict(err) {
			c.failed("UpdateFailed", err)
		}
		return zero, fmt.Errorf("updating %s %s: %w", c.kind, name, err)
	}
	controller.GetEventRecorder(ctx).Eventf(f, corev1.EventTypeNormal, "Updated", "Updated %s %q", c.kind, name)
	return have, nil
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
