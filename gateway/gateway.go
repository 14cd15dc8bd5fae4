package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/autoscaler"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	fninformers "fnkit.dev/fn/controller/client/informers/externalversions"
	fnlisters "fnkit.dev/fn/controller/client/listers/fn/v1alpha1"
	"fnkit.dev/fn/events"
	"fnkit.dev/fn/gateway/h1"
)

const (
	// timeoutGrace is added to a function's timeout at the gateway, so the runtime, which keeps
	// the function's own deadline, answers 504 itself first.
	timeoutGrace = time.Second
	// syncTimeout bounds the wait for the first list of Functions and EndpointSlices.
	syncTimeout = time.Minute
)

// Options configure a Gateway.
type Options struct {
	// Domain is the domain of functions' host names: NAME.NAMESPACE.DOMAIN (default "fn.local").
	Domain string
	// Logger receives one line per request and every error (default: JSON lines on stderr).
	// Requests log at Info, failures of the gateway (502, 503, 504) at Error.
	Logger *slog.Logger
	// DefaultTimeout is the timeout of a Function without spec.timeout (default 30s).
	DefaultTimeout time.Duration
	// AccessLog, when set, receives the line of every request (JSON, the fields the Logger's
	// line would have) instead of Logger, encoded by the gateway at a fraction of slog's cost.
	// Give it a LogBuffer. The Logger keeps everything else.
	AccessLog io.Writer

	// Autoscaler, when set, receives this gateway's report of every function's load each
	// ReportPeriod, and one at once when a request is held; AutoscalerURLs and
	// AutoscalerService name autoscalers reached over HTTP instead (every ready endpoint of
	// the Service "NAMESPACE/NAME" gets each report). With any of them, requests for a function
	// without a ready endpoint are held until one is ready; without, they are answered 503.
	Autoscaler        Reporter
	AutoscalerURLs    []string
	AutoscalerService string
	// ID names this gateway in its reports (default: the host name and a random suffix).
	ID string
	// ReportPeriod is the time between reports (default 1s); load is sampled ten times in it.
	ReportPeriod time.Duration
	// MaxHeld bounds the requests held per function (default DefaultMaxHeld); past it, 503.
	MaxHeld int
	// PeerService is the gateway's own Service, "NAMESPACE/NAME", when it runs in replicas
	// behind one: each applies its share of a function's rate limit (the limit divided by the
	// Service's ready endpoints). Empty: this gateway is the only one.
	PeerService string
	// ProbePods makes the gateway watch functions' Pods and probe a new pod's /_fn/ready
	// directly, so it takes requests as soon as it answers, before its EndpointSlice lists it
	// ready (default: on when requests are held).
	ProbePods *bool

	// Events, when set, is the event engine's queue: the gateway accepts asynchronous calls
	// into it and delivers them (package events); without, they are answered 503.
	Events *events.Queue
	// EventsDialer, when set, is the dialer Events connects with: New makes it dial the
	// endpoints of its Service.
	EventsDialer *ServiceDialer
}

// Reporter takes a gateway's reports of load; the autoscaler implements it.
type Reporter interface {
	Report(autoscaler.Report)
}

// Gateway routes requests to functions. It is an http.Handler.
type Gateway struct {
	opts       Options
	log        *slog.Logger
	hostSuffix string // "." + Domain

	fnLister fnlisters.FunctionLister
	triggers fnlisters.TriggerLister // nil without Options.Events
	slices   cache.Indexer

	table atomic.Pointer[table]
	mu    sync.Mutex
	dirty map[key]struct{}
	// revisions maps the key of a canary's route to its function's; only update's goroutine
	// uses it.
	revisions map[key]key
	kick      chan struct{}

	proxy     *httputil.ReverseProxy
	transport *http.Transport
	unrouted  atomic.Uint64

	tokens    accessTokens // of private functions, by namespace
	peerCount atomic.Int32 // ready endpoints of Options.PeerService

	async   *async        // nil without Options.Events
	reports *reporter     // nil without an autoscaler
	prober  *prober       // nil unless ProbePods
	pods    cache.Indexer // nil unless ProbePods
}

