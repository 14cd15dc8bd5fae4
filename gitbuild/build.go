package gitbuild

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/manifest"
)

// CommitBuild is what building one commit made.
type CommitBuild struct {
	// Image is the pushed image, by digest.
	Image name.Digest
	// Manifest is the fn.yaml found at the function's path in that commit (empty without one):
	// configuration travels with the code.
	Manifest *manifest.Manifest
}

// BuildOptions say what to build of a commit and where to push it.
type BuildOptions struct {
	// Dir is the function's directory in the repository ("" or "." for its root).
	Dir string
	// Name is the Function's name.
	Name string
	// Registry is the repository images are pushed to, e.g. 127.0.0.1:5000/fns.
	Registry string
	// Insecure allows plain HTTP and unverified TLS to the registry.
	Insecure bool
	// CacheDir keeps the generated main modules between builds (Go's own build and module
	// caches are the process's, kept too).
	CacheDir string
	// Platforms to build for (default linux/amd64): the cluster's nodes'.
	Platforms []string
	// WorkDir is where commits are checked out, in WorkDir/NAMESPACE/NAME.
	WorkDir string
}

var workLocks sync.Map // directory -> *sync.Mutex

// lockDir serializes builds in directory dir (a build superseded by a newer one of the same
// Function may still be ending); it returns the unlock.
func lockDir(dir string) func() {
	m, _ := workLocks.LoadOrStore(dir, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// inRepo is err's message with the checkout's directory taken out of its paths (as the builder
// shows them: absolute, or relative to the working directory), so that they are the
// repository's.
func inRepo(err error, work string) string {
	msg := strings.ReplaceAll(err.Error(), work+string(filepath.Separator), "")
	if wd, werr := os.Getwd(); werr == nil {
		if rel, rerr := filepath.Rel(wd, work); rerr == nil && !strings.HasPrefix(rel, "..") {
			msg = strings.ReplaceAll(msg, rel+string(filepath.Separator), "")
		}
	}
	return msg
}

// BuildCommit checks commit of repo out, reads the fn.yaml at o.Dir, and builds and pushes the
// function there with the builder library, as fn deploy does, writing progress to out. An error
// carries the compiler's or fn.yaml's message.
func BuildCommit(ctx context.Context, repo Repo, commit string, o BuildOptions, out io.Writer) (CommitBuild, error) {
	var cb CommitBuild
	start := time.Now()
	// Each Function's commits are checked out in one place, one build at a time: Go's build
	// cache then knows the function's packages from its last build, and the generated main
	// (which the builder keys by the source's directory) is the same one.
	work := filepath.Join(o.WorkDir, cmp.Or(repo.Namespace, "_"), o.Name)
	unlock := lockDir(work)
	defer unlock()
	if err := os.RemoveAll(work); err != nil {
		return cb, err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return cb, err
	}
	fmt.Fprintf(out, "fn: building %s/%s at %s\n", repo.Namespace, o.Name, short(commit))
	if err := repo.Export(ctx, commit, work); err != nil {
		return cb, err
	}
	rel := strings.Trim(path.Clean("/"+o.Dir), "/")
	dir := filepath.Join(work, filepath.FromSlash(rel))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return cb, fmt.Errorf("fn: commit %s has no directory %q (the Function's source path)", short(commit), "/"+rel)
	}
	m, _, _, err := manifest.Load(dir)
	if err != nil {
		return cb, fmt.Errorf("fn: %s", inRepo(err, work))
	}
	cb.Manifest = m
	f, err := builder.Scaffold(dir, o.Name, o.CacheDir)
	if err != nil {
		return cb, fmt.Errorf("fn: %s", inRepo(err, work))
	}
	img, err := f.BuildImage(ctx, builder.ImageOptions{Progress: out, Insecure: o.Insecure, Platforms: o.Platforms})
	if err != nil {
		return cb, fmt.Errorf("fn: the build failed: %s", inRepo(err, work))
	}
	if cb.Image, err = img.Push(ctx, o.Registry, o.Insecure); err != nil {
		return cb, fmt.Errorf("fn: pushing the image: %w", err)
	}
	fmt.Fprintf(out, "fn: built and pushed %s (%s)\n", cb.Image, time.Since(start).Round(time.Millisecond))
	return cb, nil
}
