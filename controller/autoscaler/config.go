package autoscaler

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// ConfigMapName is the ConfigMap, in the autoscaler's namespace, that holds the cluster-wide
// defaults (config/300-config.yaml installs it).
const ConfigMapName = "config-autoscaler"

// Config is the autoscaler's cluster-wide configuration.
type Config struct {
	// StableWindow is the default stable window (spec.scale.window overrides it).
	StableWindow time.Duration
	// PanicWindowPercentage is the panic window as a percentage of the stable window.
	PanicWindowPercentage float64
	// PanicThresholdPercentage is the panic window's load, in percent of ready capacity, at
	// which the autoscaler panics.
	PanicThresholdPercentage float64
	// MaxScaleUpRate and MaxScaleDownRate bound one decision's change.
	MaxScaleUpRate, MaxScaleDownRate float64
	// TickInterval is the time between two decisions of a function (requests held at zero are
	// decided at once).
	TickInterval time.Duration
}

// DefaultConfig is the configuration without a ConfigMap.
var DefaultConfig = Config{
	StableWindow:             60 * time.Second,
	PanicWindowPercentage:    10,
	PanicThresholdPercentage: 200,
	MaxScaleUpRate:           1000,
	MaxScaleDownRate:         2,
	TickInterval:             2 * time.Second,
}

// Bounds of the configuration and of spec.scale.window.
const (
	minPanicWindow = time.Second
)

// ParseConfig reads a Config from a ConfigMap's data; missing keys keep their default. An invalid
// value is an error naming the key.
func ParseConfig(data map[string]string) (Config, error) {
	c := DefaultConfig
	dur := func(k string, dst *time.Duration, lo, hi time.Duration) error {
		v, ok := data[k]
		if !ok {
			return nil
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < lo || d > hi {
			return fmt.Errorf("%s %s: %q: want a duration from %s to %s", ConfigMapName, k, v, lo, hi)
		}
		*dst = d
		return nil
	}
	num := func(k string, dst *float64, lo, hi float64) error {
		v, ok := data[k]
		if !ok {
			return nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < lo || f > hi {
			return fmt.Errorf("%s %s: %q: want a number from %g to %g", ConfigMapName, k, v, lo, hi)
		}
		*dst = f
		return nil
	}
	for _, err := range []error{
		dur("stable-window", &c.StableWindow, v1alpha1.MinWindow, v1alpha1.MaxWindow),
		num("panic-window-percentage", &c.PanicWindowPercentage, 1, 100),
		num("panic-threshold-percentage", &c.PanicThresholdPercentage, 110, 1000),
		num("max-scale-up-rate", &c.MaxScaleUpRate, 1.01, 10000),
		num("max-scale-down-rate", &c.MaxScaleDownRate, 1.01, 100),
		dur("tick-interval", &c.TickInterval, 100*time.Millisecond, time.Minute),
	} {
		if err != nil {
			return DefaultConfig, err
		}
	}
	return c, nil
}

// SpecOf is the Spec of a Function (with its defaults set) under this configuration.
func (c Config) SpecOf(f *v1alpha1.Function) Spec {
	s := Spec{
		Metric:           v1alpha1.MetricConcurrency,
		Target:           float64(v1alpha1.DefaultTarget[v1alpha1.MetricConcurrency]),
		Min:              0,
		Max:              v1alpha1.DefaultMaxScale,
		Window:           c.StableWindow,
		ScaleDownDelay:   v1alpha1.DefaultScaleDown,
		MaxScaleUpRate:   c.MaxScaleUpRate,
		MaxScaleDownRate: c.MaxScaleDownRate,
		PanicThreshold:   c.PanicThresholdPercentage / 100,
	}
	if sc := f.Spec.Scale; sc != nil {
		if sc.Metric != "" {
			s.Metric = sc.Metric
			if t, ok := v1alpha1.DefaultTarget[sc.Metric]; ok {
				s.Target = float64(t)
			}
		}
		if sc.Target != nil {
			s.Target = float64(*sc.Target)
		}
		if sc.Min != nil {
			s.Min = *sc.Min
		}
		if sc.Max != nil {
			s.Max = *sc.Max
		}
		if sc.Window != nil && sc.Window.Duration > 0 {
			s.Window = sc.Window.Duration
		}
		if sc.ScaleDownDelay != nil {
			s.ScaleDownDelay = sc.ScaleDownDelay.Duration
		}
	}
	s.Max = max(s.Max, s.Min)
	s.PanicWindow = max(time.Duration(float64(s.Window)*c.PanicWindowPercentage/100), minPanicWindow)
	return s
}
