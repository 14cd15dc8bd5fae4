package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fnkit.dev/fn/internal/diskspace"
)

// fill takes all but leave bytes of the file system of dir, in one file (removed at the end).
func fill(t *testing.T, dir string, leave int64) {
	t.Helper()
	free, err := diskspace.Free(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "fill"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	fi, _ := f.Stat()
	if n := fi.Size() + free - leave; n > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil && err != syscall.ENOSPC {
			t.Fatal(err)
		}
	}
}

// TestDiskFull fills the disk of the platform's registry (a small file system of its own here)
// while a function answers a request loop: under the reserve, fn deploy fails at once with one
// line saying what to free, before building, and nothing is made; the registry refuses an
// upload with 507 and still serves what it has; full to the last byte, nothing stops or
// restarts; with the space back, the same deploy works.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	if registryDisk == "" {
		t.Skip("the registry's store is not on a small file system of its own (that needs root)")
	}
	url := strings.TrimSpace(mustFn(t, "deploy", copyHello(t, "roomy"), "--min", "1"))
	t.Cleanup(func() { fn(t, "delete", "roomy") })
	image, _, _ := functionImage(t, "roomy")
	before := platformStatus(t)
	l := startLoop(url, "Hello")
	defer l.end()

	fill(t, registryDisk, diskspace.Reserve/2)
	dir := copyHello(t, "squeezed")
	start := time.Now()
	out, errOut, err := fn(t, "deploy", dir)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	t.Logf("fn deploy with the registry's disk under the reserve: %s after %s", last, time.Since(start).Round(time.Millisecond))
	if err == nil {
		t.Fatalf("fn deploy with the disk under the reserve succeeded: %s", out)
	}
	if !strings.HasPrefix(last, "fn: ") || !strings.Contains(last, registryDisk) || !strings.Contains(last, "free space") {
		t.Errorf("fn deploy's error: %q, want one line naming the disk and what to do", last)
	}
	if strings.Contains(errOut, "Building") {
		t.Errorf("fn deploy built before it checked the disk:\n%s", errOut)
	}
	if _, errOut, err := fn(t, "describe", "squeezed"); err == nil || !strings.Contains(errOut, "no function") {
		t.Errorf("a Function exists after the refused deploy: %v %s", err, errOut)
	}

	reg := "http://" + readState(t).Registry
	resp, err := http.Post(reg+"/v2/fns/squeezed/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("an upload to the registry under the reserve: %s, want 507", resp.Status)
	}
	repo, digest, _ := strings.Cut(strings.TrimPrefix(image, readState(t).Registry+"/"), "@")
	req, _ := http.NewRequest(http.MethodGet, reg+"/v2/"+repo+"/manifests/"+digest, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("reading roomy's manifest (%s) from the registry under the reserve: %s, want 200", image, resp.Status)
	}

	// To the last byte: what runs goes on.
	fill(t, registryDisk, 0)
	time.Sleep(2 * time.Second)
	after := platformStatus(t)
	for name, c := range before {
		if a := after[name]; a.State != "running" || a.Restarts != c.Restarts {
			t.Errorf("with the registry's disk full, %s went from %+v to %+v", name, c, a)
		}
	}

	if err := os.Remove(filepath.Join(registryDisk, "fill")); err != nil {
		t.Fatal(err)
	}
	url2 := strings.TrimSpace(mustFn(t, "deploy", dir))
	t.Cleanup(func() { fn(t, "delete", "squeezed") })
	if out := strings.TrimSpace(mustFn(t, "invoke", "squeezed")); !strings.Contains(out, "Hello") {
		t.Errorf("squeezed at %s, deployed once space was back, answered %q", url2, out)
	}
	l.end()
	if l.failed.Load() > 0 || l.ok.Load() == 0 {
		t.Errorf("%d of %d requests to roomy failed while the disk was full:%s", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.failuresSince(start))
	}
}
