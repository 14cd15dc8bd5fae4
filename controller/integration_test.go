package controller_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"

	fncontroller "fnkit.dev/fn/controller"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/autoscaler"
	fnclient "fnkit.dev/fn/controller/client/clientset/versioned"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/platform/controlplane"
)

const digest = "@sha256:0000000000000000000000000000000000000000000000000000000000000001"

var (
	restConfig *rest.Config
	kube       kubernetes.Interface
	fns        fnclient.Interface
	ctl        *fncontroller.Controller
)

// TestMain starts one real control plane (etcd, kube-apiserver, and kube-controller-manager
// with the garbage collector and namespace controllers only: without the deployment
// controller, tests write Deployments' status themselves), installs the CRD, and runs the
// controller in-process for the package's tests.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "fn-controller-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: dir, BinDir: bin, Controllers: []string{"garbagecollector", "namespace"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.Stop()
	restConfig = cp.RESTConfig()
	kube = kubernetes.NewForConfigOrDie(restConfig)
	fns = fnclient.NewForConfigOrDie(restConfig)
	if err := fncontroller.InstallCRD(ctx, restConfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fn-system"}}, metav1.CreateOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if ctl, err = fncontroller.Run(ctx, restConfig, fncontroller.Options{Config: resources.Config{Domain: "fn.test"}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func namespace(t *testing.T) string {
	t.Helper()
	ns, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "it-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// eventually polls cond every 50ms for up to 30s.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within 30s (last error: %v)", what, last)
	}
}

func TestFunctionLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ctx := context.Background()
	ns := namespace(t)
	f, err := fns.FnkitV1alpha1().Functions(ns).Create(ctx, &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec:       v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/hello" + digest, Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var d *appsv1.Deployment
	eventually(t, "Deployment created", func() (bool, error) {
		d, err = kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{})
		return err == nil, err
	})
	if !metav1.IsControlledBy(d, f) {
		t.Errorf("Deployment owner references %v, want the Function as controller", d.OwnerReferences)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != f.Spec.Image || *d.Spec.Replicas != 1 || c.ReadinessProbe.HTTPGet.Path != "/_fn/ready" {
		t.Errorf("Deployment: image %s replicas %d readiness %v", c.Image, *d.Spec.Replicas, c.ReadinessProbe.HTTPGet)
	}
	var svc *corev1.Service
	eventually(t, "Service created", func() (bool, error) {
		svc, err = kube.CoreV1().Services(ns).Get(ctx, "hello", metav1.GetOptions{})
		return err == nil, err
	})
	if !metav1.IsControlledBy(svc, f) || svc.Spec.Ports[0].Port != 80 || svc.Spec.ClusterIP == "" {
		t.Errorf("Service: owners %v ports %v clusterIP %q", svc.OwnerReferences, svc.Spec.Ports, svc.Spec.ClusterIP)
	}
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "hello", metav1.GetOptions{}); !apierrs.IsNotFound(err) {
		t.Errorf("an HPA exists for metric concurrency: %v", err)
	}

	// The Deployment becomes available: the Function is Ready with its URL.
	d, _ = kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{})
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
	if _, err := kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Function Ready", func() (bool, error) {
		f, err = fns.FnkitV1alpha1().Functions(ns).Get(ctx, "hello", metav1.GetOptions{})
		return err == nil && f.Status.IsReady() && f.Status.ObservedGeneration == f.Generation, err
	})
	if want := "http://hello." + ns + ".fn.test"; f.Status.URL.String() != want || f.Status.ReadyReplicas != 1 || f.Status.Image != f.Spec.Image {
		t.Errorf("status: url %s (want %s) readyReplicas %d image %s", f.Status.URL, want, f.Status.ReadyReplicas, f.Status.Image)
	}

	// A new image rolls out.
	img2 := "127.0.0.1:5000/fns/hello@sha256:0000000000000000000000000000000000000000000000000000000000000002"
	f.Spec.Image = img2
	if _, err := fns.FnkitV1alpha1().Functions(ns).Update(ctx, f, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Deployment updated to the new image", func() (bool, error) {
		d, err = kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == img2, err
	})

	// Drift: an edit of the Deployment's image is put back.
	d.Spec.Template.Spec.Containers[0].Image = "127.0.0.1:5000/fns/other:latest"
	if _, err := kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drift repaired", func() (bool, error) {
		d, err = kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == img2, err
	})

	// Steady state: no more writes to the children.
	rv := d.ResourceVersion
	time.Sleep(2 * time.Second)
	if d, _ = kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{}); d.ResourceVersion != rv {
		t.Errorf("Deployment written in steady state: resourceVersion %s -> %s", rv, d.ResourceVersion)
	}

	// Deleting the Function garbage-collects its children.
	if err := fns.FnkitV1alpha1().Functions(ns).Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "children garbage-collected", func() (bool, error) {
		_, derr := kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{})
		_, serr := kube.CoreV1().Services(ns).Get(ctx, "hello", metav1.GetOptions{})
		return apierrs.IsNotFound(derr) && apierrs.IsNotFound(serr), nil
	})
}

func TestFunctionCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ctx := context.Background()
	ns := namespace(t)
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: "busy"},
		Spec: v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/busy" + digest,
			Scale: &v1alpha1.Scale{Metric: v1alpha1.MetricCPU, Min: ptr.To(int32(2)), Max: ptr.To(int32(6))}},
	}
	if _, err := fns.FnkitV1alpha1().Functions(ns).Create(ctx, f, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HPA created", func() (bool, error) {
		h, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "busy", metav1.GetOptions{})
		return err == nil && *h.Spec.MinReplicas == 2 && h.Spec.MaxReplicas == 6 && h.Spec.ScaleTargetRef.Name == "busy", err
	})
	eventually(t, "Deployment starts at min replicas", func() (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, "busy", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 2, err
	})
}

func TestFunctionNotOwned(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ctx := context.Background()
	ns := namespace(t)
	theirs := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "taken"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 1234}}}}
	if _, err := kube.CoreV1().Services(ns).Create(ctx, theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fns.FnkitV1alpha1().Functions(ns).Create(ctx, &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "taken"},
		Spec: v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/taken" + digest}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "not-owned Service reported", func() (bool, error) {
		f, err := fns.FnkitV1alpha1().Functions(ns).Get(ctx, "taken", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := f.Status.GetCondition(v1alpha1.FunctionConditionServiceReady)
		return c != nil && c.Reason == "NotOwned" && strings.Contains(c.Message, `Service "taken"`), nil
	})
	svc, _ := kube.CoreV1().Services(ns).Get(ctx, "taken", metav1.GetOptions{})
	if len(svc.OwnerReferences) != 0 || svc.Spec.Ports[0].Port != 1234 {
		t.Errorf("the Service that is not the Function's was taken over: %+v", svc)
	}
}

