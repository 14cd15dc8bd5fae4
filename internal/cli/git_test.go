package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnclient "fnkit.dev/fn/controller/client/clientset/versioned"
)

// fnClient is the fake clientset the factory's clusters use.
func (fa *Factory) fnClient(t *testing.T) fnclient.Interface {
	t.Helper()
	cl, err := fa.Connect(&clusterFlags{})
	if err != nil {
		t.Fatal(err)
	}
	return cl.fns
}

func TestNewLogText(t *testing.T) {
	for _, tc := range []struct{ printed, tail, want string }{
		{"", "a\nb\n", "a\nb\n"},
		{"a\nb\n", "a\nb\nc\n", "c\n"},
		{"a\nb\n", "a\nb\n", ""},
		// The tail moved on: what was printed ends at its last line.
		{"a\nb\nc\n", "b\nc\nd\ne\n", "d\ne\n"},
		// Nothing printed is left in the tail: all of it is new.
		{"a\n", "x\ny\n", "x\ny\n"},
	} {
		if got := newLogText(tc.printed, tc.tail); got != tc.want {
			t.Errorf("newLogText(%q, %q) = %q, want %q", tc.printed, tc.tail, got, tc.want)
		}
	}
}

func testBuild(fn, name, commit string, at time.Time, mark func(*v1alpha1.FunctionBuildStatus)) *v1alpha1.FunctionBuild {
	b := &v1alpha1.FunctionBuild{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{v1alpha1.FunctionLabel: fn},
			CreationTimestamp: metav1.NewTime(at)},
		Spec: v1alpha1.FunctionBuildSpec{Function: fn, Trigger: v1alpha1.TriggerPush, Git: v1alpha1.BuildGitSource{URL: "u", Commit: commit}},
	}
	b.Status.InitializeConditions()
	mark(&b.Status)
	return b
}

func TestBuildsAndBuildLogs(t *testing.T) {
	fa, out, errOut := testFactory(nil, testFunction("default", "hello"), testFunction("default", "other"))
	fc := fa.fnClient(t)
	at := time.Now().Add(-time.Minute)
	img := "r.test/fns/hello@sha256:" + strings.Repeat("ab", 32)
	for _, b := range []*v1alpha1.FunctionBuild{
		testBuild("hello", "hello-a", strings.Repeat("1", 40), at, func(s *v1alpha1.FunctionBuildStatus) {
			s.MarkRunning(at)
			s.SetLogTail("fn: building\n")
			s.MarkSucceeded(img, at.Add(2*time.Second))
		}),
		testBuild("hello", "hello-b", strings.Repeat("2", 40), at.Add(time.Second), func(s *v1alpha1.FunctionBuildStatus) {
			s.MarkRunning(at.Add(time.Second))
			s.SetLogTail("hello.go:3:1: undefined: x\n")
			s.MarkFailed(v1alpha1.BuildReasonFailed, "does not compile", at.Add(3*time.Second))
		}),
		testBuild("other", "other-a", strings.Repeat("3", 40), at, func(*v1alpha1.FunctionBuildStatus) {}),
	} {
		if _, err := fc.FnkitV1alpha1().FunctionBuilds("default").Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if code := run(context.Background(), []string{"builds", "hello"}, fa); code != 0 {
		t.Fatalf("fn builds: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "hello-b") || !strings.Contains(lines[1], "Failed (BuildFailed)") ||
		!strings.HasPrefix(lines[2], "hello-a") || !strings.Contains(lines[2], "Succeeded") || !strings.Contains(lines[2], "2s") ||
		!strings.Contains(lines[2], "abababababab") {
		t.Errorf("fn builds hello, newest first, only hello's:\n%s", out)
	}
	out.Reset()
	if code := run(context.Background(), []string{"builds", "hello", "-o", "json"}, fa); code != 0 {
		t.Fatalf("fn builds -o json: exit %d: %s", code, errOut)
	}
	var list struct {
		Items []v1alpha1.FunctionBuild
	}
	if err := json.Unmarshal([]byte(out.String()), &list); err != nil || len(list.Items) != 2 || list.Items[0].Kind != "FunctionBuild" {
		t.Errorf("fn builds -o json: %v\n%s", err, out)
	}
	out.Reset()
	errOut.Reset()
	// The newest build's log; it failed, so the command does.
	if code := run(context.Background(), []string{"logs", "hello", "--build"}, fa); code != 1 || out.String() != "hello.go:3:1: undefined: x\n" ||
		!strings.Contains(errOut.String(), "build hello-b failed (BuildFailed)") {
		t.Errorf("fn logs --build: exit %d, %q, %q", code, out, errOut)
	}
	out.Reset()
	if code := run(context.Background(), []string{"logs", "hello", "--build", "hello-a"}, fa); code != 0 || out.String() != "fn: building\n" {
		t.Errorf("fn logs --build hello-a: exit %d, %q", code, out)
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"logs", "hello", "--build", "other-a"}, fa); code != 1 || !strings.Contains(errOut.String(), "is of function other") {
		t.Errorf("fn logs hello --build other-a: exit %d, %q", code, errOut)
	}
}
