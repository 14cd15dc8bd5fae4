package templates

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/modfile"
)

func TestNames(t *testing.T) {
	want := []string{"cloudevents", "http", "typed"}
	if diff := cmp.Diff(want, Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name      string
		wantFiles []string
	}{
		{"cloudevents", []string{"README.md", "go.mod", "go.sum", "handle.go", "handle_test.go"}},
		{"http", []string{"README.md", "go.mod", "handle.go", "handle_test.go"}},
		{"typed", []string{"README.md", "go.mod", "handle.go", "handle_test.go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A directory that does not exist yet: Write creates it.
			dir := filepath.Join(t.TempDir(), "hello")
			const module = "example.com/hello"

			got, err := Write(dir, tt.name, module)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if diff := cmp.Diff(tt.wantFiles, got); diff != "" {
				t.Errorf("Write returned files mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFiles, listFiles(t, dir)); diff != "" {
				t.Errorf("files on disk mismatch (-want +got):\n%s", diff)
			}
			for _, f := range got {
				fi, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm&^0o644 != 0 {
					t.Errorf("%s has mode %v, want at most 0644", f, perm)
				}
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "{{") {
					t.Errorf("%s holds an unrendered template action", f)
				}
			}

			mf := readModFile(t, filepath.Join(dir, "go.mod"))
			if mf.Module == nil || mf.Module.Mod.Path != module {
				t.Errorf("go.mod module = %v, want %s", mf.Module, module)
			}
			if mf.Go == nil || mf.Go.Version != "1.24" {
				t.Errorf("go.mod go directive = %v, want 1.24", mf.Go)
			}
			readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{module, "fn run .", "fn invoke", "fn deploy ."} {
				if !strings.Contains(string(readme), s) {
					t.Errorf("README.md does not mention %q", s)
				}
			}

			if testing.Short() {
				return
			}
			goCmd(t, dir, "test", "./...")
			goCmd(t, dir, "vet", "./...")
			goCmd(t, dir, "mod", "tidy", "-diff") // go.mod and go.sum are exactly what tidy writes
		})
	}
}

func TestWriteIntoEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, "http", "hello"); err != nil {
		t.Fatalf("Write into an empty directory: %v", err)
	}
	if diff := cmp.Diff([]string{"README.md", "go.mod", "handle.go", "handle_test.go"}, listFiles(t, dir)); diff != "" {
		t.Errorf("files on disk mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "handle.go")
	const content = "package mine\n"
	if err := os.WriteFile(existing, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := Write(dir, "http", "example.com/hello")
	if err == nil {
		t.Fatalf("Write into a non-empty directory = %v, nil; want an error", got)
	}
	if want := dir + " is not empty"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	if len(got) != 0 {
		t.Errorf("Write reported files %v, want none", got)
	}
	b, err := os.ReadFile(existing)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("the existing file now holds %q, want %q", b, content)
	}
	if diff := cmp.Diff([]string{"handle.go"}, listFiles(t, dir)); diff != "" {
		t.Errorf("files on disk mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteRefusesAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(path, "http", "example.com/hello"); err == nil {
		t.Fatal("Write into a regular file: want an error")
	}
}

func TestWriteUnknownTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello")
	_, err := Write(dir, "grpc", "example.com/hello")
	if err == nil {
		t.Fatal("Write with an unknown template: want an error")
	}
	for _, s := range []string{`"grpc"`, "cloudevents", "http", "typed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error = %q, want it to mention %s", err, s)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Write with an unknown template created %s (stat: %v)", dir, err)
	}
}

func TestWriteInvalidModulePath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello")
	for _, module := range []string{"", "has space", "../up", "a\nrequire evil v1.0.0"} {
		if _, err := Write(dir, "http", module); err == nil {
			t.Errorf("Write with module %q: want an error", module)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Write with an invalid module path created %s (stat: %v)", dir, err)
	}
}

// TestCloudEventsSDKMatchesRuntime checks that a new CloudEvents function starts on the
// CloudEvents SDK version the fn runtime it will be built with uses.
func TestCloudEventsSDKMatchesRuntime(t *testing.T) {
	const sdk = "github.com/cloudevents/sdk-go/v2"
	runtimeVersion := requiredVersion(t, readModFile(t, filepath.Join("..", "runtime", "go.mod")), sdk)

	dir := t.TempDir()
	if _, err := Write(dir, "cloudevents", "example.com/hello"); err != nil {
		t.Fatal(err)
	}
	templateVersion := requiredVersion(t, readModFile(t, filepath.Join(dir, "go.mod")), sdk)
	if templateVersion != runtimeVersion {
		t.Errorf("cloudevents/go.mod.tmpl requires %s %s, runtime/go.mod requires %s", sdk, templateVersion, runtimeVersion)
	}
}

// listFiles returns the paths of the regular files under dir, relative to it and sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readModFile(t *testing.T, path string) *modfile.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(path, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func requiredVersion(t *testing.T, f *modfile.File, modPath string) string {
	t.Helper()
	for _, r := range f.Require {
		if r.Mod.Path == modPath {
			return r.Mod.Version
		}
	}
	t.Fatalf("%s does not require %s", f.Syntax.Name, modPath)
	return ""
}

// goCmd runs the go command in dir as a user would in a new function directory, outside any
// workspace, and fails the test when it fails.
func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}
