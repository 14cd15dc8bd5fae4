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
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// Source is what a Function builds from: its ref and its directory in the repository. New
// says the Function is not built from this repository yet (it does not exist, or fn deploy
// made it): the build makes it so.
type Source struct {
	Ref, Dir string
	New      bool
}

// Builder joins the parts: a push to the built-in remote, or a webhook's push, becomes a job of
// the Service, recorded (a FunctionBuild) from the moment it is queued, and a successful build
// is deployed (before a push to the remote is accepted).
type Builder struct {
	Service *Service
	// Options are every build's (Dir and Name are the Function's).
	Options BuildOptions
	// SourceOf is the source of Function ns/name pushed to the built-in remote by repo.User;
	// an error rejects the push with its message. (For a Function that does not exist yet, it
	// is to be the repository's root on main, so that pushing a new function creates it.)
	SourceOf func(ctx context.Context, repo Repo) (Source, error)
	// Deploy makes function ("NAMESPACE/NAME") run what build made.
	Deploy func(ctx context.Context, t Trigger, build CommitBuild, out io.Writer) error
	// AuthOf are the credentials that clone target's repository (nil: none).
	AuthOf func(ctx context.Context, t Target) (*Auth, error)
	// Records keeps the record of builds (nil: none).
	Records Recorder
	// RemoteURL is the built-in remote's URL of a repository path ("/git/NS/NAME.git"), as
	// builds record it.
	RemoteURL func(path string) string
	// MirrorDir keeps the mirrors webhook builds fetch into.
	MirrorDir string
	Log       *slog.Logger
}

// Receive is Remote.Receive: a push of the Function's ref builds it and deploys the build
// while the push waits; any failure rejects the push with its message.
func (b *Builder) Receive(ctx context.Context, repo Repo, updates []RefUpdate, out io.Writer) error {
	src, err := b.SourceOf(ctx, repo)
	if err != nil {
		return fmt.Errorf("fn: %w", err)
	}
	fn := repo.Namespace + "/" + repo.Name
	url := "/git/" + repo.Namespace + "/" + repo.Name + ".git"
	if b.RemoteURL != nil {
		url = b.RemoteURL(url)
	}
	for _, u := range updates {
		p := &PushEvent{Ref: u.Ref, After: u.New} // paths unknown: a push of the ref builds
		if !p.Builds(src.Ref, src.Dir) {
			continue
		}
		t := Trigger{Function: fn, Kind: v1alpha1.TriggerPush, User: repo.User, URL: url, Ref: u.Ref, Commit: u.New, Path: src.Dir}
		if src.New {
			t.Source = &v1alpha1.GitSource{URL: url, Ref: strings.TrimPrefix(u.Ref, "refs/heads/"), Path: src.Dir}
		}
		o := b.Options
		o.Dir, o.Name = src.Dir, repo.Name
		run, err := b.start(ctx, t, Job{Function: fn, Repo: repo, Commit: u.New, Options: o}, out)
		if err != nil {
			return err
		}
		if err := run.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// running is a build queued by the Builder.
type running struct {
	b      *Builder
	t      Trigger
	q      *queued
	rec    Record
	log    *logTail
	out    io.Writer
	ticker chan struct{}
}

// start records t's build and queues j for it, its progress to out.
func (b *Builder) start(ctx context.Context, t Trigger, j Job, out io.Writer) (*running, error) {
	r := &running{b: b, t: t, log: &logTail{}, out: out, ticker: make(chan struct{})}
	if b.Records != nil {
		rec, err := b.Records.Record(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("fn: recording the build of %s: %w", t.Function, err)
		}
		r.rec = rec
		fmt.Fprintf(out, "fn: build %s of commit %s queued\n", rec.Name(), short(t.Commit))
	}
	j.Out = tee{out, r.log}
	j.Started = func() {
		if r.rec == nil {
			return
		}
		r.rec.Running(context.WithoutCancel(ctx))
		go r.publish(context.WithoutCancel(ctx))
	}
	r.q = b.Service.submit(ctx, j)
	return r, nil
}

// logPeriod is how often a running build's record gets its log.
const logPeriod = 2 * time.Second

// publish writes the log into the record now and then until the build ends.
func (r *running) publish(ctx context.Context) {
	t := time.NewTicker(logPeriod)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-r.q.done:
			return
		case <-t.C:
			if log, n := r.log.snapshot(); n != last {
				last = n
				r.rec.Log(ctx, log)
			}
		}
	}
}

