package resources

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/kmeta"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// WantsHPA reports whether the Function scales on CPU, with a HorizontalPodAutoscaler.
func WantsHPA(f *v1alpha1.Function) bool {
	return f.Spec.Scale != nil && f.Spec.Scale.Metric == v1alpha1.MetricCPU
}

// MakeHPA returns the HorizontalPodAutoscaler that scales the function's Deployment on CPU.
// A HorizontalPodAutoscaler cannot scale to zero, so its minimum is at least 1.
func MakeHPA(f *v1alpha1.Function) *autoscalingv2.HorizontalPodAutoscaler {
	minReplicas, maxReplicas := max(InitialReplicas(f), 1), v1alpha1.DefaultMaxScale
	if sc := f.Spec.Scale; sc != nil && sc.Min != nil {
		minReplicas = max(*sc.Min, 1)
	}
	target := v1alpha1.DefaultTarget[v1alpha1.MetricCPU]
	if sc := f.Spec.Scale; sc != nil {
		if sc.Max != nil {
			maxReplicas = *sc.Max
		}
		if sc.Target != nil {
			target = *sc.Target
		}
	}
	maxReplicas = max(maxReplicas, minReplicas)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name:            HPAName(f),
			Namespace:       f.Namespace,
			Labels:          Labels(f),
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(f)},
		},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: DeploymentName(f)},
			MinReplicas:    ptr.To(minReplicas),
			MaxReplicas:    maxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(target)},
				},
			}},
		},
	}
}
