package resources

import (
	"math"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/kmeta"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// Config is the controller's configuration that shapes children.
type Config struct {
	// Port is the port the runtime listens on in the pod.
	Port int32
	// Domain is the domain of functions' host names at the gateway: NAME.NAMESPACE.DOMAIN.
	Domain string
	// GatewayURL, when set, is the gateway's base URL for path routing (URL/f/NAMESPACE/NAME/);
	// otherwise functions' URLs use host names under Domain.
	GatewayURL string
}

// DefaultConfig is the configuration used when none is given.
var DefaultConfig = Config{Port: 8080, Domain: "fn.local"}

// ShutdownDelay is how long a function keeps serving after SIGTERM, reporting not ready, so that
// load balancers stop sending it requests before it stops accepting them.
const ShutdownDelay = 2 * time.Second

// ContainerName is the name of the function's container.
const ContainerName = "function"

// PortName names the runtime's port on the container and the Service's target.
const PortName = "http"

// InitialReplicas is the replica count a Deployment starts with: spec.scale.initial, else
// max(min, 1). After creation the autoscaler owns replicas.
func InitialReplicas(f *v1alpha1.Function) int32 {
	sc := f.Spec.Scale
	if sc == nil {
		return 1
	}
	n := int32(1)
	if sc.Initial != nil {
		n = *sc.Initial
	}
	if sc.Min != nil && *sc.Min > n {
		n = *sc.Min
	}
	return n
}

// MakeDeployment returns the Deployment that runs the function. Fields the API server would
// default are left unset: the reconciler compares only what is set here.
func MakeDeployment(f *v1alpha1.Function, cfg Config) *appsv1.Deployment {
	timeout := v1alpha1.DefaultTimeout
	if f.Spec.Timeout != nil {
		timeout = f.Spec.Timeout.Duration
	}
	var concurrency int32
	if f.Spec.Concurrency != nil {
		concurrency = *f.Spec.Concurrency
	}
	env := []corev1.EnvVar{
		{Name: "PORT", Value: strconv.Itoa(int(cfg.Port))},
		{Name: "FN_TIMEOUT", Value: timeout.String()},
		{Name: "FN_CONCURRENCY", Value: strconv.Itoa(int(concurrency))},
		// Keep serving, while not ready, until endpoints drop the pod: no request is refused in a rollout.
		{Name: "FN_SHUTDOWN_DELAY", Value: ShutdownDelay.String()},
		{Name: "FN_NAME", Value: f.Name},
		{Name: "FN_NAMESPACE", Value: f.Namespace},
	}
	env = append(env, f.Spec.Env...) // the user's come last, so they win

	// Room for the longest request to drain, plus the runtime's own shutdown.
	grace := int64(math.Ceil((timeout + ShutdownDelay + 10*time.Second).Seconds()))
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:            DeploymentName(f),
			Namespace:       f.Namespace,
			Labels:          Labels(f),
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(f)},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(InitialReplicas(f)),
			Selector: &metav1.LabelSelector{MatchLabels: Selector(f)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					// Never below the current capacity during a rollout.
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("25%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: Labels(f)},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(grace),
					EnableServiceLinks:            ptr.To(false),
					AutomountServiceAccountToken:  ptr.To(false),
					// Replicas spread over nodes, so that losing one costs a share of them. A
					// preference, not a rule: a rule would leave replicas pending while a node is
					// full or its loss not yet noticed, when running them anywhere is better.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew:           1,
						TopologyKey:       corev1.LabelHostname,
						WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: Selector(f)},
						// Each rollout's new replicas spread on their own.
						MatchLabelKeys: []string{appsv1.DefaultDeploymentUniqueLabelKey},
					}},
					// The root filesystem is read-only; /tmp is the function's scratch space.
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
					Containers: []corev1.Container{{
						Name:         ContainerName,
						Image:        f.Spec.Image,
						Ports:        []corev1.ContainerPort{{Name: PortName, ContainerPort: cfg.Port, Protocol: corev1.ProtocolTCP}},
						Env:          env,
						EnvFrom:      f.Spec.EnvFrom,
						Resources:    f.Spec.Resources,
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/_fn/ready", Port: intstr.FromString(PortName)}},
							PeriodSeconds:    1,
							FailureThreshold: 3,
						},
						// Liveness is first asked a period after the start: asked at once, it fails
						// while the process starts and reports every cold start as Unhealthy (an
						// event written while the start is under way). Readiness gates traffic.
						LivenessProbe: &corev1.Probe{
							ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/_fn/live", Port: intstr.FromString(PortName)}},
							InitialDelaySeconds: 10,
							PeriodSeconds:       10,
							FailureThreshold:    3,
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot:             ptr.To(true),
							RunAsUser:                ptr.To(int64(65532)),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
				},
			},
		},
	}
}
