package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
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
