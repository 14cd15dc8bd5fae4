package platform

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
)

// DebugSocketPath is where the platform's process or its component name serves Go's profiles
// (goroutines, heap, CPU...) for whoever can read FN_HOME: a unix socket, no port.
func DebugSocketPath(home, name string) string {
	return filepath.Join(home, "run", strings.ReplaceAll(name, " ", "-")+".sock")
}

// ServeDebug serves net/http/pprof's profiles on a unix socket at path (its owner's only) until
// ctx is done: curl --unix-socket PATH http://fn/debug/pprof/goroutine?debug=1.
func ServeDebug(ctx context.Context, path string) error {
	if len(path) > 100 { // sun_path holds 108 bytes
		return fmt.Errorf("the debug socket %s: its path is too long for a unix socket", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	_ = os.Remove(path) // a dead process's
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("the debug socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() { _ = serveHTTP(ctx, ln, mux) }()
	return nil
}
