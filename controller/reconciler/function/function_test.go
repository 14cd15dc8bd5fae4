package function

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgotesting "k8s.io/client-go/testing"
	rtesting "knative.dev/pkg/reconciler/testing"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/reconciler/function/resources"
)

func TestReconcile(t *testing.T) {
	hello := func(opts ...FunctionOption) *v1alpha1.Function { return Function("hello", "default", opts...) }
	// ready is the status of a Function whose children are all there and available.
	ready := []FunctionOption{WithStatus, WithDeploymentStatus(available())}
	with := func(base []FunctionOption, more ...FunctionOption) []FunctionOption {
		return append(append([]FunctionOption(nil), base...), more...)
	}

	table := rtesting.TableTest{{
		Name: "bad key",
		Key:  "too/many/parts",
	}, {
		Name: "gone",
		Key:  "default/hello",
	}, {
		Name:          "create children",
		Objects:       []runtime.Object{hello(Scaled(""))},
		OtherTestData: map[string]any{"new": true},
		Key:           "default/hello",
		WantCreates: []runtime.Object{
			revisionOf(hello(), 1, false),
			created(hello()),
			resources.MakeService(hello()),
		},
		WantPatches: []clientgotesting.PatchActionImpl{released("hello-00001")},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			// Not ready until the autoscaler has taken the function.
			Object: hello(Scaled(""), WithStatus, WithDeploying, WithScaleReason("")),
		}},
		WantEvents: []string{
			rtesting.Eventf(corev1.EventTypeNormal, "Revision", "Created revision hello-00001 (image %s)", image),
			rtesting.Eventf(corev1.EventTypeNormal, "Created", `Created Deployment "hello"`),
			rtesting.Eventf(corev1.EventTypeNormal, "Created", `Created Service "hello"`),
		},
	}, {
		Name: "steady state: no writes, though the server defaulted fields and others added some",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withDeploymentStatus(available()), withServerDefaults),
			service(hello()),
		},
		Key: "default/hello",
	}, {
		Name: "deployment becomes available: ready",
		Objects: []runtime.Object{
			hello(WithStatus, WithDeploying),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(ready...),
		}},
	}, {
		Name: "image changed: deployment updated",
		Objects: []runtime.Object{
			hello(with(ready, WithImage(image2))...),
			deployment(hello(), withDeploymentStatus(available()), withServerDefaults),
			service(hello()),
		},
		Key:         "default/hello",
		WantCreates: []runtime.Object{revisionOf(hello(WithImage(image2)), 2, false)},
		WantPatches: []clientgotesting.PatchActionImpl{released("hello-00002")},
		WantUpdates: []clientgotesting.UpdateActionImpl{{
			Object: deployment(hello(), withDeploymentStatus(available()), withOutsideDefaults, withContainerImage(image2)),
		}},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithImage(image2), rolledOut2)...),
		}},
		WantEvents: append(rolledOut2Events(), rtesting.Eventf(corev1.EventTypeNormal, "Updated", `Updated Deployment "hello"`)),
	}, {
		Name: "drift: someone changed the deployment's image, it is put back",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withDeploymentStatus(available()), withContainerImage("registry.test/other:latest")),
			service(hello()),
		},
		Key: "default/hello",
		WantUpdates: []clientgotesting.UpdateActionImpl{{
			Object: deployment(hello(), withDeploymentStatus(available())),
		}},
		WantEvents: []string{rtesting.Eventf(corev1.EventTypeNormal, "Updated", `Updated Deployment "hello"`)},
	}, {
		Name: "the autoscaler's replicas are left alone",
		Objects: []runtime.Object{
			hello(with(ready, WithDeploymentStatus(appsv1.DeploymentStatus{Replicas: 5, ReadyReplicas: 5, AvailableReplicas: 5, UpdatedReplicas: 5,
				Conditions: available().Conditions}), func(f *v1alpha1.Function) { f.Status.DesiredReplicas = 5 })...),
			deployment(hello(), withReplicas(5), withDeploymentStatus(appsv1.DeploymentStatus{Replicas: 5, ReadyReplicas: 5, AvailableReplicas: 5, UpdatedReplicas: 5,
				Conditions: available().Conditions})),
			service(hello()),
		},
		Key: "default/hello",
	}, {
		Name: "scaled to zero is ready",
		Objects: []runtime.Object{
			hello(with(ready, WithMinScale(0), Scaled("ScaledToZero"))...),
			deployment(hello(), withReplicas(0)),
			service(hello()),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithMinScale(0), Scaled("ScaledToZero"), func(f *v1alpha1.Function) {
				f.Status.MarkScaledToZero()
				f.Status.DesiredReplicas = 0
				f.Status.PropagateScaleReason("ScaledToZero")
				f.Status.MarkReadyScaledToZero()
			})...),
		}},
	}, {
		Name: "scaled to zero and reported so: steady",
		Objects: []runtime.Object{
			hello(with(ready, WithMinScale(0), Scaled("ScaledToZero"), func(f *v1alpha1.Function) {
				f.Status.MarkScaledToZero()
				f.Status.DesiredReplicas = 0
				f.Status.PropagateScaleReason("ScaledToZero")
				f.Status.MarkReadyScaledToZero()
			})...),
			deployment(hello(), withReplicas(0)),
			service(hello()),
		},
		Key: "default/hello",
	}, {
		Name: "the autoscaler's reason is the condition's",
		Objects: []runtime.Object{
			hello(with(ready, Scaled("AtMax"))...),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, Scaled("AtMax"), WithScaleReason("AtMax"))...),
		}},
	}, {
		Name: "a deployment of that name not owned by the function is reported, not taken over",
		Objects: []runtime.Object{
			hello(),
			deployment(hello(), withoutOwner),
		},
		Key:     "default/hello",
		WantErr: true,
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(func(f *v1alpha1.Function) {
				f.Status.InitializeConditions()
				f.Status.Image = f.Spec.Image
				f.Status.ObservedGeneration = f.Generation
				f.Status.MarkDeploymentNotOwned("hello")
				WithRevisions(revisionStatus1(f))(f)
			}),
		}},
		WantEvents: []string{
			rtesting.Eventf(corev1.EventTypeWarning, "InternalError", "function hello does not own Deployment hello"),
		},
	}, {
		Name:         "deployment create fails",
		Objects:      []runtime.Object{hello()},
		Key:          "default/hello",
		WithReactors: []clientgotesting.ReactionFunc{rtesting.InduceFailure("create", "deployments")},
		WantErr:      true,
		WantCreates:  []runtime.Object{created(hello())},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(func(f *v1alpha1.Function) {
				f.Status.InitializeConditions()
				f.Status.Image = f.Spec.Image
				f.Status.ObservedGeneration = f.Generation
				f.Status.MarkDeploymentFailed("CreateFailed", errInduced("create", "deployments"))
				WithRevisions(revisionStatus1(f))(f)
			}),
		}},
		WantEvents: []string{
			rtesting.Eventf(corev1.EventTypeWarning, "InternalError", "creating Deployment hello: inducing failure for create deployments"),
		},
	}, {
		Name: "deployment update fails",
		Objects: []runtime.Object{
			hello(with(ready, WithImage(image2))...),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
		},
		Key:          "default/hello",
		WithReactors: []clientgotesting.ReactionFunc{rtesting.InduceFailure("update", "deployments")},
		WantErr:      true,
		WantCreates:  []runtime.Object{revisionOf(hello(WithImage(image2)), 2, false)},
		WantPatches:  []clientgotesting.PatchActionImpl{released("hello-00002")},
		WantUpdates: []clientgotesting.UpdateActionImpl{{
			Object: deployment(hello(), withDeploymentStatus(available()), withContainerImage(image2)),
		}},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithImage(image2), rolledOut2, func(f *v1alpha1.Function) {
				f.Status.MarkDeploymentFailed("UpdateFailed", errInduced("update", "deployments"))
			})...),
		}},
		WantEvents: append(rolledOut2Events(),
			rtesting.Eventf(corev1.EventTypeWarning, "InternalError", "updating Deployment hello: inducing failure for update deployments"),
		),
	}, {
		// Another writer (the autoscaler) updated the Deployment after the lister's copy: tried
		// again, and neither reported as a failure (fn deploy would stop on it) nor an event.
		Name: "deployment update conflicts",
		Objects: []runtime.Object{
			hello(with(ready, WithImage(image2))...),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
		},
		Key: "default/hello",
		WithReactors: []clientgotesting.ReactionFunc{func(a clientgotesting.Action) (bool, runtime.Object, error) {
			if a.GetVerb() != "update" || a.GetResource().Resource != "deployments" {
				return false, nil, nil
			}
			return true, nil, apierrs.NewConflict(appsv1.Resource("deployments"), "hello", errors.New("the object has been modified"))
		}},
		WantErr:     true,
		WantCreates: []runtime.Object{revisionOf(hello(WithImage(image2)), 2, false)},
		WantPatches: []clientgotesting.PatchActionImpl{released("hello-00002")},
		WantUpdates: []clientgotesting.UpdateActionImpl{{
			Object: deployment(hello(), withDeploymentStatus(available()), withContainerImage(image2)),
		}},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithImage(image2), rolledOut2)...),
		}},
		WantEvents: rolledOut2Events(),
	}, {
		Name: "service create fails",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withDeploymentStatus(available())),
		},
		Key:          "default/hello",
		WithReactors: []clientgotesting.ReactionFunc{rtesting.InduceFailure("create", "services")},
		WantErr:      true,
		WantCreates:  []runtime.Object{resources.MakeService(hello())},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, func(f *v1alpha1.Function) {
				f.Status.MarkServiceFailed("CreateFailed", errInduced("create", "services"))
			})...),
		}},
		WantEvents: []string{
			rtesting.Eventf(corev1.EventTypeWarning, "InternalError", "creating Service hello: inducing failure for create services"),
		},
	}, {
		Name: "deployment cannot progress: the reason surfaces",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withDeploymentStatus(appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
				Message: `ReplicaSet "hello-7d9" has timed out progressing.`,
			}}})),
			service(hello()),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithDeploymentStatus(appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
				Message: `ReplicaSet "hello-7d9" has timed out progressing.`,
			}}}))...),
		}},
	}, {
		Name: "rolling out: not ready until every replica runs the current version",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withReplicas(2), withDeploymentStatus(appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 1,
				Conditions: available().Conditions})),
			service(hello()),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, func(f *v1alpha1.Function) {
				f.Status.PropagateDeploymentStatus(&appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 1, Conditions: available().Conditions})
				f.Status.MarkDeploymentRollingOut(1, 2)
				f.Status.DesiredReplicas = 2
			})...),
		}},
	}, {
		Name:    "metric cpu: an HPA is created",
		Objects: []runtime.Object{hello(with(ready, WithMetric(v1alpha1.MetricCPU))...), deployment(hello(WithMetric(v1alpha1.MetricCPU)), withDeploymentStatus(available())), service(hello())},
		Key:     "default/hello",
		WantCreates: []runtime.Object{
			hpa(hello(WithMetric(v1alpha1.MetricCPU))),
		},
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithMetric(v1alpha1.MetricCPU), func(f *v1alpha1.Function) {
				f.Status.PropagateHPAStatus(&autoscalingv2.HorizontalPodAutoscalerStatus{})
			})...),
		}},
		WantEvents: []string{rtesting.Eventf(corev1.EventTypeNormal, "Created", `Created HorizontalPodAutoscaler "hello"`)},
	}, {
		Name: "metric cpu: an HPA without metrics is not active yet",
		Objects: []runtime.Object{
			hello(with(ready, WithMetric(v1alpha1.MetricCPU))...),
			deployment(hello(WithMetric(v1alpha1.MetricCPU)), withDeploymentStatus(available())),
			service(hello()),
			hpa(hello(WithMetric(v1alpha1.MetricCPU)), func(h *autoscalingv2.HorizontalPodAutoscaler) {
				h.Status.Conditions = []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse,
					Reason: "FailedGetResourceMetric", Message: "the HPA was unable to compute the replica count: no metrics returned"}}
			}),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, WithMetric(v1alpha1.MetricCPU),
				withCondition(v1alpha1.FunctionConditionAutoscalerReady, corev1.ConditionUnknown, "FailedGetResourceMetric",
					"HorizontalPodAutoscaler: the HPA was unable to compute the replica count: no metrics returned"))...),
		}},
	}, {
		Name: "metric back to concurrency: the HPA is deleted",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
			hpa(hello(WithMetric(v1alpha1.MetricCPU))),
		},
		Key: "default/hello",
		WantDeletes: []clientgotesting.DeleteActionImpl{{
			ActionImpl: clientgotesting.ActionImpl{Namespace: "default", Verb: "delete", Resource: hpaResource},
			Name:       "hello",
		}},
		WantEvents: []string{rtesting.Eventf(corev1.EventTypeNormal, "Deleted", `Deleted HorizontalPodAutoscaler "hello": metric is concurrency`)},
	}, {
		Name: "the latest build failed: reported, and Ready stays True",
		Objects: []runtime.Object{
			hello(ready...),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
			build(hello(), 1, succeeded),
			build(hello(), 2, failed("BuildFailed", "./hello.go:7:2: undefined: fmt.Printx")),
		},
		Key: "default/hello",
		WantStatusUpdates: []clientgotesting.UpdateActionImpl{{
			Object: hello(with(ready, withBuildCondition(corev1.ConditionFalse, "BuildFailed",
				"build hello-2 of commit 000000000002: ./hello.go:7:2: undefined: fmt.Printx"))...),
		}},
	}, {
		Name: "builds past the newest five are deleted, except one still running and one another owns",
		Objects: []runtime.Object{
			hello(with(ready, withBuildCondition(corev1.ConditionTrue, "Succeeded", "build hello-8 of commit 000000000008 runs"))...),
			deployment(hello(), withDeploymentStatus(available())),
			service(hello()),
			build(hello(), 1, running),
			build(hello(), 2, succeeded),
			build(hello(), 3, failed("Superseded", "superseded")),
			build(hello(), 4, succeeded),
			build(hello(), 5, succeeded),
			build(hello(), 6, succeeded),
			build(hello(), 7, succeeded),
			build(hello(), 8, succeeded),
			build(hello(), 0, succeeded, func(b *v1alpha1.FunctionBuild) { b.OwnerReferences = nil }),
		},
		Key: "default/hello",
		WantDeletes: []clientgotesting.DeleteActionImpl{{
			ActionImpl: clientgotesting.ActionImpl{Namespace: "default", Verb: "delete", Resource: buildResource},
			Name:       "hello-3",
		}, {
			ActionImpl: clientgotesting.ActionImpl{Namespace: "default", Verb: "delete", Resource: buildResource},
			Name:       "hello-2",
		}},
	}}
	table.Test(t, makeFactory())
}

