package gitbuild

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	fninformers "fnkit.dev/fn/controller/client/informers/externalversions"
)

// ServerOptions configure fn-builder.
type ServerOptions struct {
	// Config reaches the cluster.
	Config *rest.Config
	// Dir keeps the builder's state: the remote's repositories, webhook mirrors, checkouts and
	// generated mains.
	Dir string
	// Registry is the repository images are pushed to; Insecure allows plain HTTP to it.
	Registry string
	Insecure bool
	// URL is where clients reach the builder (e.g. http://127.0.0.1:18089): the remote's
	// repositories are URL/git/NAMESPACE/NAME.git.
	URL string
	// HookCommand runs RunHook (see Remote.HookCommand): fn-builder's own executable.
	HookCommand []string
	// Namespace is fn's own (the record of webhook deliveries); default fn-system.
	Namespace string
	// MaxBuilds run at once (default 2); each ends after Timeout (default 10m). Rollout bounds
	// how long a push waits for its Function to run the new build (default 2m).
	MaxBuilds int
	Timeout   time.Duration
	Rollout   time.Duration
	Log       *slog.Logger
}

// Server is fn-builder: the built-in remote at /git/, the webhooks at /hooks/, fn deploy
// --git's builds at /builds/, and the builds behind them, recorded as FunctionBuilds and deployed into their Functions.
type Server struct {
	Remote  *Remote
	Hooks   *Hooks
	Builder *Builder
	cluster *Cluster
	mux     *http.ServeMux
}

// NewServer prepares fn-builder and starts what it watches; it stops when ctx is done.
func NewServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Namespace == "" {
		o.Namespace = "fn-system"
	}
	if o.MaxBuilds <= 0 {
		o.MaxBuilds = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Rollout <= 0 {
		o.Rollout = 2 * time.Minute
	}
	if o.Registry == "" {
		return nil, fmt.Errorf("fn-builder needs a registry to push images to")
	}
	dirs := map[string]string{}
	for _, d := range []string{"repos", "mirrors", "work", "cache"} {
		dirs[d] = filepath.Join(o.Dir, d)
		if err := os.MkdirAll(dirs[d], 0o700); err != nil {
			return nil, err
		}
	}
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	fns, err := versioned.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	inf := fninformers.NewSharedInformerFactory(fns, 10*time.Hour)
	functions := inf.Fnkit().V1alpha1().Functions()
	lister := functions.Lister()
	_ = functions.Informer()
	inf.Start(ctx.Done())
	for typ, ok := range inf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("fn-builder: watching %v did not sync", typ)
		}
	}
	base := strings.TrimRight(o.URL, "/")
	remoteURL := func(path string) string { return base + path }
	c := &Cluster{Kube: kube, Functions: lister, RemoteURL: remoteURL, Namespace: o.Namespace}
	records := &KubeRecorder{Client: fns, Log: o.Log}
	if err := records.EndInterrupted(ctx); err != nil {
		return nil, err
	}
	b := &Builder{
		Service: &Service{Max: o.MaxBuilds, Timeout: o.Timeout, Build: func(ctx context.Context, j Job) (CommitBuild, error) {
			// For the architectures of the nodes as they are now.
			if ps, err := ClusterPlatforms(ctx, kube); err == nil {
				j.Options.Platforms = ps
			} else {
				o.Log.Warn("reading the Nodes' platforms: building for linux/amd64", "error", err)
			}
			return BuildJob(ctx, j)
		}},
		Options:  BuildOptions{Registry: o.Registry, Insecure: o.Insecure, CacheDir: dirs["cache"], WorkDir: dirs["work"]},
		SourceOf: c.SourceOf,
		Deploy: func(ctx context.Context, t Trigger, cb CommitBuild, out io.Writer) error {
			d := FunctionDeployer{Client: fns}
			if t.Kind == v1alpha1.TriggerPush || t.Kind == v1alpha1.TriggerDeploy {
				d.Rollout = o.Rollout // the pusher waits until the new code answers
			}
			return d.Deploy(ctx, t, cb, out)
		},
		AuthOf:    c.AuthOf,
		Records:   records,
		RemoteURL: remoteURL,
		MirrorDir: dirs["mirrors"],
		Log:       o.Log,
	}
	rm := &Remote{Dir: dirs["repos"], Authorize: c.Authorize, Receive: b.Receive, HookCommand: o.HookCommand}
	if err := rm.Start(); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		_ = rm.Close()
	}()
	hk := &Hooks{Targets: c.Targets, Seen: c.Seen, Record: c.Record, Build: b.Queue, Log: o.Log}
	s := &Server{Remote: rm, Hooks: hk, Builder: b, cluster: c, mux: http.NewServeMux()}
	s.mux.Handle("/git/", rm)
	s.mux.HandleFunc("/builds/", s.serveDeploy)
	s.mux.Handle("/hooks/", hk)
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return s, nil
}

// ServeHTTP serves the remote, the hooks and /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }
