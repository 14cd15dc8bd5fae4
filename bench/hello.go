package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CopyHello copies examples/hello's module (go.mod and hello.go) into dst; benchmarks run from
// the repository's root.
func CopyHello(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"go.mod", "hello.go"} {
		b, err := os.ReadFile(filepath.Join("examples/hello", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SetHelloAnswer makes the hello in dir answer "<word>, <name>!": a one-line edit.
func SetHelloAnswer(dir, word string) error {
	p := filepath.Join(dir, "hello.go")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.Index(s, `Fprintf(w, "`)
	if i < 0 {
		return fmt.Errorf("examples/hello changed: cannot find its answer")
	}
	j := strings.Index(s[i:], ", %s")
	return os.WriteFile(p, []byte(s[:i]+`Fprintf(w, "`+word+s[i+j:]), 0o644)
}
