package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	fncontroller "fnkit.dev/fn/controller"
	"fnkit.dev/fn/controller/autoscaler"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/events"
	"fnkit.dev/fn/events/engine"
	"fnkit.dev/fn/gateway"
	"fnkit.dev/fn/gitbuild"
	"fnkit.dev/fn/internal/diskspace"
	"fnkit.dev/fn/registry"
)

// A Component is a part of the local platform that runs as a process of its own, fn's
// "internal NAME", supervised by the platform: one that crashes is started again alone, and
// takes no other down with it. It logs to stderr, which the platform sends to its log file.
type Component interface {
	// Name is the internal command that runs it.
	Name() string
	// Bind defines its flags on fs, each defaulting to the spec's value: bound on a zero spec
	// they are the command's flags; bound on a filled one, their defaults are its command line.
	Bind(fs *pflag.FlagSet)
	// Run runs it until ctx is done.
	Run(ctx context.Context) error
}

// LocalGOGC is the GOGC of the local platform's processes, Kubernetes' and fn's, unless GOGC is
// set or a component says its own (gcTuned). Go's default of 100 lets a heap grow to twice what
// it holds between collections; at 50, the platform at idle takes 40 to 65 MB less, for more
// collections under load (bench/platform).
const LocalGOGC = 50

// gcTuned is a Component that runs with a GOGC of its own.
type gcTuned interface{ GCPercent() int }

// GCPercent: the gateway trades a few megabytes for CPU per request (as fn-gateway runs).
func (s *GatewaySpec) GCPercent() int { return gateway.GCPercent }

// localGOGC is LocalGOGC, or 0 (processes inherit GOGC) when GOGC is set.
func localGOGC() int {
	if os.Getenv("GOGC") != "" {
		return 0
	}
	return LocalGOGC
}

// gogc is the GOGC environment entry of c's process, or "" to inherit GOGC as it is set.
func gogc(c Component) string {
	gc := localGOGC()
	if gc == 0 {
		return ""
	}
	if t, ok := c.(gcTuned); ok {
		gc = t.GCPercent()
	}
	return "GOGC=" + strconv.Itoa(gc)
}

// ComponentArgs is the command line (after the executable) that runs c as it is specified.
func ComponentArgs(c Component) []string {
	fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	c.Bind(fs)
	args := []string{"internal", c.Name()}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.DefValue != "" && f.DefValue != "0" {
			args = append(args, "--"+f.Name+"="+f.DefValue)
		}
	})
	return args
}

// Components are the specs of every component, zero, for their commands' flags.
func Components() []Component {
	return []Component{&AgentSpec{}, &RegistrySpec{}, &ControllerSpec{}, &GatewaySpec{}, &BuilderSpec{}, &EventsSpec{}}
}

// RegistrySpec is the platform's OCI registry.
type RegistrySpec struct {
	Dir, Addr string
	ListenFD  int
}

func (s *RegistrySpec) Name() string { return "registry" }

func (s *RegistrySpec) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.Dir, "dir", s.Dir, "blob and manifest store")
	fs.StringVar(&s.Addr, "addr", s.Addr, "address to serve on")
	bindListenFD(fs, &s.ListenFD)
}

func (s *RegistrySpec) Run(ctx context.Context) error {
	if s.Dir == "" || s.Addr == "" {
		return errors.New("registry: --dir and --addr are required")
	}
	reg, err := registry.New(ctx, s.Dir)
	if err != nil {
		return err
	}
	reg.KeepFree(diskspace.Reserve)
	ln, err := listen(s.ListenFD, s.Addr)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return reg.Serve(ctx, ln)
}

// EventsSpec is the event engine: NATS with JetStream, its store in Dir.
type EventsSpec struct {
	Dir, Addr, MonitorAddr string
}

func (s *EventsSpec) Name() string { return "events" }

func (s *EventsSpec) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.Dir, "dir", s.Dir, "JetStream's store: the calls, dead letters and records")
	fs.StringVar(&s.Addr, "addr", s.Addr, "address NATS clients connect to")
	fs.StringVar(&s.MonitorAddr, "monitor-addr", s.MonitorAddr, "address of NATS's monitoring endpoints (/healthz, /jsz)")
}

