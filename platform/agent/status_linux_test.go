package agent

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"fnkit.dev/fn/platform/controlplane"
)

// TestSoleStatusWriter: a status written over a Pod listed before the agent's previous status
// write is taken, not refused with a conflict (as it is without soleStatusWriter).
func TestSoleStatusWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server")
	}
	ctx := context.Background()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir(), BinDir: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	kube := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}
	if _, err := kube.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	listed, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := listed.DeepCopy()
	first.Status.Phase, first.Status.PodIP = corev1.PodPending, "10.0.0.2"
	if _, err := kube.CoreV1().Pods("default").UpdateStatus(ctx, first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	second := listed.DeepCopy() // the informer has not seen the first write yet
	second.Status.Phase, second.Status.PodIP = corev1.PodRunning, "10.0.0.2"
	if _, err := kube.CoreV1().Pods("default").UpdateStatus(ctx, second, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("a plain status write over a stale Pod: %v, want a conflict (the case soleStatusWriter is for)", err)
	}
	got, err := soleStatusWriter{kube.CoreV1()}.Pods("default").UpdateStatus(ctx, second, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("soleStatusWriter over a stale Pod: %v", err)
	}
	if got.Status.Phase != corev1.PodRunning || second.ResourceVersion != listed.ResourceVersion {
		t.Errorf("written phase %s (want Running); the caller's Pod changed: %v", got.Status.Phase, second.ResourceVersion != listed.ResourceVersion)
	}
}

// TestProviderFailures: of the pod controller's events, only failures are recorded.
func TestProviderFailures(t *testing.T) {
	fake := record.NewFakeRecorder(10)
	r := providerFailures{fake}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}
	r.Event(pod, corev1.EventTypeNormal, "ProviderCreateSuccess", "Create pod in provider successfully")
	r.Eventf(pod, corev1.EventTypeNormal, "ProviderDeleteSuccess", "%s", "Delete pod in provider successfully")
	r.Event(pod, corev1.EventTypeWarning, "ProviderCreateFailed", "no room")
	r.AnnotatedEventf(pod, nil, corev1.EventTypeWarning, "ProviderUpdateFailed", "%s", "no")
	close(fake.Events)
	var got []string
	for e := range fake.Events {
		got = append(got, e)
	}
	if len(got) != 2 || got[0] != "Warning ProviderCreateFailed no room" || got[1] != "Warning ProviderUpdateFailed no" {
		t.Errorf("recorded %q, want the two failures only", got)
	}
}
