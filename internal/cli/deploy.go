package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"

	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/gitbuild"
	"fnkit.dev/fn/manifest"
	"fnkit.dev/fn/platform"
)

type deployOptions struct {
	name        string
	registry    string
	insecure    bool
	env         []string
	timeout     time.Duration
	concurrency int32
	minScale    int32
	maxScale    int32
	initial     int32
	target      int32
	metric      string
	window      time.Duration
	downDelay   time.Duration
	access      string
	rateLimit   int32
	rateBurst   int32
	wait        time.Duration
	createNS    bool
	gitURL      string
	gitRef      string
	gitPath     string
	gitSecret   string
	detach      bool
	canary      bool
	steps       []int32
	pause       time.Duration
	batchSize   string
	cluster     clusterFlags
	connect     func(*clusterFlags) (*cluster, error)
	out         outputFlag
}

func newDeployCommand(fa *Factory) *cobra.Command {
	c, _ := deployCommand(fa)
	return c
}

// deployCommand is fn deploy and the options its flags parse into.
func deployCommand(fa *Factory) (*cobra.Command, *deployOptions) {
	s := fa.IOStreams
	o := &deployOptions{connect: fa.Connect}
	c := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Build a function, push it, and run it on the cluster",
		Long: `Build the function in DIR (default: the current directory) into an image, push it (to the
local platform's registry when it is up, else --registry, $FN_REGISTRY or $KO_DOCKER_REPO),
create or update its Function, wait until it is Ready, and print its URL.

The Function's spec becomes exactly DIR/fn.yaml (when there is one) plus this deploy's flags:
what is in neither is gone after the deploy, so nothing given once lingers. Flags never write
fn.yaml; fn config edits it. The function's name is --name, else fn.yaml's name, else its
directory's name; its namespace -n, else fn.yaml's, else the context's.

With --git, fn's builder builds the head of --ref (main) of the repository, at --path, and
the Function is built from it from then on: its webhooks (and pushes to fn remote NAME)
rebuild it, and the fn.yaml of each commit configures it. fn deploy of a directory then
refuses to replace it, unless --detach says to stop building it from git.`,
		Example: `  fn deploy ./hello
  fn deploy . --name greeter --env GREETING=hi --min 1 --max 5
  fn deploy --git https://git.example/acme/fns.git --path hello --name hello`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.out.validate(); err != nil {
				return err
			}
			if err := o.validateFlags(c); err != nil {
				return err
			}
			if o.gitURL != "" {
				if len(args) == 1 {
					return &UsageError{errors.New("--git builds the repository: give no DIR")}
				}
				return o.runGit(c, s)
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return o.run(c, s, dir)
		},
	}
	f := c.Flags()
	f.StringVar(&o.name, "name", "", "function name (default: the directory's name)")
	f.StringVar(&o.registry, "registry", "", "repository to push to (default: the local platform's registry, else $FN_REGISTRY or $KO_DOCKER_REPO)")
	f.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP and unverified TLS to the registry")
	f.StringArrayVarP(&o.env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.DurationVar(&o.timeout, "timeout", 0, "per-request deadline (default 30s)")
	f.Int32Var(&o.concurrency, "concurrency", -1, "maximum in-flight requests per replica (0: unlimited)")
	f.Int32Var(&o.minScale, "min", -1, "minimum replicas")
	f.Int32Var(&o.maxScale, "max", -1, "maximum replicas")
	f.Int32Var(&o.initial, "initial", -1, "replicas a new function starts with (0: start at zero)")
	f.Int32Var(&o.target, "target", -1, "per-replica target of the metric: in-flight requests, requests per second, or CPU percent")
	f.StringVar(&o.metric, "metric", "", "what to scale on: concurrency, rps or cpu")
	f.DurationVar(&o.window, "window", 0, "the autoscaler's stable window, 2s to 1h (default the cluster's, 60s)")
	f.DurationVar(&o.downDelay, "scale-down-delay", -1, "how long a lower replica count must be wanted before it applies (default 30s)")
	f.StringVar(&o.access, "access", "", "who may invoke it: public, or private (only requests with a token of the namespace: fn token prints one)")
	f.Int32Var(&o.rateLimit, "rate-limit", 0, "requests per second the gateway lets through (over it: 429 with Retry-After)")
	f.Int32Var(&o.rateBurst, "rate-burst", 0, "with --rate-limit: requests let through at once after a quiet spell (default: the rate)")
	f.DurationVar(&o.wait, "wait", 3*time.Minute, "how long to wait for the function to be Ready (0: do not wait)")
	f.BoolVar(&o.createNS, "create-namespace", false, "create the namespace if it does not exist")
	f.StringVar(&o.gitURL, "git", "", "build the function from this git repository (by fn's builder), and from it on every push")
	f.StringVar(&o.gitRef, "ref", "", "with --git: the branch to build and follow (default main)")
	f.StringVar(&o.gitPath, "path", "", "with --git: the function's directory in the repository (default its root)")
	f.StringVar(&o.gitSecret, "git-secret", "", "with --git: the Secret whose username and password clone the repository (and whose webhook-secret, if any, signs its webhooks)")
	f.BoolVar(&o.detach, "detach", false, "deploy DIR over a function built from git, which stops building it from git")
	f.BoolVar(&o.canary, "canary", false, "roll the new revision out as a canary: a share of traffic per step (--steps), judged against the running one, promoted or rolled back by itself")
	f.Int32SliceVar(&o.steps, "steps", nil, "with --canary: the canary's shares of traffic in percent, increasing (default 5,25,50)")
	f.DurationVar(&o.pause, "pause", 0, "with --canary: how long each step lasts at least (default 1m); with --batch-size: the wait after each batch (default: until fn rollout resume)")
	f.StringVar(&o.batchSize, "batch-size", "", "roll the new revision out in batches of this many replicas (or a share, 25%), each waiting for fn rollout resume or --pause")
	o.cluster.add(c)
	o.cluster.complete(c, fa, false)
	o.out.yaml = true
	o.out.add(c)
	return c, o
}

