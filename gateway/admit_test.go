package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

const goodToken = "0123456789abcdef-the-namespace-token"

func accessSecret(ns string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.AccessSecretName, Namespace: ns}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// TestPrivateFunction: a private function answers 401 without a token, 403 with one that is
// not its namespace's (another namespace's, a short value of the Secret, a near miss), and
// passes a request with a valid one, without its Authorization header; a public function gets
// the header untouched. Neither the log nor the function sees the token. A private function
// with no ready endpoint still answers 401 before anything else.
func TestPrivateFunction(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	private := func(f *v1alpha1.Function) { f.Spec.Access = v1alpha1.AccessPrivate }
	f := newFixture(t, Options{},
		function("secret", "ns", private), slice("secret-1", "ns", "secret", withEndpoint(b.URL, true)),
		function("open", "ns"), slice("open-1", "ns", "open", withEndpoint(b.URL, true)),
		function("cold", "ns", private),
		accessSecret("ns", map[string]string{"token": goodToken, "short": "abc"}),
		accessSecret("other", map[string]string{"token": "another-namespace-token-0123456789"}))
	get := func(path, auth string) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return f.do(t, r)
	}
	for _, c := range []struct {
		name, path, auth string
		want             int
	}{
		{"no token", "/f/ns/secret/", "", http.StatusUnauthorized},
		{"not a bearer token", "/f/ns/secret/", "Basic " + goodToken, http.StatusUnauthorized},
		{"another namespace's", "/f/ns/secret/", "Bearer another-namespace-token-0123456789", http.StatusForbidden},
		{"a value too short to be a token", "/f/ns/secret/", "Bearer abc", http.StatusForbidden},
		{"near miss", "/f/ns/secret/", "Bearer " + goodToken[:len(goodToken)-1] + "X", http.StatusForbidden},
		{"no token, no endpoint", "/f/ns/cold/", "", http.StatusUnauthorized},
	} {
		resp, body := get(c.path, c.auth)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, resp.StatusCode, body, c.want)
		}
		if c.want == http.StatusUnauthorized && (resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, "fn token")) {
			t.Errorf("%s: WWW-Authenticate %q, body %q: want a challenge and how to get a token", c.name, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	b.mu.Lock()
	n := len(b.reqs)
	b.mu.Unlock()
	if n != 0 {
		t.Fatalf("the function got %d requests refused at the gateway", n)
	}
	for _, auth := range []string{"Bearer " + goodToken, "bearer  " + goodToken} {
		if resp, body := get("/f/ns/secret/x", auth); resp.StatusCode != http.StatusOK {
			t.Fatalf("with the namespace's token (%q): %d %q", auth, resp.StatusCode, body)
		}
		if h := b.last(t).Header.Get("Authorization"); h != "" {
			t.Errorf("the private function got the Authorization header %q", h)
		}
	}
	if resp, body := get("/f/ns/open/", "Bearer the-function-s-own"); resp.StatusCode != http.StatusOK || b.last(t).Header.Get("Authorization") != "Bearer the-function-s-own" {
		t.Errorf("public function: %d %q, Authorization %q: want it passed as sent", resp.StatusCode, body, b.last(t).Header.Get("Authorization"))
	}
	// A token added to the Secret works once the gateway sees it; one removed stops working.
	sec := accessSecret("ns", map[string]string{"token": "a-rotated-token-0123456789"})
	if _, err := f.kube.CoreV1().Secrets("ns").Update(t.Context(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rotated token to be taken", func() bool {
		resp, _ := get("/f/ns/secret/", "Bearer a-rotated-token-0123456789")
		return resp.StatusCode == http.StatusOK
	})
	if resp, _ := get("/f/ns/secret/", "Bearer "+goodToken); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the token removed from the Secret: %d, want 403", resp.StatusCode)
	}
	f.logs.mu.Lock()
	logged := f.logs.b.String()
	f.logs.mu.Unlock()
	if len(logged) == 0 || strings.Contains(logged, goodToken) || strings.Contains(logged, "a-rotated-token") {
		t.Errorf("a token is in the gateway's log (or nothing was logged)")
	}
}

