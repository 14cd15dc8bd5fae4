package gitbuild

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Source is what a Function builds from: its ref and its directory in the repository.
type Source struct {
	Ref, Dir string
}

// Builder joins the parts for the built-in remote: a push becomes a job of the Service, and a
// successful build is deployed before the push is accepted. (Webhook deliveries need the commit
// fetched from their clone URL first: not done yet.)
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

// BuildJob is the Service's Build in production: BuildCommit of the job.
func BuildJob(ctx context.Context, j Job) (CommitBuild, error) {
	return BuildCommit(ctx, j.Repo, j.Commit, j.Options, j.Out)
}
