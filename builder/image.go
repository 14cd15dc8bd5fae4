package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/ko/pkg/build"
	"github.com/google/ko/pkg/publish"
)

// ImageOptions configure an image build.
type ImageOptions struct {
	// Platforms to build for, e.g. linux/amd64 (the default) and linux/arm64; more than one
	// gives a multi-platform image index.
	Platforms []string
	// BaseImage is a reference to pull the base image from; empty means fn's local base: no
	// OS, only CA certificates and time zone data, made without any network.
	BaseImage string
	// Insecure allows plain HTTP and unverified TLS to registries (loopback registries speak
	// plain HTTP without it).
	Insecure bool
	// SBOM attaches an SPDX software bill of materials.
	SBOM bool
	// Progress receives ko's progress lines (default: discarded).
	Progress io.Writer
	// NoCache builds even when nothing changed since the last build.
	NoCache bool
}

// LocalBaseName names fn's local base image in the images' annotations.
const LocalBaseName = "fn.local/base:v1"

// Image is a built function image, not yet published.
type Image struct {
	fn     *Function
	result build.Result
	// Cached reports that nothing changed since a previous build, whose image was reused.
	Cached bool
}

// koLog serializes redirection of the standard logger, which ko reports progress through.
var koLog sync.Mutex

// CaptureKoLog sends ko's progress, which it reports through the standard logger, to w, each
// line after prefix, until the returned function is called; meanwhile other captures wait.
func CaptureKoLog(w io.Writer, prefix string) (restore func()) {
	koLog.Lock()
	prevOut, prevFlags, prevPrefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(&lineFilter{w: w, drop: []string{"not a git repository", "git is in a dirty state", "doesn't contain any tags"}})
	log.SetFlags(0)
	log.SetPrefix(prefix)
	return func() {
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
		log.SetPrefix(prevPrefix)
		koLog.Unlock()
	}
}

// BuildImage builds the scaffolded function into an OCI image (or index) with ko.
func (f *Function) BuildImage(ctx context.Context, o ImageOptions) (*Image, error) {
	if _, err := GoCommand(); err != nil {
		return nil, err
	}
	platforms := o.Platforms
	if len(platforms) == 0 {
		platforms = []string{"linux/amd64"}
	}
	getBase, err := BaseImages(o, platforms)
	if err != nil {
		return nil, err
	}
	opts := []build.Option{
		build.WithBaseImages(getBase),
		build.WithPlatforms(platforms...),
		build.WithTrimpath(true),
		build.WithDefaultEnv([]string{"GOWORK=off", "GOFLAGS=-mod=mod"}),
		build.WithDefaultLdflags([]string{"-s", "-w"}),
	}
	if o.SBOM {
		opts = append(opts, build.WithSPDX(Version()))
	} else {
		opts = append(opts, build.WithDisabledSBOM())
	}

	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	defer CaptureKoLog(progress, "  ")()

	var key string
	if !o.NoCache {
		if key, err = f.imageKey(o, platforms); err != nil {
			return nil, err
		}
	}
	// One cached image per function directory: the last one built.
	cached := filepath.Join(filepath.Dir(filepath.Dir(f.MainDir)), "images", filepath.Base(f.MainDir))
	if key != "" {
		if res, ok := cachedImage(cached, key); ok {
			fmt.Fprintf(progress, "  Unchanged since the last build: reusing its image\n")
			return &Image{fn: f, result: res, Cached: true}, nil
		}
	}

	b, err := build.NewGo(ctx, f.MainDir, opts...)
	if err != nil {
		return nil, fmt.Errorf("setting up the image build: %w", err)
	}
	res, err := b.Build(ctx, build.StrictScheme+f.MainPackage)
	if err != nil {
		return nil, f.imageBuildError(err)
	}
	if key != "" {
		if err := storeImage(cached, key, res); err != nil {
			fmt.Fprintf(progress, "  warning: caching the image: %v\n", err)
		}
	}
	return &Image{fn: f, result: res}, nil
}

// imageBuildError turns ko's report of a failed go build into a CompileError.
func (f *Function) imageBuildError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "go build: exit status "); i >= 0 {
		rest := msg[i+len("go build: exit status "):]
		if j := strings.Index(rest, ": "); j >= 0 {
			return f.CompileError(rest[j+2:])
		}
	}
	return fmt.Errorf("building the image of %s: %w", f.Name, err)
}