func (o *deployOptions) run(c *cobra.Command, s IOStreams, dir string) error {
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	m, mpath, hasManifest, err := manifest.Load(dir)
	if err != nil {
		return err
	}
	if o.cluster.namespace == "" {
		o.cluster.namespace = m.Namespace
	}
	if _, err := o.spec(m, "fn.invalid/x@sha256:"+strings.Repeat("0", 64)); err != nil {
		if hasManifest {
			return &UsageError{fmt.Errorf("%s with this deploy's flags: %w", mpath, err)}
		}
		return &UsageError{fmt.Errorf("the flags: %w", err)}
	}
	cl, err := o.connect(&o.cluster)
	if err != nil {
		return err
	}
	if err := o.ensureNamespace(ctx, s, cl); err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = m.Name
	}
	repo := o.registry
	switch {
	case repo != "":
	case cl.local != nil:
		repo = cl.local.Registry + "/fns"
	case os.Getenv("FN_REGISTRY") != "":
		repo = os.Getenv("FN_REGISTRY")
	case os.Getenv("KO_DOCKER_REPO") != "":
		repo = os.Getenv("KO_DOCKER_REPO")
	default:
		return &UsageError{errors.New("no registry to push to: pass --registry, set FN_REGISTRY, or run fn up for the local platform")}
	}
	cache, err := cacheDir()
	if err != nil {
		return err
	}
	fn, err := builder.Scaffold(dir, name, cache)
	if err != nil {
		return err
	}
	if err := o.checkNotFromGit(ctx, cl, fn.Name); err != nil {
		return err
	}
	if err := builder.CheckRegistry(ctx, repo, o.insecure); err != nil {
		return err
	}
	if cl.local != nil && repo == cl.local.Registry+"/fns" {
		home, err := fnHome()
		if err != nil {
			return err
		}
		if err := platform.CheckDiskSpace(home); err != nil {
			return fmt.Errorf("not building %s: %w", fn.Name, err)
		}
	}
	start := time.Now()
	fmt.Fprintf(s.ErrOut, "Building %s (%s function %s)...\n", fn.Name, fn.Signature.Kind, fn.Signature.Pos)
	// For the architectures of the cluster's nodes, so that it runs wherever it is scheduled.
	platforms, err := gitbuild.ClusterPlatforms(ctx, cl.kube)
	if err != nil {
		fmt.Fprintf(s.ErrOut, "Cannot read the cluster's Nodes (%v): building for linux/amd64.\n", err)
	}
	img, err := fn.BuildImage(ctx, builder.ImageOptions{Progress: s.ErrOut, Insecure: o.insecure, Platforms: platforms})
	if err != nil {
		return err
	}
	ref, err := img.Push(ctx, repo, o.insecure)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Pushed %s (%s).\n", ref, time.Since(start).Round(time.Millisecond))

	spec, err := o.spec(m, ref.String())
	if err != nil {
		return err
	}
	f, err := o.apply(ctx, cl, fn.Name, spec)
	if err != nil {
		return err
	}
	return o.finish(ctx, s, cl, f, start)
}

