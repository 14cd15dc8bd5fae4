package function

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	fakekubeclientset "k8s.io/client-go/kubernetes/fake"
	appsv1listers "k8s.io/client-go/listers/apps/v1"
	autoscalingv2listers "k8s.io/client-go/listers/autoscaling/v2"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"
	fakekubeclient "knative.dev/pkg/client/injection/kube/client/fake"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/kmeta"
	"knative.dev/pkg/logging"
	logtesting "knative.dev/pkg/logging/testing"
	pkgreconciler "knative.dev/pkg/reconciler"
	rtesting "knative.dev/pkg/reconciler/testing"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fakefnclientset "fnkit.dev/fn/controller/client/clientset/versioned/fake"
	fakefnclient "fnkit.dev/fn/controller/client/injection/client/fake"
	functionreconciler "fnkit.dev/fn/controller/client/injection/reconciler/fn/v1alpha1/function"
	fnlisters "fnkit.dev/fn/controller/client/listers/fn/v1alpha1"
	"fnkit.dev/fn/controller/reconciler/function/resources"
)

const (
	image  = "registry.test/fns/hello@sha256:0000000000000000000000000000000000000000000000000000000000000001"
	image2 = "registry.test/fns/hello@sha256:0000000000000000000000000000000000000000000000000000000000000002"
)

var testConfig = resources.Config{Port: 8080, Domain: "fn.test"}

// testNow is the reconciler's clock in the table tests.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// FunctionOption changes a test Function.
type FunctionOption func(*v1alpha1.Function)

// Function returns a Function as a user would write it, with the options applied.
func Function(name, namespace string, opts ...FunctionOption) *v1alpha1.Function {
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID("uid-" + name), Generation: 1,
			// As the autoscaler has annotated it; Scaled changes that.
			Annotations: map[string]string{fn.ScaleReasonAnnotation: "Stable"}},
		Spec: v1alpha1.FunctionSpec{Image: image},
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

func WithImage(img string) FunctionOption { return func(f *v1alpha1.Function) { f.Spec.Image = img } }

func WithMinScale(n int32) FunctionOption {
	return func(f *v1alpha1.Function) { scale(f).Min = ptr.To(n) }
}

func WithMetric(m v1alpha1.ScaleMetric) FunctionOption {
	return func(f *v1alpha1.Function) { scale(f).Metric = m }
}

func scale(f *v1alpha1.Function) *v1alpha1.Scale {
	if f.Spec.Scale == nil {
		f.Spec.Scale = &v1alpha1.Scale{}
	}
	return f.Spec.Scale
}

// WithDefaults applies the spec defaults, as the reconciler does before building children.
func WithDefaults(f *v1alpha1.Function) { f.SetDefaults(context.Background()) }

// WithStatus sets the status fields every reconciled Function has.
func WithStatus(f *v1alpha1.Function) {
	f.Status.InitializeConditions()
	f.Status.Image = f.Spec.Image
	f.Status.ObservedGeneration = f.Generation
	f.Status.SetAddress(apis.HTTP(f.Name+"."+f.Namespace+".svc.cluster.local"), apis.HTTP(f.Name+"."+f.Namespace+".fn.test"))
	f.Status.MarkServiceReady()
	f.Status.PropagateScaleReason("Stable")
	f.Status.DesiredReplicas = 1
	WithRevisions(revisionStatus1(f))(f)
}

// revisionStatus1 is f's first revision, with all traffic.
func revisionStatus1(f *v1alpha1.Function) v1alpha1.RevisionStatus {
	return v1alpha1.RevisionStatus{Name: v1alpha1.RevisionName(f.Name, 1), Number: 1, Image: f.Spec.Image, Percent: 100}
}

// WithRevisions sets the status's revisions, newest first: the first is the latest, the one
// with traffic the stable one.
func WithRevisions(revs ...v1alpha1.RevisionStatus) FunctionOption {
	return func(f *v1alpha1.Function) {
		f.Status.Revisions = revs
		f.Status.LatestRevision = revs[0].Name
		for _, r := range revs {
			if r.Percent == 100 {
				f.Status.StableRevision = r.Name
			}
		}
		f.Status.PropagateRollout()
	}
}

