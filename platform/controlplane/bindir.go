package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinDir returns the directory of the control plane binaries: $FN_K8S_BIN when set, else the
// output of the repository's hack/k8s-binaries.sh, which builds them once (about ten minutes)
// and then answers from its cache at once. Its progress goes to progress.
func BinDir(ctx context.Context, progress io.Writer) (string, error) {
	if d := os.Getenv("FN_K8S_BIN"); d != "" {
		return d, nil
	}
	script, err := findScript()
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout, cmd.Stderr = &out, progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the Kubernetes binaries (%s): %w", script, err)
	}
	return strings.TrimSpace(out.String()), nil
}

// findScript looks for hack/k8s-binaries.sh in the working directory and its parents.
func findScript() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "hack", "k8s-binaries.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no hack/k8s-binaries.sh above %s: set FN_K8S_BIN to the directory of the Kubernetes binaries", wd)
		}
	}
}
