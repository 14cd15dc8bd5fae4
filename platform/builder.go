package platform

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"fnkit.dev/fn/gitbuild"
)

// startBuilder runs fn-builder (the built-in git remote, the webhooks and their builds) on
// builderURL, pushing to the platform's registry; its log is Home/logs/builder.log.
func startBuilder(ctx context.Context, cfg Config, rc *rest.Config, regAddr, builderURL string,
	logFile func(string) (*os.File, error), logs *[]io.Closer, run func(string, func() error)) error {
	bl, err := logFile("builder")
	if err != nil {
		return err
	}
	*logs = append(*logs, bl)
	hook := cfg.HookCommand
	if len(hook) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		hook = []string{exe, "internal", "git-hook"}
	}
	srv, err := gitbuild.NewServer(ctx, gitbuild.ServerOptions{
		Config: rc, Dir: filepath.Join(cfg.Home, "builder"), Registry: regAddr + "/fns", Insecure: true,
		URL: builderURL, HookCommand: hook, Log: slog.New(slog.NewJSONHandler(bl, nil)),
	})
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.BuilderPort))
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	run("builder", func() error {
		if err := hs.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	return nil
}
