package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"knative.dev/pkg/apis"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

func TestJoinPath(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{"", "", ""},
		{"/x", "", "/x"},
		{"/x/", "", "/x/"},
		{"?y=1", "", "/?y=1"},
		{"/x?y=1", "", "/x?y=1"},
		{"/x", "/z", "/x/z"},
		{"/x?y=1", "z?w=2", "/x/z?w=2"},
		{"/x?y=1", "z", "/x/z?y=1"},
	} {
		if got := joinPath(c.a, c.b); got != c.want {
			t.Errorf("joinPath(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

// TestInvokePathsAndHeaders: NAME's path and query, --path, -X and -H reach the function; NAME
// with --url calls the gateway's route for it.
func TestInvokePathsAndHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-Trace")+" "+string(b))
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"invoke", "hello/greet?name=fn", "--url", srv.URL}, "GET /f/default/hello/greet?name=fn  "},
		{[]string{"invoke", "hello", "--url", srv.URL + "/", "-n", "shop", "-X", "PUT", "-H", "X-Trace: 7", "--data", "{}"}, "PUT /f/shop/hello/ 7 {}"},
		{[]string{"invoke", "--url", srv.URL, "--path", "/a/b?c=d"}, "GET /a/b?c=d  "},
		{[]string{"invoke", "hello?x=1", "--url", srv.URL, "--path", "sub"}, "GET /f/default/hello/sub?x=1  "},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		code, out, stderr := fn(t, c.args...)
		mu.Lock()
		if code != 0 || out != "ok" || len(got) != 1 || got[0] != c.want {
			t.Errorf("fn %s: exit %d, out %q, stderr %q, requests %q; want %q", strings.Join(c.args, " "), code, out, stderr, got, c.want)
		}
		mu.Unlock()
	}
	if code, _, stderr := fn(t, "invoke", "/x"); code != 2 || !strings.Contains(stderr, `"/x": want NAME[/PATH][?QUERY]`) {
		t.Errorf("fn invoke /x: exit %d, %q", code, stderr)
	}
}

// TestTokenAndPrivateInvoke: fn token makes the namespace's access Secret once and prints the
// same token after; --rotate replaces it; fn invoke of a private function sends it, and of a
// public one sends none.
func TestTokenAndPrivateInvoke(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	u, _ := apis.ParseURL(srv.URL + "/")
	private, public := testFunction("default", "guarded"), testFunction("default", "open")
	private.Spec.Access = v1alpha1.AccessPrivate
	private.Status.URL, public.Status.URL = u, u
	fa, out, errOut := testFactory(nil, private, public)
	run := func(args ...string) string {
		t.Helper()
		out.Reset()
		errOut.Reset()
		c := newRootCommand(fa)
		c.SetArgs(args)
		if err := c.Execute(); err != nil {
			t.Fatalf("fn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	tok := strings.TrimSpace(run("token"))
	if len(tok) < 32 || !strings.Contains(errOut.String(), "made the access token") {
		t.Fatalf("fn token: %q (stderr %q), want a new token of 32 characters or more", tok, errOut.String())
	}
	if again := strings.TrimSpace(run("token")); again != tok || errOut.String() != "" {
		t.Errorf("fn token again: %q (stderr %q), want the same token, made nothing", again, errOut.String())
	}
	run("invoke", "guarded")
	run("invoke", "open")
	mu.Lock()
	if len(auth) != 2 || auth[0] != "Bearer "+tok || auth[1] != "" {
		t.Errorf("Authorization sent by fn invoke guarded, open: %q; want the token to the private one only", auth)
	}
	mu.Unlock()
	rotated := strings.TrimSpace(run("token", "--rotate"))
	if rotated == tok || len(rotated) < 32 {
		t.Errorf("fn token --rotate: %q, want a new token", rotated)
	}
	if got := run("token", "-o", "json"); !strings.Contains(got, `"token": "`+rotated+`"`) || !strings.Contains(got, `"secret": "fn-access"`) {
		t.Errorf("fn token -o json: %s", got)
	}
}
