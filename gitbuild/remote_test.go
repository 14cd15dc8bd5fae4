package gitbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The test binary is its own pre-receive hook, as fn-builder is.
func TestMain(m *testing.M) {
	if os.Getenv("GITBUILD_TEST_HOOK") == "1" {
		os.Exit(RunHook(os.Stdin, os.Stdout, os.Getenv))
	}
	code := m.Run()
	stopAPIServer()
	os.Exit(code)
}

func git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRemotePush: a real git push to the remote creates its repository, hands the pushed ref to
// Receive before git takes it, shows what Receive writes as "remote:" lines, and lands; a push
// that Receive refuses is rejected with its message and moves nothing; a wrong token is refused.
func TestRemotePush(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("the built-in remote serves pushes with git's git-http-backend: install git")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []RefUpdate
	var gotRepo Repo
	refuse, exported := "", ""
	rm := &Remote{
		Dir: t.TempDir(),
		Authorize: func(r *http.Request, ns string) (string, error) {
			if _, pw, ok := r.BasicAuth(); ok && pw == "s3cret-"+ns {
				return "fn", nil
			}
			return "", errors.New("a token of namespace " + ns + " is needed")
		},
		Receive: func(ctx context.Context, repo Repo, updates []RefUpdate, out io.Writer) error {
			mu.Lock()
			defer mu.Unlock()
			got, gotRepo = updates, repo
			for _, u := range updates {
				fmt.Fprintf(out, "building %s at %s\n", u.Ref, u.New[:7])
				// The build reads the pushed commit before git has taken it.
				dst := t.TempDir()
				if err := repo.Export(ctx, u.New, dst); err != nil {
					return err
				}
				b, err := os.ReadFile(filepath.Join(dst, "hello.go"))
				if err != nil {
					return err
				}
				exported = string(b)
			}
			if refuse != "" {
				return errors.New(refuse)
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
	url := strings.Replace(srv.URL, "http://", "http://fn:s3cret-default@", 1) + "/git/default/hello.git"

	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "hello.go"), []byte("package hello\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "one"}} {
		if out, err := git(t, work, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, _ := git(t, work, "rev-parse", "HEAD")
	head = strings.TrimSpace(head)
	out, err := git(t, work, "push", url, "main")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if !strings.Contains(out, "remote: building refs/heads/main at "+head[:7]) {
		t.Errorf("the push did not show the build's lines as remote: lines:\n%s", out)
	}
	mu.Lock()
	if exported != "package hello\n" {
		t.Errorf("the pushed commit exported hello.go as %q", exported)
	}
	if len(got) != 1 || got[0].Ref != "refs/heads/main" || got[0].New != head || strings.Trim(got[0].Old, "0") != "" ||
		gotRepo.Namespace != "default" || gotRepo.Name != "hello" || gotRepo.User != "fn" {
		t.Errorf("Receive got %+v of %+v", got, gotRepo)
	}
	refuse = "hello.go:2:1: syntax error: non-declaration statement outside function body"
	mu.Unlock()
	if landed, _ := git(t, rm.Dir, "--git-dir", filepath.Join(rm.Dir, "default", "hello.git"), "rev-parse", "main"); strings.TrimSpace(landed) != head {
		t.Errorf("the remote's main is %q, want the pushed %s", landed, head)
	}

	os.WriteFile(filepath.Join(work, "hello.go"), []byte("package hello\nfunc {\n"), 0o644)
	git(t, work, "commit", "-q", "-am", "broken")
	out, err = git(t, work, "push", url, "main")
	if err == nil || !strings.Contains(out, "remote: hello.go:2:1: syntax error") || !strings.Contains(out, "pre-receive hook declined") {
		t.Errorf("a refused push: %v\n%s\nwant it rejected with the message", err, out)
	}
	mu.Lock()
	if exported != "package hello\nfunc {\n" {
		t.Errorf("the second push exported hello.go as %q, want its edit", exported)
	}
	mu.Unlock()
	if landed, _ := git(t, rm.Dir, "--git-dir", filepath.Join(rm.Dir, "default", "hello.git"), "rev-parse", "main"); strings.TrimSpace(landed) != head {
		t.Errorf("after a refused push the remote's main is %q, want still %s", landed, head)
	}

	bad := strings.Replace(url, "s3cret-default", "wrong", 1)
	if out, err := git(t, work, "push", bad, "main"); err == nil || !strings.Contains(out, "Authentication failed") {
		t.Errorf("a push with a wrong token: %v\n%s", err, out)
	}
	other := strings.Replace(url, "/git/default/", "/git/other/", 1) // the token is default's
	if out, err := git(t, work, "push", other, "main"); err == nil {
		t.Errorf("a push with another namespace's token was taken:\n%s", out)
	}
	for _, p := range []string{"/git/default/../x.git/info/refs", "/git/Default/hello.git/info/refs", "/git/default/hello/info/refs"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p+"?service=git-receive-pack", nil)
		req.SetBasicAuth("fn", "s3cret-default")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	clone := t.TempDir()
	if out, err := git(t, clone, "clone", "-q", url, "c"); err != nil {
		t.Errorf("clone: %v\n%s", err, out)
	}
	// A hook request that no authorized push made (a local process on the socket) builds nothing.
	mu.Lock()
	got = nil
	mu.Unlock()
	var forged strings.Builder
	env := map[string]string{"FN_GIT_HOOK_SOCKET": rm.socket, "FN_GIT_PUSH": "not-a-push"}
	code := RunHook(strings.NewReader(strings.Repeat("0", 40)+" "+head+" refs/heads/main\n"), &forged, func(k string) string { return env[k] })
	mu.Lock()
	if code == 0 || !strings.Contains(forged.String(), "not one the remote is serving") || got != nil {
		t.Errorf("a forged hook request: exit %d, %q, Receive got %v; want it refused and nothing received", code, forged.String(), got)
	}
	mu.Unlock()
}

// TestFetchWithAuth: Fetch takes exactly one commit from a repository that wants credentials,
// with them and not without; a commit fetched before is not fetched again.
func TestFetchWithAuth(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rm := &Remote{
		Dir: t.TempDir(),
		Authorize: func(r *http.Request, ns string) (string, error) {
			if u, pw, ok := r.BasicAuth(); ok && u == "bot" && pw == "t0ken" {
				return u, nil
			}
			return "", errors.New("credentials needed")
		},
		Receive:     func(context.Context, Repo, []RefUpdate, io.Writer) error { return nil },
		HookCommand: []string{"env", "GITBUILD_TEST_HOOK=1", exe},
	}
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	srv := httptest.NewServer(rm)
	defer srv.Close()
	url := srv.URL + "/git/default/src.git"
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "a.txt"), []byte("one\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "one"}} {
		if out, err := git(t, work, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if out, err := git(t, work, "push", strings.Replace(url, "http://", "http://bot:t0ken@", 1), "main"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	head, _ := git(t, work, "rev-parse", "HEAD")
	head = strings.TrimSpace(head)

	mirrors := t.TempDir()
	ctx := context.Background()
	if _, err := Fetch(ctx, mirrors, url, head, nil); err == nil {
		t.Error("fetched without credentials from a repository that wants them")
	}
	repo, err := Fetch(ctx, mirrors, url, head, &Auth{Username: "bot", Password: "t0ken"})
	if err != nil {
		t.Fatalf("fetch with credentials: %v", err)
	}
	dst := t.TempDir()
	if err := repo.Export(ctx, head, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(b) != "one\n" {
		t.Errorf("exported a.txt %q", b)
	}
	srv.Close() // a commit fetched before needs no server
	if _, err := Fetch(ctx, mirrors, url, head, &Auth{Username: "bot", Password: "t0ken"}); err != nil {
		t.Errorf("fetching a commit the mirror has: %v", err)
	}
}

// A hook that is a program alone is a link to it (no shell needed); one with arguments is a
// script that quotes them.
func TestWriteHook(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := writeHook(link, []string{"/ko-app/fn-builder"}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(link); err != nil || got != "/ko-app/fn-builder" {
		t.Errorf("hook of a program alone: link to %q, %v; want /ko-app/fn-builder", got, err)
	}
	script := filepath.Join(dir, "script")
	if err := writeHook(script, []string{"/bin/fn", "internal", "it's"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(script)
	if want := "#!/bin/sh\nexec '/bin/fn' 'internal' 'it'\\''s'\n"; err != nil || string(b) != want {
		t.Errorf("hook script %q, %v; want %q", b, err, want)
	}
	// Written again over a link, it replaces it.
	if err := writeHook(link, []string{"/bin/fn", "x"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("rewritten hook is still a link (%v)", err)
	}
}
