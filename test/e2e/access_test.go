package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPrivateRateLimited deploys a function that is private and rate limited: without a
// token it answers 401, with a wrong one 403, through fn invoke (which sends the namespace's
// token) and with fn token's it answers; past its burst it answers 429 with Retry-After.
func TestPrivateRateLimited(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	dir := copyHello(t, "guarded")
	out, errOut, err := fn(t, "deploy", dir, "--access", "private", "--rate-limit", "1", "--rate-burst", "5")
	if err != nil {
		t.Fatalf("fn deploy: %v\n%s", err, errOut)
	}
	t.Cleanup(func() { fn(t, "delete", "guarded") })
	if !strings.Contains(errOut, "fn token") {
		t.Errorf("fn deploy of a private function says nothing of its token:\n%s", errOut)
	}
	url := strings.TrimSpace(out)
	get := func(token string) (int, http.Header, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, body := get(""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d %q, want 401", code, body)
	}
	if code, _, body := get("not-the-namespace-token-0123456789"); code != http.StatusForbidden {
		t.Errorf("with a wrong token: %d %q, want 403", code, body)
	}
	if got := mustFn(t, "invoke", "guarded"); !strings.Contains(got, "Hello") {
		t.Errorf("fn invoke guarded: %q", got)
	}
	token := strings.TrimSpace(mustFn(t, "token"))
	ok, limited := 0, 0
	for range 20 {
		code, h, body := get(token)
		switch code {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if h.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %q", body)
			}
		default:
			t.Fatalf("with fn token's token: %d %q", code, body)
		}
	}
	// 5 of burst, less fn invoke's, plus what refilled at 1/s meanwhile.
	if ok < 3 || limited < 12 {
		t.Errorf("20 requests at once: %d answered, %d over the rate limit; want the burst answered and the rest 429", ok, limited)
	}
}