func (s *EventsSpec) Run(ctx context.Context) error {
	if s.Dir == "" || s.Addr == "" {
		return errors.New("events: --dir and --addr are required")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return engine.Run(ctx, engine.Options{Dir: s.Dir, Addr: s.Addr, MonitorAddr: s.MonitorAddr},
		func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) })
}

// ControllerSpec is fn's controller with the autoscaler, which takes the gateway's reports on
// AutoscalerAddr.
type ControllerSpec struct {
	Kubeconfig, AutoscalerAddr, Domain, GatewayURL string
	// Identity is the autoscaler's identity in its leader election: the same across restarts,
	// so that a controller started again takes its lease back at once.
	Identity string
}

func (s *ControllerSpec) Name() string { return "controller" }

func (s *ControllerSpec) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.Kubeconfig, "kubeconfig", s.Kubeconfig, "kubeconfig of the platform's API server")
	fs.StringVar(&s.AutoscalerAddr, "autoscaler-addr", s.AutoscalerAddr, "address the autoscaler takes the gateway's reports on")
	fs.StringVar(&s.Domain, "domain", s.Domain, "domain of functions' host names")
	fs.StringVar(&s.GatewayURL, "gateway-url", s.GatewayURL, "the gateway's URL, as Functions' status shows it")
	fs.StringVar(&s.Identity, "identity", s.Identity, "the autoscaler's leader election identity")
}

func (s *ControllerSpec) Run(ctx context.Context) error {
	if s.AutoscalerAddr == "" || s.Identity == "" {
		return errors.New("controller: --autoscaler-addr and --identity are required")
	}
	rc, err := restConfig(s.Kubeconfig, "fn-controller")
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(os.Stderr), zapcore.InfoLevel)).Sugar()
	ctl, err := fncontroller.Run(ctx, rc, fncontroller.Options{Logger: zl,
		Config:     resources.Config{Domain: s.Domain, GatewayURL: s.GatewayURL},
		Autoscaler: autoscaler.StartOptions{Election: autoscaler.Election{Identity: s.Identity}}})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	ln, err := net.Listen("tcp", s.AutoscalerAddr)
	if err != nil {
		return fmt.Errorf("controller: the autoscaler's endpoint: %w", err)
	}
	return serveHTTP(ctx, ln, ctl.Autoscaler)
}

// GatewaySpec is fn's gateway, reporting load to the autoscaler at AutoscalerURL.
type GatewaySpec struct {
	Kubeconfig, Addr, InternalAddr, Domain, AutoscalerURL, ID string
	// Events is the event engine's URL, for asynchronous calls.
	Events   string
	ListenFD int // of Addr
}

func (s *GatewaySpec) Name() string { return "gateway" }

func (s *GatewaySpec) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.Kubeconfig, "kubeconfig", s.Kubeconfig, "kubeconfig of the platform's API server")
	fs.StringVar(&s.Addr, "addr", s.Addr, "address to serve functions on")
	fs.StringVar(&s.InternalAddr, "internal-addr", s.InternalAddr, "address of /_gw/health and /_gw/metrics")
	fs.StringVar(&s.Domain, "domain", s.Domain, "domain of functions' host names")
	fs.StringVar(&s.AutoscalerURL, "autoscaler-url", s.AutoscalerURL, "the autoscaler's base URL, which gets this gateway's load reports")
	fs.StringVar(&s.ID, "id", s.ID, "this gateway's identity in its reports")
	fs.StringVar(&s.Events, "events", s.Events, "the event engine's URL (nats://HOST:PORT), for asynchronous calls")
	bindListenFD(fs, &s.ListenFD)
}

