package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnfake "fnkit.dev/fn/controller/client/clientset/versioned/fake"
)

// testFactory runs commands against fake clientsets holding objs, in namespace default unless
// -n says otherwise.
func testFactory(kubeObjs []any, fns ...*v1alpha1.Function) (*Factory, *syncBuffer, *syncBuffer) {
	fc := fnfake.NewSimpleClientset()
	for _, f := range fns {
		_, _ = fc.FnkitV1alpha1().Functions(f.Namespace).Create(context.Background(), f, metav1.CreateOptions{})
	}
	kc := kubefake.NewSimpleClientset()
	for _, o := range kubeObjs {
		switch o := o.(type) {
		case *corev1.Pod:
			_, _ = kc.CoreV1().Pods(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		case *corev1.Event:
			_, _ = kc.CoreV1().Events(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		case *corev1.Namespace:
			_, _ = kc.CoreV1().Namespaces().Create(context.Background(), o, metav1.CreateOptions{})
		}
	}
	var out, errOut syncBuffer
	fa := &Factory{IOStreams: IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}}
	fa.Connect = func(cf *clusterFlags) (*cluster, error) {
		ns := cf.namespace
		if ns == "" {
			ns = "default"
		}
		return &cluster{kube: kc, fns: fc, namespace: ns}, nil
	}
	return fa, &out, &errOut
}

func testFunction(ns, name string) *v1alpha1.Function {
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)),
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "fn"}}},
		Spec: v1alpha1.FunctionSpec{
			Image: "r.test/fns/" + name + "@sha256:" + strings.Repeat("2", 64),
			Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}, {Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "api"}, Key: "token"}}}},
			Scale: &v1alpha1.Scale{Max: ptr.To(int32(4))},
		},
	}
	f.Status.MarkReadyScaledToZero()
	f.Status.SetConditions(apis.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionTrue, Reason: "ScaledToZero"}})
	return f
}