// finish waits (with --wait) until f is Ready, then prints it: its URL, or -o's form.
func (o *deployOptions) finish(ctx context.Context, s IOStreams, cl *cluster, f *v1alpha1.Function, start time.Time) error {
	if f.Spec.Access == v1alpha1.AccessPrivate {
		// Callable at once: the namespace's token exists (made if not).
		if _, made, err := accessToken(ctx, cl, false); err != nil {
			return fmt.Errorf("function %s is private: %w", f.Name, err)
		} else if made {
			fmt.Fprintf(s.ErrOut, "Made the access token of namespace %s (Secret %s).\n", cl.namespace, v1alpha1.AccessSecretName)
		}
		fmt.Fprintf(s.ErrOut, "Function %s is private: requests need Authorization: Bearer $(fn token -n %s); fn invoke sends it.\n", f.Name, cl.namespace)
	}
	if o.wait > 0 {
		var err error
		if f, err = waitFunctionReady(ctx, s, cl, f, o.wait); err != nil {
			return err
		}
		fmt.Fprintf(s.ErrOut, "Function %s is ready (%s).\n", f.Name, time.Since(start).Round(time.Millisecond))
		if ro := f.Status.Rollout; ro != nil && !ro.Phase.Done() {
			fmt.Fprintf(s.ErrOut, "%s rollout of %s under way: %s runs, fn rollout status %s -w follows it.\n", ro.Strategy, ro.Revision, ro.From, f.Name)
		}
	}
	if o.out.structured() {
		return o.out.print(s.Out, forOutput(f))
	}
	if f.Status.URL != nil {
		fmt.Fprintln(s.Out, f.Status.URL.String())
	}
	return nil
}