// revisionOf is the revision n of what f's spec runs, as the reconciler records it.
func revisionOf(f *v1alpha1.Function, n int64, released bool) *appsv1.ControllerRevision {
	f = f.DeepCopy()
	f.SetDefaults(context.Background())
	t := f.Spec.TemplateOf()
	data, _ := json.Marshal(t)
	name := v1alpha1.RevisionName(f.Name, n)
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: f.Namespace,
			Labels:          map[string]string{fn.FunctionLabelKey: f.Name, fn.RevisionLabelKey: name},
			Annotations:     map[string]string{fn.RevisionHashAnnotation: t.Hash()},
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(f)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: n,
	}
	if released {
		cr.Annotations[fn.ReleasedAnnotation] = "true"
	}
	return cr
}

// withRevision1 adds to objs, for each Function among them without a revision, its released
// revision 1: what a Function reconciled before has.
func withRevision1(objs []runtime.Object) []runtime.Object {
	has := map[string]bool{}
	for _, o := range objs {
		if cr, ok := o.(*appsv1.ControllerRevision); ok {
			has[cr.Namespace+"/"+cr.Labels[fn.FunctionLabelKey]] = true
		}
	}
	out := append([]runtime.Object(nil), objs...)
	for _, o := range objs {
		if f, ok := o.(*v1alpha1.Function); ok && !has[f.Namespace+"/"+f.Name] {
			// Revision 1 runs what the status says runs.
			g := f.DeepCopy()
			if f.Status.Image != "" {
				g.Spec.Image = f.Status.Image
			}
			out = append(out, revisionOf(g, 1, true))
		}
	}
	return out
}

// WithScaleReason reports the autoscaler's reason, as the Deployment's annotation carries it.
func WithScaleReason(reason string) FunctionOption {
	return func(f *v1alpha1.Function) { f.Status.PropagateScaleReason(reason) }
}

// WithDeploying marks the Deployment as not yet reporting.
func WithDeploying(f *v1alpha1.Function) {
	f.Status.PropagateDeploymentStatus(&appsv1.DeploymentStatus{})
}

// WithDeploymentStatus propagates a Deployment status.
func WithDeploymentStatus(s appsv1.DeploymentStatus) FunctionOption {
	return func(f *v1alpha1.Function) { f.Status.PropagateDeploymentStatus(&s) }
}

func withCondition(t apis.ConditionType, status corev1.ConditionStatus, reason, msg string) FunctionOption {
	return func(f *v1alpha1.Function) {
		for i, c := range f.Status.Conditions {
			if c.Type == t {
				f.Status.Conditions[i].Status, f.Status.Conditions[i].Reason, f.Status.Conditions[i].Message = status, reason, msg
			}
		}
		// Ready follows the children's conditions.
		ready := corev1.ConditionTrue
		var why, whyMsg string
		for _, c := range f.Status.Conditions {
			if c.Type != apis.ConditionReady && c.Status != corev1.ConditionTrue {
				if ready != corev1.ConditionFalse {
					ready, why, whyMsg = c.Status, c.Reason, c.Message
				}
			}
		}
		for i, c := range f.Status.Conditions {
			if c.Type == apis.ConditionReady {
				f.Status.Conditions[i].Status, f.Status.Conditions[i].Reason, f.Status.Conditions[i].Message = ready, why, whyMsg
			}
		}
	}
}

func available() appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{
		Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}},
	}
}

// DeploymentOption changes a test Deployment.
type DeploymentOption func(*appsv1.Deployment)

func deployment(f *v1alpha1.Function, opts ...DeploymentOption) *appsv1.Deployment {
	f = f.DeepCopy()
	f.SetDefaults(context.Background())
	d := resources.MakeDeployment(f, testConfig)
	d.Annotations = map[string]string{}
	for _, o := range opts {
		o(d)
	}
	return d
}

func withDeploymentStatus(s appsv1.DeploymentStatus) DeploymentOption {
	return func(d *appsv1.Deployment) { d.Status = s }
}

// created is the Deployment the reconciler creates.
func created(f *v1alpha1.Function) *appsv1.Deployment {
	return deployment(f, func(d *appsv1.Deployment) { d.Annotations = nil })
}

