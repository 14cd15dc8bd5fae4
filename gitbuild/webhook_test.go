package gitbuild

import (
	"errors"
	"net/http"
	"testing"
)

// TestVerifyGitHubVector: the test vector GitHub publishes for X-Hub-Signature-256 (secret
// "It's a Secret to Everybody", body "Hello, World!").
func TestVerifyGitHubVector(t *testing.T) {
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	h := http.Header{"X-Hub-Signature-256": {sig}}
	if err := Verify(GitHub, h, body, secret); err != nil {
		t.Fatalf("GitHub's own vector: %v", err)
	}
	for name, c := range map[string]struct {
		header http.Header
		body   string
		secret string
	}{
		"another body":      {h, "Hello, World?", string(secret)},
		"another secret":    {h, string(body), "It's a Secret to Nobody"},
		"no header":         {http.Header{}, string(body), string(secret)},
		"no sha256= prefix": {http.Header{"X-Hub-Signature-256": {sig[len("sha256="):]}}, string(body), string(secret)},
		"not hexadecimal":   {http.Header{"X-Hub-Signature-256": {"sha256=zz"}}, string(body), string(secret)},
		"truncated":         {http.Header{"X-Hub-Signature-256": {sig[:len(sig)-2]}}, string(body), string(secret)},
		"the SHA-1 header":  {http.Header{"X-Hub-Signature": {"sha1=00"}}, string(body), string(secret)},
	} {
		if err := Verify(GitHub, c.header, []byte(c.body), []byte(c.secret)); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	if err := Verify(GitHub, h, body, nil); err == nil || errors.Is(err, ErrSignature) {
		t.Errorf("no secret configured: %v, want an error that says so", err)
	}
}

func TestVerifyGiteaAndGitLab(t *testing.T) {
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	gitea := http.Header{"X-Gitea-Signature": {"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}}
	if err := Verify(Gitea, gitea, body, secret); err != nil {
		t.Errorf("Gitea: %v", err)
	}
	if err := Verify(Gitea, gitea, []byte("Hello"), secret); !errors.Is(err, ErrSignature) {
		t.Errorf("Gitea, another body: %v", err)
	}
	if err := Verify(Gitea, http.Header{"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}}, body, secret); !errors.Is(err, ErrSignature) {
		t.Errorf("Gitea with GitHub's header only: %v", err)
	}
	if err := Verify(GitLab, http.Header{"X-Gitlab-Token": {string(secret)}}, body, secret); err != nil {
		t.Errorf("GitLab: %v", err)
	}
	for _, tok := range []string{"", "It's a Secret to Everybod", "It's a Secret to Everybody!"} {
		if err := Verify(GitLab, http.Header{"X-Gitlab-Token": {tok}}, body, secret); !errors.Is(err, ErrSignature) {
			t.Errorf("GitLab token %q: %v", tok, err)
		}
	}
}

const githubPush = `{
  "ref": "refs/heads/main",
  "before": "1111111111111111111111111111111111111111",
  "after": "2222222222222222222222222222222222222222",
  "size": 2,
  "commits": [
    {"id": "a", "added": ["hello/new.go"], "modified": ["README.md"], "removed": []},
    {"id": "b", "added": [], "modified": ["hello/hello.go", "README.md"], "removed": ["old/x.go"]}
  ],
  "repository": {"clone_url": "https://git.example/acme/fns.git"}
}`

const gitlabPush = `{
  "object_kind": "push",
  "ref": "refs/heads/main",
  "before": "1111111111111111111111111111111111111111",
  "after": "3333333333333333333333333333333333333333",
  "total_commits_count": 25,
  "commits": [{"id": "c", "added": [], "modified": ["hello/hello.go"], "removed": []}],
  "project": {"git_http_url": "https://gitlab.example/acme/fns.git"}
}`

func TestRead(t *testing.T) {
	d, err := Read(GitHub, http.Header{"X-Github-Delivery": {"d-1"}, "X-Github-Event": {"push"}}, []byte(githubPush))
	if err != nil {
		t.Fatal(err)
	}
	p := d.Push
	if d.ID != "d-1" || d.Kind != Push || p == nil || p.Ref != "refs/heads/main" || p.After != "2222222222222222222222222222222222222222" ||
		p.CloneURL != "https://git.example/acme/fns.git" || !p.PathsKnown {
		t.Fatalf("GitHub push read as %+v %+v", d, p)
	}
	if want := []string{"hello/new.go", "README.md", "hello/hello.go", "old/x.go"}; len(p.Paths) != len(want) {
		t.Errorf("paths %q, want %q (each once)", p.Paths, want)
	}

	d, err = Read(GitLab, http.Header{"X-Gitlab-Event-Uuid": {"g-1"}, "X-Gitlab-Event": {"Push Hook"}}, []byte(gitlabPush))
	if err != nil {
		t.Fatal(err)
	}
	if d.Push.CloneURL != "https://gitlab.example/acme/fns.git" || d.Push.PathsKnown {
		t.Errorf("GitLab push of 25 commits listing 1: %+v, want its clone URL and its paths unknown", d.Push)
	}

	for _, c := range []struct {
		h      Host
		header http.Header
		want   Kind
	}{
		{GitHub, http.Header{"X-Github-Delivery": {"x"}, "X-Github-Event": {"ping"}}, Ping},
		{GitHub, http.Header{"X-Github-Delivery": {"x"}, "X-Github-Event": {"pull_request"}}, PullRequest},
		{GitHub, http.Header{"X-Github-Delivery": {"x"}, "X-Github-Event": {"star"}}, Other},
		{Gitea, http.Header{"X-Gitea-Delivery": {"x"}, "X-Gitea-Event": {"pull_request"}}, PullRequest},
		{GitLab, http.Header{"X-Gitlab-Event-Uuid": {"x"}, "X-Gitlab-Event": {"Merge Request Hook"}}, PullRequest},
	} {
		d, err := Read(c.h, c.header, []byte(`{}`))
		if err != nil || d.Kind != c.want || d.Push != nil {
			t.Errorf("%s %v: %+v %v, want kind %d and no push", c.h, c.header, d, err, c.want)
		}
	}
	if _, err := Read(GitHub, http.Header{"X-Github-Event": {"push"}}, []byte(githubPush)); err == nil {
		t.Error("a delivery without an id was read")
	}
	if _, err := Read(GitHub, http.Header{"X-Github-Delivery": {"x"}, "X-Github-Event": {"push"}}, []byte(`{"ref": "main"}`)); err == nil {
		t.Error("a push without a full ref and a commit was read")
	}
}

// TestBuilds: only a push to the Function's ref that touches its path (or may have) builds it.
func TestBuilds(t *testing.T) {
	push := func(ref, after string, known bool, paths ...string) *PushEvent {
		return &PushEvent{Ref: ref, After: after, Paths: paths, PathsKnown: known}
	}
	const commit = "2222222222222222222222222222222222222222"
	for _, c := range []struct {
		name      string
		p         *PushEvent
		ref, dir  string
		wantBuild bool
	}{
		{"its branch, its directory", push("refs/heads/main", commit, true, "hello/hello.go"), "main", "./hello", true},
		{"its fn.yaml only", push("refs/heads/main", commit, true, "hello/fn.yaml"), "main", "hello", true},
		{"another directory", push("refs/heads/main", commit, true, "other/x.go", "README.md"), "main", "hello", false},
		{"a directory that only starts the same", push("refs/heads/main", commit, true, "hello2/x.go"), "main", "hello", false},
		{"another branch", push("refs/heads/dev", commit, true, "hello/hello.go"), "main", "hello", false},
		{"a tag of that name", push("refs/tags/main", commit, true, "hello/hello.go"), "main", "hello", false},
		{"a full ref", push("refs/heads/release/1", commit, true, "hello/a.go"), "refs/heads/release/1", "hello", true},
		{"the default ref is main", push("refs/heads/main", commit, true, "hello/a.go"), "", "hello", true},
		{"the whole repository", push("refs/heads/main", commit, true, "README.md"), "main", "", true},
		{"the whole repository, as .", push("refs/heads/main", commit, true, "README.md"), "main", ".", true},
		{"paths not all listed", push("refs/heads/main", commit, false, "other/x.go"), "main", "hello", true},
		{"the branch deleted", push("refs/heads/main", "0000000000000000000000000000000000000000", true, "hello/a.go"), "main", "hello", false},
	} {
		if got := c.p.Builds(c.ref, c.dir); got != c.wantBuild {
			t.Errorf("%s: builds %v, want %v", c.name, got, c.wantBuild)
		}
	}
}
