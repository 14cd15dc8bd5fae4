package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gitRepo is a work tree the tests commit to and push from.
type gitRepo struct {
	t   *testing.T
	dir string
}

// newGitRepo makes a repository holding examples/hello at sub ("" for its root), committed.
func newGitRepo(t *testing.T, sub string) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "repo")}
	dst := filepath.Join(r.dir, sub)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "hello.go"} {
		b, err := os.ReadFile(filepath.Join(repo, "examples", "hello", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
	r.git("init", "-q", "-b", "main")
	r.commit("hello")
	return r
}

func (r *gitRepo) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.test",
		"GIT_COMMITTER_NAME=dev", "GIT_COMMITTER_EMAIL=dev@example.test")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	out, err := r.run("git", args...)
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// edit replaces old with new in file and commits it; it returns the commit.
func (r *gitRepo) edit(file, old, new, msg string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, file)
	b, err := os.ReadFile(p)
	if err != nil || !bytes.Contains(b, []byte(old)) {
		r.t.Fatalf("%s has no %q (%v)", file, old, err)
	}
	os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
	return r.commit(msg)
}

func (r *gitRepo) commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// build is what the tests read of a FunctionBuild.
type build struct {
	Name   string
	Commit string
	Image  string
	Status string // of Succeeded: True, False, Unknown
	Reason string
	Log    string
}

// builds lists function name's builds, newest first.
func builds(t *testing.T, name string) []build {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ Git struct{ Commit string } }
			Status   struct {
				Image      string
				LogTail    string
				Conditions []struct{ Type, Status, Reason string }
			}
		}
	}
	if err := json.Unmarshal([]byte(mustFn(t, "builds", name, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var bs []build
	for _, it := range list.Items {
		b := build{Name: it.Metadata.Name, Commit: it.Spec.Git.Commit, Image: it.Status.Image, Log: it.Status.LogTail, Status: "Unknown"}
		for _, c := range it.Status.Conditions {
			if c.Type == "Succeeded" {
				b.Status, b.Reason = c.Status, c.Reason
			}
		}
		bs = append(bs, b)
	}
	return bs
}

// functionImage is the image function name's spec runs, and its BuildSucceeded and Ready
// conditions' statuses.
func functionImage(t *testing.T, name string) (image, built, ready string) {
	t.Helper()
	// Separated by "|", so that a condition not (yet) there reads as empty, not as the next.
	out := kubectl(t, "get", "functions.fnkit.dev", name, "-o",
		`jsonpath={.spec.image}|{.status.conditions[?(@.type=="BuildSucceeded")].status}|{.status.conditions[?(@.type=="Ready")].status}`)
	f := strings.Split(strings.TrimSpace(out), "|")
	for len(f) < 3 {
		f = append(f, "")
	}
	return f[0], f[1], f[2]
}

func platformBuilder(t *testing.T) string {
	t.Helper()
	var st struct{ Builder string }
	b, err := os.ReadFile(filepath.Join(fnHome, "platform.json"))
	if err != nil || json.Unmarshal(b, &st) != nil || st.Builder == "" {
		t.Fatalf("no builder in platform.json: %s (%v)", b, err)
	}
	return st.Builder
}

// loop requests url from one or more clients until stop is closed (bounded: 3 minutes,
// 1,000,000 requests each), counting answers that contain want.
type loop struct {
	ok, failed, wanted atomic.Int64
	last               atomic.Value
	stop               chan struct{}
	clients            sync.WaitGroup
	ending             sync.Once

	mu          sync.Mutex
	failures    []failure     // the first 20
	slowestFail time.Duration // the longest a failed request took
}

// failure is a request of a loop that failed: when it began, how long it took, and how.
type failure struct {
	at   time.Time
	took time.Duration
	what string
}

func (l *loop) fail(at time.Time, what string) {
	l.failed.Add(1)
	l.last.Store(what)
	took := time.Since(at)
	l.mu.Lock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, failure{at, took, what})
	}
	l.slowestFail = max(l.slowestFail, took)
	l.mu.Unlock()
}