// Digest is the image's (or index's) digest.
func (i *Image) Digest() (v1.Hash, error) { return i.result.Digest() }

// Size is the compressed size of the image's layers for its first platform, in bytes.
func (i *Image) Size() (int64, error) {
	img, ok := i.result.(v1.Image)
	if !ok {
		idx, ok := i.result.(v1.ImageIndex)
		if !ok {
			return 0, fmt.Errorf("unexpected build result %T", i.result)
		}
		m, err := idx.IndexManifest()
		if err != nil || len(m.Manifests) == 0 {
			return 0, fmt.Errorf("reading image index: %v", err)
		}
		if img, err = idx.Image(m.Manifests[0].Digest); err != nil {
			return 0, err
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// Push publishes the image to repo (e.g. 127.0.0.1:5000/fns) as repo/<name>, tagged latest,
// and returns its digest reference.
func (i *Image) Push(ctx context.Context, repo string, insecure bool) (name.Digest, error) {
	repo = strings.TrimSuffix(repo, "/")
	if _, err := name.NewRepository(repo+"/"+i.fn.Name, nameOptions(insecure)...); err != nil {
		return name.Digest{}, fmt.Errorf("registry %q is not a valid repository: %v (want e.g. 127.0.0.1:5000/fns)", repo, err)
	}
	opts := []publish.Option{
		publish.WithNamer(func(base, _ string) string { return base + "/" + i.fn.Name }),
		publish.WithAuthFromKeychain(authn.DefaultKeychain),
		publish.Insecure(insecure),
		publish.WithUserAgent("fn/" + Version()),
	}
	if insecure {
		opts = append(opts, publish.WithTransport(insecureTransport()))
	}
	koLog.Lock()
	prevOut := log.Writer()
	log.SetOutput(io.Discard)
	defer func() { log.SetOutput(prevOut); koLog.Unlock() }()

	pub, err := publish.NewDefault(repo, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("registry %s: %w", repo, err)
	}
	ref, err := pub.Publish(ctx, i.result, i.fn.MainPackage)
	if err != nil {
		return name.Digest{}, pushError(repo, err)
	}
	h, err := i.result.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return ref.Context().Digest(h.String()), nil
}

// WriteLayout writes the image into an OCI image layout directory, adding it to the layout
// already there if any, and returns its digest.
func (i *Image) WriteLayout(ctx context.Context, dir string) (v1.Hash, error) {
	h, err := i.result.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, emptyIndex()); err != nil {
			return v1.Hash{}, fmt.Errorf("writing OCI layout %s: %w", dir, err)
		}
	}
	annotations := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": i.fn.Name})
	switch r := i.result.(type) {
	case imageResult:
		err = p.AppendImage(r, annotations)
	case indexResult:
		err = p.AppendIndex(r, annotations)
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return h, nil
}

// CheckRegistry fails fast, before any build work, when the registry of repo cannot be reached.
func CheckRegistry(ctx context.Context, repo string, insecure bool) error {
	r, err := name.NewRepository(strings.TrimSuffix(repo, "/")+"/probe", nameOptions(insecure)...)
	if err != nil {
		return fmt.Errorf("registry %q is not a valid repository: %v (want e.g. 127.0.0.1:5000/fns)", repo, err)
	}
	reg := r.Registry
	u := url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/"}
	client := &http.Client{Timeout: 10 * time.Second}
	if insecure {
		client.Transport = insecureTransport()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return pushError(repo, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry %s answered %s to %s: it does not look like an OCI registry", repo, resp.Status, u.String())
	}
	return nil
}

// pushError says in one line which registry refused and why.
func pushError(repo string, err error) error {
	var ue *url.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("registry %s is unreachable: %v (is it running? fn registry starts one)", repo, oe.Err)
	case errors.As(err, &ue):
		return fmt.Errorf("registry %s: %v", repo, ue.Err)
	}
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		why := http.StatusText(te.StatusCode)
		if len(te.Errors) > 0 {
			why = te.Errors[0].Message
		}
		return fmt.Errorf("registry %s refused the push: %d %s (credentials come from ~/.docker/config.json)", repo, te.StatusCode, why)
	}
	return fmt.Errorf("pushing to registry %s: %w", repo, err)
}

func nameOptions(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func insecureTransport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // --insecure asks for it
	return t
}

// BaseImages returns ko's base image getter: the image named by o.BaseImage, or fn's local
// base for the platforms.
func BaseImages(o ImageOptions, platforms []string) (build.GetBase, error) {
	if o.BaseImage != "" {
		ref, err := name.ParseReference(o.BaseImage, nameOptions(o.Insecure)...)
		if err != nil {
			return nil, fmt.Errorf("--base-image %q: %v", o.BaseImage, err)
		}
		ropts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
		if o.Insecure {
			ropts = append(ropts, remote.WithTransport(insecureTransport()))
		}
		return func(ctx context.Context, _ string) (name.Reference, build.Result, error) {
			desc, err := remote.Get(ref, append(ropts, remote.WithContext(ctx))...)
			if err != nil {
				return nil, nil, fmt.Errorf("pulling base image %s: %w", ref, err)
			}
			if desc.MediaType.IsIndex() {
				idx, err := desc.ImageIndex()
				return ref, idx, err
			}
			img, err := desc.Image()
			return ref, img, err
		}, nil
	}
	base, err := LocalBase(platforms)
	if err != nil {
		return nil, err
	}
	ref := name.MustParseReference(LocalBaseName)
	return func(context.Context, string) (name.Reference, build.Result, error) { return ref, base, nil }, nil
}

// CA certificates and time zone data for the local base image, from this machine.
var (
	caBundles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}
)

