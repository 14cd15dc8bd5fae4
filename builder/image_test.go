package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"fnkit.dev/fn/registry"
)

// startRegistry serves the embedded registry with its data in root on a loopback port; the
// returned stop shuts it down.
func startRegistry(t *testing.T, root string, addr string) (string, func()) {
	t.Helper()
	reg, err := registry.New(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Serve(ctx, ln) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
	}
	return ln.Addr().String(), stop
}

func buildAndPush(t *testing.T, dir, repo string, o ImageOptions) name.Digest {
	t.Helper()
	fn, err := Scaffold(dir, "", testCache(t))
	if err != nil {
		t.Fatal(err)
	}
	img, err := fn.BuildImage(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := img.Push(context.Background(), repo, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := repo + "/" + fn.Name + "@sha256:"; !strings.HasPrefix(ref.String(), want) {
		t.Fatalf("pushed %s, want %s...", ref, want)
	}
	return ref
}

var sharedCache string

// testCache is one fn cache for the package's image tests, so the Go build cache and the
// extracted runtime are shared.
func testCache(t *testing.T) string {
	if sharedCache == "" {
		dir, err := os.MkdirTemp("", "fn-builder-test-")
		if err != nil {
			t.Fatal(err)
		}
		sharedCache = dir
	}
	return sharedCache
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCache != "" {
		os.RemoveAll(sharedCache)
	}
	os.Exit(code)
}

// runImage pulls ref, unpacks its filesystem into a directory, starts its entrypoint as a
// process with PORT set, and returns the function's base URL.
func runImage(t *testing.T, ref name.Digest) string {
	t.Helper()
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("image config: entrypoint %q, platform %s/%s", cf.Config.Entrypoint, cf.OS, cf.Architecture)
	}
	root := t.TempDir()
	unpack(t, img, root)
	for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "usr/share/zoneinfo.zip"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("base layer file %s missing: %v", f, err)
		}
	}
	port := freePort(t)
	cmd := exec.Command(filepath.Join(root, cf.Config.Entrypoint[0]))
	cmd.Env = append(cf.Config.Env, fmt.Sprintf("PORT=%d", port))
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("running the image's entrypoint: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/_fn/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image's function was not ready within 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func unpack(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		case tar.TypeSymlink:
			_ = os.Symlink(h.Linkname, p)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestImageRoundTrip builds the examples into images, pushes them to the embedded registry,
// pulls them back, runs their filesystems' entrypoints and calls them; then restarts the
// registry on the same root and pulls again by digest.
func TestImageRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images")
	}
	root := t.TempDir()
	addr, stop := startRegistry(t, root, "127.0.0.1:0")
	repo := addr + "/fns"

	hello := buildAndPush(t, "../examples/hello", repo, ImageOptions{})
	url := runImage(t, hello)
	resp, err := http.Get(url + "/?name=image")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello, image!\n" {
		t.Errorf("hello from its image: %d %q", resp.StatusCode, body)
	}

	echo := buildAndPush(t, "../examples/echo-event", repo, ImageOptions{})
	url = runImage(t, echo)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"n":1}`))
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "abc", "Ce-Type": "t", "Ce-Source": "s", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Ce-Type") != "dev.fnkit.echo" || resp.Header.Get("Ce-Echoedid") != "abc" || string(body) != `{"n":1}` {
		t.Errorf("echo-event from its image: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// Restart the registry on the same root, at the same address: images survive.
	stop()
	_, stop = startRegistry(t, root, addr)
	defer stop()
	for _, ref := range []name.Digest{hello, echo} {
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pulling %s after a registry restart: %v", ref, err)
		}
		if d, _ := img.Digest(); d.String() != ref.DigestStr() {
			t.Errorf("pulled %s, got digest %s", ref, d)
		}
	}
}

func TestImageReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images")
	}
	fn, err := Scaffold("../examples/hello", "", testCache(t))
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, o := range []ImageOptions{{NoCache: true}, {NoCache: true}, {}, {}} {
		img, err := fn.BuildImage(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
		if size, _ := img.Size(); size <= 0 || size > 10<<20 {
			t.Errorf("image size %d bytes, want at most 10 MB", size)
		}
	}
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Errorf("builds of the same source gave digests %v, want one", digests)
			break
		}
	}
	// A changed source gives a new image, not the cached one.
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "hello.go"} {
		b, err := os.ReadFile(filepath.Join("../examples/hello", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "hello.go" {
			b = []byte(strings.Replace(string(b), "Hello, ", "Howdy, ", 1))
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	changed, err := Scaffold(dir, "hello", testCache(t))
	if err != nil {
		t.Fatal(err)
	}
	img, err := changed.BuildImage(context.Background(), ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() == digests[0] || img.Cached {
		t.Errorf("changed source gave the unchanged image %s (cached %t)", d, img.Cached)
	}
}

func TestImageMultiPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images")
	}
	fn, err := Scaffold("../examples/hello", "", testCache(t))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	img, err := fn.BuildImage(context.Background(), ImageOptions{Platforms: []string{"linux/amd64", "linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteLayout(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	idx, ok := img.result.(v1.ImageIndex)
	if !ok {
		t.Fatalf("two platforms gave %T, want an image index", img.result)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, d := range m.Manifests {
		if d.Platform != nil {
			plats = append(plats, d.Platform.String())
		}
	}
	if strings.Join(plats, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %v", plats)
	}
	if _, err := os.Stat(filepath.Join(out, "index.json")); err != nil {
		t.Errorf("no OCI layout written: %v", err)
	}
}

func TestImageBadInput(t *testing.T) {
	// An unreachable registry: nothing listens on the port.
	port := freePort(t)
	err := CheckRegistry(context.Background(), fmt.Sprintf("127.0.0.1:%d/fns", port), false)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("registry 127.0.0.1:%d/fns is unreachable", port)) || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable registry: %v", err)
	}
	// Something that is not a registry.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if err := CheckRegistry(context.Background(), host+"/fns", false); err == nil || !strings.Contains(err.Error(), "does not look like an OCI registry") {
		t.Errorf("non-registry: %v", err)
	}
	if err := CheckRegistry(context.Background(), "UPPER/Case", false); err == nil || !strings.Contains(err.Error(), "not a valid repository") {
		t.Errorf("malformed repository: %v", err)
	}
	if testing.Short() {
		return
	}

	// A registry that refuses pushes.
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
	}))
	defer deny.Close()
	fn, err := Scaffold("../examples/hello", "", testCache(t))
	if err != nil {
		t.Fatal(err)
	}
	img, err := fn.BuildImage(context.Background(), ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	repo := strings.TrimPrefix(deny.URL, "http://") + "/fns"
	_, err = img.Push(context.Background(), repo, false)
	if err == nil || !strings.Contains(err.Error(), "registry "+repo+" refused the push: 403") {
		t.Errorf("refusing registry: %v", err)
	}

	// A function that does not compile: the compiler's message with the user's paths.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "handle.go"), []byte("package broken\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {\n\tw.Write(nope)\n}\n"), 0o644)
	broken, err := Scaffold(dir, "broken", testCache(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = broken.BuildImage(context.Background(), ImageOptions{})
	var ce *CompileError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), displayPath(filepath.Join(dir, "handle.go"))+":6:10: undefined: nope") {
		t.Errorf("image build of a broken function: %v", err)
	}

	// No go command on PATH.
	t.Setenv("PATH", t.TempDir())
	if _, err := fn.BuildImage(context.Background(), ImageOptions{NoCache: true}); err == nil || !strings.Contains(err.Error(), "the go command is not on PATH") {
		t.Errorf("build without go on PATH: %v", err)
	}
}