// checkNotFromGit refuses to replace a Function built from git with a directory's build (the
// next push would replace it back), unless --detach.
func (o *deployOptions) checkNotFromGit(ctx context.Context, cl *cluster, name string) error {
	if o.detach || name == "" {
		return nil
	}
	f, err := cl.fns.FnkitV1alpha1().Functions(cl.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil || f.Spec.Source == nil || f.Spec.Source.Git == nil {
		return nil // none yet, or the apply will say what is wrong
	}
	g := f.Spec.Source.Git
	return fmt.Errorf("function %s is built from git (%s, branch %s): push to it to deploy, or pass --detach to deploy this directory and stop building it from git",
		name, g.URL, cmp.Or(g.Ref, "main"))
}

// runGit is fn deploy --git.
func (o *deployOptions) runGit(c *cobra.Command, s IOStreams) error {
	ctx := ctxOf(c)
	for _, fl := range []string{"env", "timeout", "concurrency", "min", "max", "initial", "target", "metric", "window", "scale-down-delay", "access", "rate-limit", "rate-burst", "registry", "insecure", "detach"} {
		if c.Flags().Changed(fl) {
			return &UsageError{fmt.Errorf("--%s with --git: a build from git is configured by the fn.yaml of its commit; edit it there", fl)}
		}
	}
	name := o.name
	if name == "" {
		name = path.Base(strings.TrimSuffix(strings.TrimRight(o.gitURL, "/"), ".git"))
		if p := strings.Trim(o.gitPath, "/"); p != "" {
			name = path.Base(p)
		}
	}
	if msg := dnsLabelErrors(name); msg != "" {
		return &UsageError{fmt.Errorf("function name %q (from the repository; --name sets it): %s", name, msg)}
	}
	if o.gitPath != "" && (path.IsAbs(o.gitPath) || strings.Contains("/"+o.gitPath+"/", "/../")) {
		return &UsageError{fmt.Errorf("--path %q: want a directory inside the repository", o.gitPath)}
	}
	cl, err := o.connect(&o.cluster)
	if err != nil {
		return err
	}
	if err := o.ensureNamespace(ctx, s, cl); err != nil {
		return err
	}
	start := time.Now()
	f, err := o.deployGit(ctx, s, cl, name)
	if err != nil {
		return err
	}
	return o.finish(ctx, s, cl, f, start)
}

// validateFlags checks the flags alone, before fn.yaml is read.
func (o *deployOptions) validateFlags(c *cobra.Command) error {
	for _, kv := range o.env {
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return &UsageError{fmt.Errorf("--env %q: want NAME=VALUE", kv)}
		case v1alpha1.ReservedEnv(k):
			return &UsageError{fmt.Errorf("--env %s: PORT and names beginning with FN_ are set by fn: use --timeout, --concurrency and the scale flags instead", k)}
		}
	}
	set := c.Flags().Changed
	if set("timeout") && o.timeout <= 0 {
		return &UsageError{fmt.Errorf("--timeout %s: want a duration > 0", o.timeout)}
	}
	if set("concurrency") && o.concurrency < 0 {
		return &UsageError{fmt.Errorf("--concurrency %d: want 0 (unlimited) or more", o.concurrency)}
	}
	for _, n := range []struct {
		flag string
		v    int32
	}{{"min", o.minScale}, {"max", o.maxScale}, {"initial", o.initial}, {"target", o.target}} {
		if set(n.flag) && n.v < 0 {
			return &UsageError{fmt.Errorf("--%s %d: want 0 or more", n.flag, n.v)}
		}
	}
	if set("access") && o.access != string(v1alpha1.AccessPublic) && o.access != string(v1alpha1.AccessPrivate) {
		return &UsageError{fmt.Errorf("--access %q: want public or private", o.access)}
	}
	if set("rate-limit") && o.rateLimit < 1 {
		return &UsageError{fmt.Errorf("--rate-limit %d: want 1 or more requests per second", o.rateLimit)}
	}
	if set("rate-burst") && (o.rateBurst < 1 || !set("rate-limit")) {
		return &UsageError{fmt.Errorf("--rate-burst %d: want 1 or more, with --rate-limit", o.rateBurst)}
	}
	if set("scale-down-delay") && o.downDelay < 0 {
		return &UsageError{fmt.Errorf("--scale-down-delay %s: want a duration >= 0", o.downDelay)}
	}
	if set("window") && o.window <= 0 {
		return &UsageError{fmt.Errorf("--window %s: want a duration from %s to %s", o.window, v1alpha1.MinWindow, v1alpha1.MaxWindow)}
	}
	if err := o.scale().Validate(); err != nil {
		return &UsageError{fmt.Errorf("scale flags: %s", strings.ReplaceAll(err.Error(), "\n", "; "))}
	}
	if o.canary && o.batchSize != "" {
		return &UsageError{errors.New("--canary and --batch-size are two strategies: give one")}
	}
	if set("steps") && !o.canary {
		return &UsageError{errors.New("--steps: give it with --canary")}
	}
	if set("pause") && !o.canary && o.batchSize == "" {
		return &UsageError{errors.New("--pause: give it with --canary or --batch-size")}
	}
	if r := o.rollout(); r != nil {
		if err := r.Validate(); err != nil {
			return &UsageError{fmt.Errorf("rollout flags: %s", strings.ReplaceAll(err.Error(), "\n", "; "))}
		}
	}
	return nil
}