// rolledOut2 is the status of a Function whose image changed to image2 and rolled out at once.
func rolledOut2(f *v1alpha1.Function) {
	f.Status.Image = image2
	f.Status.Rollout = &v1alpha1.RolloutStatus{Revision: "hello-00002", From: "hello-00001", Strategy: v1alpha1.RolloutRolling,
		Phase: v1alpha1.RolloutSucceeded, Percent: 100, StepStarted: metav1.NewTime(testNow), Reason: "RolledOut",
		Message: "Rolled out at once: the strategy is rolling"}
	WithRevisions(
		v1alpha1.RevisionStatus{Name: "hello-00002", Number: 2, Image: image2, Percent: 100},
		v1alpha1.RevisionStatus{Name: "hello-00001", Number: 1, Image: image},
	)(f)
}

func rolledOut2Events() []string {
	return []string{
		rtesting.Eventf(corev1.EventTypeNormal, "Revision", "Created revision hello-00002 (image %s)", image2),
		rtesting.Eventf(corev1.EventTypeNormal, "RolledOut", "hello-00002 replaces hello-00001. Rolled out at once: the strategy is rolling"),
	}
}

// released is the patch that marks revision name released.
func released(name string) clientgotesting.PatchActionImpl {
	return clientgotesting.PatchActionImpl{
		ActionImpl: clientgotesting.ActionImpl{Namespace: "default", Verb: "patch", Resource: appsv1.SchemeGroupVersion.WithResource("controllerrevisions")},
		Name:       name,
		PatchType:  types.MergePatchType,
		Patch:      []byte(`{"metadata":{"annotations":{"fnkit.dev/released":"true"}}}`),
	}
}