// New starts a Gateway for the cluster of cfg: it watches Functions and EndpointSlices in all
// namespaces until ctx is done, and returns once it has listed them.
func New(ctx context.Context, cfg *rest.Config, o Options) (*Gateway, error) {
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "fn-gateway")
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	fns, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Function client: %w", err)
	}
	return NewFromClients(ctx, kube, fns, o)
}

// NewFromClients is New with given clients, such as fake clientsets in tests.
func NewFromClients(ctx context.Context, kube kubernetes.Interface, fns versioned.Interface, o Options) (*Gateway, error) {
	if o.Domain == "" {
		o.Domain = "fn.local"
	}
	o.Domain = strings.ToLower(strings.Trim(o.Domain, "."))
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = v1alpha1.DefaultTimeout
	}
	if o.MaxHeld <= 0 {
		o.MaxHeld = DefaultMaxHeld
	}
	g := &Gateway{
		opts:       o,
		log:        o.Logger,
		hostSuffix: "." + o.Domain,
		dirty:      map[key]struct{}{},
		revisions:  map[key]key{},
		kick:       make(chan struct{}, 1),
		transport:  newTransport(),
	}
	g.table.Store(&table{routes: map[key]*route{}})
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      g.rewrite,
		Transport:    retryingTransport{g: g, base: g.transport},
		BufferPool:   h1.BufferPool{},
		ErrorHandler: g.proxyError,
		ErrorLog:     slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}

	kubeInformers := informers.NewSharedInformerFactoryWithOptions(kube, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = discoveryv1.LabelServiceName }),
		informers.WithTransform(stripManagedFields))
	fnInformers := fninformers.NewSharedInformerFactoryWithOptions(fns, 0, fninformers.WithTransform(stripManagedFields))
	sliceInformer := kubeInformers.Discovery().V1().EndpointSlices().Informer()
	if err := sliceInformer.AddIndexers(cache.Indexers{serviceIndex: sliceService}); err != nil {
		return nil, err
	}
	fnInformer := fnInformers.Fnkit().V1alpha1().Functions()
	g.fnLister = fnInformer.Lister()
	g.slices = sliceInformer.GetIndexer()
	if _, err := sliceInformer.AddEventHandler(g.handler(sliceKey)); err != nil {
		return nil, err
	}
	if o.PeerService != "" {
		count := func(any) {
			n := 0
			for range g.readyAddrs(o.PeerService) {
				n++
			}
			g.peerCount.Store(int32(n))
		}
		if _, err := sliceInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: count, UpdateFunc: func(_, obj any) { count(obj) }, DeleteFunc: count,
		}); err != nil {
			return nil, err
		}
	}
	// The access Secrets only (fn-gateway's RBAC allows no other): their tokens, hashed.
	secretInformers := informers.NewSharedInformerFactoryWithOptions(kube, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", v1alpha1.AccessSecretName).String()
		}),
		informers.WithTransform(stripManagedFields))
	secretInformer := secretInformers.Core().V1().Secrets().Informer()
	if _, err := secretInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { g.tokens.set(obj, false) },
		UpdateFunc: func(_, obj any) { g.tokens.set(obj, false) },
		DeleteFunc: func(obj any) { g.tokens.set(obj, true) },
	}); err != nil {
		return nil, err
	}
	if _, err := fnInformer.Informer().AddEventHandler(g.handler(functionKey)); err != nil {
		return nil, err
	}
	synced := []cache.InformerSynced{sliceInformer.HasSynced, fnInformer.Informer().HasSynced, secretInformer.HasSynced}
	if o.Events != nil { // the ingest routes events by the Triggers
		triggers := fnInformers.Fnkit().V1alpha1().Triggers()
		g.triggers = triggers.Lister()
		synced = append(synced, triggers.Informer().HasSynced)
	}
	if o.Autoscaler != nil || len(o.AutoscalerURLs) > 0 || o.AutoscalerService != "" {
		g.reports = newReporter(g, o)
	}
	if (o.ProbePods == nil && g.reports != nil) || (o.ProbePods != nil && *o.ProbePods) {
		podInformers := informers.NewSharedInformerFactoryWithOptions(kube, 0,
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = fn.FunctionLabelKey }),
			informers.WithTransform(stripManagedFields))
		podInformer := podInformers.Core().V1().Pods().Informer()
		if err := podInformer.AddIndexers(cache.Indexers{functionIndex: podFunction}); err != nil {
			return nil, err
		}
		g.prober = newProber(g)
		g.pods = podInformer.GetIndexer()
		mark := g.handler(podKey)
		if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { g.prober.update(obj, false); mark.OnAdd(obj, false) },
			UpdateFunc: func(old, obj any) { g.prober.update(obj, false); mark.OnUpdate(old, obj) },
			DeleteFunc: func(obj any) { g.prober.update(obj, true); mark.OnDelete(obj) },
		}); err != nil {
			return nil, err
		}
		podInformers.Start(ctx.Done())
		synced = append(synced, podInformer.HasSynced)
	}
	kubeInformers.Start(ctx.Done())
	secretInformers.Start(ctx.Done())
	fnInformers.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("listing Functions, EndpointSlices, the access Secrets and Pods: not done within %s: check the gateway's access to them (RBAC) and the API server", syncTimeout)
	}

	all, err := g.fnLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	if o.EventsDialer != nil {
		o.EventsDialer.g.Store(g)
	}
	if o.Events != nil {
		g.async = &async{q: o.Events, d: events.NewDispatcher(ctx, o.Events, g.deliveries(), o.Logger),
			s: events.NewScheduler(ctx, o.Events, o.Logger)}
	}
	keys := make(map[key]struct{}, len(all))
	for _, f := range all {
		keys[key{f.Namespace, f.Name}] = struct{}{}
	}
	g.update(keys)
	go g.syncRoutes(ctx.Done())
	if g.reports != nil {
		go g.reports.run(ctx.Done())
	}
	go func() {
		<-ctx.Done()
		g.transport.CloseIdleConnections()
	}()
	return g, nil
}