// rollout is what the rollout flags set, or nil.
func (o *deployOptions) rollout() *v1alpha1.Rollout {
	var r *v1alpha1.Rollout
	switch {
	case o.canary:
		r = &v1alpha1.Rollout{Strategy: v1alpha1.RolloutCanary, Steps: o.steps}
	case o.batchSize != "":
		b := intstr.Parse(o.batchSize)
		r = &v1alpha1.Rollout{Strategy: v1alpha1.RolloutBatched, BatchSize: &b}
	default:
		return nil
	}
	if o.pause > 0 {
		r.Pause = &metav1.Duration{Duration: o.pause}
	}
	return r
}

// spec is the Function spec this deploy asks for: fn.yaml's, with the flags over it, running
// image. It is checked as the API server will check it.
func (o *deployOptions) spec(m *manifest.Manifest, image string) (v1alpha1.FunctionSpec, error) {
	spec := m.Spec(image)
	for _, kv := range o.env {
		k, v, _ := strings.Cut(kv, "=")
		setEnv(&spec.Env, k, v)
	}
	if o.timeout > 0 {
		spec.Timeout = &metav1.Duration{Duration: o.timeout}
	}
	if o.concurrency >= 0 {
		spec.Concurrency = ptr.To(o.concurrency)
	}
	if o.access != "" {
		spec.Access = v1alpha1.Access(o.access)
	}
	if r := o.rollout(); r != nil {
		if have := spec.Rollout; have != nil && have.Analysis != nil && r.Strategy == v1alpha1.RolloutCanary {
			r.Analysis = have.Analysis // fn.yaml's thresholds stay
		}
		spec.Rollout = r
	}
	if o.rateLimit > 0 {
		spec.RateLimit = &v1alpha1.RateLimit{RPS: o.rateLimit}
		if o.rateBurst > 0 {
			spec.RateLimit.Burst = ptr.To(o.rateBurst)
		}
	}
	if sc := o.scale(); *sc != (v1alpha1.Scale{}) {
		if spec.Scale == nil {
			spec.Scale = &v1alpha1.Scale{}
		}
		have := spec.Scale
		if sc.Min != nil {
			have.Min = sc.Min
		}
		if sc.Max != nil {
			have.Max = sc.Max
		}
		if sc.Initial != nil {
			have.Initial = sc.Initial
		}
		if sc.Target != nil {
			have.Target = sc.Target
		}
		if sc.Metric != "" {
			have.Metric = sc.Metric
		}
		if sc.Window != nil {
			have.Window = sc.Window
		}
		if sc.ScaleDownDelay != nil {
			have.ScaleDownDelay = sc.ScaleDownDelay
		}
	}
	if fe := spec.Validate(context.Background()); fe != nil {
		return spec, errors.New(strings.ReplaceAll(fe.Error(), "\n", ": "))
	}
	return spec, nil
}

// ensureNamespace checks the namespace exists before anything is built, and creates it with
// --create-namespace. A user who may not read namespaces is let through: the API server will
// say what is wrong when the Function is applied.
func (o *deployOptions) ensureNamespace(ctx context.Context, s IOStreams, cl *cluster) error {
	_, err := cl.kube.CoreV1().Namespaces().Get(ctx, cl.namespace, metav1.GetOptions{})
	switch {
	case err == nil, apierrs.IsForbidden(err):
		return nil
	case !apierrs.IsNotFound(err):
		return fmt.Errorf("reading namespace %s: %w", cl.namespace, err)
	case !o.createNS:
		return fmt.Errorf("namespace %s does not exist: create it (kubectl create namespace %s) or pass --create-namespace", cl.namespace, cl.namespace)
	}
	_, err = cl.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cl.namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrs.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", cl.namespace, err)
	}
	fmt.Fprintf(s.ErrOut, "Created namespace %s.\n", cl.namespace)
	return nil
}

// apply creates the Function or makes its spec exactly spec. An update that meets a concurrent
// write (the autoscaler records its reason on the Function) is redone on the newer object.
func (o *deployOptions) apply(ctx context.Context, cl *cluster, name string, spec v1alpha1.FunctionSpec) (f *v1alpha1.Function, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		f, err = applyFunction(ctx, cl, name, spec)
		return err
	})
	return f, err
}

func applyFunction(ctx context.Context, cl *cluster, name string, spec v1alpha1.FunctionSpec) (*v1alpha1.Function, error) {
	fns := cl.fns.FnkitV1alpha1().Functions(cl.namespace)
	f, err := fns.Get(ctx, name, metav1.GetOptions{})
	create := apierrs.IsNotFound(err)
	switch {
	case create:
		f = &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.namespace}}
	case err != nil:
		return nil, fmt.Errorf("reading function %s: %w", name, err)
	}
	f.Spec = *spec.DeepCopy()
	if create {
		f, err = fns.Create(ctx, f, metav1.CreateOptions{})
	} else {
		f, err = fns.Update(ctx, f, metav1.UpdateOptions{})
	}
	if apierrs.IsConflict(err) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("applying function %s: %w", name, err)
	}
	return f, nil
}

// scale is what the scale flags set.
func (o *deployOptions) scale() *v1alpha1.Scale {
	sc := &v1alpha1.Scale{Metric: v1alpha1.ScaleMetric(o.metric)}
	if o.minScale >= 0 {
		sc.Min = ptr.To(o.minScale)
	}
	if o.maxScale >= 0 {
		sc.Max = ptr.To(o.maxScale)
	}
	if o.initial >= 0 {
		sc.Initial = ptr.To(o.initial)
	}
	if o.target >= 0 {
		sc.Target = ptr.To(o.target)
	}
	if o.window != 0 {
		sc.Window = &metav1.Duration{Duration: o.window}
	}
	if o.downDelay >= 0 {
		sc.ScaleDownDelay = &metav1.Duration{Duration: o.downDelay}
	}
	return sc
}

func setEnv(env *[]corev1.EnvVar, k, v string) {
	for i := range *env {
		if (*env)[i].Name == k {
			(*env)[i] = corev1.EnvVar{Name: k, Value: v}
			return
		}
	}
	*env = append(*env, corev1.EnvVar{Name: k, Value: v})
}

