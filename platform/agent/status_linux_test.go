package agent

import (
	"context"
	"os"
	"testing"
	"time"

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

// TestLaterSink: an event is written delay after its time; one older than that at once; one
// without a time (or from the future) waits delay at most.
func TestLaterSink(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	delay := 300 * time.Millisecond
	at := func(d time.Duration) *corev1.Event {
		return &corev1.Event{LastTimestamp: metav1.NewTime(t0.Add(d))}
	}
	for _, c := range []struct {
		name string
		ev   *corev1.Event
		want time.Duration
	}{
		{"just now", at(0), delay},
		{"100 ms ago", at(-100 * time.Millisecond), 200 * time.Millisecond},
		{"long ago", at(-time.Minute), 0},
		{"a clock ahead", at(time.Second), delay},
		{"by its event time", &corev1.Event{EventTime: metav1.NewMicroTime(t0.Add(-50 * time.Millisecond))}, 250 * time.Millisecond},
		{"no time", &corev1.Event{}, 0},
	} {
		if got := hold(c.ev, delay, t0); got != c.want {
			t.Errorf("%s: held %s, want %s", c.name, got, c.want)
		}
	}
	var slept []time.Duration
	sink := &countingSink{}
	s := laterSink{sink, delay, func() time.Time { return t0 }, func(d time.Duration) { slept = append(slept, d) }}
	s.Create(at(-100 * time.Millisecond))
	s.Update(at(-time.Minute))
	s.Patch(at(0), nil)
	if sink.n != 3 || len(slept) != 2 || slept[0] != 200*time.Millisecond || slept[1] != delay {
		t.Errorf("wrote %d events after sleeping %v, want 3 after 200ms and 300ms", sink.n, slept)
	}
}

type countingSink struct{ n int }

func (s *countingSink) Create(ev *corev1.Event) (*corev1.Event, error) { s.n++; return ev, nil }
func (s *countingSink) Update(ev *corev1.Event) (*corev1.Event, error) { s.n++; return ev, nil }
func (s *countingSink) Patch(ev *corev1.Event, _ []byte) (*corev1.Event, error) {
	s.n++
	return ev, nil
}