// wait waits for the build (ending it if ctx ends first), deploys it, and records the outcome.
func (r *running) wait(ctx context.Context) error {
	cb, err := r.b.Service.wait(ctx, r.q)
	if err == nil {
		if derr := r.b.Deploy(context.WithoutCancel(ctx), r.t, cb, r.out); derr != nil {
			err = deployError{fmt.Errorf("fn: deploying %s: %w", cb.Image, derr)}
		}
	}
	if err != nil {
		fmt.Fprintf(r.log, "%v\n", err)
	}
	if r.rec != nil {
		log, _ := r.log.snapshot()
		image := ""
		if err == nil {
			image = cb.Image.String()
		}
		r.rec.End(context.WithoutCancel(ctx), image, err, log)
	}
	if err != nil {
		return err
	}
	return nil
}

// BuildJob is the Service's Build in production: the job's commit fetched if it comes from a
// clone URL, then BuildCommit.
func BuildJob(ctx context.Context, j Job) (CommitBuild, error) {
	if j.CloneURL != "" {
		fmt.Fprintf(j.Out, "fn: fetching %s of %s\n", short(j.Commit), j.CloneURL)
		repo, err := Fetch(ctx, j.MirrorDir, j.CloneURL, j.Commit, j.Auth)
		if err != nil {
			return CommitBuild{}, cloneError{err}
		}
		repo.Namespace, repo.Name = j.Repo.Namespace, j.Repo.Name
		j.Repo = repo
	}
	return BuildCommit(ctx, j.Repo, j.Commit, j.Options, j.Out)
}

// Queue is Hooks.Build: the push's commit is fetched from its clone URL, built and deployed in
// the background; Queue returns once the build is recorded and queued, so builds queue in the
// order deliveries arrive.
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
	tr := Trigger{Function: t.Function, Kind: v1alpha1.BuildTrigger(h), Delivery: deliveryID, User: p.Pusher, URL: p.CloneURL,
		Ref: p.Ref, Commit: p.After, Path: t.Dir}
	j := Job{Function: t.Function, Repo: Repo{Namespace: ns, Name: name}, Commit: p.After, Options: o,
		CloneURL: p.CloneURL, Auth: auth, MirrorDir: b.MirrorDir}
	run, err := b.start(ctx, tr, j, io.Discard)
	if err != nil {
		return err
	}
	go func() {
		if err := run.wait(context.WithoutCancel(ctx)); err != nil {
			b.Log.Warn("webhook build failed", "function", t.Function, "commit", p.After, "delivery", deliveryID, "host", string(h), "error", err)
			return
		}
		b.Log.Info("webhook build deployed", "function", t.Function, "commit", p.After, "delivery", deliveryID)
	}()
	return nil
}

// Auth are the credentials a clone uses (a Function's secretRef): HTTP basic auth.
type Auth struct {
	Username, Password string
}

// gitEnv is the environment of a git command that reaches a remote: no prompt, and auth's
// credentials, if any, as a header in the environment, never on a command line.
func gitEnv(auth *Auth) []string {
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if auth != nil {
		basic := base64.StdEncoding.EncodeToString([]byte(auth.Username + ":" + auth.Password))
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic "+basic)
	}
	return env
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
	cmd.Env = gitEnv(auth)
	if out, err := cmd.CombinedOutput(); err != nil {
		return repo, fmt.Errorf("fn: fetching %s of %s: %v: %s", commit, url, err, strings.TrimSpace(string(out)))
	}
	return repo, nil
}
