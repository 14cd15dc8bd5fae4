package agent

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// FuzzUnpack unpacks layers of three entries of any names, link targets, types and modes
// into a directory beside a file of the host's: nothing is written, linked or changed outside
// the directory, no device node is made, and unpack never panics.
func FuzzUnpack(f *testing.F) {
	for _, s := range []struct {
		n1, l1 string
		t1     byte
		n2, l2 string
		t2     byte
		n3, l3 string
		t3     byte
		mode   int64
	}{
		{"a", "", tar.TypeReg, "b", "a", tar.TypeLink, "c", "b", tar.TypeSymlink, 0o644},
		{"evil", "OUTSIDE", tar.TypeSymlink, "evil/pwned", "", tar.TypeReg, "x", "", tar.TypeDir, 0o755},
		{"up", "../../../../OUTSIDE/secret", tar.TypeLink, "abs", "OUTSIDE/secret", tar.TypeLink, "../../OUTSIDE/planted", "up", tar.TypeLink, 0o644},
		{"out", "OUTSIDE", tar.TypeSymlink, "via", "out/secret", tar.TypeLink, "out/new", "", tar.TypeReg, 0o4755},
		{"dev/mem", "", tar.TypeChar, "fifo", "", tar.TypeFifo, ".wh..wh..opq", "", tar.TypeReg, 0o644},
		{"d", "", tar.TypeDir, "d/.wh.x", "", tar.TypeReg, "/abs/path", "", tar.TypeReg, 0o7777},
		{"l", "/", tar.TypeSymlink, "l/etc/passwd", "", tar.TypeReg, "l/../../x", "", tar.TypeReg, 0o644},
	} {
		f.Add(s.n1, s.l1, s.t1, s.n2, s.l2, s.t2, s.n3, s.l3, s.t3, s.mode)
	}
	f.Fuzz(func(t *testing.T, n1, l1 string, t1 byte, n2, l2 string, t2 byte, n3, l3 string, t3 byte, mode int64) {
		base := t.TempDir()
		outside, dir := filepath.Join(base, "outside"), filepath.Join(base, "image")
		for _, d := range []string{outside, dir} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		secret := filepath.Join(outside, "secret")
		if err := os.WriteFile(secret, []byte("host"), 0o600); err != nil {
			t.Fatal(err)
		}
		// OUTSIDE in a name or target stands for the host directory's absolute path.
		sub := func(s string) string {
			if len(s) > 200 {
				s = s[:200]
			}
			for i := 0; i+7 <= len(s); i++ {
				if s[i:i+7] == "OUTSIDE" {
					return s[:i] + outside + s[i+7:]
				}
			}
			return s
		}
		var entries []entry
		for _, e := range []entry{{name: sub(n1), link: sub(l1), typ: t1}, {name: sub(n2), link: sub(l2), typ: t2}, {name: sub(n3), link: sub(l3), typ: t3}} {
			if e.name == "" {
				continue
			}
			e.mode = mode & 0o7777
			if e.typ == tar.TypeReg || e.typ == 0 {
				e.data = "x"
			}
			entries = append(entries, e)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.data))}
			if h.Typeflag != tar.TypeReg && h.Typeflag != 0 {
				h.Size = 0
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Skip("not a header tar can write:", err) // a layer no registry would hold
			}
			if h.Size > 0 {
				_, _ = tw.Write([]byte(e.data))
			}
		}
		if err := tw.Close(); err != nil {
			t.Skip(err)
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
		if err != nil {
			t.Fatal(err)
		}
		img := testImage(t, runtime.GOARCH, l)
		_ = unpack(img, dir, false) // an error is fine; anything outside is not

		host, err := os.Stat(secret)
		if b, _ := os.ReadFile(secret); err != nil || string(b) != "host" {
			t.Fatalf("the host's file changed: %q %v", b, err)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 1 {
			t.Fatalf("written outside the image's directory: %v", ents)
		}
		if ents, _ := os.ReadDir(base); len(ents) != 2 {
			t.Fatalf("written beside the image's directory: %v", ents)
		}
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return nil
			}
			if fi.Mode()&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket) != 0 {
				t.Errorf("%s is a special file (%s)", p, fi.Mode())
			}
			if fi.Mode().IsRegular() && os.SameFile(fi, host) {
				t.Errorf("%s is a hard link to the host's file", p)
			}
			return nil
		})
	})
}
