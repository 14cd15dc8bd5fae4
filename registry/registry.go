package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // WithHtpasswd's access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the storage driver
	"github.com/sirupsen/logrus"

	"fnkit.dev/fn/internal/diskspace"
)

// Registry is an OCI registry storing blobs and manifests under a root directory.
type Registry struct {
	root     string
	app      *handlers.App
	keepFree int64
}

// Option configures a registry.
type Option func(*configuration.Configuration)

// WithHtpasswd requires every request to authenticate (HTTP basic) as a user of the htpasswd
// file at path (bcrypt entries, as htpasswd -B writes them). A registry that listens beyond
// loopback needs it: without, anyone who reaches it may push what functions run.
func WithHtpasswd(path string) Option {
	return func(c *configuration.Configuration) {
		c.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "fn", "path": path}}
	}
}

// New returns a registry storing its data under root, which is created if missing.
func New(ctx context.Context, root string, opts ...Option) (*Registry, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("registry root %s: %w", root, err)
	}
	// distribution logs through logrus, at error level for every 4xx answer, which a push
	// meets by design (HEAD of blobs not yet there): keep warnings and server errors only.
	logrus.SetLevel(logrus.WarnLevel)
	logrus.SetOutput(&clientErrorFilter{w: os.Stderr})
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	cfg := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": root},
			"delete":     configuration.Parameters{"enabled": true},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		},
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	for _, o := range opts {
		o(cfg)
	}
	cfg.Log.Level = "warn"
	var app *handlers.App
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%v", p)
			}
		}()
		app = handlers.NewApp(ctx, cfg)
		return nil
	}()
	if err != nil {
		return nil, fmt.Errorf("starting registry on %s: %w", root, err)
	}
	return &Registry{root: root, app: app}, nil
}

// KeepFree has the registry refuse uploads (507 Insufficient Storage, with a message saying
// why) while the filesystem of its store has less than n bytes free: a push then fails at once
// with a reason, and what the disk holds stays whole. Reads are served whatever the space.
func (r *Registry) KeepFree(n int64) { r.keepFree = n }

// Handler is the registry's HTTP API (/v2/...).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.keepFree > 0 && (req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch) {
			if err := diskspace.Check(r.keepFree, r.root); err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInsufficientStorage)
				_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "DENIED",
					"message": "the registry refuses uploads: " + err.Error()}}})
				return
			}
		}
		r.app.ServeHTTP(w, req)
	})
}

// Close stops the registry's background work.
func (r *Registry) Close() error { return r.app.Shutdown() }

// Serve serves the registry on ln until ctx is done.
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// IsLoopback reports whether addr (host:port) listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var _ io.Closer = (*Registry)(nil)

// clientErrorFilter drops distribution's log lines about requests answered with a 4xx status.
type clientErrorFilter struct{ w io.Writer }

var clientErrorRE = regexp.MustCompile(`http\.response\.status=4\d\d\b`)

func (f *clientErrorFilter) Write(p []byte) (int, error) {
	if clientErrorRE.Match(p) {
		return len(p), nil
	}
	return f.w.Write(p)
}
