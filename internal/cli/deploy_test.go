package cli

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnfake "fnkit.dev/fn/controller/client/clientset/versioned/fake"
	"fnkit.dev/fn/manifest"
)

const testImage = "r.test/fns/orders@sha256:1111111111111111111111111111111111111111111111111111111111111111"

// fakeCluster is a cluster of fake clientsets holding objs.
func fakeCluster(ns string, fns ...*v1alpha1.Function) *cluster {
	fc := fnfake.NewSimpleClientset()
	for _, f := range fns {
		_, _ = fc.FnkitV1alpha1().Functions(f.Namespace).Create(context.Background(), f, metav1.CreateOptions{})
	}
	return &cluster{kube: kubefake.NewSimpleClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}), fns: fc, namespace: ns}
}

// TestDeploySpecIsFileAndFlags: the spec is fn.yaml with the flags over it, and applying it
// replaces what the cluster held: nothing given before lingers.
func TestDeploySpecIsFileAndFlags(t *testing.T) {
	m, err := manifest.Parse("fn.yaml", []byte("env:\n  - {name: A, value: a}\n  - {name: B, value: b}\ntimeout: 10s\nscale: {max: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, o := deployCommand(NewFactory(IOStreams{}))
	if err := cmd.ParseFlags([]string{"--env", "B=flag", "--env", "C=c", "--min", "1", "--access", "private", "--rate-limit", "10", "--rate-burst", "20"}); err != nil {
		t.Fatal(err)
	}
	if err := o.validateFlags(cmd); err != nil {
		t.Fatal(err)
	}
	spec, err := o.spec(m, testImage)
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.FunctionSpec{
		Image:     testImage,
		Env:       []corev1.EnvVar{{Name: "A", Value: "a"}, {Name: "B", Value: "flag"}, {Name: "C", Value: "c"}},
		Timeout:   &metav1.Duration{Duration: 10 * time.Second},
		Scale:     &v1alpha1.Scale{Max: ptr.To(int32(4)), Min: ptr.To(int32(1))},
		Access:    v1alpha1.AccessPrivate,
		RateLimit: &v1alpha1.RateLimit{RPS: 10, Burst: ptr.To(int32(20))},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("spec\n got %+v\nwant %+v", spec, want)
	}
	// The file was not changed by the flags.
	if len(m.Env) != 2 || m.Env[1].Value != "b" || m.Scale.Min != nil {
		t.Errorf("the flags changed the manifest: %+v", m)
	}

	old := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "default"}, Spec: v1alpha1.FunctionSpec{
		Image: "r.test/fns/orders:old", Env: []corev1.EnvVar{{Name: "GONE", Value: "x"}}, Concurrency: ptr.To(int32(3)),
		Scale: &v1alpha1.Scale{Min: ptr.To(int32(2)), Target: ptr.To(int32(7))},
	}}
	cl := fakeCluster("default", old)
	f, err := applyFunction(context.Background(), cl, "orders", spec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Spec, want) {
		t.Errorf("applied spec\n got %+v\nwant %+v (what the cluster held before must be gone)", f.Spec, want)
	}
	// A first deploy creates it.
	f, err = applyFunction(context.Background(), cl, "fresh", spec)
	if err != nil || f.Name != "fresh" || !reflect.DeepEqual(f.Spec, want) {
		t.Errorf("create: %+v %v", f, err)
	}

	// The flags over the file are checked together: --min above fn.yaml's max is refused.
	cmd, o = deployCommand(NewFactory(IOStreams{}))
	_ = cmd.ParseFlags([]string{"--min", "9"})
	if _, err := o.spec(m, testImage); err == nil || !strings.Contains(err.Error(), "scale.min") {
		t.Errorf("--min 9 with max 4: %v", err)
	}
}

func TestDeployRefusesBadFlagsFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "orders")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FN_HOME", t.TempDir())
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "-5"}, "--concurrency -5: want 0 (unlimited) or more"},
		{[]string{"--timeout", "-1s"}, "--timeout -1s: want a duration > 0"},
		{[]string{"--env", "PORT=9090"}, "--env PORT: PORT and names beginning with FN_ are set by fn"},
		{[]string{"--env", "FN_TIMEOUT=1s"}, "--env FN_TIMEOUT"},
		{[]string{"--min", "-1"}, "--min -1: want 0 or more"},
		{[]string{"--env", "novalue"}, `--env "novalue": want NAME=VALUE`},
		{[]string{"--access", "secret"}, `--access "secret": want public or private`},
		{[]string{"--rate-limit", "0"}, "--rate-limit 0: want 1 or more requests per second"},
		{[]string{"--rate-burst", "5"}, "--rate-burst 5: want 1 or more, with --rate-limit"},
	} {
		code, _, stderr := fn(t, append([]string{"deploy", dir}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("fn deploy %v: exit %d, stderr %q; want exit 2 and one line containing %q", c.args, code, stderr, c.want)
		}
	}
	// An invalid fn.yaml is refused before the cluster is even looked for.
	if err := os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte("scale:\n  mni: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := fn(t, "deploy", dir)
	if code != 1 || !strings.Contains(stderr, filepath.Join(dir, "fn.yaml")+": scale.mni: unknown key; accepted here:") {
		t.Errorf("fn deploy with a bad fn.yaml: exit %d, stderr %q", code, stderr)
	}
}

func TestDeployNamespaceFirst(t *testing.T) {
	ctx := context.Background()
	cl := fakeCluster("shop")
	var errOut strings.Builder
	s := IOStreams{Out: &strings.Builder{}, ErrOut: &errOut}
	o := &deployOptions{}
	err := o.ensureNamespace(ctx, s, cl)
	if err == nil || err.Error() != "namespace shop does not exist: create it (kubectl create namespace shop) or pass --create-namespace" {
		t.Errorf("missing namespace: %v", err)
	}
	o.createNS = true
	if err := o.ensureNamespace(ctx, s, cl); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil || !strings.Contains(errOut.String(), "Created namespace shop.") {
		t.Errorf("--create-namespace: %v, stderr %q", err, errOut.String())
	}
	o.createNS = false
	if err := o.ensureNamespace(ctx, s, cl); err != nil {
		t.Errorf("existing namespace: %v", err)
	}
}

func TestConfigCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "greeter")
	if code, _, stderr := fn(t, "init", dir); code != 0 {
		t.Fatalf("fn init: %s", stderr)
	}
	for _, args := range [][]string{
		{"config", "-p", dir, "set", "scale.min", "1"},
		{"config", "-p", dir, "set", "timeout", "45s"},
		{"config", "-p", dir, "env", "set", "GREETING=hi", "PORTAL=9090"},
		{"config", "-p", dir, "env", "unset", "PORTAL"},
	} {
		if code, _, stderr := fn(t, args...); code != 0 {
			t.Fatalf("fn %v: exit %d: %s", args, code, stderr)
		}
	}
	if code, out, _ := fn(t, "config", "-p", dir, "get", "scale.min"); code != 0 || out != "1\n" {
		t.Errorf("fn config get scale.min: %d %q", code, out)
	}
	m, _, ok, err := manifest.Load(dir)
	if err != nil || !ok || m.Name != "greeter" || *m.Scale.Min != 1 || m.Timeout.Duration != 45*time.Second ||
		!reflect.DeepEqual(m.Env, []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}) {
		t.Errorf("fn.yaml after the edits: %+v %v %v", m, ok, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "fn.yaml"))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"set", "scale.mni", "1"}, 1, "scale.mni: unknown key; accepted here: initial, max, metric, min, scaleDownDelay, target, window"},
		{[]string{"set", "concurrency", "-5"}, 1, "concurrency: invalid value: -5: want 0 (unlimited) or more"},
		{[]string{"env", "set", "PORT=9090"}, 2, "PORT: PORT and names beginning with FN_ are set by fn"},
		{[]string{"get", "concurrency"}, 1, "concurrency is not set"},
		{[]string{"set", "env", "x"}, 2, "fn config env set"},
	} {
		code, _, stderr := fn(t, append([]string{"config", "-p", dir}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("fn config %v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "fn.yaml")); string(after) != string(before) {
		t.Errorf("refused edits changed fn.yaml:\n%s", after)
	}
}
