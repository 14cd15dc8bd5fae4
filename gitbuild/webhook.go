package gitbuild

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strings"
)

// Host is a git host whose webhooks fn-builder takes.
type Host string

const (
	GitHub Host = "github"
	Gitea  Host = "gitea"
	GitLab Host = "gitlab"
)

// MaxBody is the largest webhook body read; a larger one is answered 413. (GitHub caps its
// payloads at 25 MiB.)
const MaxBody = 25 << 20

// Kind is what a delivery is about.
type Kind int

const (
	// Other deliveries (issues, stars, releases...) build nothing.
	Other Kind = iota
	// Ping is a host's test of the hook (GitHub's ping event).
	Ping
	// Push is a push of commits, tags or a branch deletion.
	Push
	// PullRequest deliveries never build: their code is not the repository owner's.
	PullRequest
)

// ErrSignature is a delivery whose signature or token does not match the secret.
var ErrSignature = errors.New("signature does not match the secret")

// Verify checks a delivery's body against the hook's secret, in constant time: GitHub's
// X-Hub-Signature-256 and Gitea's X-Gitea-Signature are HMAC-SHA256 of the raw body (GitHub's
// prefixed "sha256="); GitLab's X-Gitlab-Token is the secret itself.
func Verify(h Host, header http.Header, body, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("no webhook secret is configured")
	}
	switch h {
	case GitHub, Gitea:
		name, sig := "X-Hub-Signature-256", header.Get("X-Hub-Signature-256")
		if h == Gitea {
			name, sig = "X-Gitea-Signature", header.Get("X-Gitea-Signature")
		}
		if sig == "" {
			return fmt.Errorf("%w: no %s header", ErrSignature, name)
		}
		if h == GitHub {
			var ok bool
			if sig, ok = strings.CutPrefix(sig, "sha256="); !ok {
				return fmt.Errorf("%w: %s is not sha256=HEX", ErrSignature, name)
			}
		}
		got, err := hex.DecodeString(sig)
		if err != nil {
			return fmt.Errorf("%w: %s is not hexadecimal", ErrSignature, name)
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if !hmac.Equal(got, mac.Sum(nil)) {
			return ErrSignature
		}
		return nil
	case GitLab:
		tok := header.Get("X-Gitlab-Token")
		if tok == "" {
			return fmt.Errorf("%w: no X-Gitlab-Token header", ErrSignature)
		}
		if subtle.ConstantTimeCompare([]byte(tok), secret) != 1 {
			return ErrSignature
		}
		return nil
	}
	return fmt.Errorf("unknown git host %q", h)
}

// Delivery is what a verified webhook delivery says.
type Delivery struct {
	// ID is the host's delivery id: a delivery seen before builds nothing again.
	ID   string
	Kind Kind
	// Push is set for Kind Push.
	Push *PushEvent
}

// PushEvent is a push: the ref it moved, from what commit to what, where to clone it, and
// the paths its commits touched.
type PushEvent struct {
	Ref      string // e.g. refs/heads/main
	Before   string
	After    string // the commit to build; all zeros when the ref was deleted
	CloneURL string
	// Paths are the files the pushed commits added, modified or removed, as the host lists
	// them; PathsKnown is false when the host did not list every commit (GitLab lists 20, GitHub
	// 2,048), so the push may touch any path.
	Paths      []string
	PathsKnown bool
	// Pusher is who pushed, as the host names them.
	Pusher string
}

// commitRE is a full commit hash (SHA-1 or SHA-256).
var commitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Deleted reports whether the push deleted its ref.
func (p *PushEvent) Deleted() bool { return strings.Trim(p.After, "0") == "" }

