package install

import (
	"context"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"fnkit.dev/fn/platform/controlplane"
)

// Against a real API server (with the controllers that delete namespaces and collect
// garbage): the first Apply creates everything, a second changes nothing, a change is applied
// and counted, and Uninstall leaves nothing of fn-system, keeping the CRDs unless asked.
func TestApplyUninstall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir(), BinDir: bin, Controllers: []string{"namespace", "garbagecollector", "persistentvolumeclaim-protection-controller"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	cfg := cp.RESTConfig()
	kube := kubernetes.NewForConfigOrDie(cfg)

	render := func(o Options) []*unstructured.Unstructured {
		objs, err := Manifests(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range objs { // as Render leaves them, without building
			walkImages(u.Object, func(m map[string]any) {
				m["image"] = "registry.invalid/fn/x@sha256:0000000000000000000000000000000000000000000000000000000000000000"
			})
		}
		return objs
	}
	objs := render(Options{})
	r, err := Apply(ctx, cfg, objs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.Created != len(objs) || r.Changed != 0 {
		t.Errorf("first apply: %s, want %d created", r, len(objs))
	}
	if r, err = Apply(ctx, cfg, render(Options{}), io.Discard); err != nil {
		t.Fatal(err)
	}
	if r.Unchanged != len(objs) {
		t.Errorf("second apply: %s, want all %d unchanged", r, len(objs))
	}
	if r, err = Apply(ctx, cfg, render(Options{Domain: "fn.example"}), io.Discard); err != nil {
		t.Fatal(err)
	}
	if r.Changed != 2 || r.Created != 0 { // the controller's and the gateway's Deployments
		t.Errorf("apply of another domain: %s, want 2 changed", r)
	}
	gw, err := kube.AppsV1().Deployments(Namespace).Get(ctx, "fn-gateway", metav1.GetOptions{})
	if err != nil || !slices.Contains(gw.Spec.Template.Spec.Containers[0].Args, "--domain=fn.example") {
		t.Errorf("gateway after the change: %v, %v", gw.Spec.Template.Spec.Containers[0].Args, err)
	}

	uninstallTimeout = time.Minute
	if err := Uninstall(ctx, cfg, UninstallOptions{}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Namespaces().Get(ctx, Namespace, metav1.GetOptions{}); !apierrs.IsNotFound(err) {
		t.Errorf("namespace %s after uninstall: %v", Namespace, err)
	}
	roles, err := kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/part-of=fn"})
	if err != nil || len(roles.Items) != 0 {
		t.Errorf("fn's ClusterRoles after uninstall: %d, %v", len(roles.Items), err)
	}
	crds := find(t, objs, "CustomResourceDefinition", "functions.fnkit.dev")
	res := func() error {
		c, err := newClient(cfg)
		if err != nil {
			return err
		}
		ri, err := c.resource(crds)
		if err != nil {
			return err
		}
		_, err = ri.Get(ctx, crds.GetName(), metav1.GetOptions{})
		return err
	}
	if err := res(); err != nil {
		t.Errorf("the Function CRD after uninstall without --functions: %v", err)
	}
	if err := Uninstall(ctx, cfg, UninstallOptions{Functions: true}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := res(); !apierrs.IsNotFound(err) {
		t.Errorf("the Function CRD after uninstall --functions: %v", err)
	}
}
