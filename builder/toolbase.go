package builder

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/ko/pkg/build"
)

// ToolchainBaseName names the toolchain base image in the images' annotations.
const ToolchainBaseName = "fn.local/toolchain:v1"

// toolchainRoot is where the toolchain base holds Go.
const toolchainRoot = "/usr/local/go"

// gitPrograms are the git programs fn-builder runs: git itself (clone, fetch, checkout and the
// remote's upload-pack and receive-pack, built in), the smart HTTP backend of its remote, and
// the transport that fetches webhook sources over HTTP(S).
var gitPrograms = []string{"/usr/bin/git", "/usr/lib/git-core/git", "/usr/lib/git-core/git-http-backend", "/usr/lib/git-core/git-remote-http"}

// ToolchainBase makes, without any network, the base image of a program that builds Go
// (fn-builder): LocalBase's CA certificates and time zone data, this machine's Go toolchain
// (GOROOT without its tests) and git with the shared libraries it loads. It can only be made
// for this machine's platform. The toolchain's layer is kept under cacheDir (a hundred MB of
// files compress in seconds, so once per toolchain, not per build).
func ToolchainBase(platform, cacheDir string) (build.Result, error) {
	plat, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("platform %q: %v", platform, err)
	}
	if plat.OS != runtime.GOOS || plat.Architecture != runtime.GOARCH {
		return nil, fmt.Errorf("a base with Go and git for %s cannot be made on this %s/%s machine: give a base image with both for it", platform, runtime.GOOS, runtime.GOARCH)
	}
	tc, err := toolchain()
	if err != nil {
		return nil, err
	}
	files, err := toolchainFiles(tc.goroot)
	if err != nil {
		return nil, err
	}
	layer, err := cachedLayer(cacheDir, files)
	if err != nil {
		return nil, err
	}
	base, err := LocalBase([]string{platform})
	if err != nil {
		return nil, err
	}
	img, ok := base.(v1.Image)
	if !ok {
		return nil, fmt.Errorf("local base for %s is not an image", platform)
	}
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer}); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	var libDirs []string
	for _, f := range files {
		if f.lib && !slices.Contains(libDirs, filepath.Dir(f.dst)) {
			libDirs = append(libDirs, filepath.Dir(f.dst))
		}
	}
	cf.Config.Env = append(slices.DeleteFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }),
		"PATH="+toolchainRoot+"/bin:/usr/local/bin:/usr/bin:/bin",
		"GOROOT="+toolchainRoot,
		"GOTOOLCHAIN=local",
		"CGO_ENABLED=0",
		"LD_LIBRARY_PATH="+strings.Join(libDirs, ":"),
	)
	return mutate.ConfigFile(img, cf)
}

// layerFile is a file of the toolchain layer: src on this machine, dst in the image.
type layerFile struct {
	src, dst string
	mode     fs.FileMode
	link     string // a symbolic link's target, when the file is one
	lib      bool   // a shared library (its directory goes on LD_LIBRARY_PATH)
}

// toolchainFiles lists the files of the toolchain layer, sorted by destination.
func toolchainFiles(goroot string) ([]layerFile, error) {
	var files []layerFile
	skipDirs := map[string]bool{"test": true, "api": true, "doc": true, "misc": true, ".git": true}
	err := filepath.WalkDir(goroot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(goroot, p)
		if d.IsDir() {
			if (filepath.Dir(rel) == "." && skipDirs[rel]) || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := layerFile{src: p, dst: filepath.Join(toolchainRoot, rel), mode: fi.Mode()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if f.link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !fi.Mode().IsRegular() {
			return nil
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the Go toolchain at %s: %w", goroot, err)
	}
	var progs []string
	for _, p := range gitPrograms {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("git is needed in fn-builder's image, and %s is missing on this machine: install git (apt-get install git)", p)
		}
		progs = append(progs, p)
	}
	libs, err := sharedLibraries(progs)
	if err != nil {
		return nil, err
	}
	for _, p := range progs {
		files = append(files, layerFile{src: p, dst: p, mode: 0o755})
	}
	for dst, src := range libs {
		files = append(files, layerFile{src: src, dst: dst, mode: 0o755, lib: !strings.Contains(filepath.Base(dst), "ld-linux")})
	}
	slices.SortFunc(files, func(a, b layerFile) int { return strings.Compare(a.dst, b.dst) })
	return files, nil
}

// libDirs are where this machine's dynamic loader looks for libraries.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedLibraries finds what the programs load, transitively: their ELF interpreter and every
// DT_NEEDED library, each by the path the loader would find it at (key) and the real file
// holding it (value).
func sharedLibraries(progs []string) (map[string]string, error) {
	out := map[string]string{}
	queue := slices.Clone(progs)
	seen := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		f, err := elf.Open(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, err := io.ReadAll(prog.Open())
				if err == nil {
					interp := strings.TrimRight(string(b), "\x00")
					real, err := filepath.EvalSymlinks(interp)
					if err != nil {
						f.Close()
						return nil, fmt.Errorf("%s's loader %s: %w", p, interp, err)
					}
					out[interp] = real
				}
			}
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s's libraries: %w", p, err)
		}
		for _, lib := range needed {
			found := ""
			for _, d := range libDirs {
				if _, err := os.Stat(filepath.Join(d, lib)); err == nil {
					found = filepath.Join(d, lib)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("%s needs %s, which is in none of %s", p, lib, strings.Join(libDirs, ", "))
			}
			real, err := filepath.EvalSymlinks(found)
			if err != nil {
				return nil, err
			}
			// One place in the image for each library: the directory it really is in here.
			out[filepath.Join(filepath.Dir(real), lib)] = real
			queue = append(queue, real)
		}
	}
	return out, nil
}

// cachedLayer is the gzipped tar layer of files, from cacheDir when made before from the same
// files (names, sizes and times), else made and kept there.
func cachedLayer(cacheDir string, files []layerFile) (v1.Layer, error) {
	h := sha256.New()
	for _, f := range files {
		fi, err := os.Lstat(f.src)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00%o\x00%s\n", f.src, f.dst, fi.Size(), fi.ModTime().UnixNano(), f.mode, f.link)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	path := filepath.Join(cacheDir, "base", "toolchain-"+key+".tar.gz")
	if _, err := os.Stat(path); err != nil {
		if err := writeLayer(path, files); err != nil {
			return nil, fmt.Errorf("making the toolchain layer: %w", err)
		}
	}
	return tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
}

// writeLayer writes files as a gzipped tar with fixed times and owners, parents first.
func writeLayer(path string, files []layerFile) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".toolchain-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	zw, _ := gzip.NewWriterLevel(tmp, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	var mkdirs func(string) error
	mkdirs = func(d string) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := mkdirs(filepath.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, Format: tar.FormatPAX})
	}
	for _, f := range files {
		if err := mkdirs(filepath.Dir(f.dst)); err != nil {
			return err
		}
		name := strings.TrimPrefix(f.dst, "/")
		if f.link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.link, Mode: 0o777, Format: tar.FormatPAX}); err != nil {
				return err
			}
			continue
		}
		src, err := os.Open(f.src)
		if err != nil {
			return err
		}
		fi, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(f.mode.Perm()), Size: fi.Size(), Format: tar.FormatPAX})
		}
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