// failuresSince lists the loop's failures, each with its start since t0 and how long it took.
func (l *loop) failuresSince(t0 time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, f := range l.failures {
		fmt.Fprintf(&b, "\n  %+.3fs (%s) %s", f.at.Sub(t0).Seconds(), f.took.Round(time.Millisecond), f.what)
	}
	return b.String()
}

func startLoop(url, want string) *loop { return startLoops(url, want, 1) }

// startLoops runs n clients, each requesting url one request after another.
func startLoops(url, want string, n int) *loop {
	l := &loop{stop: make(chan struct{})}
	for range n {
		l.clients.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			deadline := time.Now().Add(3 * time.Minute)
			for i := 0; i < 1000000 && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				at := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					l.fail(at, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.fail(at, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body)))
					continue
				}
				l.ok.Add(1)
				if strings.Contains(string(body), want) {
					l.wanted.Add(1)
				}
			}
		})
	}
	return l
}

// end stops the loop and waits for its clients; again, it does nothing.
func (l *loop) end() {
	l.ending.Do(func() { close(l.stop) })
	l.clients.Wait()
}

// TestGitPush pushes a function to fn's own git remote: the push builds and deploys it before
// it is accepted, an edit pushed under load rolls out with no failed request, a commit that
// does not compile is rejected with the compiler's message and changes nothing that runs, and
// a wrong token is refused.
func TestGitPush(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	const name = "pushed"
	r := newGitRepo(t, "")
	remote, err := r.run(fnBin, "remote", name, "--add")
	if err != nil {
		t.Fatalf("fn remote --add: %v\n%s", err, remote)
	}
	out, err := r.run("git", "push", "fn", "main")
	if err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	for _, want := range []string{"remote: fn: building default/" + name, "remote: fn: built and pushed", "main -> main"} {
		if !strings.Contains(out, want) {
			t.Errorf("git push said no %q:\n%s", want, out)
		}
	}
	head := r.git("rev-parse", "HEAD")
	bs := builds(t, name)
	if len(bs) != 1 || bs[0].Status != "True" || bs[0].Commit != head {
		t.Fatalf("builds after the first push: %+v, want one Succeeded of %s", bs, head)
	}
	if img, _, ready := functionImage(t, name); img != bs[0].Image || ready != "True" {
		t.Errorf("the Function runs %s (Ready %s), want the build's %s", img, ready, bs[0].Image)
	}
	if got := mustFn(t, "invoke", name); got != "Hello, world!\n" {
		t.Errorf("invoke: %q", got)
	}

	// An edit pushed while requests run: the new answer appears, none fails.
	r.edit("hello.go", `"Hello, %s!\n"`, `"Howdy, %s!\n"`, "howdy")
	l := startLoop(gatewayURL(t)+"/f/default/"+name+"/", "Howdy")
	time.Sleep(time.Second)
	if out, err := r.run("git", "push", "fn", "main"); err != nil {
		l.end()
		t.Fatalf("git push of an edit: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second)
	l.end()
	t.Logf("requests during the push: %d ok (%d new), %d failed", l.ok.Load(), l.wanted.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Errorf("%d requests failed during the push's rollout; last: %v", l.failed.Load(), l.last.Load())
	}
	if l.wanted.Load() == 0 {
		t.Errorf("the pushed edit never answered")
	}

	// A commit that does not compile: rejected, with the compiler's message; nothing changes.
	before, _, _ := functionImage(t, name)
	broken := r.edit("hello.go", `fmt.Fprintf(w, `, `fmt.Fprintfx(w, `, "broken")
	out, err = r.run("git", "push", "fn", "main")
	if err == nil || !strings.Contains(out, "undefined: fmt.Fprintfx") || !strings.Contains(out, "[remote rejected]") {
		t.Errorf("push of a commit that does not compile: %v\n%s\nwant it rejected with the compiler's message", err, out)
	}
	if strings.Contains(out, "build-") {
		t.Errorf("the compiler's message names the builder's checkout, not the repository's files:\n%s", out)
	}
	bs = builds(t, name)
	if len(bs) != 3 || bs[0].Commit != broken || bs[0].Status != "False" || bs[0].Reason != "BuildFailed" || !strings.Contains(bs[0].Log, "undefined: fmt.Fprintfx") {
		t.Errorf("newest build after a broken push: %+v, want BuildFailed of %s with the compiler's message", bs[0], broken)
	}
	// The Function's BuildSucceeded follows its FunctionBuilds through the reconciler: a moment
	// after the build's record.
	var img, built, ready string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if img, built, ready = functionImage(t, name); built == "False" || time.Now().After(deadline) {
			break
		}
	}
	if img != before || built != "False" || ready != "True" {
		t.Errorf("after a failed build the Function runs %s (want %s), BuildSucceeded %s (want False), Ready %s (want True)", img, before, built, ready)
	}
	if got := mustFn(t, "invoke", name); got != "Howdy, world!\n" {
		t.Errorf("invoke after a failed build: %q, want the old version's answer", got)
	}
	if out, _, err := fn(t, "logs", name, "--build"); err == nil || !strings.Contains(out, "undefined: fmt.Fprintfx") {
		t.Errorf("fn logs --build of the failed build: %v\n%s", err, out)
	}

	// A wrong token: refused, nothing built.
	u := strings.Replace(strings.TrimSpace(mustFn(t, "remote", name)), "http://", "http://fn:wrong@", 1)
	out, err = r.run("git", "-c", "credential.helper=", "push", u, "HEAD:main")
	if err == nil || !strings.Contains(out, "401") && !strings.Contains(out, "Authentication failed") {
		t.Errorf("push with a wrong token: %v\n%s", err, out)
	}
	if n := len(builds(t, name)); n != 3 {
		t.Errorf("a push with a wrong token made a build: %d builds", n)
	}
	// fn deploy of a directory does not replace a Function built from git.
	if _, errOut, err := fn(t, "deploy", r.dir, "--name", name); err == nil || !strings.Contains(errOut, "is built from git") {
		t.Errorf("fn deploy over a git-built function: %v %s", err, errOut)
	}
}

// hook is a GitHub-format push delivery of commit to ref touching paths, from repository dir.
func hook(dir, ref, commit string, paths ...string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref": ref, "before": strings.Repeat("0", 40), "after": commit, "size": 1,
		"commits":    []map[string]any{{"id": commit, "modified": paths}},
		"repository": map[string]any{"clone_url": dir},
		"pusher":     map[string]any{"name": "dev"},
	})
	return b
}

