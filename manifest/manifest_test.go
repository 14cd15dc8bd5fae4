package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

const full = `# every key fn.yaml has
name: orders
namespace: shop
env:
  - name: GREETING
    value: hi
  - name: DB_PASSWORD
    valueFrom:
      secretKeyRef: {name: db, key: password}
envFrom:
  - configMapRef: {name: settings}
resources:
  requests: {cpu: 100m, memory: 64Mi}
  limits: {memory: 128Mi}
timeout: 45s
concurrency: 4
scale:
  min: 0
  max: 10
  initial: 1
  target: 5
  metric: rps
  window: 30s
  scaleDownDelay: 10s
source:
  git: {url: "https://git.example/shop.git", ref: main, path: orders}
`

func TestParseFull(t *testing.T) {
	m, err := Parse("fn.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "orders" || m.Namespace != "shop" {
		t.Errorf("name %q namespace %q", m.Name, m.Namespace)
	}
	got := m.Spec("r.test/orders@sha256:" + strings.Repeat("1", 64))
	want := v1alpha1.FunctionSpec{
		Image: "r.test/orders@sha256:" + strings.Repeat("1", 64),
		Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}, {Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}},
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		Timeout:     &metav1.Duration{Duration: 45 * time.Second},
		Concurrency: ptr.To(int32(4)),
		Scale: &v1alpha1.Scale{Min: ptr.To(int32(0)), Max: ptr.To(int32(10)), Initial: ptr.To(int32(1)), Target: ptr.To(int32(5)),
			Metric: v1alpha1.MetricRPS, Window: &metav1.Duration{Duration: 30 * time.Second}, ScaleDownDelay: &metav1.Duration{Duration: 10 * time.Second}},
		Source: &v1alpha1.Source{Git: &v1alpha1.GitSource{URL: "https://git.example/shop.git", Ref: "main", Path: "orders"}},
	}
	// Quantities compare by value, not by their cached string.
	for _, l := range []corev1.ResourceList{got.Resources.Requests, got.Resources.Limits} {
		for k, q := range l {
			l[k] = resource.MustParse(q.String())
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spec\n got %+v\nwant %+v", got, want)
	}
	// The spec is a copy: changing it leaves the manifest alone.
	got.Env[0].Value = "changed"
	*got.Scale.Max = 99
	if m.Env[0].Value != "hi" || *m.Scale.Max != 10 {
		t.Error("Spec shares the manifest's values")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"unknown top", "nmae: x\n", `fn.yaml: nmae: unknown key; accepted here: access, concurrency, delivery, env, envFrom, name, namespace, rateLimit, resources, revisionHistory, rollout, scale, schedules, source, timeout`},
		{"unknown nested", "scale:\n  mni: 1\n", `fn.yaml: scale.mni: unknown key; accepted here: initial, max, metric, min, scaleDownDelay, target, window`},
		{"unknown in list", "env:\n  - name: A\n    vaule: x\n", `fn.yaml: env[0].vaule: unknown key; accepted here:`},
		{"image is built", "image: r.test/x:1\n", `fn.yaml: image: unknown key`},
		{"wrong type", "scale:\n  min: lots\n", `fn.yaml: scale.min: want an integer, not a string`},
		{"list wanted", "env: {A: b}\n", `fn.yaml: env: want a list, not a mapping`},
		{"bad duration", "timeout: soon\n", `fn.yaml: timeout: time: invalid duration "soon"`},
		{"bad quantity", "resources: {requests: {cpu: lots}}\n", `fn.yaml: resources.requests: quantities must match`},
		{"inlined keys", "env:\n  - name: A\n    valueFrom: {secretKeyRef: {nme: x}}\n", `env[0].valueFrom.secretKeyRef.nme: unknown key; accepted here: key, name, optional`},
		{"negative concurrency", "concurrency: -5\n", `fn.yaml: concurrency: invalid value: -5: want 0 (unlimited) or more`},
		{"negative timeout", "timeout: -1s\n", `fn.yaml: timeout: invalid value: -1s: want a duration > 0`},
		{"bad cron", "schedules:\n  - name: tick\n    cron: \"61 * * * *\"\n", `fn.yaml: schedules[0].cron: invalid value: 61 * * * *: minute "61": "61" is not a minute from 0 to 59`},
		{"backoff past its bound", "delivery: {backoff: 10s, maxBackoff: 1s}\n", `fn.yaml: delivery.backoff: invalid value: 10s: must be at most maxBackoff (1s)`},
		{"schedule data any JSON", "schedules:\n  - name: tick\n    cron: \"@every 1s\"\n    data: [1, {a: b}]\n    tz: UTC\n", `fn.yaml: schedules[0].tz: unknown key; accepted here: cron, data, name, timeZone, type`},
		{"reserved env", "env:\n  - name: PORT\n    value: \"9090\"\n", `fn.yaml: env[0].name: invalid value: PORT: PORT and names beginning with FN_ are set by fn`},
		{"min above max", "scale: {min: 5, max: 2}\n", `fn.yaml: scale.min: invalid value: 5: want at most max (2)`},
		{"bad metric", "scale: {metric: memory}\n", `fn.yaml: scale.metric: invalid value: memory: want concurrency, rps or cpu`},
		{"bad access", "access: secret\n", `fn.yaml: access: invalid value: secret: want public or private`},
		{"bad rate limit", "rateLimit: {rps: 0}\n", `fn.yaml: rateLimit.rps: invalid value: 0: want 1 or more requests per second`},
		{"bad name", "name: Hello_World\n", `fn.yaml: name: invalid value "Hello_World"`},
		{"duplicate", "name: a\nname: b\n", `fn.yaml: line 2: key "name" already set`},
		{"not a mapping", "- a\n- b\n", `fn.yaml: want a mapping`},
		{"not yaml", "name: [\n", `fn.yaml: `},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("fn.yaml", []byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", c.in, err, c.want)
			}
			if err != nil && strings.Count(err.Error(), "\n") > 0 && c.name != "min above max" {
				t.Errorf("Parse(%q): %q, want one line", c.in, err)
			}
		})
	}
	// Every problem is reported, not only the first.
	_, err := Parse("fn.yaml", []byte("concurrency: -1\nscale: {metric: memory}\n"))
	if err == nil || !strings.Contains(err.Error(), "concurrency") || !strings.Contains(err.Error(), "scale.metric") {
		t.Errorf("two problems: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	m, path, ok, err := Load(dir)
	if err != nil || ok || m == nil || path != filepath.Join(dir, File) {
		t.Fatalf("no fn.yaml: %+v %s %v %v", m, path, ok, err)
	}
	if err := os.WriteFile(path, []byte("name: x\nconcurrency: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, ok, err = Load(dir)
	if err != nil || !ok || m.Name != "x" || *m.Concurrency != 2 {
		t.Fatalf("fn.yaml: %+v %v %v", m, ok, err)
	}
	if err := os.WriteFile(path, []byte("concurrency: -2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err = Load(dir); err == nil || !strings.HasPrefix(err.Error(), path+": concurrency:") {
		t.Fatalf("invalid fn.yaml: %v, want the file's path and the key first", err)
	}
	if _, err := Parse("fn.yaml", []byte("")); err != nil {
		t.Errorf("an empty fn.yaml: %v", err)
	}
}
