package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager owns, in server-side apply, the fields fn install sets.
const FieldManager = "fn-install"

// Result counts what Apply did.
type Result struct {
	Created, Changed, Unchanged int
}

func (r Result) String() string {
	return fmt.Sprintf("%d created, %d changed, %d unchanged", r.Created, r.Changed, r.Unchanged)
}

// client applies and deletes objects of any kind.
type client struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newClient(cfg *rest.Config) (*client, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &client{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// resource is the client of u's kind (in its namespace).
func (c *client) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) { // a CRD applied a moment ago
		c.mapper.Reset()
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// Apply applies the objects in order with server-side apply, as FieldManager: what is already
// as rendered is left unchanged (same resourceVersion), so applying twice changes nothing. Once
// the CRDs are applied it waits until they are served. Progress gets a line per object changed.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, progress io.Writer) (Result, error) {
	var r Result
	c, err := newClient(cfg)
	if err != nil {
		return r, err
	}
	var crds []string
	for _, u := range objs {
		if len(crds) > 0 && u.GetKind() != "CustomResourceDefinition" {
			if err := waitEstablished(ctx, c, crds); err != nil {
				return r, err
			}
			crds = nil
		}
		res, err := c.resource(u)
		if err != nil {
			return r, err
		}
		data, err := json.Marshal(u.Object)
		if err != nil {
			return r, err
		}
		before, err := res.Get(ctx, u.GetName(), metav1.GetOptions{})
		existed := err == nil
		if err != nil && !apierrs.IsNotFound(err) {
			return r, fmt.Errorf("%s: %w", describe(u), err)
		}
		if existed && u.GetKind() == "PersistentVolumeClaim" {
			// A claim is made once: its spec cannot change but to grow, and an apply of it as
			// it is writes it again all the same (a new resourceVersion every time).
			r.Unchanged++
			continue
		}
		after, err := res.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: ptrTrue()})
		if err != nil {
			return r, fmt.Errorf("applying %s: %w", describe(u), err)
		}
		switch {
		case !existed:
			r.Created++
			fmt.Fprintf(progress, "created %s\n", describe(u))
		case before.GetResourceVersion() != after.GetResourceVersion():
			r.Changed++
			fmt.Fprintf(progress, "changed %s\n", describe(u))
		default:
			r.Unchanged++
		}
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u.GetName())
		}
	}
	if len(crds) > 0 {
		return r, waitEstablished(ctx, c, crds)
	}
	return r, nil
}

func ptrTrue() *bool { t := true; return &t }

func describe(u *unstructured.Unstructured) string {
	kind := strings.ToLower(u.GetKind())
	if ns := u.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + u.GetName()
	}
	return kind + " " + u.GetName()
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func waitEstablished(ctx context.Context, c *client, names []string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			u, err := c.dyn.Resource(crdResource).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			ok := slices.ContainsFunc(conds, func(v any) bool {
				m, _ := v.(map[string]any)
				return m["type"] == "Established" && m["status"] == "True"
			})
			if !ok {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the CRDs %s to be served: %w", strings.Join(names, ", "), err)
	}
	c.mapper.Reset()
	return nil
}

// Wait returns once every Deployment of objs has rolled out: all its replicas updated and
// available. Progress gets a line per Deployment as it becomes available.
func Wait(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, timeout time.Duration, progress io.Writer) error {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		var last string
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Until(deadline), true, func(ctx context.Context) (bool, error) {
			d, err := kube.AppsV1().Deployments(u.GetNamespace()).Get(ctx, u.GetName(), metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			ok, why := rolledOut(d)
			last = why
			return ok, nil
		})
		if err != nil {
			return fmt.Errorf("%s is not available after %s: %s (kubectl -n %s describe deployment %s)", describe(u), timeout, last, u.GetNamespace(), u.GetName())
		}
		fmt.Fprintf(progress, "%s is available\n", describe(u))
	}
	return nil
}

// rolledOut reports whether every replica of d runs its current template and is available,
// and if not, why.
func rolledOut(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return false, "its new spec is not yet observed"
	case s.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas are still running", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas available", s.AvailableReplicas, want)
	}
	return true, ""
}

// uninstallTimeout bounds how long Uninstall waits for what it deleted to be gone.
var uninstallTimeout = 3 * time.Minute

// UninstallOptions say what Uninstall removes beyond fn-system and fn's cluster-wide RBAC.
type UninstallOptions struct {
	// Functions removes fn's CRDs too, and with them every Function (and what they own).
	Functions bool
}

// Uninstall removes what Apply created: the objects of Manifests (the namespace fn-system
// with all it holds, and fn's cluster-wide RBAC), and, with o.Functions, the CRDs and so every
// Function. It returns once they are gone.
func Uninstall(ctx context.Context, cfg *rest.Config, o UninstallOptions, progress io.Writer) error {
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	objs, err := Manifests(Options{})
	if err != nil {
		return err
	}
	var gone []*unstructured.Unstructured
	for _, u := range slices.Backward(objs) {
		if u.GetKind() == "CustomResourceDefinition" && !o.Functions {
			continue
		}
		if u.GetNamespace() == Namespace {
			continue // with the namespace
		}
		res, err := c.resource(u)
		if meta.IsNoMatchError(errors.Unwrap(err)) {
			continue
		}
		if err != nil {
			return err
		}
		bg := metav1.DeletePropagationBackground
		err = res.Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
		switch {
		case apierrs.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("deleting %s: %w", describe(u), err)
		default:
			fmt.Fprintf(progress, "deleting %s\n", describe(u))
			gone = append(gone, u)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, uninstallTimeout, true, func(ctx context.Context) (bool, error) {
		for _, u := range gone {
			res, err := c.resource(u)
			if err != nil {
				continue
			}
			if _, err := res.Get(ctx, u.GetName(), metav1.GetOptions{}); !apierrs.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for fn's objects to be removed: %w", err)
	}
	return nil
}
