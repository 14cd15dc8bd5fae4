package gitbuild

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Source is what a Function builds from: its ref and its directory in the repository.
type Source struct {
	Ref, Dir string
}

// Builder joins the parts: a push to the built-in remote, or a webhook's push, becomes a job of
// the Service, and a successful build is deployed (before a push to the remote is accepted).
type Builder struct {
	Service *Service
	// Options are every build's (Dir and Name are the Function's).
	Options BuildOptions
	// SourceOf is the source of Function ns/name pushed to the built-in remote; an error
	// rejects the push with its message. (For a Function that does not exist yet, it is to be
	// the repository's root on main, so that pushing a new function creates it.)
	SourceOf func(ctx context.Context, ns, name string) (Source, error)
	// Deploy makes function ("NAMESPACE/NAME") run what build made.
	Deploy func(ctx context.Context, function string, commit string, build CommitBuild, out io.Writer) error
	// AuthOf are the credentials that clone target's repository (nil: none).
	AuthOf func(ctx context.Context, t Target) (*Auth, error)
	// MirrorDir keeps the mirrors webhook builds fetch into.
	MirrorDir string
	Log       *slog.Logger
}

// Receive is Remote.Receive: a push of the Function's ref builds it and deploys the build
// while the push waits; any failure rejects the push with its message.
func (b *Builder) Receive(ctx context.Context, repo Repo, updates []RefUpdate, out io.Writer) error {
	src, err := b.SourceOf(ctx, repo.Namespace, repo.Name)
	if err != nil {
		return fmt.Errorf("fn: %w", err)
	}
	fn := repo.Namespace + "/" + repo.Name
	for _, u := range updates {
		p := &PushEvent{Ref: u.Ref, After: u.New} // paths unknown: a push of the ref builds
		if !p.Builds(src.Ref, src.Dir) {
			continue
		}
		if err := b.build(ctx, fn, repo, u.New, src, out); err != nil {
			return err
		}
	}
	return nil
}

func (b *Builder) build(ctx context.Context, fn string, repo Repo, commit string, src Source, out io.Writer) error {
	o := b.Options
	o.Dir = src.Dir
	_, o.Name, _ = strings.Cut(fn, "/")
	cb, err := b.Service.Run(ctx, Job{Function: fn, Repo: repo, Commit: commit, Options: o, Out: out})
	if err != nil {
		return err
	}
	if err := b.Deploy(ctx, fn, commit, cb, out); err != nil {
		return fmt.Errorf("fn: deploying %s: %w", cb.Image, err)
	}
	return nil
}

// BuildJob is the Service's Build in production: the job's commit fetched if it comes from a
// clone URL, then BuildCommit.
func BuildJob(ctx context.Context, j Job) (CommitBuild, error) {
	if j.CloneURL != "" {
		repo, err := Fetch(ctx, j.MirrorDir, j.CloneURL, j.Commit, j.Auth)
		if err != nil {
			return CommitBuild{}, err
		}
		repo.Namespace, repo.Name = j.Repo.Namespace, j.Repo.Name
		j.Repo = repo
	}
	return BuildCommit(ctx, j.Repo, j.Commit, j.Options, j.Out)
}

// Queue is Hooks.Build: the push's commit is fetched from its clone URL, built and deployed in
// the background; Queue returns once the build is queued.
func (b *Builder) Queue(ctx context.Context, t Target, h Host, deliveryID string, p *PushEvent) error {
	ns, name, _ := strings.Cut(t.Function, "/")
	var auth *Auth
	if b.AuthOf != nil {
		var err error
		if auth, err = b.AuthOf(ctx, t); err != nil {
			return err
		}
	}
	o := b.Options
	o.Dir, o.Name = t.Dir, name
	j := Job{Function: t.Function, Repo: Repo{Namespace: ns, Name: name}, Commit: p.After, Options: o, Out: io.Discard,
		CloneURL: p.CloneURL, Auth: auth, MirrorDir: b.MirrorDir}
	q := b.Service.submit(ctx, j)
	go func() {
		<-q.done
		if q.err == nil {
			q.err = b.Deploy(context.WithoutCancel(ctx), t.Function, p.After, q.result, io.Discard)
		}
		if q.err != nil {
			b.Log.Warn("webhook build failed", "function", t.Function, "commit", p.After, "delivery", deliveryID, "host", string(h), "error", q.err)
			return
		}
		b.Log.Info("webhook build deployed", "function", t.Function, "commit", p.After, "image", q.result.Image.String())
	}()
	return nil
}

// Auth are the credentials a clone uses (a Function's secretRef): HTTP basic auth.
type Auth struct {
	Username, Password string
}

// Fetch makes commit of the repository at url available as a local Repo: a bare mirror per
// URL under dir, into which exactly that commit is fetched (no tags, nothing else; git asks
// no server for a commit the mirror has). The credentials go to git in its environment,
// never on a command line.
func Fetch(ctx context.Context, dir, url, commit string, auth *Auth) (Repo, error) {
	sum := sha256.Sum256([]byte(url))
	repo := Repo{Path: filepath.Join(dir, hex.EncodeToString(sum[:12])+".git")}
	if _, err := os.Stat(repo.Path); err != nil {
		if err := initBare(repo.Path); err != nil {
			return repo, fmt.Errorf("fn: preparing the clone of %s: %w", url, err)
		}
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir", repo.Path, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", url, commit)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if auth != nil {
		basic := base64.StdEncoding.EncodeToString([]byte(auth.Username + ":" + auth.Password))
		cmd.Env = append(cmd.Env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic "+basic)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return repo, fmt.Errorf("fn: fetching %s of %s: %v: %s", commit, url, err, strings.TrimSpace(string(out)))
	}
	return repo, nil
}
