package agent

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestRequestAttributes(t *testing.T) {
	for _, c := range []struct{ method, path, verb, sub string }{
		{"GET", "/containerLogs/ns/pod/c", "get", "proxy"},
		{"POST", "/exec/ns/pod/c", "create", "proxy"},
		{"GET", "/exec/ns/pod/c", "get", "proxy"},
		{"POST", "/portForward/ns/pod", "create", "proxy"},
		{"GET", "/metrics/resource", "get", "metrics"},
		{"GET", "/metrics", "get", "metrics"},
		{"GET", "/metricsx", "get", "proxy"},
		{"GET", "/stats/summary", "get", "stats"},
		{"GET", "/logs/", "get", "log"},
		{"GET", "/spec", "get", "spec"},
		{"DELETE", "/pods", "delete", "proxy"},
	} {
		verb, sub := requestAttributes(httptest.NewRequest(c.method, c.path, nil))
		if verb != c.verb || sub != c.sub {
			t.Errorf("%s %s: %s nodes/%s, want %s nodes/%s", c.method, c.path, verb, sub, c.verb, c.sub)
		}
	}
}

// A decision is asked of the API server once per identity and attributes, and asked again once
// it is authzTTL old.
func TestAuthorizeCaches(t *testing.T) {
	kube := fake.NewClientset()
	reviews := 0
	kube.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "admin" && ra.Resource == "nodes" && ra.Subresource == "proxy" && ra.Name == "n1"
		return true, sar, nil
	})
	now := time.Unix(1000, 0)
	a := &apiAuth{kube: kube, node: "n1", now: func() time.Time { return now }}
	ctx := context.Background()
	check := func(user string, want bool, wantReviews int) {
		t.Helper()
		ok, _, err := a.authorize(ctx, identity{user: user}, "get", "proxy")
		if err != nil || ok != want || reviews != wantReviews {
			t.Errorf("authorize %s: %v (%v), %d reviews; want %v after %d", user, ok, err, reviews, want, wantReviews)
		}
	}
	check("admin", true, 1)
	check("admin", true, 1) // cached
	check("nobody", false, 2)
	check("nobody", false, 2)
	now = now.Add(authzTTL)
	check("admin", true, 3) // expired
}
