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
	"testing"
)

// FuzzHooks posts any body with any event and signature headers to each webhook endpoint,
// signed or not: the answer is one of the statuses the endpoint documents, it never panics, and
// nothing builds unless the delivery's signature is the target's.
func FuzzHooks(f *testing.F) {
	secret := []byte("s3cret")
	for _, s := range []struct {
		path, event, sig string
		body             string
		signed           bool
	}{
		{"github", "push", "", `{"ref":"refs/heads/main","after":"abcd1234abcd1234abcd1234abcd1234abcd1234","repository":{"clone_url":"https://git.example/a.git"},"commits":[{"modified":["hello/x.go"]}]}`, true},
		{"gitea", "push", "", `{"ref":"refs/heads/main","after":"00","repository":{"clone_url":"https://git.example/a.git"}}`, true},
		{"gitlab", "Push Hook", "s3cret", `{"ref":"refs/heads/main","checkout_sha":"abcd","project":{"git_http_url":"https://git.example/a.git"}}`, false},
		{"github", "ping", "", `{"zen":"x"}`, true},
		{"github", "pull_request", "", `{"action":"opened"}`, true},
		{"github", "push", "sha256=00", `{`, false},
		// A valid push with a wrong signature: must not build.
		{"github", "push", "sha256=0000", `{"ref":"refs/heads/main","after":"abcd1234abcd1234abcd1234abcd1234abcd1234","repository":{"clone_url":"https://git.example/a.git"},"commits":[{"modified":["hello/x.go"]}]}`, false},
		{"gitea", "push", "00", `{"ref":"refs/heads/main","after":"abcd1234abcd1234abcd1234abcd1234abcd1234","repository":{"clone_url":"https://git.example/a.git"},"commits":[{"modified":["hello/x.go"]}]}`, false},
		{"github", "push", "sha1=zz", `null`, false},
		{"gitlab", "Push Hook", "", `[]`, false},
		{"other", "push", "", `{}`, false},
	} {
		f.Add(s.path, s.event, s.sig, []byte(s.body), s.signed)
	}
	var built int
	hk := &Hooks{
		Targets: func(_ context.Context, url string) ([]Target, error) {
			return []Target{{Function: "default/hello", Ref: "main", Dir: "hello", Secret: secret}}, nil
		},
		Seen:   func(context.Context, Host, string) (bool, error) { return false, nil },
		Record: func(context.Context, Host, string) error { return nil },
		Build: func(context.Context, Target, Host, string, *PushEvent) error {
			built++
			return nil
		},
		Log: slog.New(slog.DiscardHandler),
	}
	f.Fuzz(func(t *testing.T, path, event, sig string, body []byte, signed bool) {
		if signed {
			m := hmac.New(sha256.New, secret)
			m.Write(body)
			sig = "sha256=" + hex.EncodeToString(m.Sum(nil))
		}
		req := httptest.NewRequest(http.MethodPost, "/hooks/x", bytes.NewReader(body))
		req.URL.Path = "/hooks/" + strings.ReplaceAll(path, "/", "")
		for _, h := range []string{"X-GitHub-Event", "X-Gitea-Event", "X-Gitlab-Event"} {
			req.Header.Set(h, event)
		}
		req.Header.Set("X-GitHub-Delivery", "d")
		req.Header.Set("X-Gitea-Delivery", "d")
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("X-Gitea-Signature", strings.TrimPrefix(sig, "sha256="))
		req.Header.Set("X-Gitlab-Token", sig)
		before := built
		rec := httptest.NewRecorder()
		hk.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("POST %s (%s): %d %q", req.URL.Path, event, rec.Code, rec.Body)
		}
		if built > before && !signed && sig != string(secret) {
			t.Fatalf("built from an unsigned delivery to %s: %q", req.URL.Path, body)
		}
	})
}