// TestValidation checks that the API server itself rejects malformed Functions, naming the field.
func TestValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ns := namespace(t)
	img := "127.0.0.1:5000/fns/x" + digest
	cases := []struct {
		name string
		spec v1alpha1.FunctionSpec
		want []string
	}{
		{"negative max", v1alpha1.FunctionSpec{Image: img, Scale: &v1alpha1.Scale{Max: ptr.To(int32(-1))}}, []string{"spec.scale.max", "greater than or equal to 1"}},
		{"min above max", v1alpha1.FunctionSpec{Image: img, Scale: &v1alpha1.Scale{Min: ptr.To(int32(5)), Max: ptr.To(int32(2))}}, []string{"spec.scale.min", "must be at most max"}},
		{"empty image", v1alpha1.FunctionSpec{Image: ""}, []string{"spec.image"}},
		{"malformed image", v1alpha1.FunctionSpec{Image: "Not An Image!"}, []string{"spec.image", "should match"}},
		{"unknown metric", v1alpha1.FunctionSpec{Image: img, Scale: &v1alpha1.Scale{Metric: "memory"}}, []string{"spec.scale.metric", `Unsupported value: "memory"`}},
		{"zero timeout", v1alpha1.FunctionSpec{Image: img, Timeout: &metav1.Duration{}}, []string{"spec.timeout", "must be a duration > 0"}},
		{"negative concurrency", v1alpha1.FunctionSpec{Image: img, Concurrency: ptr.To(int32(-1))}, []string{"spec.concurrency"}},
		{"initial above max", v1alpha1.FunctionSpec{Image: img, Scale: &v1alpha1.Scale{Initial: ptr.To(int32(5)), Max: ptr.To(int32(2))}}, []string{"spec.scale.initial", "must be at most max"}},
		{"window too short", v1alpha1.FunctionSpec{Image: img, Scale: &v1alpha1.Scale{Window: &metav1.Duration{Duration: time.Second}}}, []string{"spec.scale.window", "must be a duration from 2s to 1h"}},
		{"no attempt", v1alpha1.FunctionSpec{Image: img, Delivery: &v1alpha1.Delivery{Attempts: ptr.To(int32(0))}}, []string{"spec.delivery.attempts", "greater than or equal to 1"}},
		{"backoff past its bound", v1alpha1.FunctionSpec{Image: img, Delivery: &v1alpha1.Delivery{Backoff: &metav1.Duration{Duration: time.Minute}, MaxBackoff: &metav1.Duration{Duration: time.Second}}},
			[]string{"spec.delivery.backoff", "must be at most maxBackoff"}},
		{"schedule without a name", v1alpha1.FunctionSpec{Image: img, Schedules: []v1alpha1.Schedule{{Cron: "@hourly"}}}, []string{"spec.schedules[0].name"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fns.FnkitV1alpha1().Functions(ns).Create(context.Background(), &v1alpha1.Function{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bad-%d", i)}, Spec: c.spec}, metav1.CreateOptions{})
			if !apierrs.IsInvalid(err) {
				t.Fatalf("create: %v, want Invalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestValidationOfStrings sends what a typed client cannot (a timeout that is no duration) and
// checks the field's own error comes back, not a CEL type conversion error on spec.
func TestValidationOfStrings(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ns := namespace(t)
	img := "127.0.0.1:5000/fns/x" + digest
	for i, c := range []struct {
		spec string
		want []string
	}{
		{`{"image":"` + img + `","timeout":"banana"}`, []string{`spec.timeout: Invalid value: "banana"`}},
		{`{"image":"` + img + `","timeout":"-5s"}`, []string{`spec.timeout: Invalid value: "-5s"`}},
		{`{"image":"` + img + `","timeout":"0s"}`, []string{"spec.timeout", "must be a duration > 0"}},
		{`{"image":"` + img + `","scale":{"window":"soon"}}`, []string{`spec.scale.window: Invalid value: "soon"`}},
		{`{"image":"` + img + `","scale":{"scaleDownDelay":"1 minute"}}`, []string{`spec.scale.scaleDownDelay: Invalid value: "1 minute"`}},
	} {
		body := fmt.Sprintf(`{"apiVersion":"fnkit.dev/v1alpha1","kind":"Function","metadata":{"name":"raw-%d"},"spec":%s}`, i, c.spec)
		err := fns.FnkitV1alpha1().RESTClient().Post().Namespace(ns).Resource("functions").Body([]byte(body)).Do(context.Background()).Error()
		if !apierrs.IsInvalid(err) {
			t.Errorf("%s: %v, want Invalid", c.spec, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.spec, err, w)
			}
		}
		if strings.Contains(err.Error(), "no such overload") || strings.Contains(err.Error(), "type conversion") {
			t.Errorf("%s: a CEL evaluation error reached the user: %v", c.spec, err)
		}
	}
}

// TestControllerBinary starts the real fn-controller binary (knative's shared main, leader
// election, the configuration watchers) against the control plane and checks it comes up and
// stays up.
func TestControllerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fn-system"}}, metav1.CreateOptions{}); err != nil && !apierrs.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fn-controller")
	build := exec.Command("go", "build", "-o", bin, "../cmd/fn-controller")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building fn-controller: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig)
	cmd.Env = append(os.Environ(), "SYSTEM_NAMESPACE=fn-system")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("fn-controller exited at start: %v\n%s", err, logs.String())
	case <-time.After(5 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("fn-controller did not stop within 20s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "Starting controllers") || strings.Contains(logs.String(), "panic") {
		t.Errorf("fn-controller's log:\n%s", logs.String())
	}
}

func writeKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["it"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthority: restConfig.CAFile}
	cfg.AuthInfos["it"] = &clientcmdapi.AuthInfo{ClientCertificate: restConfig.CertFile, ClientKey: restConfig.KeyFile}
	cfg.Contexts["it"] = &clientcmdapi.Context{Cluster: "it", AuthInfo: "it"}
	cfg.CurrentContext = "it"
	return clientcmd.WriteToFile(*cfg, path)
}

// TestAutoscaler runs the autoscaler against the real API server: a Function with a short window
// and no traffic scales to zero through the Deployment's scale subresource and stays Ready with
// reason ScaledToZero; requests held at zero scale it out at once, by what they need.
func TestAutoscaler(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ctx := context.Background()
	ns := namespace(t)
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: "idle"},
		Spec: v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/idle" + digest, Scale: &v1alpha1.Scale{
			Window: &metav1.Duration{Duration: 2 * time.Second}, ScaleDownDelay: &metav1.Duration{}, Max: ptr.To(int32(5))}},
	}
	if _, err := fns.FnkitV1alpha1().Functions(ns).Create(ctx, f, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scaled to zero", func() (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, "idle", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 0, err
	})
	eventually(t, "Ready with reason ScaledToZero", func() (bool, error) {
		f, err := fns.FnkitV1alpha1().Functions(ns).Get(ctx, "idle", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		r := f.Status.GetCondition(v1alpha1.FunctionConditionReady)
		a := f.Status.GetCondition(v1alpha1.FunctionConditionAutoscalerReady)
		return r != nil && r.IsTrue() && r.Reason == "ScaledToZero" && a.Reason == "ScaledToZero" && f.Status.DesiredReplicas == 0 &&
			f.Annotations["autoscaling.fnkit.dev/reason"] == "ScaledToZero", nil
	})

	// 25 requests held at one gateway: 3 replicas at once (target 10), not at the next tick.
	start := time.Now()
	ctl.Autoscaler.Report(autoscaler.Report{Gateway: "it", Poke: true, Functions: []autoscaler.Stat{{Namespace: ns, Name: "idle", Held: 25}}})
	eventually(t, "activated to 3", func() (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, "idle", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 3, err
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("activation took %s: the poke waited for a tick", d)
	}
	// The 3 replicas are ready; a gateway then sees a burst past the panic threshold (2 x target
	// x ready = 60 in flight): decided on that report, up to max 5.
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, "idle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 3, ReadyReplicas: 3, AvailableReplicas: 3, UpdatedReplicas: 3}
	if _, err := kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the autoscaler sees 3 ready", func() (bool, error) {
		f, err := fns.FnkitV1alpha1().Functions(ns).Get(ctx, "idle", metav1.GetOptions{})
		return err == nil && f.Status.ReadyReplicas == 3, err
	})
	ctl.Autoscaler.Report(autoscaler.Report{Gateway: "it", Period: time.Second, Functions: []autoscaler.Stat{{Namespace: ns, Name: "idle", Concurrency: 80, Requests: 800, InFlight: 100}}})
	eventually(t, "burst scaled to max", func() (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, "idle", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 5, err
	})
	// Only the elected replica decides, and it holds the Lease.
	l, err := kube.CoordinationV1().Leases("fn-system").Get(ctx, autoscaler.LeaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || !strings.HasPrefix(*l.Spec.HolderIdentity, "fn-controller-") {
		t.Errorf("autoscaler Lease: %v %v", l, err)
	}
}

