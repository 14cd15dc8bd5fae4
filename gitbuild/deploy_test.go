package gitbuild

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
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

// shared is the package's API server, started by the first test that needs one and stopped
// by TestMain.
var shared struct {
	once sync.Once
	cp   *controlplane.ControlPlane
	err  error
}

// apiServer is a real API server with fn's CRDs, shared by the package's tests.
func apiServer(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server")
	}
	shared.once.Do(func() {
		ctx := context.Background()
		bin, err := controlplane.BinDir(ctx, os.Stderr)
		if err != nil {
			shared.err = err
			return
		}
		dir, err := os.MkdirTemp("", "gitbuild-apiserver-")
		if err != nil {
			shared.err = err
			return
		}
		if shared.cp, shared.err = controlplane.Start(ctx, controlplane.Options{Dir: dir, BinDir: bin}); shared.err == nil {
			shared.err = controller.InstallCRD(ctx, shared.cp.RESTConfig())
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cp
}

func stopAPIServer() {
	if shared.cp != nil {
		_ = shared.cp.Stop()
	}
}

// TestFunctionDeployer, against a real API server with the Function CRD: a build creates its
// Function, or updates its spec from the commit's fn.yaml keeping the Function's source; a
// commit whose fn.yaml is invalid changes nothing.
func TestFunctionDeployer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server")
	}
	ctx := context.Background()
	cp := apiServer(t)
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

// TestKubeRecorder, against a real API server: a build's record goes pending, running, done;
// one for a Function its push creates is adopted by it at the end; a builder that starts ends
// the builds a previous one left pending or running, and leaves finished ones alone.
func TestKubeRecorder(t *testing.T) {
	ctx := context.Background()
	cp := apiServer(t)
	fns := versioned.NewForConfigOrDie(cp.RESTConfig())
	k := &KubeRecorder{Client: fns}
	commit := strings.Repeat("c", 40)
	tr := Trigger{Function: "default/recorded", Kind: v1alpha1.TriggerPush, URL: "/git/default/recorded.git", Ref: "refs/heads/main", Commit: commit}
	rec, err := k.Record(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *v1alpha1.FunctionBuild {
		t.Helper()
		b, err := fns.FnkitV1alpha1().FunctionBuilds("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := get(rec.Name())
	if c := b.Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded); c == nil || !c.IsUnknown() || c.Reason != v1alpha1.BuildReasonPending ||
		b.Labels[v1alpha1.FunctionLabel] != "recorded" || b.Spec.Git.Commit != commit || len(b.OwnerReferences) != 0 {
		t.Errorf("a new record: %+v %+v", b.ObjectMeta, b.Status)
	}
	rec.Running(ctx)
	rec.Log(ctx, "fn: building\n")
	if b = get(rec.Name()); b.Status.StartTime == nil || b.Status.LogTail != "fn: building\n" ||
		b.Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded).Reason != v1alpha1.BuildReasonRunning {
		t.Errorf("a running record: %+v", b.Status)
	}
	// The push creates its Function meanwhile.
	f := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "recorded", Namespace: "default"},
		Spec: v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/recorded@sha256:" + strings.Repeat("a", 64)}}
	if f, err = fns.FnkitV1alpha1().Functions("default").Create(ctx, f, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.End(ctx, f.Spec.Image, nil, "fn: building\nfn: built\n")
	b = get(rec.Name())
	if !metav1.IsControlledBy(b, f) || b.Status.Image != f.Spec.Image || b.Status.CompletionTime == nil ||
		!b.Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded).IsTrue() {
		t.Errorf("an ended record: owners %v, status %+v", b.OwnerReferences, b.Status)
	}

	// A second build, left running by a builder that stopped.
	tr.Commit = strings.Repeat("d", 40)
	left, err := (&KubeRecorder{Client: fns, Now: func() time.Time { return time.Now().Add(time.Second) }}).Record(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	left.Running(ctx)
	if err := k.EndInterrupted(ctx); err != nil {
		t.Fatal(err)
	}
	if c := get(left.Name()).Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded); c == nil || !c.IsFalse() || c.Reason != v1alpha1.BuildReasonInterrupted {
		t.Errorf("a build left running, after a builder started: %+v", c)
	}
	if c := get(rec.Name()).Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded); !c.IsTrue() {
		t.Errorf("a finished build, after a builder started: %+v", c)
	}
	if !metav1.IsControlledBy(get(left.Name()), f) {
		t.Errorf("a build of an existing Function is not owned by it")
	}
}
