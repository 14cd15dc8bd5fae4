package resources

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"knative.dev/pkg/kmeta"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// MakeService returns the Service in front of the function's pods: port 80 to the runtime's port.
func MakeService(f *v1alpha1.Function) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:            ServiceName(f),
			Namespace:       f.Namespace,
			Labels:          Labels(f),
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(f)},
		},
		Spec: corev1.ServiceSpec{
			Selector: Selector(f),
			Ports: []corev1.ServicePort{{
				Name:       PortName,
				Port:       80,
				TargetPort: intstr.FromString(PortName),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
}