// InFlight is the number of requests to function namespace/name in flight through the gateway,
// including those held while it starts.
func (g *Gateway) InFlight(namespace, name string) int64 {
	if rt := g.table.Load().routes[key{namespace, name}]; rt != nil {
		return rt.stats.inflight.Load()
	}
	return 0
}

// target is the function a request is for, and how to forward its path.
type target struct {
	key
	// strip is set for path routing: the path forwarded is path (and rawPath, when the request's
	// path had a non-default escaping), without prefix /f/NAMESPACE/NAME.
	strip         bool
	path, rawPath string
	prefix        string
	// revision is the revision asked for (path /f/NS/NAME@REVISION/ or header Fn-Revision):
	// a number or a revision's name.
	revision string
}

// match finds the function a request is for: by host NAME.NAMESPACE.DOMAIN, else by path
// /f/NAMESPACE/NAME/.
func (g *Gateway) match(r *http.Request) (target, bool) {
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.ToLower(host)
	if len(host) > len(g.hostSuffix) && strings.HasSuffix(host, g.hostSuffix) {
		nn := host[:len(host)-len(g.hostSuffix)]
		if i := strings.IndexByte(nn, '.'); i > 0 && i < len(nn)-1 && strings.IndexByte(nn[i+1:], '.') < 0 {
			return target{key: key{ns: nn[i+1:], name: nn[:i]}}, true
		}
	}

	p := r.URL.Path
	if !strings.HasPrefix(p, "/f/") {
		return target{}, false
	}
	rest := p[len("/f/"):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return target{}, false
	}
	ns, name := rest[:i], rest[i+1:]
	if j := strings.IndexByte(name, '/'); j >= 0 {
		name = name[:j]
	}
	full, rev := name, ""
	if at := strings.IndexByte(name, '@'); at >= 0 {
		name, rev = name[:at], name[at+1:]
		if !dnsLabel(rev) {
			return target{}, false
		}
	}
	if !dnsLabel(ns) || !dnsLabel(name) {
		return target{}, false // "..", upper case, anything no namespace or function is named
	}
	t := target{key: key{ns, name}, strip: true, prefix: p[:len("/f/")+len(ns)+1+len(full)], revision: rev}
	if raw := r.URL.RawPath; raw != "" && !(raw == t.prefix || strings.HasPrefix(raw, t.prefix+"/")) {
		// The namespace or name was written with escapes ("ns%2Fname"): one function for the
		// decoded path, another for whatever reads it raw. Neither.
		return target{}, false
	}
	t.path = p[len(t.prefix):]
	if t.path == "" {
		t.path = "/"
	}
	if raw := r.URL.RawPath; raw != "" && strings.HasPrefix(raw, t.prefix) {
		t.rawPath = raw[len(t.prefix):]
		if t.rawPath == "" {
			t.rawPath = "/"
		}
	}
	return t, true
}

