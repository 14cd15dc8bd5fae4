package agent

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenInRoot: links and ".." resolve inside the root, never out of it, and /proc's magic
// links are refused.
func TestOpenInRoot(t *testing.T) {
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{root + "/etc", root + "/data", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(outside+"/secret", "the host's")
	write(root+"/data/secret", "the root's")
	for name, target := range map[string]string{
		"abs":    outside + "/secret",          // read as root/<outside>/secret: not there
		"up":     "../../../../outside/secret", // ".." stops at the root
		"toData": "/data/secret",               // absolute, from the root
		"magic":  "/proc/self/root" + outside + "/secret",
	} {
		if err := os.Symlink(target, filepath.Join(root, "etc", name)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) (string, error) {
		f, err := openInRoot(root, p, unix.O_RDONLY)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := os.ReadFile(fdPath(f))
		return string(b), err
	}
	for _, c := range []struct{ path, want string }{
		{"/etc/toData", "the root's"},
		{"/../../data/secret", "the root's"},
		{"/etc/abs", ""},
		{"/etc/up", ""},
		{"/etc/magic", ""},
	} {
		got, err := read(c.path)
		if got != c.want || (c.want != "" && err != nil) || (c.want == "" && err == nil) {
			t.Errorf("%s: %q %v, want %q", c.path, got, err, c.want)
		}
	}

	// The image's user is looked up in its own /etc/passwd, not in a file a link points to.
	write(outside+"/passwd", "intruder:x:4242:4242::/:/bin/sh\n")
	if err := os.Symlink(outside+"/passwd", root+"/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	if uid, _, ok := lookupUser(root, "intruder"); ok {
		t.Errorf("lookupUser found intruder (uid %d) through a link out of the image", uid)
	}
	if err := os.Remove(root + "/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	write(root+"/etc/passwd", "app:x:1000:1001::/:/bin/sh\n")
	if uid, gid, ok := lookupUser(root, "app"); !ok || uid != 1000 || gid != 1001 {
		t.Errorf("lookupUser app: %d %d %v", uid, gid, ok)
	}
}

// TestMountpointInRoot: a mount point is created inside the root however the root's links
// point (a directory link to the host, a file link to the host's file): nothing outside the
// root is created or touched.
func TestMountpointInRoot(t *testing.T) {
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "data")); err != nil { // absolute, to the host
		t.Fatal(err)
	}
	if err := os.Symlink(outside+"/file", filepath.Join(root, "etc-hosts")); err != nil {
		t.Fatal(err)
	}
	if err := mountpointInRoot(root, "/data/volume/deep", true); err != nil {
		t.Fatal(err)
	}
	if err := mountpointInRoot(root, "/etc-hosts", false); err != nil {
		t.Fatal(err)
	}
	if err := mountpointInRoot(root, "/etc/hosts", false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("created outside the root: %v", ents)
	}
	// The link resolved inside the root: <root>/<outside>/volume/deep.
	if fi, err := os.Stat(filepath.Join(root, outside, "volume", "deep")); err != nil || !fi.IsDir() {
		t.Errorf("the directory inside the root: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc", "hosts")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the file: %v", err)
	}
}
