package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	fnruntime "fnkit.dev/fn/runtime"
)

// RuntimeModule is the module path of the fn runtime.
const RuntimeModule = "fnkit.dev/fn/runtime"

// Function is a user's function directory, scaffolded into a main module that serves it.
type Function struct {
	// Name is the function's name: its directory's name unless given.
	Name string
	// Dir is the absolute path of the function's directory.
	Dir string
	// ModuleDir is the absolute path of the directory holding the function's go.mod.
	ModuleDir string
	// ImportPath is the import path of the function's package.
	ImportPath string
	// Signature is the handler's form.
	Signature *Signature
	// MainDir is the generated main module, outside the user's tree.
	MainDir string
	// MainPackage is the import path of the generated main package.
	MainPackage string
}

// Scaffold detects the function in dir and generates, under cacheDir, the main module that
// serves it with the fn runtime. The runtime's source comes from the fn binary itself, so nothing
// needs to be fetched for it. name may be empty (the directory's name is used).
func Scaffold(dir, name, cacheDir string) (*Function, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: give the directory of a function (fn init creates one)", displayPath(dir))
	}
	if name == "" {
		name = filepath.Base(abs)
	}
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("%w (set name in fn.yaml, pass --name, or rename the directory)", err)
	}
	sig, err := Detect(abs)
	if err != nil {
		return nil, err
	}
	modDir, err := findModule(abs)
	if err != nil {
		return nil, err
	}
	userMod, err := readModFile(filepath.Join(modDir, "go.mod"))
	if err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(modDir, abs)
	importPath := userMod.Module.Mod.Path
	if rel != "." {
		importPath += "/" + filepath.ToSlash(rel)
	}
	if importPath == RuntimeModule || strings.HasPrefix(importPath, RuntimeModule+"/") {
		return nil, fmt.Errorf("%s: module path %s is reserved by the fn runtime: rename the module", displayPath(filepath.Join(modDir, "go.mod")), importPath)
	}
	rtDir, err := extractRuntime(cacheDir)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(abs))
	f := &Function{
		Name:        name,
		Dir:         abs,
		ModuleDir:   modDir,
		ImportPath:  importPath,
		Signature:   sig,
		MainDir:     filepath.Join(cacheDir, "build", name+"-"+hex.EncodeToString(sum[:6])),
		MainPackage: "fn.local/" + name,
	}
	if err := os.MkdirAll(f.MainDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	mainSrc, err := GenerateMain(importPath, sig)
	if err != nil {
		return nil, err
	}
	gomod, gosum, err := mainModule(f, userMod, rtDir)
	if err != nil {
		return nil, err
	}
	for file, data := range map[string][]byte{"main.go": mainSrc, "go.mod": gomod, "go.sum": gosum} {
		if err := writeIfChanged(filepath.Join(f.MainDir, file), data); err != nil {
			return nil, fmt.Errorf("writing generated %s: %w", file, err)
		}
	}
	return f, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName checks that a function name can name a Kubernetes object, a DNS label and a binary.
func ValidateName(name string) error {
	if len(name) > 63 || !nameRE.MatchString(name) {
		return fmt.Errorf("function name %q is not valid: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// findModule returns the directory of the go.mod governing dir.
func findModule(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s: no go.mod found in it or above: a function is a Go module (run go mod init in it)", displayPath(dir))
		}
	}
}

func readModFile(path string) (*modfile.File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", displayPath(path), err)
	}
	if f.Module == nil {
		return nil, fmt.Errorf("%s has no module line", displayPath(path))
	}
	return f, nil
}

// placeholderVersion is the version required of modules that are replaced by a directory.
const placeholderVersion = "v0.0.0-00010101000000-000000000000"

// mainModule writes the generated module's go.mod and go.sum: it requires the runtime and the
// user's module (both replaced by directories), the requirements of both (the higher version where
// they meet), and carries the user's replace directives, whose relative paths are made absolute.
func mainModule(f *Function, user *modfile.File, rtDir string) (gomod, gosum []byte, err error) {
	rt, err := readModFile(filepath.Join(rtDir, "go.mod"))
	if err != nil {
		return nil, nil, err
	}
	mf := &modfile.File{}
	if err := mf.AddModuleStmt(f.MainPackage); err != nil {
		return nil, nil, err
	}
	goVersion := rt.Go.Version
	if user.Go != nil && semver.Compare("v"+user.Go.Version, "v"+goVersion) > 0 {
		goVersion = user.Go.Version
	}
	if err := mf.AddGoStmt(goVersion); err != nil {
		return nil, nil, err
	}
	if user.Toolchain != nil {
		if err := mf.AddToolchainStmt(user.Toolchain.Name); err != nil {
			return nil, nil, err
		}
	}
	reqs := map[string]string{RuntimeModule: placeholderVersion, user.Module.Mod.Path: placeholderVersion}
	for _, r := range append(rt.Require, user.Require...) {
		if v, ok := reqs[r.Mod.Path]; !ok || semver.Compare(r.Mod.Version, v) > 0 {
			reqs[r.Mod.Path] = r.Mod.Version
		}
	}
	paths := make([]string, 0, len(reqs))
	for p := range reqs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		mf.AddNewRequire(p, reqs[p], false)
	}
	if err := mf.AddReplace(RuntimeModule, "", rtDir, ""); err != nil {
		return nil, nil, err
	}
	if err := mf.AddReplace(user.Module.Mod.Path, "", f.ModuleDir, ""); err != nil {
		return nil, nil, err
	}
	for _, r := range user.Replace {
		newPath := r.New.Path
		if r.New.Version == "" && !filepath.IsAbs(newPath) {
			newPath = filepath.Join(f.ModuleDir, newPath)
		}
		if err := mf.AddReplace(r.Old.Path, r.Old.Version, newPath, r.New.Version); err != nil {
			return nil, nil, err
		}
	}
	mf.Cleanup()
	gomod, err = mf.Format()
	if err != nil {
		return nil, nil, err
	}
	gosum, err = mergeSums(filepath.Join(rtDir, "go.sum"), filepath.Join(f.ModuleDir, "go.sum"))
	return gomod, gosum, err
}

