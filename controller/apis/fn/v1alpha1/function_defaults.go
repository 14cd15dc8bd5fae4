package v1alpha1

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Defaults of a Function's spec.
const (
	DefaultTimeout           = 30 * time.Second
	DefaultMaxScale    int32 = 10
	DefaultScaleDown         = 30 * time.Second
	DefaultGitRef            = "main"
	DefaultConcurrency int32 = 0
	// MinWindow and MaxWindow bound spec.scale.window.
	MinWindow = 2 * time.Second
	MaxWindow = time.Hour
	// Delivery of asynchronous calls.
	DefaultAttempts   int32 = 5
	DefaultBackoff          = time.Second
	DefaultMaxBackoff       = 5 * time.Minute
	DefaultMaxAge           = 24 * time.Hour
	MaxAttempts       int32 = 100
)

// DefaultTarget is the default per-replica target of each metric.
var DefaultTarget = map[ScaleMetric]int32{MetricConcurrency: 10, MetricRPS: 100, MetricCPU: 80}

// SetDefaults fills in the spec's unset fields.
func (f *Function) SetDefaults(ctx context.Context) { f.Spec.SetDefaults(ctx) }

// SetDefaults fills in the spec's unset fields.
func (s *FunctionSpec) SetDefaults(context.Context) {
	if s.Timeout == nil {
		s.Timeout = &metav1.Duration{Duration: DefaultTimeout}
	}
	if s.Concurrency == nil {
		s.Concurrency = ptr.To(DefaultConcurrency)
	}
	if s.Scale == nil {
		s.Scale = &Scale{}
	}
	sc := s.Scale
	if sc.Metric == "" {
		sc.Metric = MetricConcurrency
	}
	if sc.Min == nil {
		sc.Min = ptr.To(int32(0))
	}
	if sc.Max == nil {
		sc.Max = ptr.To(max(DefaultMaxScale, *sc.Min))
	}
	if sc.Target == nil {
		if t, ok := DefaultTarget[sc.Metric]; ok {
			sc.Target = ptr.To(t)
		}
	}
	if sc.ScaleDownDelay == nil {
		sc.ScaleDownDelay = &metav1.Duration{Duration: DefaultScaleDown}
	}
	if s.Source != nil && s.Source.Git != nil && s.Source.Git.Ref == "" {
		s.Source.Git.Ref = DefaultGitRef
	}
}
