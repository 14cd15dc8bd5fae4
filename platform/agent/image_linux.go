package agent

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
)

// imageStore pulls images and keeps each one unpacked (its layers flattened into one tree) under
// dir, by manifest digest: a second pod of an image costs a directory walk, not a pull.
//
//	dir/sha256-<hex>/rootfs       the image's filesystem
//	dir/sha256-<hex>/config.json  its config file
//	dir/sha256-<hex>/image-id     repository@digest, what pods report as imageID
//	dir/sha256-<index hex>        a link to the platform's image, for index digests
//	dir/tags/<hash of reference>  the digest a tag resolved to
type imageStore struct {
	dir      string
	insecure map[string]bool // registries (host:port) reachable over plain HTTP
	chown    bool            // keep the layers' owners (needs root)
	log      *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// gcMu is held by the garbage collection, and shared by get: an image get returns was
	// marked used in the same hold, so a collection after it keeps it for imageGCMinAge.
	gcMu sync.RWMutex
}

// image is an unpacked image.
type image struct {
	id     string // repository@sha256:..., the digest pulled by
	rootfs string
	config v1.ConfigFile
}

func newImageStore(dir string, insecure []string, chown bool, log *slog.Logger) (*imageStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tags"), 0o755); err != nil {
		return nil, err
	}
	s := &imageStore{dir: dir, insecure: map[string]bool{}, chown: chown, log: log, locks: map[string]*sync.Mutex{}}
	for _, r := range insecure {
		s.insecure[r] = true
	}
	// Unpacks interrupted by a previous run.
	tmps, _ := filepath.Glob(filepath.Join(dir, "tmp-*"))
	for _, t := range tmps {
		_ = os.RemoveAll(t)
	}
	return s, nil
}

func (s *imageStore) lock(key string) func() {
	s.mu.Lock()
	l, ok := s.locks[key]
	if !ok {
		l = &sync.Mutex{}
		s.locks[key] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// isInsecure reports whether registry (host[:port]) may be reached over plain HTTP.
func (s *imageStore) isInsecure(registry string) bool {
	if s.insecure[registry] {
		return true
	}
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (s *imageStore) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, &cannotRunError{fmt.Sprintf("invalid image reference %q: %v", ref, err)}
	}
	if s.isInsecure(r.Context().RegistryStr()) {
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, &cannotRunError{fmt.Sprintf("invalid image reference %q: %v", ref, err)}
		}
	}
	return r, nil
}

func digestDir(d string) string { return strings.Replace(d, ":", "-", 1) }

// get returns the image ref names, unpacked, pulling it if needed (always for a tag with
// policy Always).
func (s *imageStore) get(ctx context.Context, ref string, policy corev1.PullPolicy) (*image, error) {
	r, err := s.parse(ref)
	if err != nil {
		return nil, err
	}
	defer s.lock(ref)()
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	img, err := s.getLocked(ctx, r, policy)
	if err == nil {
		s.touch(filepath.Dir(img.rootfs))
	}
	return img, err
}

// tagFile is the file holding the digest the tag was last pulled as.
func (s *imageStore) tagFile(r name.Tag) string {
	sum := sha256.Sum256([]byte(r.Name()))
	return filepath.Join(s.dir, "tags", hex.EncodeToString(sum[:]))
}

func (s *imageStore) getLocked(ctx context.Context, r name.Reference, policy corev1.PullPolicy) (*image, error) {
	ref := r.String()
	tagFile := ""
	switch r := r.(type) {
	case name.Digest:
		if img, err := s.load(r.DigestStr()); err == nil {
			return img, nil
		}
	case name.Tag:
		tagFile = s.tagFile(r)
		if policy != corev1.PullAlways {
			if d, err := os.ReadFile(tagFile); err == nil {
				if img, err := s.load(string(d)); err == nil {
					return img, nil
				}
			}
		}
	}
	if policy == corev1.PullNever {
		return nil, &pullError{fmt.Errorf("image %s is not present and its pull policy is Never", ref)}
	}
	img, err := s.pull(ctx, r)
	if err != nil {
		return nil, err
	}
	if tagFile != "" {
		d := img.id[strings.LastIndex(img.id, "@")+1:]
		_ = os.WriteFile(tagFile, []byte(d), 0o644)
	}
	return img, nil
}

// load returns the unpacked image of digest d, if it is in the store.
func (s *imageStore) load(d string) (*image, error) {
	dir := filepath.Join(s.dir, digestDir(d))
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	id, err := os.ReadFile(filepath.Join(dir, "image-id"))
	if err != nil {
		return nil, err
	}
	img := &image{id: string(id), rootfs: filepath.Join(dir, "rootfs")}
	if err := json.Unmarshal(b, &img.config); err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		img.rootfs = filepath.Join(real, "rootfs")
	}
	return img, nil
}