func TestListOutputs(t *testing.T) {
	fns := []*v1alpha1.Function{testFunction("default", "b"), testFunction("default", "a"), testFunction("shop", "orders")}
	for _, c := range []struct {
		args []string
		want []string // lines, in order, each matched by its start
	}{
		{[]string{"list"}, []string{"NAME ", "a ", "b "}},
		{[]string{"list", "-A"}, []string{"NAMESPACE ", "default ", "default ", "shop "}},
		{[]string{"list", "-o", "name"}, []string{"function.fnkit.dev/a", "function.fnkit.dev/b"}},
		{[]string{"list", "-n", "shop", "-o", "wide"}, []string{"NAME ", "orders "}},
	} {
		fa, out, _ := testFactory(nil, fns...)
		if code := run(context.Background(), c.args, fa); code != 0 {
			t.Fatalf("fn %v: exit %d", c.args, code)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != len(c.want) {
			t.Errorf("fn %v:\n%s\nwant %d lines", c.args, out, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(lines[i], w) {
				t.Errorf("fn %v: line %d %q, want it to start %q", c.args, i, lines[i], w)
			}
		}
	}
	// -o wide shows the scale with its defaults and the image.
	fa, out, _ := testFactory(nil, fns...)
	run(context.Background(), []string{"list", "-o", "wide"}, fa)
	if !strings.Contains(out.String(), "METRIC") || !strings.Contains(out.String(), "concurrency") || !strings.Contains(out.String(), "r.test/fns/a@sha256:") {
		t.Errorf("fn list -o wide:\n%s", out)
	}

	// -o json is a List of Functions with their kind and without managed fields.
	fa, out, _ = testFactory(nil, fns...)
	if code := run(context.Background(), []string{"list", "-A", "-o", "json"}, fa); code != 0 {
		t.Fatal(code)
	}
	var list struct {
		APIVersion, Kind string
		Items            []map[string]any
	}
	if err := json.Unmarshal([]byte(out.String()), &list); err != nil || list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 3 {
		t.Fatalf("fn list -o json: %v\n%s", err, out)
	}
	for _, it := range list.Items {
		md, _ := it["metadata"].(map[string]any)
		if it["kind"] != "Function" || it["apiVersion"] != "fnkit.dev/v1alpha1" || md["managedFields"] != nil {
			t.Errorf("item %v: want kind Function, apiVersion fnkit.dev/v1alpha1, no managedFields", it)
		}
	}
	fa, out, _ = testFactory(nil, fns...)
	run(context.Background(), []string{"list", "-o", "yaml"}, fa)
	if !strings.HasPrefix(out.String(), "apiVersion: v1\n") || !strings.Contains(out.String(), "kind: List") || strings.Contains(out.String(), "managedFields") {
		t.Errorf("fn list -o yaml:\n%s", out)
	}

	// An empty list says so on stderr, and prints nothing on stdout.
	fa, out, errOut := testFactory(nil)
	if code := run(context.Background(), []string{"list", "-n", "empty"}, fa); code != 0 || out.String() != "" || errOut.String() != "No functions in namespace empty.\n" {
		t.Errorf("empty list: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code := run(context.Background(), []string{"list", "-o", "xml"}, fa); code != 2 {
		t.Errorf("fn list -o xml: exit %d, want 2", code)
	}
}

func TestDescribe(t *testing.T) {
	f := testFunction("default", "hello")
	f.Spec.Source = &v1alpha1.Source{Git: &v1alpha1.GitSource{URL: "https://git.example/acme/fns.git", Path: "hello"}}
	f.Status.Conditions = append(f.Status.Conditions, apis.Condition{Type: v1alpha1.FunctionConditionBuildSucceeded, Status: corev1.ConditionFalse,
		Reason: "BuildFailed", Message: "build hello-x of commit 0123: does not compile:\nhello.go:3:1: undefined: x\n"})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hello-1", Namespace: "default", Labels: map[string]string{"fnkit.dev/function": "hello"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "function"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "function",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "default"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "hello-1"},
		Type: "Warning", Reason: "BackOff", Message: "Back-off restarting failed container", LastTimestamp: metav1.NewTime(time.Now())}
	other := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e2", Namespace: "default"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "unrelated"},
		Type: "Normal", Reason: "Other", Message: "not hello's", LastTimestamp: metav1.NewTime(time.Now())}
	fa, out, errOut := testFactory([]any{pod, ev, other}, f)
	if code := run(context.Background(), []string{"describe", "hello"}, fa); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	d := out.String()
	for _, want := range []string{
		"Timeout:      30s", "Concurrency:  unlimited per replica", "Access:       public",
		"Scale:        metric concurrency, target 10, min 0, max 4, window the cluster's, scale-down delay 30s",
		"Env:          GREETING, TOKEN (secret api/token)",
		"waiting: CrashLoopBackOff", "BackOff", "pod/hello-1", "Back-off restarting failed container",
		"Last log lines of hello-1 before it crashed:\nfake logs", // the fake clientset's log
		"Source:       git https://git.example/acme/fns.git, branch main, path /hello",
		"BuildFailed   build hello-x of commit 0123: does not compile: | hello.go:3:1: undefined: x\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("fn describe: no %q in\n%s", want, d)
		}
	}
	for _, never := range []string{"hi", "not hello's"} {
		if strings.Contains(d, never) {
			t.Errorf("fn describe shows %q:\n%s", never, d)
		}
	}
	fa, out, _ = testFactory(nil, f)
	run(context.Background(), []string{"describe", "hello", "-o", "json"}, fa)
	if !strings.Contains(out.String(), `"kind": "Function"`) || strings.Contains(out.String(), "managedFields") {
		t.Errorf("fn describe -o json:\n%s", out)
	}
}

