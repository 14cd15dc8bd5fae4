package gitbuild

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"fnkit.dev/fn/registry"
)

// TestBuildOnPush: a real git push of examples/hello (in a subdirectory, beside another
// function's) to the remote builds it with ko and pushes the image to a real registry while
// the push waits, with its fn.yaml read from the commit; a push that does not compile is
// rejected with the compiler's message.
func TestBuildOnPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function with ko")
	}
	ctx := context.Background()
	reg, err := registry.New(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Serve(regCtx, ln) }()
	defer func() { stopReg(); <-regDone }()
	regRepo := ln.Addr().String() + "/fns"

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var built []CommitBuild
	cache, work := t.TempDir(), t.TempDir()
	rm := &Remote{
		Dir:       t.TempDir(),
		Authorize: func(*http.Request, string) (string, error) { return "fn", nil },
		Receive: func(ctx context.Context, repo Repo, updates []RefUpdate, out io.Writer) error {
			for _, u := range updates {
				p := &PushEvent{Ref: u.Ref, After: u.New, PathsKnown: false}
				if !p.Builds("main", "hello") {
					continue
				}
				cb, err := BuildCommit(ctx, repo, u.New, BuildOptions{Dir: "hello", Name: "hello", Registry: regRepo, CacheDir: cache, WorkDir: work}, out)
				if err != nil {
					return err
				}
				mu.Lock()
				built = append(built, cb)
				mu.Unlock()
			}
			return nil
		},
		HookCommand: []string{"env", "GITBUILD_TEST_HOOK=1", exe},
	}
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	srv := httptest.NewServer(rm)
	defer srv.Close()
	url := strings.Replace(srv.URL, "http://", "http://fn:x@", 1) + "/git/default/fns.git"

	src := t.TempDir()
	if err := os.CopyFS(filepath.Join(src, "hello"), os.DirFS("../examples/hello")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "hello", "fn.yaml"), []byte("timeout: 7s\nenv:\n- {name: GREETING, value: hi}\n"), 0o644)
	os.MkdirAll(filepath.Join(src, "other"), 0o755)
	os.WriteFile(filepath.Join(src, "other", "x.txt"), []byte("not a function"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "hello"}} {
		if out, err := git(t, src, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, err := git(t, src, "push", url, "main")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if !strings.Contains(out, "remote: fn: built and pushed "+regRepo) {
		t.Errorf("the push did not show the build:\n%s", out)
	}
	mu.Lock()
	if len(built) != 1 {
		t.Fatalf("%d builds, want 1", len(built))
	}
	cb := built[0]
	mu.Unlock()
	if cb.Manifest == nil || cb.Manifest.Timeout == nil || cb.Manifest.Timeout.Duration.String() != "7s" || len(cb.Manifest.Env) != 1 {
		t.Errorf("the commit's fn.yaml read as %+v", cb.Manifest)
	}
	if _, err := remote.Head(cb.Image); err != nil {
		t.Errorf("the built image %s is not in the registry: %v", cb.Image, err)
	}

	hello := filepath.Join(src, "hello", "hello.go")
	good, _ := os.ReadFile(hello)
	for _, c := range []struct{ name, edit, want string }{
		{"a syntax error", "\nfunc broken( {\n", "hello/hello.go:19:14: expected ')', found '{'"},
		{"a type error", "\nvar broken int = \"one\"\n", `cannot use "one" (untyped string constant) as int value`},
	} {
		os.WriteFile(hello, append(append([]byte{}, good...), c.edit...), 0o644)
		git(t, src, "commit", "-q", "-am", c.name)
		out, err = git(t, src, "push", url, "main")
		if err == nil || !strings.Contains(out, "remote: fn: ") || !strings.Contains(out, c.want) || !strings.Contains(out, "pre-receive hook declined") {
			t.Errorf("a push with %s: %v\n%s\nwant it rejected with %q", c.name, err, out, c.want)
		}
		if strings.Contains(out, work) {
			t.Errorf("the message names the builder's work directory:\n%s", out)
		}
		git(t, src, "reset", "-q", "--hard", "HEAD~1")
	}
	mu.Lock()
	if len(built) != 1 {
		t.Errorf("%d builds after the broken push, want still 1", len(built))
	}
	mu.Unlock()
}