// Read reads a verified delivery of host h: its id, kind and, for a push, the push.
func Read(h Host, header http.Header, body []byte) (Delivery, error) {
	var d Delivery
	var event string
	switch h {
	case GitHub:
		d.ID, event = header.Get("X-GitHub-Delivery"), header.Get("X-GitHub-Event")
		switch event {
		case "ping":
			d.Kind = Ping
		case "push":
			d.Kind = Push
		case "pull_request", "pull_request_target", "pull_request_review":
			d.Kind = PullRequest
		}
	case Gitea:
		d.ID, event = header.Get("X-Gitea-Delivery"), header.Get("X-Gitea-Event")
		switch event {
		case "push":
			d.Kind = Push
		case "pull_request", "pull_request_sync":
			d.Kind = PullRequest
		}
	case GitLab:
		d.ID, event = header.Get("X-Gitlab-Event-UUID"), header.Get("X-Gitlab-Event")
		switch event {
		case "Push Hook":
			d.Kind = Push
		case "Merge Request Hook":
			d.Kind = PullRequest
		}
	default:
		return d, fmt.Errorf("unknown git host %q", h)
	}
	if d.ID == "" {
		return d, fmt.Errorf("the delivery has no id header")
	}
	if d.Kind != Push {
		return d, nil
	}
	var p struct {
		Ref     string `json:"ref"`
		Before  string `json:"before"`
		After   string `json:"after"`
		Commits []struct {
			Added    []string `json:"added"`
			Modified []string `json:"modified"`
			Removed  []string `json:"removed"`
		} `json:"commits"`
		Size       *int `json:"size"`                // GitHub: commits pushed (the list holds at most 2,048)
		TotalCount *int `json:"total_commits_count"` // Gitea, GitLab
		Repository struct {
			CloneURL string `json:"clone_url"`
		} `json:"repository"`
		Project struct {
			HTTPURL string `json:"git_http_url"`
		} `json:"project"`
		Pusher struct {
			Name     string `json:"name"`     // GitHub
			Login    string `json:"login"`    // Gitea
			Username string `json:"username"` // Gitea
		} `json:"pusher"`
		UserUsername string `json:"user_username"` // GitLab
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return d, fmt.Errorf("reading the push: %w", err)
	}
	if !strings.HasPrefix(p.Ref, "refs/") || p.After == "" {
		return d, fmt.Errorf("the push names no ref or commit")
	}
	if !commitRE.MatchString(p.After) {
		return d, fmt.Errorf("the push's commit %q is not a full hexadecimal hash", p.After)
	}
	push := &PushEvent{Ref: p.Ref, Before: p.Before, After: p.After, CloneURL: p.Repository.CloneURL,
		Pusher: cmp.Or(p.Pusher.Name, p.Pusher.Login, p.Pusher.Username, p.UserUsername)}
	if h == GitLab {
		push.CloneURL = p.Project.HTTPURL
	}
	seen := map[string]bool{}
	for _, c := range p.Commits {
		for _, l := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range l {
				if !seen[f] {
					seen[f] = true
					push.Paths = append(push.Paths, f)
				}
			}
		}
	}
	total := len(p.Commits)
	switch {
	case p.TotalCount != nil:
		total = *p.TotalCount
	case p.Size != nil:
		total = *p.Size
	}
	// A push that lists no commit (a force push back to an older one, a new branch at an
	// existing commit) says nothing of its paths either.
	push.PathsKnown = len(p.Commits) > 0 && len(p.Commits) >= total
	d.Push = push
	return d, nil
}

// Builds reports whether push builds the Function whose source is ref and dir: the push moved
// that ref (a branch name or a full ref) to a commit, and touched a file under dir ("" or "."
// for the whole repository), or may have.
func (p *PushEvent) Builds(ref, dir string) bool {
	if p.Deleted() || !refMatches(p.Ref, ref) {
		return false
	}
	dir = strings.Trim(path.Clean("/"+dir), "/")
	if dir == "" || !p.PathsKnown {
		return true
	}
	for _, f := range p.Paths {
		if f == dir || strings.HasPrefix(f, dir+"/") {
			return true
		}
	}
	return false
}

func refMatches(pushed, want string) bool {
	if want == "" {
		want = "main"
	}
	if strings.HasPrefix(want, "refs/") {
		return pushed == want
	}
	return pushed == "refs/heads/"+want
}
