package v1alpha1

import (
	"context"
	corev1 "k8s.io/api/core/v1"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const digest = "@sha256:0000000000000000000000000000000000000000000000000000000000000001"

func TestSetDefaults(t *testing.T) {
	f := &Function{Spec: FunctionSpec{Image: "r.test/hello" + digest, Source: &Source{Git: &GitSource{URL: "https://git.test/x"}}}}
	f.SetDefaults(context.Background())
	s := f.Spec
	if s.Timeout.Duration != 30*time.Second || *s.Concurrency != 0 || s.Scale.Metric != MetricConcurrency ||
		*s.Scale.Min != 0 || *s.Scale.Max != 10 || *s.Scale.Target != 10 || s.Scale.ScaleDownDelay.Duration != 30*time.Second || s.Source.Git.Ref != "main" {
		t.Errorf("defaults: %+v %+v %+v", s, *s.Scale, *s.Source.Git)
	}
	// Set fields stay; the target follows the metric; max is at least min.
	g := &Function{Spec: FunctionSpec{Image: "x", Timeout: &metav1.Duration{Duration: time.Second}, Scale: &Scale{Metric: MetricRPS, Min: ptr.To(int32(20))}}}
	g.SetDefaults(context.Background())
	if g.Spec.Timeout.Duration != time.Second || *g.Spec.Scale.Target != 100 || *g.Spec.Scale.Max != 20 {
		t.Errorf("defaults kept/derived wrongly: %+v", *g.Spec.Scale)
	}
	if err := g.Validate(context.Background()); err != nil {
		t.Errorf("defaulted function does not validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Function {
		return &Function{Spec: FunctionSpec{Image: "127.0.0.1:5000/fns/hello" + digest}}
	}
	cases := []struct {
		name   string
		change func(*Function)
		want   string // "" for valid
	}{
		{"valid", func(*Function) {}, ""},
		{"valid tag", func(f *Function) { f.Spec.Image = "registry.test/team/hello:v1.2" }, ""},
		{"empty image", func(f *Function) { f.Spec.Image = "" }, "missing field(s): spec.image"},
		{"malformed image", func(f *Function) { f.Spec.Image = "Not An Image!" }, "invalid value: Not An Image!: spec.image"},
		{"short digest", func(f *Function) { f.Spec.Image = "r.test/x@sha256:abc" }, "spec.image"},
		{"negative max", func(f *Function) { f.Spec.Scale = &Scale{Max: ptr.To(int32(-1))} }, "invalid value: -1: spec.scale.max"},
		{"min above max", func(f *Function) { f.Spec.Scale = &Scale{Min: ptr.To(int32(5)), Max: ptr.To(int32(2))} }, "invalid value: 5: spec.scale.min"},
		{"unknown metric", func(f *Function) { f.Spec.Scale = &Scale{Metric: "memory"} }, "invalid value: memory: spec.scale.metric"},
		{"zero timeout", func(f *Function) { f.Spec.Timeout = &metav1.Duration{} }, "invalid value: 0s: spec.timeout"},
		{"negative concurrency", func(f *Function) { f.Spec.Concurrency = ptr.To(int32(-2)) }, "spec.concurrency"},
		{"git without url", func(f *Function) { f.Spec.Source = &Source{Git: &GitSource{}} }, "missing field(s): spec.source.git.url"},
		{"initial zero", func(f *Function) { f.Spec.Scale = &Scale{Initial: ptr.To(int32(0))} }, ""},
		{"initial above max", func(f *Function) { f.Spec.Scale = &Scale{Initial: ptr.To(int32(5)), Max: ptr.To(int32(2))} }, "invalid value: 5: spec.scale.initial"},
		{"initial below min", func(f *Function) { f.Spec.Scale = &Scale{Initial: ptr.To(int32(1)), Min: ptr.To(int32(2))} }, "invalid value: 1: spec.scale.initial"},
		{"window too short", func(f *Function) { f.Spec.Scale = &Scale{Window: &metav1.Duration{Duration: time.Second}} }, "invalid value: 1s: spec.scale.window"},
		{"env", func(f *Function) {
			f.Spec.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hi"}, {Name: "PORTAL", Value: "x"}}
		}, ""},
		{"env PORT", func(f *Function) { f.Spec.Env = []corev1.EnvVar{{Name: "A"}, {Name: "PORT", Value: "9090"}} }, "invalid value: PORT: spec.env[1].name"},
		{"env FN_", func(f *Function) { f.Spec.Env = []corev1.EnvVar{{Name: "FN_TIMEOUT", Value: "1s"}} }, "invalid value: FN_TIMEOUT: spec.env[0].name"},
		{"env bad name", func(f *Function) { f.Spec.Env = []corev1.EnvVar{{Name: "A=B"}} }, "invalid value: A=B: spec.env[0].name"},
		{"env no name", func(f *Function) { f.Spec.Env = []corev1.EnvVar{{Value: "x"}} }, "missing field(s): spec.env[0].name"},
		{"private", func(f *Function) { f.Spec.Access = AccessPrivate }, ""},
		{"unknown access", func(f *Function) { f.Spec.Access = "secret" }, "invalid value: secret: spec.access"},
		{"rate limit", func(f *Function) { f.Spec.RateLimit = &RateLimit{RPS: 10, Burst: ptr.To(int32(20))} }, ""},
		{"rate limit zero", func(f *Function) { f.Spec.RateLimit = &RateLimit{} }, "invalid value: 0: spec.rateLimit.rps"},
		{"rate limit zero burst", func(f *Function) { f.Spec.RateLimit = &RateLimit{RPS: 1, Burst: ptr.To(int32(0))} }, "invalid value: 0: spec.rateLimit.burst"},
		{"window too long", func(f *Function) { f.Spec.Scale = &Scale{Window: &metav1.Duration{Duration: 2 * time.Hour}} }, "invalid value: 2h0m0s: spec.scale.window"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := ok()
			c.change(f)
			err := f.Validate(context.Background())
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Validate: %v, want valid", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestCRDImagePattern keeps the API server's check of images the same as Validate's.
func TestCRDImagePattern(t *testing.T) {
	b, err := os.ReadFile("../../../../config/crd/fnkit.dev_functions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								Pattern string `json:"pattern"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	got := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["image"].Pattern
	if got != ImageReferencePattern {
		t.Errorf("CRD image pattern\n%s\ndiffers from ImageReferencePattern\n%s", got, ImageReferencePattern)
	}
}
