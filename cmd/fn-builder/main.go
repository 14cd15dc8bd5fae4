// Command fn-builder builds functions from git: it serves fn's own git remote
// (/git/NAMESPACE/NAME.git, a push builds and deploys before it is accepted), the webhooks of
// GitHub, Gitea and GitLab (/hooks/HOST), and fn deploy --git (/builds/NAMESPACE/NAME). Each
// build is a FunctionBuild; a successful one becomes its Function's image. It needs git and
// the Go toolchain on PATH. fn up runs the same code as a process of its own (fn internal builder).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"fnkit.dev/fn/gitbuild"
	"fnkit.dev/fn/internal/restconfig"
)

func main() {
	// git runs this executable as the remote's pre-receive hook, through a link by that name.
	if filepath.Base(os.Args[0]) == "pre-receive" {
		os.Exit(gitbuild.RunHook(os.Stdin, os.Stdout, os.Getenv))
	}
	addr := flag.String("addr", ":8080", "address to serve on")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: the in-cluster config, else $KUBECONFIG or ~/.kube/config)")
	var o gitbuild.ServerOptions
	flag.StringVar(&o.Dir, "dir", "/var/lib/fn-builder", "state: the remote's repositories, webhook mirrors, checkouts and Go's caches")
	flag.StringVar(&o.Registry, "registry", os.Getenv("FN_REGISTRY"), "repository images are pushed to (default $FN_REGISTRY)")
	flag.BoolVar(&o.Insecure, "insecure", false, "allow plain HTTP and unverified TLS to the registry")
	flag.StringVar(&o.URL, "url", "", "the builder's URL as clients reach it (recorded as the source of Functions pushed to its remote)")
	flag.StringVar(&o.Namespace, "namespace", "fn-system", "fn's own namespace (the record of webhook deliveries)")
	flag.IntVar(&o.MaxBuilds, "max-builds", 2, "builds run at once")
	flag.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "a build's time limit")
	flag.DurationVar(&o.Rollout, "rollout", 2*time.Minute, "how long a push waits for its Function to run the new build")
	flag.Parse()
	if o.URL == "" {
		fmt.Fprintln(os.Stderr, "fn-builder: --url is required: the address clients push to, e.g. https://builder.fn.example")
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err == nil {
		o.HookCommand = []string{exe}
		err = keepGoCaches(o.Dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fn-builder: %v\n", err)
		os.Exit(1)
	}
	o.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, *kubeconfig, o); err != nil {
		fmt.Fprintf(os.Stderr, "fn-builder: %v\n", err)
		os.Exit(1)
	}
}

// keepGoCaches puts Go's build and module caches under dir unless the environment says where,
// so that they outlive each build.
func keepGoCaches(dir string) error {
	for env, sub := range map[string]string{"GOCACHE": "go-build", "GOMODCACHE": "go-mod"} {
		if os.Getenv(env) != "" {
			continue
		}
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		os.Setenv(env, p)
	}
	return nil
}

func run(ctx context.Context, addr, kubeconfig string, o gitbuild.ServerOptions) error {
	cfg, err := restconfig.Load(kubeconfig)
	if err != nil {
		return err
	}
	o.Config = cfg
	srv, err := gitbuild.NewServer(ctx, o)
	if err != nil {
		return err
	}
	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = hs.Shutdown(shut)
	}()
	o.Log.Info("serving", "addr", addr, "url", o.URL, "registry", o.Registry)
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
