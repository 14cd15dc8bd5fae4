package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// CompileError is a function that does not compile. Its text is the compiler's, with file
// paths shown as the user knows them.
type CompileError struct {
	Name   string
	Output string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("function %s does not compile:\n%s", e.Name, e.Output)
}

// GoCommand returns the path of the go command, or an error saying how to get one.
func GoCommand() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not on PATH: fn compiles functions with the Go toolchain; install Go 1.24 or later and put its bin directory on PATH")
	}
	return p, nil
}

// BuildEnv is the environment fn's go commands run with: the generated module may add
// requirements (-mod=mod) and a go.work of the user's must not interfere.
func BuildEnv(extra ...string) []string {
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	return append(env, extra...)
}

// BuildBinary compiles the scaffolded function for this machine into out.
func (f *Function) BuildBinary(ctx context.Context, out string) error {
	goCmd, err := GoCommand()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, ".")
	cmd.Dir = f.MainDir
	cmd.Env = BuildEnv()
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return f.CompileError(output.String())
	}
	return nil
}

var goPosRE = regexp.MustCompile(`(?m)^(\S+\.go)(:\d+(:\d+)?:)`)

// CompileError turns the go command's output into a CompileError whose file paths are shown
// as the user knows them (relative to the working directory, as the compiler would), whether
// the compiler printed them relative to the generated module, absolute, or as import paths
// (with -trimpath).
func (f *Function) CompileError(output string) error {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(output, "\n"), "\n") {
		if strings.HasPrefix(l, "# ") {
			continue // "# package" headers name generated packages
		}
		lines = append(lines, goPosRE.ReplaceAllStringFunc(l, func(m string) string {
			sub := goPosRE.FindStringSubmatch(m)
			return f.displaySource(sub[1]) + sub[2]
		}))
	}
	return &CompileError{Name: f.Name, Output: strings.Join(lines, "\n")}
}

func (f *Function) displaySource(p string) string {
	switch {
	case strings.HasPrefix(p, f.ImportPath+"/"):
		return displayPath(filepath.Join(f.Dir, strings.TrimPrefix(p, f.ImportPath+"/")))
	case filepath.IsAbs(p):
		return displayPath(p)
	}
	abs := filepath.Join(f.MainDir, p)
	if _, err := os.Stat(abs); err == nil {
		return displayPath(abs)
	}
	return p
}