// Scaled is a Function the autoscaler has given its reason.
func Scaled(reason string) FunctionOption {
	return func(f *v1alpha1.Function) {
		if f.Annotations == nil {
			f.Annotations = map[string]string{}
		}
		f.Annotations[fn.ScaleReasonAnnotation] = reason
	}
}

func withReplicas(n int32) DeploymentOption {
	return func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To(n) }
}

func withContainerImage(img string) DeploymentOption {
	return func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = img }
}

// withServerDefaults sets fields the API server defaults and other tools add, which the
// reconciler must leave alone.
func withServerDefaults(d *appsv1.Deployment) {
	withOutsideDefaults(d)
	c := &d.Spec.Template.Spec.Containers[0]
	c.ImagePullPolicy = corev1.PullIfNotPresent
	c.TerminationMessagePath = "/dev/termination-log"
	c.ReadinessProbe.TimeoutSeconds, c.ReadinessProbe.SuccessThreshold = 1, 1
}

// withOutsideDefaults is withServerDefaults but for the container's: an update replaces the
// containers list whole (the server defaults it again), and keeps everything else.
func withOutsideDefaults(d *appsv1.Deployment) {
	d.Spec.ProgressDeadlineSeconds = ptr.To(int32(600))
	d.Spec.RevisionHistoryLimit = ptr.To(int32(10))
	d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	d.Spec.Template.Spec.DNSPolicy = corev1.DNSClusterFirst
	d.Spec.Template.Spec.SchedulerName = "default-scheduler"
	d.Labels["team"] = "payments"
	d.Annotations["deployment.kubernetes.io/revision"] = "3"
}

func withoutOwner(d *appsv1.Deployment) { d.OwnerReferences = nil }

func service(f *v1alpha1.Function) *corev1.Service {
	s := resources.MakeService(f)
	s.Spec.ClusterIP, s.Spec.Type, s.Spec.SessionAffinity = "10.0.0.7", corev1.ServiceTypeClusterIP, corev1.ServiceAffinityNone
	return s
}

func hpa(f *v1alpha1.Function, opts ...func(*autoscalingv2.HorizontalPodAutoscaler)) *autoscalingv2.HorizontalPodAutoscaler {
	f = f.DeepCopy()
	f.SetDefaults(context.Background())
	h := resources.MakeHPA(f)
	for _, o := range opts {
		o(h)
	}
	return h
}

// listers serve the table row's objects to the reconciler, as informers would.
type listers struct{ sorter rtesting.ObjectSorter }

