package gitbuild

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/controller"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	"fnkit.dev/fn/manifest"
	"fnkit.dev/fn/platform/controlplane"
)

// TestFunctionDeployer, against a real API server with the Function CRD: a build creates its
// Function, or updates its spec from the commit's fn.yaml keeping the Function's source; a
// commit whose fn.yaml is invalid changes nothing.
func TestFunctionDeployer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server")
	}
	ctx := context.Background()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir(), BinDir: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	if err := controller.InstallCRD(ctx, cp.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	fns := versioned.NewForConfigOrDie(cp.RESTConfig())
	d := FunctionDeployer{Client: fns}
	digest := func(hex string) name.Digest {
		dg, err := name.NewDigest("127.0.0.1:5000/fns/hello@sha256:" + strings.Repeat(hex, 64))
		if err != nil {
			t.Fatal(err)
		}
		return dg
	}
	one := CommitBuild{Image: digest("a"), Manifest: &manifest.Manifest{
		Env:     []corev1.EnvVar{{Name: "GREETING", Value: "hi"}},
		Timeout: &metav1.Duration{Duration: 7 * time.Second},
	}}
	if err := d.Deploy(ctx, Trigger{Function: "default/hello", Commit: "c1"}, one, io.Discard); err != nil {
		t.Fatal(err)
	}
	f, err := fns.FnkitV1alpha1().Functions("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the build created no Function: %v", err)
	}
	if f.Spec.Image != one.Image.String() || len(f.Spec.Env) != 1 || f.Spec.Timeout.Duration != 7*time.Second {
		t.Errorf("created spec %+v", f.Spec)
	}

	src := &v1alpha1.Source{Git: &v1alpha1.GitSource{URL: "https://git.example/acme/fns.git", Path: "hello"}}
	f.Spec.Source = src
	if _, err := fns.FnkitV1alpha1().Functions("default").Update(ctx, f, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	two := CommitBuild{Image: digest("b"), Manifest: &manifest.Manifest{Source: &v1alpha1.Source{Git: &v1alpha1.GitSource{URL: "https://elsewhere.example/x.git"}}}}
	if err := d.Deploy(ctx, Trigger{Function: "default/hello", Commit: "c2"}, two, io.Discard); err != nil {
		t.Fatal(err)
	}
	f, _ = fns.FnkitV1alpha1().Functions("default").Get(ctx, "hello", metav1.GetOptions{})
	if f.Spec.Image != two.Image.String() || len(f.Spec.Env) != 0 || f.Spec.Timeout != nil {
		t.Errorf("updated spec %+v: want the second build's image and fn.yaml (no env, no timeout)", f.Spec)
	}
	if f.Spec.Source == nil || f.Spec.Source.Git.URL != src.Git.URL {
		t.Errorf("the Function's source became %+v: a commit's fn.yaml must not move it", f.Spec.Source)
	}

	bad := CommitBuild{Image: digest("c"), Manifest: &manifest.Manifest{Env: []corev1.EnvVar{{Name: "PORT", Value: "1"}}}}
	err = d.Deploy(ctx, Trigger{Function: "default/hello", Commit: "c3c3c3c3c3c3c3c3"}, bad, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "fn.yaml of commit c3c3c3c3c3c3") || !strings.Contains(err.Error(), "PORT") {
		t.Errorf("an invalid fn.yaml: %v, want an error naming the commit and the variable", err)
	}
	f, _ = fns.FnkitV1alpha1().Functions("default").Get(ctx, "hello", metav1.GetOptions{})
	if f.Spec.Image != two.Image.String() {
		t.Errorf("an invalid fn.yaml changed the image to %s", f.Spec.Image)
	}
}

func TestRolledOut(t *testing.T) {
	const img = "127.0.0.1:5000/fns/hello@sha256:" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	ready := func(mut func(*v1alpha1.Function)) *v1alpha1.Function {
		f := &v1alpha1.Function{}
		f.Status.InitializeConditions()
		f.Status.ObservedGeneration, f.Status.Image = 2, img
		f.Status.MarkServiceReady()
		f.Status.MarkScaledToZero()
		f.Status.PropagateScaleReason("Stable")
		if mut != nil {
			mut(f)
		}
		return f
	}
	for _, tc := range []struct {
		name string
		f    *v1alpha1.Function
		want bool
	}{
		{"reconciled, ready", ready(nil), true},
		{"an older generation", ready(func(f *v1alpha1.Function) { f.Status.ObservedGeneration = 1 }), false},
		{"another image", ready(func(f *v1alpha1.Function) { f.Status.Image = "x" }), false},
		{"rolling out", ready(func(f *v1alpha1.Function) { f.Status.MarkDeploymentRollingOut(1, 2) }), false},
		{"the autoscaler has not taken it", ready(func(f *v1alpha1.Function) { f.Status.PropagateScaleReason("") }), false},
	} {
		if got, why := RolledOut(tc.f, 2, img); got != tc.want {
			t.Errorf("%s: RolledOut = %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}