const (
	baseCAPath       = "/etc/ssl/certs/ca-certificates.crt"
	baseZoneinfoPath = "/usr/share/zoneinfo.zip"
)

// LocalBase makes fn's default base image without any network: no OS, one layer holding this
// machine's CA certificates and Go's time zone database, OCI media types, and the environment
// that points Go programs at both. For more than one platform it is an index of one image each.
// The same inputs give the same digest.
func LocalBase(platforms []string) (build.Result, error) {
	layer, err := baseLayer()
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	for _, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %v (want e.g. linux/amd64)", p, err)
		}
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer}); err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
		cf.Config.Env = []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=" + baseCAPath,
			"ZONEINFO=" + baseZoneinfoPath,
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	if len(imgs) == 1 {
		return imgs[0], nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		plat, _ := v1.ParsePlatform(platforms[i])
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	return idx, nil
}

// baseLayer is a tar layer of the CA bundle and zoneinfo.zip, with fixed times and owners.
func baseLayer() (v1.Layer, error) {
	var ca []byte
	for _, p := range caBundles {
		if b, err := os.ReadFile(p); err == nil {
			ca = b
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("no CA certificate bundle on this machine (looked in %s): install ca-certificates, or pass --base-image", strings.Join(caBundles, ", "))
	}
	zi, _ := os.ReadFile(zoneinfoZip()) // optional: without it, only UTC
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "usr/", "usr/share/", "tmp/"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		path string
		data []byte
	}{{strings.TrimPrefix(baseCAPath, "/"), ca}}
	if zi != nil {
		files = append(files, struct {
			path string
			data []byte
		}{strings.TrimPrefix(baseZoneinfoPath, "/"), zi})
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: 0o644, Size: int64(len(f.data)), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// toolchain is what fn needs to know of the go command on PATH, asked once per process.
var toolchain = sync.OnceValues(func() (struct{ version, goroot string }, error) {
	var tc struct{ version, goroot string }
	out, err := exec.Command("go", "env", "GOVERSION", "GOROOT").Output()
	if err != nil {
		return tc, fmt.Errorf("go env: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return tc, fmt.Errorf("go env GOVERSION GOROOT printed %q", out)
	}
	tc.version, tc.goroot = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
	return tc, nil
})

// zoneinfoZip is the Go toolchain's time zone database, or "" when go cannot say where it is.
func zoneinfoZip() string {
	tc, err := toolchain()
	if err != nil {
		return ""
	}
	return filepath.Join(tc.goroot, "lib", "time", "zoneinfo.zip")
}

// lineFilter writes the lines written to it to w, but those containing any of drop.
type lineFilter struct {
	w    io.Writer
	drop []string
}

func (l *lineFilter) Write(p []byte) (int, error) {
	for _, d := range l.drop {
		if bytes.Contains(p, []byte(d)) {
			return len(p), nil
		}
	}
	return l.w.Write(p)
}

type (
	imageResult = v1.Image
	indexResult = v1.ImageIndex
)

func emptyIndex() v1.ImageIndex { return mutate.IndexMediaType(empty.Index, types.OCIImageIndex) }
