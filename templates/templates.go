package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"golang.org/x/mod/module"
)

// files holds one directory per template. Files named *.tmpl are rendered with text/template
// and written without the suffix (go.mod.tmpl, so that the directories stay packages of this
// module); the others are copied as they are.
//
//go:embed all:http all:cloudevents all:typed
var files embed.FS

const tmplSuffix = ".tmpl"

// Names returns the names of the templates, sorted.
func Names() []string {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		panic(err) // the embedded FS always has its root
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names // fs.ReadDir sorts by name
}

// Write writes the template name into dir, which must not exist or be empty, as the Go module
// module. It returns the paths it wrote, relative to dir and sorted.
func Write(dir, name, module string) ([]string, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("unknown template %q: choose one of %s", name, strings.Join(Names(), ", "))
	}
	if err := checkModulePath(module); err != nil {
		return nil, err
	}
	rendered, err := render(name, struct{ Module, Name string }{module, name})
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	var written []string
	for _, f := range rendered {
		target := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return written, fmt.Errorf("writing template %s: %w", name, err)
		}
		if err := writeNew(target, f.data); err != nil {
			return written, fmt.Errorf("writing template %s: %w", name, err)
		}
		written = append(written, filepath.FromSlash(f.path))
	}
	return written, nil
}

// A file is one rendered file of a template; path is slash-separated and relative to the
// template's root.
type file struct {
	path string
	data []byte
}

// render renders every file of the template name, sorted by path.
func render(name string, data any) ([]file, error) {
	var out []file
	err := fs.WalkDir(files, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, name+"/")
		if strings.HasSuffix(rel, tmplSuffix) {
			t, err := template.New(rel).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, data); err != nil {
				return err
			}
			rel, b = strings.TrimSuffix(rel, tmplSuffix), buf.Bytes()
		}
		out = append(out, file{path: rel, data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rendering template %s: %w", name, err)
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

// prepareDir makes sure dir exists and is empty, creating it when it does not exist.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		return nil
	case err != nil:
		if fi, statErr := os.Stat(dir); statErr == nil && !fi.IsDir() {
			return fmt.Errorf("%s is not a directory: fn init writes only into a new or empty directory", dir)
		}
		return fmt.Errorf("reading %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: fn init writes only into a new or empty directory", dir)
	}
	return nil
}

// writeNew writes data to a file that must not exist yet.
func writeNew(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkModulePath returns an error when p cannot name the module written into go.mod.
func checkModulePath(p string) error {
	if err := module.CheckImportPath(p); err != nil {
		return fmt.Errorf("invalid module path %q (want a path such as example.com/hello): %w", p, err)
	}
	return nil
}
