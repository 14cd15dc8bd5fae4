package v1alpha1

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"knative.dev/pkg/apis"
)

// ImageReferencePattern matches an image reference (registry/repository[:tag][@digest]), as the
// CRD's schema checks it too.
const ImageReferencePattern = `^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`

var imageRE = regexp.MustCompile(ImageReferencePattern)

// Validate checks the Function, with field paths in its errors.
func (f *Function) Validate(ctx context.Context) *apis.FieldError {
	return f.Spec.Validate(ctx).ViaField("spec")
}

// Validate checks the spec.
func (s *FunctionSpec) Validate(context.Context) *apis.FieldError {
	var errs *apis.FieldError
	switch {
	case s.Image == "":
		errs = errs.Also(apis.ErrMissingField("image"))
	case !imageRE.MatchString(s.Image):
		errs = errs.Also(apis.ErrInvalidValue(s.Image, "image", "want an image reference such as registry.example/team/hello@sha256:<64 hex digits>"))
	}
	if s.Timeout != nil && s.Timeout.Duration <= 0 {
		errs = errs.Also(apis.ErrInvalidValue(s.Timeout.Duration.String(), "timeout", "want a duration > 0"))
	}
	if s.Concurrency != nil && *s.Concurrency < 0 {
		errs = errs.Also(apis.ErrInvalidValue(*s.Concurrency, "concurrency", "want 0 (unlimited) or more"))
	}
	for i, e := range s.Env {
		switch {
		case e.Name == "":
			errs = errs.Also(apis.ErrMissingField("name").ViaFieldIndex("env", i))
		case ReservedEnv(e.Name):
			errs = errs.Also(apis.ErrInvalidValue(e.Name, "name", "PORT and names beginning with FN_ are set by fn: use timeout, concurrency and scale instead").ViaFieldIndex("env", i))
		default:
			if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
				errs = errs.Also(apis.ErrInvalidValue(e.Name, "name", strings.Join(msgs, "; ")).ViaFieldIndex("env", i))
			}
		}
	}
	if s.Scale != nil {
		errs = errs.Also(s.Scale.Validate().ViaField("scale"))
	}
	switch s.Access {
	case "", AccessPublic, AccessPrivate:
	default:
		errs = errs.Also(apis.ErrInvalidValue(s.Access, "access", "want public or private"))
	}
	if r := s.RateLimit; r != nil {
		if r.RPS < 1 {
			errs = errs.Also(apis.ErrInvalidValue(r.RPS, "rps", "want 1 or more requests per second").ViaField("rateLimit"))
		}
		if r.Burst != nil && *r.Burst < 1 {
			errs = errs.Also(apis.ErrInvalidValue(*r.Burst, "burst", "want 1 or more requests").ViaField("rateLimit"))
		}
	}
	if s.Delivery != nil {
		errs = errs.Also(s.Delivery.Validate().ViaField("delivery"))
	}
	names := map[string]bool{}
	for i := range s.Schedules {
		sc := &s.Schedules[i]
		errs = errs.Also(sc.Validate().ViaFieldIndex("schedules", i))
		if names[sc.Name] {
			errs = errs.Also(apis.ErrInvalidValue(sc.Name, "name", "another schedule has this name").ViaFieldIndex("schedules", i))
		}
		names[sc.Name] = true
	}
	if s.Rollout != nil {
		errs = errs.Also(s.Rollout.Validate().ViaField("rollout"))
	}
	if h := s.RevisionHistory; h != nil && (*h < 1 || *h > MaxRevisionHistory) {
		errs = errs.Also(apis.ErrOutOfBoundsValue(*h, 1, MaxRevisionHistory, "revisionHistory"))
	}
	if s.Source != nil && s.Source.Git != nil && s.Source.Git.URL == "" {
		errs = errs.Also(apis.ErrMissingField("url").ViaField("source", "git"))
	}
	return errs
}

// ReservedEnv reports whether fn sets the environment variable name itself: the port the
// runtime listens on and its FN_ settings, which the spec's own fields drive.
func ReservedEnv(name string) bool { return name == "PORT" || strings.HasPrefix(name, "FN_") }

// Validate checks the scale bounds and metric.
func (sc *Scale) Validate() *apis.FieldError {
	var errs *apis.FieldError
	if sc.Min != nil && *sc.Min < 0 {
		errs = errs.Also(apis.ErrInvalidValue(*sc.Min, "min", "want 0 or more"))
	}
	if sc.Max != nil && *sc.Max < 1 {
		errs = errs.Also(apis.ErrInvalidValue(*sc.Max, "max", "want 1 or more"))
	}
	if sc.Min != nil && sc.Max != nil && *sc.Min > *sc.Max {
		errs = errs.Also(apis.ErrInvalidValue(*sc.Min, "min", fmt.Sprintf("want at most max (%d)", *sc.Max)))
	}
	if sc.Target != nil && *sc.Target < 1 {
		errs = errs.Also(apis.ErrInvalidValue(*sc.Target, "target", "want 1 or more"))
	}
	switch sc.Metric {
	case "", MetricConcurrency, MetricRPS, MetricCPU:
	default:
		errs = errs.Also(apis.ErrInvalidValue(sc.Metric, "metric", "want concurrency, rps or cpu"))
	}
	if sc.Initial != nil {
		switch {
		case *sc.Initial < 0:
			errs = errs.Also(apis.ErrInvalidValue(*sc.Initial, "initial", "want 0 or more"))
		case sc.Max != nil && *sc.Initial > *sc.Max:
			errs = errs.Also(apis.ErrInvalidValue(*sc.Initial, "initial", fmt.Sprintf("want at most max (%d)", *sc.Max)))
		case sc.Min != nil && *sc.Initial < *sc.Min:
			errs = errs.Also(apis.ErrInvalidValue(*sc.Initial, "initial", fmt.Sprintf("want at least min (%d)", *sc.Min)))
		}
	}
	if sc.Window != nil && (sc.Window.Duration < MinWindow || sc.Window.Duration > MaxWindow) {
		errs = errs.Also(apis.ErrInvalidValue(sc.Window.Duration.String(), "window", fmt.Sprintf("want a duration from %s to %s", MinWindow, MaxWindow)))
	}
	if sc.ScaleDownDelay != nil && sc.ScaleDownDelay.Duration < 0 {
		errs = errs.Also(apis.ErrInvalidValue(sc.ScaleDownDelay.Duration.String(), "scaleDownDelay", "want a duration >= 0"))
	}
	return errs
}

// Validate checks the delivery settings.
func (d *Delivery) Validate() *apis.FieldError {
	var errs *apis.FieldError
	if d.Attempts != nil && (*d.Attempts < 1 || *d.Attempts > MaxAttempts) {
		errs = errs.Also(apis.ErrInvalidValue(*d.Attempts, "attempts", fmt.Sprintf("want 1 to %d", MaxAttempts)))
	}
	for _, f := range []struct {
		name string
		d    *metav1.Duration
	}{{"backoff", d.Backoff}, {"maxBackoff", d.MaxBackoff}, {"maxAge", d.MaxAge}} {
		if f.d != nil && f.d.Duration <= 0 {
			errs = errs.Also(apis.ErrInvalidValue(f.d.Duration.String(), f.name, "want a duration > 0, such as 1s"))
		}
	}
	if d.Backoff != nil && d.MaxBackoff != nil && d.Backoff.Duration > d.MaxBackoff.Duration {
		errs = errs.Also(apis.ErrInvalidValue(d.Backoff.Duration.String(), "backoff", "must be at most maxBackoff ("+d.MaxBackoff.Duration.String()+")"))
	}
	return errs
}
