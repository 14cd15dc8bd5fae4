package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
)

// entry is a tar entry of a test layer.
type entry struct {
	name, data, link string
	typ              byte
	mode             int64
	uid              int
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Size: int64(len(e.data))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testImage(t *testing.T, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/ko-app/fn"}
	cf.Config.Env = []string{"A=1"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestUnpack(t *testing.T) {
	img := testImage(t, runtime.GOARCH,
		layer(t, // bottom
			entry{name: "etc/", typ: tar.TypeDir},
			entry{name: "etc/passwd", data: "root"},
			entry{name: "etc/keep", data: "k1"},
			entry{name: "opq/a", data: "a"},
			entry{name: "opq/sub/b", data: "b"},
			entry{name: "gone/x", data: "x"},
			entry{name: "data/f", data: "f", mode: 0o640, uid: 1234},
			entry{name: "../../escape", data: "no"},
		),
		layer(t,
			entry{name: "etc/.wh.passwd"},
			entry{name: "opq/c", data: "c"},
			entry{name: "opq/.wh..wh..opq"},
			entry{name: ".wh.gone"},
			entry{name: "etc/new", data: "n"},
			entry{name: "data/h", typ: tar.TypeLink, link: "data/f"},
			entry{name: "lib2", typ: tar.TypeSymlink, link: "data"},
		),
		layer(t, entry{name: "./etc/keep", data: "k3"}), // top
	)
	dir := t.TempDir()
	if err := unpack(img, dir, true); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	for p, want := range map[string]string{"etc/keep": "k3", "etc/new": "n", "opq/c": "c", "data/f": "f", "data/h": "f", "lib2/f": "f"} {
		if got := read(p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"etc/passwd", "opq/a", "opq/sub", "gone", "escape", "../escape"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists (%v), want it whited out", p, err)
		}
	}
	fi, _ := os.Stat(filepath.Join(dir, "data/f"))
	hi, _ := os.Stat(filepath.Join(dir, "data/h"))
	if !os.SameFile(fi, hi) || fi.Mode().Perm() != 0o640 {
		t.Errorf("data/f: mode %s, hard link shared: %v", fi.Mode(), os.SameFile(fi, hi))
	}
	if os.Geteuid() == 0 && fi.Sys().(*syscall.Stat_t).Uid != 1234 {
		t.Errorf("data/f: owner %d, want 1234", fi.Sys().(*syscall.Stat_t).Uid)
	}

	// A container's root: hard links to the store for a read-only root, copies otherwise.
	for _, copyFiles := range []bool{false, true} {
		root := filepath.Join(t.TempDir(), "root")
		if err := materialize(dir, root, copyFiles, os.Geteuid() == 0); err != nil {
			t.Fatal(err)
		}
		ri, err := os.Stat(filepath.Join(root, "data/f"))
		if err != nil || os.SameFile(fi, ri) == copyFiles || ri.Mode().Perm() != 0o640 {
			t.Errorf("materialize (copy %v): %v, shared %v, mode %s", copyFiles, err, os.SameFile(fi, ri), ri.Mode())
		}
		if l, err := os.Readlink(filepath.Join(root, "lib2")); err != nil || l != "data" {
			t.Errorf("materialize (copy %v): symlink %q, %v", copyFiles, l, err)
		}
	}
}

// TestUnpackEscape checks that a layer cannot write outside the directory it is unpacked in.
func TestUnpackEscape(t *testing.T) {
	outside := t.TempDir()
	img := testImage(t, runtime.GOARCH, layer(t,
		entry{name: "evil", typ: tar.TypeSymlink, link: outside},
		entry{name: "evil/pwned", data: "x"},
		entry{name: "rel", typ: tar.TypeSymlink, link: "../../../../../../" + outside},
		entry{name: "rel/pwned2", data: "x"},
	))
	_ = unpack(img, t.TempDir(), false) // an error is fine; a write outside is not
	for _, f := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(outside, f)); err == nil {
			t.Errorf("the image wrote %s outside its directory", f)
		}
	}
}

// TestUnpackHardLinkEscape: a hard link cannot reach a file outside the directory, whether its
// target climbs out, is absolute, or goes through a symbolic link that points out; nor can a
// link's own name climb out.
func TestUnpackHardLinkEscape(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := testImage(t, runtime.GOARCH, layer(t,
		entry{name: "up", typ: tar.TypeLink, link: "../../../../../../../../" + secret},
		entry{name: "abs", typ: tar.TypeLink, link: secret},
		entry{name: "out", typ: tar.TypeSymlink, link: outside},
		entry{name: "via", typ: tar.TypeLink, link: "out/secret"},
		entry{name: "../../../../../../../../" + outside + "/planted", typ: tar.TypeLink, link: "out/secret"},
	))
	dir := t.TempDir()
	_ = unpack(img, dir, false) // an error is fine; a link to the host's file is not
	host, _ := os.Stat(secret)
	for _, name := range []string{"up", "abs", "via"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && os.SameFile(fi, host) {
			t.Errorf("%s is a hard link to a file outside the image's directory", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a hard link was planted outside the image's directory")
	}
	if b, _ := os.ReadFile(secret); string(b) != "host" {
		t.Errorf("the host's file changed: %q", b)
	}
}

// TestUnpackDevices: device nodes and FIFOs in a layer are not created (a function has no use
// for them and a device node would open the host's device).
func TestUnpackDevices(t *testing.T) {
	img := testImage(t, runtime.GOARCH, layer(t,
		entry{name: "dev/", typ: tar.TypeDir},
		entry{name: "dev/mem", typ: tar.TypeChar},
		entry{name: "dev/sda", typ: tar.TypeBlock},
		entry{name: "fifo", typ: tar.TypeFifo},
		entry{name: "ok", data: "fine"},
	))
	dir := t.TempDir()
	if err := unpack(img, dir, os.Geteuid() == 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dev/mem", "dev/sda", "fifo"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created (%v)", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ok")); err != nil || string(b) != "fine" {
		t.Errorf("a regular file beside them: %q, %v", b, err)
	}
}

func TestImageStore(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(stdlog.New(io.Discard, "", 0))))
	host := strings.TrimPrefix(srv.URL, "http://")
	native := testImage(t, runtime.GOARCH, layer(t, entry{name: "ko-app/fn", data: "bin", mode: 0o755}))
	other := testImage(t, "s390x", layer(t, entry{name: "ko-app/fn", data: "other", mode: 0o755}))
	if runtime.GOARCH == "s390x" {
		other = testImage(t, "amd64", layer(t, entry{name: "ko-app/fn", data: "other", mode: 0o755}))
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: native, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	push := func(ref string, w func(name.Reference) error) {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := w(r); err != nil {
			t.Fatal(err)
		}
	}
	push(host+"/fns/one:v1", func(r name.Reference) error { return remote.Write(r, native) })
	push(host+"/fns/multi:v1", func(r name.Reference) error { return remote.WriteIndex(r, idx) })
	nd, _ := native.Digest()
	id, _ := idx.Digest()

	s, err := newImageStore(t.TempDir(), nil, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(ref, wantID string) {
		t.Helper()
		img, err := s.get(ctx, ref, corev1.PullIfNotPresent)
		if err != nil {
			t.Fatalf("get %s: %v", ref, err)
		}
		if img.id != wantID || img.config.Config.Entrypoint[0] != "/ko-app/fn" || img.config.Config.Env[0] != "A=1" {
			t.Errorf("get %s: id %s (want %s), config %+v", ref, img.id, wantID, img.config.Config)
		}
		if b, err := os.ReadFile(filepath.Join(img.rootfs, "ko-app/fn")); err != nil || string(b) != "bin" {
			t.Errorf("get %s: entrypoint %q, %v", ref, b, err)
		}
	}
	check(host+"/fns/one@"+nd.String(), host+"/fns/one@"+nd.String())
	check(host+"/fns/multi@"+id.String(), host+"/fns/multi@"+id.String()) // the platform's image from the index
	check(host+"/fns/one:v1", host+"/fns/one@"+nd.String())

	// Without the registry, what was pulled is still there.
	srv.Close()
	check(host+"/fns/one@"+nd.String(), host+"/fns/one@"+nd.String())
	check(host+"/fns/multi@"+id.String(), host+"/fns/one@"+nd.String()) // the same image, unpacked once
	check(host+"/fns/one:v1", host+"/fns/one@"+nd.String())
	if _, err := s.get(ctx, host+"/fns/one:v1", corev1.PullAlways); err == nil {
		t.Error("a tag with pull policy Always was not pulled again")
	}
	var pe *pullError
	if _, err := s.get(ctx, host+"/fns/two:v1", corev1.PullIfNotPresent); !errors.As(err, &pe) {
		t.Errorf("pulling from a registry that is gone: %v, want a pullError", err)
	}
}

func TestImageStoreForeign(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(stdlog.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	arch := "s390x"
	if runtime.GOARCH == arch {
		arch = "amd64"
	}
	img := testImage(t, arch, layer(t, entry{name: "ko-app/fn", data: "bin", mode: 0o755}))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	r, _ := name.ParseReference(host + "/fns/foreign:v1")
	ri, _ := name.ParseReference(host + "/fns/foreignidx:v1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ri, idx); err != nil {
		t.Fatal(err)
	}
	s, err := newImageStore(t.TempDir(), nil, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{r.String(), ri.String()} {
		var cr *cannotRunError
		if _, err := s.get(context.Background(), ref, corev1.PullIfNotPresent); !errors.As(err, &cr) || !strings.Contains(err.Error(), arch) {
			t.Errorf("%s: %v, want a CannotRun error naming %s", ref, err, arch)
		}
	}
}

// TestImageGC: images no pod uses and unused for the minimum age are removed, with the aliases
// and tags naming them; an image in use, or used recently (get marks it), stays.
func TestImageGC(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(stdlog.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s, err := newImageStore(t.TempDir(), nil, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	refs := map[string]string{} // name: digest reference
	for _, n := range []string{"old", "used", "recent"} {
		img := testImage(t, runtime.GOARCH, layer(t, entry{name: "ko-app/fn", data: n, mode: 0o755}))
		r, _ := name.ParseReference(host + "/fns/" + n + ":v1")
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		if _, err := s.get(ctx, r.String(), corev1.PullIfNotPresent); err != nil { // pulled by tag
			t.Fatal(err)
		}
		d, _ := img.Digest()
		refs[n] = host + "/fns/" + n + "@" + d.String()
	}
	long := time.Now().Add(-time.Hour)
	for _, n := range []string{"old", "used", "recent"} {
		dir := s.resolve(refs[n])
		if dir == "" || s.resolve(host+"/fns/"+n+":v1") != dir {
			t.Fatalf("%s: resolves to %q by digest, %q by tag", n, dir, s.resolve(host+"/fns/"+n+":v1"))
		}
		_ = os.Chtimes(filepath.Join(s.dir, dir, "image-id"), long, long)
	}
	if _, err := s.get(ctx, refs["recent"], corev1.PullIfNotPresent); err != nil { // used again now
		t.Fatal(err)
	}
	usedDir, oldDir := s.resolve(refs["used"]), s.resolve(refs["old"])
	removed := s.gc(map[string]bool{usedDir: true}, 10*time.Minute)
	if len(removed) != 1 || removed[0] != oldDir {
		t.Errorf("removed %v, want only the old image %s", removed, oldDir)
	}
	if s.resolve(refs["old"]) != "" || s.resolve(host+"/fns/old:v1") != "" {
		t.Error("the old image is still found")
	}
	for _, n := range []string{"used", "recent"} {
		img, err := s.get(ctx, refs[n], corev1.PullNever)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if b, err := os.ReadFile(filepath.Join(img.rootfs, "ko-app/fn")); err != nil || string(b) != n {
			t.Errorf("%s: %q %v", n, b, err)
		}
	}
	// Removed, it is pulled again when wanted.
	if _, err := s.get(ctx, refs["old"], corev1.PullIfNotPresent); err != nil {
		t.Errorf("pulling a collected image again: %v", err)
	}
}
