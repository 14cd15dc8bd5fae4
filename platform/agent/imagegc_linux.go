package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// Image garbage collection: every edit deployed to the local platform is a new image, unpacked
// in the store (~10 MB for a Go function), and nothing else would ever remove the old ones. An
// image no pod of this node uses is removed once it has not been used for imageGCMinAge; pods
// hold hard links or copies of an image's files, so removing it never touches a running pod.
const (
	imageGCMinAge   = 10 * time.Minute
	imageGCInterval = 5 * time.Minute
)

// touch marks the image in dir as used now.
func (s *imageStore) touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, "image-id"), now, now)
}

// resolve returns the store directory (its base name) a reference's image is unpacked in, if it
// is, without the network: by digest, or by the digest a tag was last pulled as.
func (s *imageStore) resolve(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	var d string
	switch r := r.(type) {
	case name.Digest:
		d = r.DigestStr()
	case name.Tag:
		b, err := os.ReadFile(s.tagFile(r))
		if err != nil {
			return ""
		}
		d = string(b)
	}
	dir := filepath.Join(s.dir, digestDir(d))
	if real, err := filepath.EvalSymlinks(dir); err == nil { // an index's digest: its image
		return filepath.Base(real)
	}
	return ""
}

// gc removes the images not in inUse (store directory names) and unused for minAge, with the
// aliases and tags that named them, and reports what it removed.
func (s *imageStore) gc(inUse map[string]bool, minAge time.Duration) []string {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "sha256-") || inUse[e.Name()] {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		st, err := os.Stat(filepath.Join(dir, "image-id"))
		if err == nil && time.Since(st.ModTime()) < minAge {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("removing an unused image", "dir", dir, "error", err)
			continue
		}
		removed = append(removed, e.Name())
	}
	if len(removed) == 0 {
		return nil
	}
	// Aliases (symbolic links) and tags now naming nothing.
	for _, e := range entries {
		p := filepath.Join(s.dir, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			if _, err := os.Stat(p); err != nil {
				_ = os.Remove(p)
			}
		}
	}
	tags, _ := os.ReadDir(filepath.Join(s.dir, "tags"))
	for _, tg := range tags {
		p := filepath.Join(s.dir, "tags", tg.Name())
		if b, err := os.ReadFile(p); err == nil {
			if _, err := os.Stat(filepath.Join(s.dir, digestDir(string(b)))); err != nil {
				_ = os.Remove(p)
			}
		}
	}
	s.log.Info("removed unused images", "count", len(removed))
	return removed
}

// imagesInUse are the store directories of the images of this node's pods.
func (p *provider) imagesInUse() map[string]bool {
	p.mu.Lock()
	pods := make([]*pod, 0, len(p.pods))
	for _, pd := range p.pods {
		pods = append(pods, pd)
	}
	p.mu.Unlock()
	inUse := map[string]bool{}
	for _, pd := range pods {
		pd.mu.Lock()
		spec := pd.obj.Spec
		pd.mu.Unlock()
		for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
			if d := p.images.resolve(c.Image); d != "" {
				inUse[d] = true
			}
		}
	}
	return inUse
}

// collectImages runs the image garbage collection every imageGCInterval until ctx is done. The
// first run waits an interval too: after a restart the node's pods are not all known at once.
func (p *provider) collectImages(ctx context.Context) {
	t := time.NewTicker(imageGCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.images.gc(p.imagesInUse(), imageGCMinAge)
	}
}