// TestTriggerReady: a Trigger naming a missing Function is not Ready, with the reason; it is
// Ready once the Function is made, and not Ready again once it is deleted.
func TestTriggerReady(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	ns := namespace(t)
	ctx := context.Background()
	tr := &v1alpha1.Trigger{ObjectMeta: metav1.ObjectMeta{Name: "on-order"}, Spec: v1alpha1.TriggerSpec{Function: "ship",
		Filter: v1alpha1.TriggerFilter{Attributes: map[string]string{"type": "order.created"}}}}
	if _, err := fns.FnkitV1alpha1().Triggers(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	state := func(status corev1.ConditionStatus, reason string) func() (bool, error) {
		return func() (bool, error) {
			got, err := fns.FnkitV1alpha1().Triggers(ns).Get(ctx, "on-order", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			c := got.Status.GetCondition(apis.ConditionReady)
			if c == nil {
				return false, fmt.Errorf("no Ready condition")
			}
			if c.Status != status || c.Reason != reason || got.Status.ObservedGeneration != got.Generation {
				return false, fmt.Errorf("Ready %s %s: %s", c.Status, c.Reason, c.Message)
			}
			return true, nil
		}
	}
	eventually(t, "the Trigger not Ready for want of its Function", state(corev1.ConditionFalse, v1alpha1.TriggerReasonFunctionNotFound))
	f := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "ship"}, Spec: v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/ship" + digest}}
	if _, err := fns.FnkitV1alpha1().Functions(ns).Create(ctx, f, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Trigger Ready", state(corev1.ConditionTrue, ""))
	if err := fns.FnkitV1alpha1().Functions(ns).Delete(ctx, "ship", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Trigger not Ready again", state(corev1.ConditionFalse, v1alpha1.TriggerReasonFunctionNotFound))
}
