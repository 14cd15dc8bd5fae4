package gitbuild

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestHooks: the webhook endpoint's answers, and what it builds.
func TestHooks(t *testing.T) {
	const repoURL = "https://git.example/acme/fns.git"
	secret := []byte("s3cret")
	var mu sync.Mutex
	seen := map[string]bool{}
	var builds []string
	hk := &Hooks{
		Targets: func(_ context.Context, url string) ([]Target, error) {
			if url != repoURL {
				return nil, nil
			}
			return []Target{
				{Function: "default/hello", Ref: "main", Dir: "hello", Secret: secret},
				{Function: "default/other", Ref: "main", Dir: "other", Secret: secret},
				{Function: "team/hello", Ref: "main", Dir: "hello", Secret: []byte("another team's")},
			}, nil
		},
		Seen: func(_ context.Context, h Host, id string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return seen[string(h)+"/"+id], nil
		},
		Record: func(_ context.Context, h Host, id string) error {
			mu.Lock()
			defer mu.Unlock()
			seen[string(h)+"/"+id] = true
			return nil
		},
		Build: func(_ context.Context, tg Target, h Host, id string, p *PushEvent) error {
			mu.Lock()
			defer mu.Unlock()
			builds = append(builds, tg.Function+"@"+p.After[:4])
			return nil
		},
		Log: slog.New(slog.DiscardHandler),
	}
	sign := func(body []byte, key []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	post := func(path, event, id string, body []byte, sig string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", id)
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		rec := httptest.NewRecorder()
		hk.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	buildsNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string{}, builds...)
	}
	push := []byte(`{"ref": "refs/heads/main", "before": "1111", "after": "abcd1234abcd1234abcd1234abcd1234abcd1234", "size": 1,
		"commits": [{"modified": ["hello/hello.go"]}], "repository": {"clone_url": "` + repoURL + `"}}`)

	if code, body := post("/hooks/github", "push", "d1", push, sign(push, []byte("wrong"))); code != http.StatusUnauthorized {
		t.Errorf("a bad signature: %d %s, want 401", code, body)
	}
	if code, _ := post("/hooks/github", "push", "d1", push, ""); code != http.StatusUnauthorized {
		t.Errorf("no signature: %d, want 401", code)
	}
	if b := buildsNow(); len(b) != 0 {
		t.Fatalf("unverified deliveries built %v", b)
	}
	code, body := post("/hooks/github", "push", "d1", push, sign(push, secret))
	if code != http.StatusAccepted || !strings.Contains(body, "default/hello") {
		t.Errorf("a signed push: %d %s, want 202 building default/hello", code, body)
	}
	if b := buildsNow(); len(b) != 1 || b[0] != "default/hello@abcd" {
		t.Errorf("built %v, want only default/hello (other's path is untouched, team's secret differs)", b)
	}
	if code, body := post("/hooks/github", "push", "d1", push, sign(push, secret)); code != http.StatusAccepted || !strings.Contains(body, "seen before") {
		t.Errorf("the same delivery again: %d %s", code, body)
	}
	if b := buildsNow(); len(b) != 1 {
		t.Errorf("the same delivery built again: %v", b)
	}
	ping := []byte(`{"zen": "Keep it logically awesome.", "repository": {"clone_url": "` + repoURL + `"}}`)
	if code, body := post("/hooks/github", "ping", "p1", ping, sign(ping, secret)); code != http.StatusOK {
		t.Errorf("ping: %d %s, want 200", code, body)
	}
	pr := []byte(`{"action": "opened", "repository": {"clone_url": "` + repoURL + `"}}`)
	if code, _ := post("/hooks/github", "pull_request", "r1", pr, sign(pr, secret)); code != http.StatusAccepted {
		t.Errorf("a pull request: %d, want 202", code)
	}
	other := bytes.Replace(push, []byte("refs/heads/main"), []byte("refs/heads/dev"), 1)
	if code, body := post("/hooks/github", "push", "d2", other, sign(other, secret)); code != http.StatusAccepted || !strings.Contains(body, "nothing built") {
		t.Errorf("a push to another branch: %d %s", code, body)
	}
	if b := buildsNow(); len(b) != 1 {
		t.Errorf("a pull request or another branch built: %v", b)
	}
	big := bytes.Repeat([]byte(" "), MaxBody+1<<20)
	if code, _ := post("/hooks/github", "push", "d3", big, sign(big, secret)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 26 MiB body: %d, want 413", code)
	}
	if code, _ := post("/hooks/bitbucket", "push", "d4", push, sign(push, secret)); code != http.StatusNotFound {
		t.Errorf("an unknown host: %d, want 404", code)
	}
	unknown := bytes.Replace(push, []byte(repoURL), []byte("https://git.example/else.git"), 1)
	if code, _ := post("/hooks/github", "push", "d5", unknown, sign(unknown, secret)); code != http.StatusUnauthorized {
		t.Errorf("a repository no Function is built from: %d, want 401", code)
	}
}
