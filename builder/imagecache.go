package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/ko/pkg/build"
)

// The image cache skips the whole build, go toolchain included, when nothing that goes into the
// image changed since the last build: the function's module, the generated main module, the
// runtime, the Go version, the build environment and the image options. Functions whose module
// replaces dependencies with local directories are not cached (those directories are not hashed).

// maxHashedFiles bounds the work of hashing a module; larger modules are built every time.
const maxHashedFiles = 5000

// buildEnvVars are the environment variables that change what go build produces.
var buildEnvVars = []string{"GOFLAGS", "GOAMD64", "GOARM", "GOARM64", "GOEXPERIMENT", "GODEBUG", "GOTOOLCHAIN", "GOPROXY", "GONOSUMDB", "GOPRIVATE", "KO_GO_PATH"}

// imageKey hashes the inputs of f's image built with o, or returns "" when f cannot be cached.
func (f *Function) imageKey(o ImageOptions, platforms []string) (string, error) {
	if o.SBOM || (o.BaseImage != "" && !strings.Contains(o.BaseImage, "@sha256:")) {
		return "", nil // SBOMs carry times; a base image by tag may move
	}
	user, err := readModFile(filepath.Join(f.ModuleDir, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, r := range user.Replace {
		if r.New.Version == "" {
			return "", nil
		}
	}
	tc, err := toolchain()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "fn image v1\x00%s\x00%q\x00%s\x00%t\x00", tc.version, platforms, o.BaseImage, o.Insecure)
	for _, v := range buildEnvVars {
		fmt.Fprintf(h, "%s=%s\x00", v, os.Getenv(v))
	}
	if o.BaseImage == "" {
		// The local base holds this machine's CA bundle and the toolchain's zoneinfo.
		for _, p := range append(append([]string(nil), caBundles...), zoneinfoZip()) {
			if err := hashFile(h, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
	}
	for _, dir := range []string{f.MainDir, f.ModuleDir} {
		ok, err := hashTree(h, dir)
		if err != nil || !ok {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree hashes the names and contents of the regular files under dir, skipping VCS
// directories, the generated module's binaries and nested modules. It reports false when dir
// has too many files to be worth it.
func hashTree(h io.Writer, dir string) (bool, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".hg", ".svn", "bin", "node_modules":
				if p != dir {
					return filepath.SkipDir
				}
			}
			if p != dir {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		if len(files) > maxHashedFiles {
			return errTooMany
		}
		return nil
	})
	if errors.Is(err, errTooMany) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		if err := hashFile(h, p); err != nil {
			return false, err
		}
	}
	return true, nil
}

var errTooMany = errors.New("too many files")

func hashFile(h io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	fmt.Fprintf(h, "\x00%d\x00", n)
	return err
}

// cachedImage loads the image stored in dir if it was built for key.
func cachedImage(dir, key string) (build.Result, bool) {
	if k, err := os.ReadFile(filepath.Join(dir, "fn-key")); err != nil || string(k) != key {
		return nil, false
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, false
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, false
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		return nil, false
	}
	desc := m.Manifests[0]
	if desc.MediaType.IsIndex() {
		res, err := idx.ImageIndex(desc.Digest)
		return res, err == nil
	}
	res, err := idx.Image(desc.Digest)
	return res, err == nil
}

// storeImage writes res as an OCI layout into dir, with the key it was built for, atomically.
func storeImage(dir, key string, res build.Result) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, emptyIndex())
	if err != nil {
		return err
	}
	switch r := res.(type) {
	case imageResult:
		err = p.AppendImage(r)
	case indexResult:
		err = p.AppendIndex(r)
	default:
		return fmt.Errorf("unexpected build result %T", res)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "fn-key"), []byte(key), 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}