// dnsLabel reports whether s is a DNS label as Kubernetes names namespaces and Functions:
// lower-case letters, digits and '-', 1 to 63 characters, a letter or digit at each end.
func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// call is one proxied request. It is the request's context, so the proxy's hooks find it.
type call struct {
	context.Context // the client's, with the function's deadline
	parent          context.Context
	target
	rt  *route
	ep  *endpoint
	rw  statusWriter
	err error // why the gateway failed the request
	// cold is set for a request that was held until the function had a ready endpoint.
	cold bool
}

type callKey struct{}

// Value implements context.Context.
func (c *call) Value(k any) any {
	if _, ok := k.(callKey); ok {
		return c
	}
	return c.Context.Value(k)
}

// ServeHTTP routes a request to its function, by host, else by path. A function's own
// endpoints (/_fn/, for its probes and metrics) are not reached through it; the gateway's own
// (health, metrics) are on InternalHandler's port, not here.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t, ok := g.match(r)
	if !ok && strings.HasPrefix(r.URL.Path, asyncPrefix+"/") {
		g.serveAsync(w, r, start)
		return
	}
	if !ok && strings.HasPrefix(r.URL.Path, ingestPrefix) {
		g.serveIngest(w, r, start)
		return
	}
	g.serveRouted(w, r, t, start, ok && preferAsync(r.Header) && !delivered(r))
}

// serveRouted serves a request for function t (none when t is zero): forwarded, or accepted
// as an asynchronous call.
func (g *Gateway) serveRouted(w http.ResponseWriter, r *http.Request, t target, start time.Time, async bool) {
	ok := t.name != ""
	if ok && internalPath(t.functionPath(r)) {
		g.unrouted.Add(1)
		http.Error(w, "/_fn/ is a function's internal endpoints (probes, metrics): they are not served through the gateway", http.StatusNotFound)
		g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, http.StatusNotFound, time.Since(start), "", nil)
		return
	}
	if !ok {
		g.unrouted.Add(1)
		http.Error(w, "no function named in this request: use the path /f/NAMESPACE/NAME/ or the host NAME.NAMESPACE."+g.opts.Domain, http.StatusNotFound)
		g.logRequest(r.Context(), key{}, r.Method, r.URL.Path, http.StatusNotFound, time.Since(start), "", nil)
		return
	}
	tbl := g.table.Load()
	rt := tbl.routes[t.key]
	if rt == nil {
		g.unrouted.Add(1)
		http.Error(w, fmt.Sprintf("no function %q in namespace %q: fn list shows the deployed ones", t.name, t.ns), http.StatusNotFound)
		g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, http.StatusNotFound, time.Since(start), "", nil)
		return
	}
	if t.revision == "" {
		t.revision = r.Header.Get(RevisionHeader)
	}

	st := rt.stats
	if async {
		if f := g.accepted(rt, r, start); f.status != 0 {
			refuse(w, f)
			g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, f.status, time.Since(start), "", nil)
			return
		}
		status := g.accept(w, r, t, rt)
		g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, status, time.Since(start), "", nil)
		return
	}
	if f := g.admitted(rt, r, start); f.status != 0 {
		refuse(w, f)
		d := time.Since(start)
		st.observe(f.status, d)
		g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, f.status, d, "", nil)
		return
	}
	// Admitted as the function's; served by the revision chosen.
	if t.revision != "" {
		revRt, msg := tbl.revision(rt, t.revision)
		if revRt == nil {
			g.unrouted.Add(1)
			http.Error(w, msg, http.StatusNotFound)
			g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, http.StatusNotFound, time.Since(start), "", nil)
			return
		}
		rt = revRt
	} else {
		rt = tbl.split(rt, r)
	}
	st = rt.stats
	st.inflight.Add(1)
	st.arrivals.Add(1)
	c := &call{parent: r.Context(), target: t, rt: rt}
	c.rw.ResponseWriter = w
	ctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
	c.Context = ctx
	defer func() { // deferred, so it also runs when the proxy aborts a response (panic)
		cancel()
		if c.ep != nil {
			c.ep.inflight.Add(-1)
		}
		st.inflight.Add(-1)
		d := time.Since(start)
		status := c.rw.status
		if status == 0 {
			status = http.StatusOK // nothing written yet: the server answers 200
			if c.parent.Err() != nil {
				status = statusClientClosed
			}
		}
		st.observe(status, d)
		if c.cold && !c.rw.first.IsZero() {
			st.cold.observe(c.rw.first.Sub(start))
		}
		upstream := ""
		if c.ep != nil {
			upstream = c.ep.addr
		}
		g.logRequest(r.Context(), t.key, r.Method, r.URL.Path, status, d, upstream, c.err)
	}()

	ep := rt.pick()
	if ep == nil {
		ep = g.await(c)
		if ep == nil {
			return // answered
		}
	}
	ep.inflight.Add(1)
	c.ep = ep
	g.proxy.ServeHTTP(&c.rw, r.WithContext(c))
}

