package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// With an htpasswd file the registry answers 401 to a request without credentials or with a
// wrong password, and serves one with a user's.
func TestHtpasswd(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte("dev:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, err := New(ctx, t.TempDir(), WithHtpasswd(file))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"", "", 401}, {"dev", "wrong", 401}, {"other", "s3cret", 401}, {"dev", "s3cret", 200}} {
		if got := get(c.user, c.pass); got != c.want {
			t.Errorf("GET /v2/ as %q/%q: %d, want %d", c.user, c.pass, got, c.want)
		}
	}

	// Without it, anyone (on loopback).
	open, err := New(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	srv2 := httptest.NewServer(open.Handler())
	defer srv2.Close()
	resp, err := http.Get(srv2.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /v2/ without auth configured: %d", resp.StatusCode)
	}
}