func (s *imageStore) pull(ctx context.Context, r name.Reference) (*image, error) {
	start := time.Now()
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(platform))
	if err != nil {
		return nil, &pullError{fmt.Errorf("pulling %s: %w", r, err)}
	}
	img, err := desc.Image()
	if err != nil {
		if desc.MediaType.IsIndex() {
			var has []string
			if idx, ierr := desc.ImageIndex(); ierr == nil {
				if m, merr := idx.IndexManifest(); merr == nil {
					for _, d := range m.Manifests {
						if d.Platform != nil {
							has = append(has, d.Platform.String())
						}
					}
				}
			}
			return nil, &cannotRunError{fmt.Sprintf("image %s has no %s variant (it has %s)", r, platform, strings.Join(has, ", "))}
		}
		return nil, &pullError{fmt.Errorf("pulling %s: %w", r, err)}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, &pullError{fmt.Errorf("pulling %s: config: %w", r, err)}
	}
	if cf.OS != "" && cf.OS != "linux" || cf.Architecture != "" && cf.Architecture != runtime.GOARCH {
		return nil, &cannotRunError{fmt.Sprintf("image %s is for %s/%s, this node runs linux/%s", r, cf.OS, cf.Architecture, runtime.GOARCH)}
	}
	md, err := img.Digest()
	if err != nil {
		return nil, &pullError{err}
	}
	id := r.Context().Name() + "@" + desc.Digest.String()
	defer s.lock(md.String())()
	final := filepath.Join(s.dir, digestDir(md.String()))
	if _, err := os.Stat(filepath.Join(final, "image-id")); err != nil {
		tmp, err := os.MkdirTemp(s.dir, "tmp-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := os.Mkdir(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
			return nil, err
		}
		if err := unpack(img, filepath.Join(tmp, "rootfs"), s.chown); err != nil {
			return nil, &pullError{fmt.Errorf("unpacking %s: %w", r, err)}
		}
		b, _ := json.Marshal(cf)
		if err := os.WriteFile(filepath.Join(tmp, "config.json"), b, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, "image-id"), []byte(id), 0o644); err != nil {
			return nil, err
		}
		_ = os.RemoveAll(final) // an incomplete one
		if err := os.Rename(tmp, final); err != nil {
			return nil, err
		}
		s.log.Info("pulled image", "image", r.String(), "digest", md.String(), "duration", time.Since(start).Round(time.Millisecond))
	}
	if desc.Digest != md { // pulled through an index: remember the index's digest too
		alias := filepath.Join(s.dir, digestDir(desc.Digest.String()))
		_ = os.Remove(alias)
		_ = os.Symlink(digestDir(md.String()), alias)
	}
	out, err := s.load(md.String())
	if err != nil {
		return nil, err
	}
	out.id = id
	return out, nil
}

// unpack writes img's filesystem into dir, applying its layers from the top down: the first
// version of a path seen wins, whiteouts (.wh.NAME) hide what lower layers hold at NAME, and
// opaque whiteouts (.wh..wh..opq) hide what lower layers hold in their directory. Writes go
// through an os.Root, so no entry (nor symlink) can place anything outside dir.
func unpack(img v1.Image, dir string, chown bool) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	seen := map[string]bool{}   // paths an upper layer decided
	hidden := map[string]bool{} // paths below which lower layers show nothing: non-directories, whiteouts, opaque directories
	var links []*tar.Header
	isHidden := func(p string) bool {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if hidden[d] {
				return true
			}
		}
		return false
	}
	for i := len(layers) - 1; i >= 0; i-- {
		opaque := map[string]bool{}
		err := func() error {
			rc, err := layers[i].Uncompressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return fmt.Errorf("layer %d: %w", i, err)
				}
				p := path.Clean(strings.TrimLeft(h.Name, "/"))
				if p == "." || p == ".." || strings.HasPrefix(p, "../") || isHidden(p) {
					continue
				}
				dirName, base := path.Split(p)
				dirName = path.Clean(dirName)
				if base == ".wh..wh..opq" {
					opaque[dirName] = true
					continue
				}
				if strings.HasPrefix(base, ".wh.") {
					target := path.Join(dirName, strings.TrimPrefix(base, ".wh."))
					if !seen[target] {
						seen[target], hidden[target] = true, true
					}
					continue
				}
				if seen[p] {
					continue
				}
				seen[p] = true
				if h.Typeflag != tar.TypeDir {
					hidden[p] = true
				}
				if h.Typeflag == tar.TypeLink {
					links = append(links, h)
					continue
				}
				if err := writeEntry(root, p, h, tr, chown); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			_, err = io.Copy(io.Discard, rc) // so the layer's digest is verified
			return err
		}()
		if err != nil {
			return err
		}
		if opaque["."] {
			break // lower layers show nothing at all
		}
		for d := range opaque {
			hidden[d] = true
		}
	}
	for _, h := range links {
		p := path.Clean(strings.TrimLeft(h.Name, "/"))
		target := path.Clean(strings.TrimLeft(h.Linkname, "/"))
		if err := root.MkdirAll(path.Dir(p), 0o755); err != nil {
			return err
		}
		if err := root.Link(target, p); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: hard link to %s: %w", p, target, err)
		}
	}
	return nil
}

func writeEntry(root *os.Root, p string, h *tar.Header, r io.Reader, chown bool) error {
	mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if parent := path.Dir(p); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(p, 0o755); err != nil {
			return err
		}
	case tar.TypeReg:
		f, err := root.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := root.Symlink(h.Linkname, p); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return nil // an upper layer's implied directory
			}
			return err
		}
		if chown {
			return root.Lchown(p, h.Uid, h.Gid)
		}
		return nil
	default:
		return nil // devices and FIFOs have no place in a function's image
	}
	if chown {
		if err := root.Lchown(p, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	return root.Chmod(p, mode)
}

// materialize builds a container's root at dst from an unpacked image: directories are
// created, symbolic links recreated, and files hard-linked to the store's (when the root will
// be mounted read-only) or copied.
func materialize(src, dst string, copyFiles, chown bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		own := func(p string) error {
			if chown && st != nil {
				return os.Lchown(p, int(st.Uid), int(st.Gid))
			}
			return nil
		}
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			} else if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := own(target); err != nil {
				return err
			}
			return os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
			return own(target)
		case fi.Mode().IsRegular():
			if !copyFiles {
				return os.Link(p, target)
			}
			if err := copyFile(p, target, fi.Mode()); err != nil {
				return err
			}
			if err := own(target); err != nil {
				return err
			}
			return os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