// functionPath is the path the function sees of r.
func (t target) functionPath(r *http.Request) string {
	if t.strip {
		return t.path
	}
	return r.URL.Path
}

// internalPath reports whether a function-relative path names the function's internal
// endpoints (/_fn/...), however it is written ("//_fn/x", "/a/../_fn/x"): the runtime matches
// them on the cleaned path.
func internalPath(p string) bool {
	if !strings.Contains(p, "/_fn") { // every request asks: no allocation for the usual answer
		return false
	}
	c := path.Clean("/" + p)
	return c == "/_fn" || strings.HasPrefix(c, "/_fn/")
}

// InternalHandler serves the gateway's own endpoints, for a port of their own that only the
// cluster reaches: /_gw/health (ok while it serves) and /_gw/metrics (Prometheus text).
func (g *Gateway) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_gw/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /_gw/metrics", func(w http.ResponseWriter, _ *http.Request) { g.serveMetrics(w) })
	g.asyncHandlers(mux)
	return mux
}

// ServeInternal serves InternalHandler on addr until ctx ends.
func ServeInternal(ctx context.Context, addr string, g *Gateway) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: g.InternalHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// statusClientClosed is the status recorded for requests whose client went away first.
const statusClientClosed = h1.StatusClientClosed

// logRequest writes the access log line of a request.
func (g *Gateway) logRequest(ctx context.Context, k key, method, path string, status int, d time.Duration, upstream string, err error) {
	level := slog.LevelInfo
	if err != nil && status >= 500 {
		level = slog.LevelError
	}
	if g.opts.AccessLog != nil {
		g.writeAccessLine(level.String(), k, method, path, status, d, upstream, err)
		return
	}
	if !g.log.Enabled(ctx, level) {
		return
	}
	attrs := [...]slog.Attr{
		slog.String("namespace", k.ns),
		slog.String("function", k.name),
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("upstream", upstream),
		{},
	}
	n := len(attrs) - 1
	if err != nil {
		attrs[n] = slog.String("error", err.Error())
		n++
	}
	g.log.LogAttrs(ctx, level, "request", attrs[:n]...)
}

// statusWriter records the status of a response and when its first byte went out.
type statusWriter struct {
	http.ResponseWriter
	status int
	first  time.Time
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		w.first = time.Now()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.first = time.Now()
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client, for streamed responses.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (for upgrades).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// GCPercent is the GOGC fn-gateway runs with unless GOGC is set: the gateway's live heap is
// small (routing table, buffers), so letting it grow to five times that between collections
// costs a few megabytes and saves about a twentieth of its CPU per request at saturation.
const GCPercent = 400

// Serve serves g on addr until ctx is done, then shuts down gracefully: it stops accepting
// connections and waits for requests in flight (up to 25 s) before returning.
func Serve(ctx context.Context, addr string, g *Gateway) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, g)
}

// ServeListener is Serve on a listener of the caller's.
func ServeListener(ctx context.Context, ln net.Listener, g *Gateway) error {
	return h1.Serve(ctx, ln, loopRouter{g}, g.log)
}