// mergeSums returns the sorted union of the lines of the given go.sum files; missing files are skipped.
func mergeSums(files ...string) ([]byte, error) {
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				seen[l] = true
			}
		}
	}
	lines := make([]string, 0, len(seen))
	for l := range seen {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

// extractRuntime writes the runtime's source, embedded in this binary, into a directory of
// cacheDir named by the hash of its content, once, and returns that directory.
func extractRuntime(cacheDir string) (string, error) {
	type file struct {
		name string
		data []byte
	}
	var files []file
	h := sha256.New()
	err := fs.WalkDir(fnruntime.Source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		data, err := fs.ReadFile(fnruntime.Source, p)
		if err != nil {
			return err
		}
		files = append(files, file{p, data})
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading embedded runtime source: %w", err)
	}
	dir := filepath.Join(cacheDir, "runtime", hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("creating runtime source directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating runtime source directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(tmp, f.name), f.data, 0o644); err != nil {
			return "", fmt.Errorf("writing runtime source: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return dir, nil // another fn process won the race
		}
		return "", fmt.Errorf("writing runtime source: %w", err)
	}
	return dir, nil
}

// writeIfChanged writes data to path unless it already holds exactly that, so that file times
// stay put and the Go build cache stays warm.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}

// GenerateMain returns the source of the main package that serves the function of importPath,
// whose handler has the signature sig. The compiler checks the user's signature through it.
func GenerateMain(importPath string, sig *Signature) ([]byte, error) {
	if err := module.CheckImportPath(importPath); err != nil {
		return nil, fmt.Errorf("function import path: %w", err)
	}
	recv := "function"
	if sig.Instanced {
		recv = "instance"
	}
	expr := functionExpr(recv+".Handle", sig)
	var b bytes.Buffer
	err := mainTemplate.Execute(&b, map[string]any{
		"ImportPath": importPath,
		"Sig":        sig,
		"Function":   expr,
		"Context":    strings.Contains(expr, "context."),
		"HTTP":       strings.Contains(expr, "http."),
		"Event":      strings.Contains(expr, "event."),
	})
	if err != nil {
		return nil, err
	}
	return format.Source(b.Bytes())
}

// functionExpr is the Go expression that adapts handler h to a runtime Function.
func functionExpr(h string, sig *Signature) string {
	switch sig.Kind {
	case KindHTTP:
		if sig.Context && sig.ReturnsError {
			return "fn.HTTP(" + h + ")"
		}
		args := "w, r"
		if sig.Context {
			args = "ctx, w, r"
		}
		body := "return " + h + "(" + args + ")"
		if !sig.ReturnsError {
			body = h + "(" + args + ")\n\t\treturn nil"
		}
		return "fn.HTTP(func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {\n\t\t" + body + "\n\t})"
	case KindCloudEvents:
		var args []string
		if sig.Context {
			args = append(args, "ctx")
		}
		if sig.EventParam {
			args = append(args, "e")
		}
		call := h + "(" + strings.Join(args, ", ") + ")"
		var body string
		switch sig.EventResult {
		case ReturnsEventAndError:
			if sig.Context && sig.EventParam {
				return "fn.CloudEvents(" + h + ")"
			}
			body = "return " + call
		case ReturnsEvent:
			body = "return " + call + ", nil"
		case ReturnsError:
			body = "return nil, " + call
		default:
			body = call + "\n\t\treturn nil, nil"
		}
		return "fn.CloudEvents(func(ctx context.Context, e event.Event) (*event.Event, error) {\n\t\t" + body + "\n\t})"
	default:
		if sig.Context {
			return "fn.Typed(" + h + ")"
		}
		return "fn.TypedNoContext(" + h + ")"
	}
}

var mainTemplate = template.Must(template.New("main").Parse(`// Code generated by fn. DO NOT EDIT.

// Command main serves the function {{.ImportPath}} with the fn runtime.
package main

import (
{{- if .Context}}
	"context"
{{- end}}
{{- if .HTTP}}
	"net/http"
{{- end}}
{{if .Event}}
	"github.com/cloudevents/sdk-go/v2/event"
{{- end}}
	fn "fnkit.dev/fn/runtime"

	function "{{.ImportPath}}"
)

func main() {
{{- if .Sig.Instanced}}
	instance := function.New()
	fn.Main({{.Function}}.WithHooks(fn.Hooks{
{{- range .Sig.Hooks}}
		{{.}}: instance.{{.}},
{{- end}}
	}))
{{- else}}
	fn.Main({{.Function}})
{{- end}}
}
`))