// TestCompletion: shells complete function names, namespaces and templates.
func TestCompletion(t *testing.T) {
	fns := []*v1alpha1.Function{testFunction("default", "hello"), testFunction("default", "help-desk"), testFunction("default", "orders")}
	nss := []any{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "list", "-n", ""}, "default\nshop\n:4\n"},
		{[]string{"__complete", "describe", "hel"}, "hello\nhelp-desk\n:4\n"},
		{[]string{"__complete", "invoke", ""}, "hello\nhelp-desk\norders\n:4\n"},
		{[]string{"__complete", "logs", "hello", ""}, ":4\n"},
		{[]string{"__complete", "init", "x", "--template", ""}, "cloudevents\nhttp\ntyped\n:4\n"},
	} {
		fa, out, _ := testFactory(nss, fns...)
		run(context.Background(), c.args, fa)
		if got := out.String(); got != c.want {
			t.Errorf("fn %v:\n%q\nwant %q", c.args, got, c.want)
		}
	}
}

func TestRequestFilter(t *testing.T) {
	f := testFunction("shop", "orders")
	var out strings.Builder
	rf := &requestFilter{f: f, out: &out, tail: 2}
	lines := []string{
		`{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"request","namespace":"shop","function":"orders","method":"GET","path":"/f/shop/orders/1","status":200,"duration_ms":1.5,"upstream":"10.244.0.5:8080"}`,
		`{"time":"2026-12-01T10:00:01Z","level":"INFO","msg":"request","namespace":"shop","function":"other","method":"GET","path":"/f/shop/other/","status":200,"duration_ms":1,"upstream":"x"}`,
		`{"time":"2026-12-01T10:00:02Z","level":"INFO","msg":"request","namespace":"default","function":"orders","method":"GET","path":"/f/default/orders/","status":200,"duration_ms":1,"upstream":"x"}`,
		`not json`,
		`{"time":"2026-12-01T10:00:03Z","level":"INFO","msg":"scaled","namespace":"shop","function":"orders"}`,
		`{"time":"2026-12-01T10:00:04Z","level":"ERROR","msg":"request","namespace":"shop","function":"orders","method":"POST","path":"/f/shop/orders/2","status":502,"duration_ms":12.25,"upstream":"10.244.0.6:8080","error":"connection refused"}`,
		`{"time":"2026-12-01T10:00:05Z","level":"INFO","msg":"request","namespace":"shop","function":"orders","method":"GET","path":"/f/shop/orders/3","status":200,"duration_ms":0.5,"upstream":"10.244.0.5:8080"}`,
	}
	// Without a tail: the function's lines only, not another function's nor another namespace's.
	var every strings.Builder
	all := &requestFilter{f: f, out: &every, tail: -1}
	for _, l := range lines {
		all.line([]byte(l))
	}
	if got := strings.Count(every.String(), "\n"); got != 3 || strings.Contains(every.String(), "/f/default/") || strings.Contains(every.String(), "/other/") {
		t.Errorf("every line of shop/orders, want 3:\n%s", every.String())
	}
	for _, l := range lines {
		rf.line([]byte(l))
	}
	if out.Len() != 0 {
		t.Errorf("lines printed before the tail was known: %q", out.String())
	}
	rf.flush()
	want := "2026-12-01T10:00:04Z POST /f/shop/orders/2 502 12.2ms 10.244.0.6:8080 connection refused\n" +
		"2026-12-01T10:00:05Z GET /f/shop/orders/3 200 0.5ms 10.244.0.5:8080\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	rf.line([]byte(`{"time":"2026-12-01T10:00:06Z","msg":"request","namespace":"shop","function":"orders","method":"GET","path":"/f/shop/orders/4","status":200,"duration_ms":1,"upstream":"u"}`))
	if !strings.HasSuffix(out.String(), "GET /f/shop/orders/4 200 1.0ms u\n") {
		t.Errorf("a line after the tail: %q", out.String())
	}
}