func (s *GatewaySpec) Run(ctx context.Context) error {
	if s.Addr == "" || s.InternalAddr == "" {
		return errors.New("gateway: --addr and --internal-addr are required")
	}
	rc, err := restConfig(s.Kubeconfig, "fn-gateway")
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	// The access log is written in batches: a write per request costs the gateway ~5% of its CPU.
	logs := gateway.NewLogBuffer(os.Stderr, 200*time.Millisecond)
	defer logs.Close()
	o := gateway.Options{Domain: s.Domain, Logger: slog.New(slog.NewJSONHandler(logs, nil)), AccessLog: logs, ID: s.ID}
	if s.AutoscalerURL != "" {
		o.AutoscalerURLs = []string{s.AutoscalerURL}
	}
	if s.Events != "" {
		q, err := events.Connect(ctx, events.Options{URL: s.Events, Name: "fn-gateway " + s.ID, Log: o.Logger})
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		defer q.Close()
		o.Events = q
	}
	gw, err := gateway.New(ctx, rc, o)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ln, err := listen(s.ListenFD, s.Addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	errs := make(chan error, 2)
	go func() { errs <- gateway.ServeInternal(ctx, s.InternalAddr, gw) }()
	go func() { errs <- gateway.ServeListener(ctx, ln, gw) }()
	return <-errs
}

// BuilderSpec is fn-builder: the built-in git remote, the webhooks and their builds, pushing
// to Registry.
type BuilderSpec struct {
	Kubeconfig, Addr, Dir, Registry, URL string
	ListenFD                             int
}

func (s *BuilderSpec) Name() string { return "builder" }

func (s *BuilderSpec) Bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.Kubeconfig, "kubeconfig", s.Kubeconfig, "kubeconfig of the platform's API server")
	fs.StringVar(&s.Addr, "addr", s.Addr, "address to serve on")
	fs.StringVar(&s.Dir, "dir", s.Dir, "state: the remote's repositories, mirrors and checkouts")
	fs.StringVar(&s.Registry, "registry", s.Registry, "repository images are pushed to, over plain HTTP")
	fs.StringVar(&s.URL, "url", s.URL, "the builder's URL as clients reach it")
	bindListenFD(fs, &s.ListenFD)
}

func (s *BuilderSpec) Run(ctx context.Context) error {
	if s.Addr == "" || s.Dir == "" || s.URL == "" {
		return errors.New("builder: --addr, --dir and --url are required")
	}
	rc, err := restConfig(s.Kubeconfig, "fn-builder")
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	srv, err := gitbuild.NewServer(ctx, gitbuild.ServerOptions{
		Config: rc, Dir: s.Dir, Registry: s.Registry, Insecure: true, URL: s.URL,
		HookCommand: []string{exe, "internal", "git-hook"}, Log: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	ln, err := listen(s.ListenFD, s.Addr)
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	return serveHTTP(ctx, ln, srv)
}

func bindListenFD(fs *pflag.FlagSet, fd *int) {
	fs.IntVar(fd, "listen-fd", *fd, "serve on this inherited listening socket instead of listening on --addr")
}

// listen is a component's listener: the inherited descriptor fd when set, else a new one on
// addr. The platform holds its components' public sockets and passes them down, so that
// connections made while a component restarts wait in the socket's queue for the next one
// instead of being refused.
func listen(fd int, addr string) (net.Listener, error) {
	if fd <= 0 {
		return net.Listen("tcp", addr)
	}
	f := os.NewFile(uintptr(fd), addr)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("the inherited socket of %s (descriptor %d): %w", addr, fd, err)
	}
	return ln, nil
}

// restConfig is a component's client configuration, from the platform's kubeconfig, with its
// name as its user agent (as the API server's audit log records it).
func restConfig(kubeconfig, agent string) (*rest.Config, error) {
	if kubeconfig == "" {
		return nil, errors.New("--kubeconfig is required")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	// As on a cluster (cmd/fn-controller): client-go's default of 5 per second would take
	// minutes to settle many Functions.
	rc.QPS, rc.Burst = fncontroller.DefaultQPS, fncontroller.DefaultBurst
	rc.UserAgent = agent
	return rc, nil
}

// serveHTTP serves h on ln until ctx is done, then closes what is open.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shut)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
