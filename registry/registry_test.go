package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"fnkit.dev/fn/internal/diskspace"
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

// A registry keeping more free than its disk has refuses uploads with 507 and a message that
// says why, and still serves reads; with room, it takes them.
func TestKeepFree(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := t.TempDir()
	reg, err := New(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	free, err := diskspace.Free(root)
	if err != nil {
		t.Fatal(err)
	}
	reg.KeepFree(free + 1<<40)
	if code, body := do(http.MethodPost, "/v2/fns/x/blobs/uploads/"); code != http.StatusInsufficientStorage || !strings.Contains(body, "free space") {
		t.Errorf("upload with too little free: %d %s, want 507 saying to free space", code, body)
	}
	if code, _ := do(http.MethodGet, "/v2/"); code != http.StatusOK {
		t.Errorf("read with too little free: %d, want 200", code)
	}
	reg.KeepFree(1)
	if code, body := do(http.MethodPost, "/v2/fns/x/blobs/uploads/"); code != http.StatusAccepted {
		t.Errorf("upload with room: %d %s, want 202", code, body)
	}
}
