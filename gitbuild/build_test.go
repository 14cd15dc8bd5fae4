package gitbuild

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	regRepo := startRegistry(t) + "/fns"

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var built []CommitBuild
	var deployed []string
	cache, work := t.TempDir(), t.TempDir()
	b := &Builder{
		Service: &Service{Max: 2, Timeout: 5 * time.Minute, Build: BuildJob},
		Options: BuildOptions{Registry: regRepo, CacheDir: cache, WorkDir: work},
		SourceOf: func(_ context.Context, repo Repo) (Source, error) {
			if repo.Namespace != "default" || repo.Name != "fns" {
				return Source{}, fmt.Errorf("no Function %s/%s", repo.Namespace, repo.Name)
			}
			return Source{Ref: "main", Dir: "hello"}, nil
		},
		Deploy: func(_ context.Context, tr Trigger, cb CommitBuild, out io.Writer) error {
			mu.Lock()
			defer mu.Unlock()
			built = append(built, cb)
			deployed = append(deployed, tr.Function+"@"+tr.Commit)
			fmt.Fprintf(out, "fn: %s runs %s\n", tr.Function, cb.Image)
			return nil
		},
	}
	rm := &Remote{
		Dir:         t.TempDir(),
		Authorize:   func(*http.Request, string) (string, error) { return "fn", nil },
		Receive:     b.Receive,
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
	if !strings.Contains(out, "remote: fn: built and pushed "+regRepo) || !strings.Contains(out, "remote: fn: default/fns runs "+regRepo) {
		t.Errorf("the push did not show the build and the deployment:\n%s", out)
	}
	head, _ := git(t, src, "rev-parse", "HEAD")
	mu.Lock()
	if len(deployed) != 1 || deployed[0] != "default/fns@"+strings.TrimSpace(head) {
		t.Errorf("deployed %v, want default/fns at the pushed commit", deployed)
	}
	mu.Unlock()
	nope := strings.Replace(url, "/fns.git", "/nope.git", 1)
	if out, err := git(t, src, "push", nope, "main"); err == nil || !strings.Contains(out, "remote: fn: no Function default/nope") {
		t.Errorf("a push for no Function: %v\n%s\nwant it rejected saying so", err, out)
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

// TestWebhookBuild: a signed GitHub-format push whose clone URL is a local repository fetches
// that commit, builds it and deploys it; of two deliveries in quick succession, the older is
// superseded and only the newer is deployed.
func TestWebhookBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function with ko")
	}
	regRepo := startRegistry(t) + "/fns"

	src := t.TempDir()
	if err := os.CopyFS(filepath.Join(src, "hello"), os.DirFS("../examples/hello")); err != nil {
		t.Fatal(err)
	}
	var commits []string
	hello := filepath.Join(src, "hello", "hello.go")
	good, _ := os.ReadFile(hello)
	for i, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "one"}, {"commit", "-q", "-am", "two"}, {"commit", "-q", "-am", "three"}} {
		if i >= 3 {
			os.WriteFile(hello, append(append([]byte{}, good...), fmt.Sprintf("\n// edit %d\n", i)...), 0o644)
		}
		if out, err := git(t, src, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		if i >= 2 {
			h, _ := git(t, src, "rev-parse", "HEAD")
			commits = append(commits, strings.TrimSpace(h))
		}
	}

	var mu sync.Mutex
	var deployed []string
	secret := []byte("s3cret")
	b := &Builder{
		Service: &Service{Max: 2, Timeout: 5 * time.Minute, Build: BuildJob},
		Options: BuildOptions{Registry: regRepo, CacheDir: t.TempDir(), WorkDir: t.TempDir()},
		Deploy: func(_ context.Context, tr Trigger, cb CommitBuild, _ io.Writer) error {
			mu.Lock()
			defer mu.Unlock()
			deployed = append(deployed, tr.Commit)
			return nil
		},
		MirrorDir: t.TempDir(),
		Log:       slog.New(slog.DiscardHandler),
	}
	seen := map[string]bool{}
	hk := &Hooks{
		Targets: func(_ context.Context, url string) ([]Target, error) {
			if url != src {
				return nil, nil
			}
			return []Target{{Function: "default/hello", Ref: "main", Dir: "hello", Secret: secret}}, nil
		},
		Seen: func(_ context.Context, h Host, id string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return seen[id], nil
		},
		Record: func(_ context.Context, h Host, id string) error {
			mu.Lock()
			defer mu.Unlock()
			seen[id] = true
			return nil
		},
		Build: b.Queue,
		Log:   slog.New(slog.DiscardHandler),
	}
	deliver := func(id, commit string) {
		t.Helper()
		body := []byte(fmt.Sprintf(`{"ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000", "after": %q, "size": 1,
			"commits": [{"modified": ["hello/hello.go"]}], "repository": {"clone_url": %q}}`, commit, src))
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		rec := httptest.NewRecorder()
		hk.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("delivery %s: %d %s", id, rec.Code, rec.Body)
		}
	}
	deployedNow := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string{}, deployed...) }
	idle := func() bool { p, r := b.Service.Queued(); return p == 0 && r == 0 }

	deliver("d1", commits[0])
	waitFor(t, "the first delivery's build", func() bool { return len(deployedNow()) == 1 && idle() })
	if d := deployedNow(); d[0] != commits[0] {
		t.Fatalf("deployed %v, want %s", d, commits[0])
	}
	deliver("d2", commits[1])
	deliver("d3", commits[2])
	waitFor(t, "the newer delivery's build", func() bool { return idle() })
	if d := deployedNow(); len(d) != 2 || d[1] != commits[2] {
		t.Errorf("deployed %v, want the first commit, then only the newest (%s): the older delivery superseded", d, commits[2])
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// startRegistry serves a real registry on loopback until the test ends; it returns its address.
func startRegistry(t *testing.T) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	reg, err := registry.New(ctx, t.TempDir())
	if err != nil {
		stop()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stop()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Serve(ctx, ln) }()
	t.Cleanup(func() { stop(); <-done })
	return ln.Addr().String()
}