func newListers(objs []runtime.Object) listers {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{fakekubeclientset.AddToScheme, fakefnclientset.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	l := listers{sorter: rtesting.NewObjectSorter(scheme)}
	l.sorter.AddObjects(objs...)
	return l
}

func (l listers) kubeObjects() []runtime.Object {
	return l.sorter.ObjectsForSchemeFunc(fakekubeclientset.AddToScheme)
}

func (l listers) fnObjects() []runtime.Object {
	return l.sorter.ObjectsForSchemeFunc(fakefnclientset.AddToScheme)
}

// makeFactory builds the generated reconciler around ours with fake clients holding the row's objects.
func makeFactory() rtesting.Factory {
	return func(t *testing.T, row *rtesting.TableRow) (controller.Reconciler, rtesting.ActionRecorderList, rtesting.EventList) {
		objs := row.Objects
		if row.OtherTestData["new"] == nil {
			objs = withRevision1(objs)
		}
		ls := newListers(objs)
		ctx := row.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		ctx = logging.WithLogger(ctx, logtesting.TestLogger(t))
		ctx, kube := fakekubeclient.With(ctx, ls.kubeObjects()...)
		ctx, fns := fakefnclient.With(ctx, ls.fnObjects()...)
		recorder := record.NewFakeRecorder(20)
		ctx = controller.WithEventRecorder(ctx, recorder)
		for _, reactor := range row.WithReactors {
			kube.PrependReactor("*", "*", reactor)
			fns.PrependReactor("*", "*", reactor)
		}
		r := &Reconciler{
			kube:             kube,
			deploymentLister: appsv1listers.NewDeploymentLister(ls.sorter.IndexerForObjectType(&appsv1.Deployment{})),
			serviceLister:    corev1listers.NewServiceLister(ls.sorter.IndexerForObjectType(&corev1.Service{})),
			hpaLister:        autoscalingv2listers.NewHorizontalPodAutoscalerLister(ls.sorter.IndexerForObjectType(&autoscalingv2.HorizontalPodAutoscaler{})),
			fn:               fns,
			buildLister:      fnlisters.NewFunctionBuildLister(ls.sorter.IndexerForObjectType(&v1alpha1.FunctionBuild{})),
			cfg:              testConfig,
			revisionLister:   appsv1listers.NewControllerRevisionLister(ls.sorter.IndexerForObjectType(&appsv1.ControllerRevision{})),
			now:              func() time.Time { return testNow },
		}
		functions := fnlisters.NewFunctionLister(ls.sorter.IndexerForObjectType(&v1alpha1.Function{}))
		c := functionreconciler.NewReconciler(ctx, logging.FromContext(ctx), fns, functions, recorder, r)
		// The generated reconciler works only as the leader of its buckets.
		if la, ok := c.(pkgreconciler.LeaderAware); ok {
			if err := la.Promote(pkgreconciler.UniversalBucket(), func(pkgreconciler.Bucket, types.NamespacedName) {}); err != nil {
				t.Fatal(err)
			}
		}
		return c, rtesting.ActionRecorderList{fns, kube}, rtesting.EventList{Recorder: recorder}
	}
}

var (
	hpaResource   = autoscalingv2.SchemeGroupVersion.WithResource("horizontalpodautoscalers")
	buildResource = v1alpha1.SchemeGroupVersion.WithResource("functionbuilds")
)

// build is build n of f (named f-n, created n minutes in, commit n), in the state opts give.
func build(f *v1alpha1.Function, n int, opts ...func(*v1alpha1.FunctionBuild)) *v1alpha1.FunctionBuild {
	b := &v1alpha1.FunctionBuild{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", f.Name, n), Namespace: f.Namespace, UID: types.UID(fmt.Sprintf("build-%d", n)),
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, n, 0, 0, time.UTC)),
			Labels:            map[string]string{v1alpha1.FunctionLabel: f.Name},
			OwnerReferences:   []metav1.OwnerReference{*kmeta.NewControllerRef(f)}},
		Spec: v1alpha1.FunctionBuildSpec{Function: f.Name, Trigger: v1alpha1.TriggerPush,
			Git: v1alpha1.BuildGitSource{URL: "/git/default/hello.git", Commit: fmt.Sprintf("%012d%028d", n, 0)}},
	}
	b.Status.InitializeConditions()
	for _, o := range opts {
		o(b)
	}
	return b
}

// withBuildCondition sets the Function's BuildSucceeded condition (which Ready does not follow).
func withBuildCondition(status corev1.ConditionStatus, reason, msg string) FunctionOption {
	return func(f *v1alpha1.Function) {
		f.Status.Conditions = append(f.Status.Conditions, apis.Condition{Type: v1alpha1.FunctionConditionBuildSucceeded,
			Status: status, Reason: reason, Message: msg, Severity: apis.ConditionSeverityInfo})
		sort.Slice(f.Status.Conditions, func(i, j int) bool { return f.Status.Conditions[i].Type < f.Status.Conditions[j].Type })
	}
}

func running(b *v1alpha1.FunctionBuild) { b.Status.MarkRunning(b.CreationTimestamp.Time) }

func succeeded(b *v1alpha1.FunctionBuild) {
	b.Status.MarkSucceeded(image, b.CreationTimestamp.Add(time.Second))
}

func failed(reason, msg string) func(*v1alpha1.FunctionBuild) {
	return func(b *v1alpha1.FunctionBuild) {
		b.Status.MarkFailed(reason, msg, b.CreationTimestamp.Add(time.Second))
	}
}

// errInduced is the error rtesting.InduceFailure returns.
func errInduced(verb, resource string) error {
	return fmt.Errorf("inducing failure for %s %s", verb, resource)
}