// TestRateLimit: beyond its burst a function's requests are answered 429 with Retry-After;
// with two gateways in its peer Service each takes half; a private function's too.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	limited := func(f *v1alpha1.Function) {
		f.Spec.RateLimit = &v1alpha1.RateLimit{RPS: 1, Burst: ptr.To(int32(10))}
	}
	peers := slice("fn-gateway-1", "fn-system", "fn-gateway", withEndpoint("http://10.0.0.1:8080", true), withEndpoint("http://10.0.0.2:8080", true))
	privateLimited := func(f *v1alpha1.Function) { limited(f); f.Spec.Access = v1alpha1.AccessPrivate }
	for _, c := range []struct {
		name string
		o    Options
		fn   func(*v1alpha1.Function)
		want int
	}{
		{"one gateway", Options{}, limited, 10},
		{"two gateways", Options{PeerService: "fn-system/fn-gateway"}, limited, 5},
		// Over the limit, a private function's request with its token is 429, not 401.
		{"private", Options{}, privateLimited, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.o, function("limited", "ns", c.fn), slice("limited-1", "ns", "limited", withEndpoint(b.URL, true)), peers,
				accessSecret("ns", map[string]string{"token": goodToken}))
			ok, limitedN := 0, 0
			for range 30 {
				r, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/f/ns/limited/", nil)
				r.Header.Set("Authorization", "Bearer "+goodToken)
				resp, body := f.do(t, r)
				switch resp.StatusCode {
				case http.StatusOK:
					ok++
				case http.StatusTooManyRequests:
					limitedN++
					if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || !strings.Contains(body, "rate limit of 1 requests/s") {
						t.Fatalf("429: Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
					}
				default:
					t.Fatalf("%d %q", resp.StatusCode, body)
				}
			}
			// The loop takes well under a second: at most one token refills.
			if ok < c.want || ok > c.want+1 || limitedN != 30-ok {
				t.Errorf("%d answered, %d limited; want %d (the burst) answered", ok, limitedN, c.want)
			}
		})
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b bucket
	steps := []struct {
		at       time.Duration
		ok       bool
		wait     time.Duration
		rate     float64
		burst    float64
		describe string
	}{
		{0, true, 0, 2, 3, "full at first"},
		{0, true, 0, 2, 3, "second of the burst"},
		{0, true, 0, 2, 3, "third of the burst"},
		{0, false, 500 * time.Millisecond, 2, 3, "empty: a token in 1/rate"},
		{250 * time.Millisecond, false, 250 * time.Millisecond, 2, 3, "half refilled"},
		{500 * time.Millisecond, true, 0, 2, 3, "refilled one"},
		{time.Hour, true, 0, 2, 3, "never more than the burst"},
		{time.Hour, true, 0, 2, 3, ""},
		{time.Hour, true, 0, 2, 3, ""},
		{time.Hour, false, 500 * time.Millisecond, 2, 3, "burst spent"},
		{time.Hour - time.Second, false, 500 * time.Millisecond, 2, 3, "a clock going back refills nothing"},
	}
	for i, s := range steps {
		ok, wait := b.take(t0.Add(s.at), s.rate, s.burst)
		if ok != s.ok || (wait-s.wait).Abs() > time.Millisecond {
			t.Errorf("step %d (%s): %v %s, want %v %s", i, s.describe, ok, wait, s.ok, s.wait)
		}
	}
	for _, c := range []struct {
		l           limit
		n           int
		rate, burst float64
	}{
		{limit{10, 20}, 1, 10, 20},
		{limit{10, 20}, 0, 10, 20},
		{limit{10, 20}, 4, 2.5, 5},
		{limit{1, 1}, 3, 1.0 / 3, 1},
	} {
		if r, b := c.l.share(c.n); r != c.rate || b != c.burst {
			t.Errorf("%v shared by %d: %v %v, want %v %v", c.l, c.n, r, b, c.rate, c.burst)
		}
	}
	if got := retryAfterSeconds(1500 * time.Millisecond); got != "2" {
		t.Errorf("Retry-After of 1.5s: %s", got)
	}
	if got := retryAfterSeconds(time.Millisecond); got != "1" {
		t.Errorf("Retry-After of 1ms: %s", got)
	}
}