// waitFunctionReady waits until the Function's status reflects its current generation and is Ready,
// showing progress, failing fast when one of its pods cannot run, and saying why a pod is not
// ready (its readiness probe's answer) as soon as its probe has failed its threshold.
func waitFunctionReady(ctx context.Context, s IOStreams, cl *cluster, f *v1alpha1.Function, d time.Duration) (*v1alpha1.Function, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	since := time.Now().Add(-time.Second) // events carry seconds
	fns := cl.fns.FnkitV1alpha1().Functions(f.Namespace)
	var last, notReady string
	say := func(msg string) {
		if msg != last {
			fmt.Fprintln(s.ErrOut, msg)
			last = msg
		}
	}
	for {
		got, err := fns.Get(ctx, f.Name, metav1.GetOptions{})
		if err == nil {
			f = got
			current := f.Status.ObservedGeneration == f.Generation
			if current && f.Status.IsReady() {
				return f, nil
			}
			if c := f.Status.GetCondition(apis.ConditionReady); current && c != nil {
				switch {
				case c.IsFalse():
					return nil, fmt.Errorf("function %s is not ready: %s: %s", f.Name, c.Reason, c.Message)
				case c.Reason == "MinimumReplicasUnavailable" || c.Reason == "Deploying" || c.Reason == "RollingOut":
					// Progress, not a problem: a new function's replicas are starting.
					say(fmt.Sprintf("  Starting: %d of %d replicas ready", f.Status.ReadyReplicas, max(f.Status.DesiredReplicas, 1)))
				case c.Reason != "":
					say(fmt.Sprintf("  %s: %s", c.Reason, c.Message))
				}
			}
			why, stuck := podProblem(ctx, cl, f, since)
			if why != "" && !stuck {
				return nil, fmt.Errorf("function %s cannot run: %s", f.Name, why)
			}
			if stuck && why != notReady {
				notReady = why
				say("  " + why)
			}
		}
		select {
		case <-ctx.Done():
			if notReady != "" {
				return nil, fmt.Errorf("function %s not ready within %s: %s: see fn describe %s", f.Name, d, notReady, f.Name)
			}
			return nil, fmt.Errorf("function %s not ready within %s (last: %s): see fn describe %s", f.Name, d, strings.TrimSpace(last), f.Name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podProblem describes a pod of the function that cannot run (with its last log lines when it
// crashes), or, with stuck true, one whose readiness probe failed since then (with the probe's
// answer): that may yet pass.
func podProblem(ctx context.Context, cl *cluster, f *v1alpha1.Function, since time.Time) (why string, stuck bool) {
	pods, err := cl.functionPods(ctx, f.Name)
	if err != nil {
		return "", false
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Image != f.Spec.Image && cs.Image != "" {
				continue // the previous version, going away
			}
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "CannotRun", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerError":
					return fmt.Sprintf("pod %s: %s: %s", p.Name, w.Reason, w.Message), false
				case "CrashLoopBackOff":
					msg := fmt.Sprintf("pod %s: %s: %s", p.Name, w.Reason, w.Message)
					if t := cs.LastTerminationState.Terminated; t != nil {
						msg += fmt.Sprintf(" (exit code %d)", t.ExitCode)
					}
					if tail := lastLogLines(ctx, cl, p.Name, cs.Name, 5); tail != "" {
						msg += "; its last log lines: " + tail
					}
					return msg, false
				}
			}
			if cs.State.Running != nil && !cs.Ready {
				if msg := probeFailure(ctx, cl, p.Name, since); msg != "" {
					return fmt.Sprintf("pod %s is not ready: %s", p.Name, msg), true
				}
			}
		}
	}
	return "", false
}

// lastLogLines are the last n lines the crashed container wrote, on one line.
func lastLogLines(ctx context.Context, cl *cluster, pod, container string, n int64) string {
	b, err := cl.kube.CoreV1().Pods(cl.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Previous: true, TailLines: &n}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " | ")
}

// probeFailure is the newest "Readiness probe failed" of pod since then.
func probeFailure(ctx context.Context, cl *cluster, pod string, since time.Time) string {
	evs, err := cl.kube.CoreV1().Events(cl.namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod + ",reason=Unhealthy"})
	if err != nil {
		return ""
	}
	var newest *corev1.Event
	for i := range evs.Items {
		e := &evs.Items[i]
		at := e.LastTimestamp.Time
		if e.EventTime.After(at) {
			at = e.EventTime.Time
		}
		if at.Before(since) || !strings.HasPrefix(e.Message, "Readiness probe failed") {
			continue
		}
		if newest == nil || at.After(newest.LastTimestamp.Time) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return newest.Message
}
