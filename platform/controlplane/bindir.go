package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinDir returns the directory of the control plane binaries: $FN_K8S_BIN when set, else the
// output of k8s-binaries.sh, which builds them once (about ten minutes) and then answers from its
// cache at once. Its progress goes to progress. The script is the repository's
// hack/k8s-binaries.sh when the working directory is in a clone of it; elsewhere (an installed
// fn) it is the one fn embeds, with the module that pins the Kubernetes version, extracted under
// the user's cache. Both key their builds alike, so they share the built binaries.
func BinDir(ctx context.Context, progress io.Writer) (string, error) {
	if d := os.Getenv("FN_K8S_BIN"); d != "" {
		return d, nil
	}
	var env []string
	script, err := findScript()
	if err != nil {
		var module string
		if script, module, err = extractScript(); err != nil {
			return "", err
		}
		env = append(os.Environ(), "FN_K8S_MODULE="+module)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &out, progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the Kubernetes binaries (%s): %w", script, err)
	}
	return strings.TrimSpace(out.String()), nil
}

// findScript looks for hack/k8s-binaries.sh in the working directory and its parents.
func findScript() (string, error) { return FindInRepo(filepath.Join("hack", "k8s-binaries.sh")) }

// FindInRepo looks for the file at rel (relative to the repository's root) in the working
// directory and its parents: it is found when fn runs in a clone of its repository.
func FindInRepo(rel string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s above %s", rel, wd)
		}
	}
}

// k8sSource holds k8s-binaries.sh (hack/k8s-binaries.sh runs it) and copies of
// third_party/k8s's go.mod, go.sum and tools.go, named *.pinned (a nested go.mod would make a
// module); hack/update-codegen.sh writes the copies and make verify keeps them equal.
//
//go:embed k8ssrc
var k8sSource embed.FS

// extractScript writes the embedded build inputs into $HOME/.cache/fn/k8s-src/<hash of them>/
// (once): the script, and the pinning module in module/. It returns both paths.
func extractScript() (script, module string, err error) {
	files := map[string]string{ // embedded name: path in the extracted directory
		"k8s-binaries.sh": "k8s-binaries.sh",
		"go.mod.pinned":   "module/go.mod",
		"go.sum.pinned":   "module/go.sum",
		"tools.go.pinned": "module/tools.go",
	}
	h := sha256.New()
	contents := map[string][]byte{}
	for _, name := range []string{"k8s-binaries.sh", "go.mod.pinned", "go.sum.pinned", "tools.go.pinned"} {
		b, err := fs.ReadFile(k8sSource, "k8ssrc/"+name)
		if err != nil {
			return "", "", err
		}
		contents[name] = b
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", fmt.Errorf("no cache directory for the Kubernetes build inputs: %w (set FN_K8S_BIN to the directory of the Kubernetes binaries)", err)
	}
	root := filepath.Join(cache, "fn", "k8s-src")
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:16])
	script, module = filepath.Join(dir, files["k8s-binaries.sh"]), filepath.Join(dir, "module")
	if _, err := os.Stat(script); err == nil {
		return script, module, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", "", err
	}
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	for name, rel := range files {
		p := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(p, contents[name], 0o755); err != nil {
			return "", "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(script); serr == nil { // another fn extracted it meanwhile
			return script, module, nil
		}
		return "", "", fmt.Errorf("writing the Kubernetes build inputs to %s: %w", dir, err)
	}
	return script, module, nil
}