func deliver(t *testing.T, base, event, id string, body, secret []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("Content-Type", "application/json")
	if secret != nil {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestWebhookBuilds makes a Function from a repository with fn deploy --git, then delivers
// signed GitHub webhooks: two successive commits (the older is superseded, the newer deploys),
// the same delivery again, a bad signature, a ping, a body over the cap, and pushes to
// another branch or another directory, which build nothing.
func TestWebhookBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	const name = "hooked"
	r := newGitRepo(t, "fns/hello")
	os.MkdirAll(filepath.Join(r.dir, "docs"), 0o755)
	os.WriteFile(filepath.Join(r.dir, "docs", "README"), []byte("docs\n"), 0o644)
	r.commit("docs")
	mustFn(t, "deploy", "--git", r.dir, "--path", "fns/hello", "--name", name)
	if got := mustFn(t, "invoke", name); got != "Hello, world!\n" {
		t.Fatalf("invoke after fn deploy --git: %q", got)
	}
	if bs := builds(t, name); len(bs) != 1 || bs[0].Status != "True" {
		t.Fatalf("builds after fn deploy --git: %+v", bs)
	}
	base := platformBuilder(t)
	secret := []byte(kubectl(t, "get", "secret", "fn-git", "-o", "jsonpath={.data.webhook-secret}"))
	secret, err := base64.StdEncoding.DecodeString(string(secret))
	if err != nil {
		t.Fatal(err)
	}

	if code, body := deliver(t, base, "ping", "ping-1", []byte(`{"zen":"hi","repository":{"clone_url":"`+r.dir+`"}}`), secret); code != 200 {
		t.Errorf("ping: %d %s, want 200", code, body)
	}
	c1 := r.edit("fns/hello/hello.go", `"Hello, %s!\n"`, `"One, %s!\n"`, "one")
	c2 := r.edit("fns/hello/hello.go", `"One, %s!\n"`, `"Two, %s!\n"`, "two")
	if code, body := deliver(t, base, "push", "d-1", hook(r.dir, "refs/heads/main", c1, "fns/hello/hello.go"), secret); code != 202 {
		t.Fatalf("push of c1: %d %s", code, body)
	}
	if code, body := deliver(t, base, "push", "d-2", hook(r.dir, "refs/heads/main", c2, "fns/hello/hello.go"), secret); code != 202 {
		t.Fatalf("push of c2: %d %s", code, body)
	}
	var bs []build
	waitFor(t, 2*time.Minute, "both webhook builds end", func() bool {
		bs = builds(t, name)
		return len(bs) == 3 && bs[0].Status != "Unknown" && bs[1].Status != "Unknown"
	})
	if bs[0].Commit != c2 || bs[0].Status != "True" {
		t.Errorf("the newer build: %+v, want Succeeded of %s", bs[0], c2)
	}
	if bs[1].Commit != c1 || bs[1].Reason != "Superseded" {
		t.Errorf("the older build: %+v, want Superseded of %s", bs[1], c1)
	}
	waitFor(t, time.Minute, "the newer commit answers", func() bool {
		out, _, err := fn(t, "invoke", name)
		return err == nil && out == "Two, world!\n"
	})

	count := func() int { return len(builds(t, name)) }
	if code, body := deliver(t, base, "push", "d-2", hook(r.dir, "refs/heads/main", c2, "fns/hello/hello.go"), secret); code != 202 || !strings.Contains(body, "seen before") {
		t.Errorf("the same delivery again: %d %s", code, body)
	}
	if code, body := deliver(t, base, "push", "d-3", hook(r.dir, "refs/heads/main", c2, "fns/hello/hello.go"), []byte("not the secret")); code != 401 {
		t.Errorf("a bad signature: %d %s, want 401", code, body)
	}
	if code, body := deliver(t, base, "push", "d-4", hook(r.dir, "refs/heads/main", c2, "fns/hello/hello.go"), nil); code != 401 {
		t.Errorf("no signature: %d %s, want 401", code, body)
	}
	if code, body := deliver(t, base, "push", "d-5", hook(r.dir, "refs/heads/other", c2, "fns/hello/hello.go"), secret); code != 202 || !strings.Contains(body, "nothing built") {
		t.Errorf("a push to another branch: %d %s", code, body)
	}
	c3 := r.edit("docs/README", "docs", "more docs", "docs only")
	if code, body := deliver(t, base, "push", "d-6", hook(r.dir, "refs/heads/main", c3, "docs/README"), secret); code != 202 || !strings.Contains(body, "nothing built") {
		t.Errorf("a push touching only another directory: %d %s", code, body)
	}
	if code, body := deliver(t, base, "pull_request", "d-7", []byte(`{"action":"opened","repository":{"clone_url":"`+r.dir+`"}}`), secret); code != 202 {
		t.Errorf("a pull request: %d %s", code, body)
	}
	big := bytes.Repeat([]byte(" "), 26<<20)
	if code, _ := deliver(t, base, "push", "d-8", big, secret); code != 413 {
		t.Errorf("a 26 MiB delivery: %d, want 413", code)
	}
	time.Sleep(time.Second) // a build wrongly queued would be recorded by now
	if n := count(); n != 3 {
		t.Errorf("%d builds after deliveries that must build nothing, want 3", n)
	}
}
