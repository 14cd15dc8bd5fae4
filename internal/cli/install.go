package cli

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/gitbuild"
	"fnkit.dev/fn/install"
	"fnkit.dev/fn/platform"
)

func newInstallCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	out := outputFlag{yaml: true}
	var o install.Options
	var gatewayService string
	var print bool
	var platforms []string
	timeout := 5 * time.Minute
	c := &cobra.Command{
		Use:   "install",
		Short: "Install fn's components (controller, gateway) on a cluster as Deployments",
		Long: `Install fn on the cluster of --kubeconfig/--context: build fn's images (fn-controller,
fn-gateway) from fn's source with ko for the platforms of the cluster's nodes, push them to
--registry, and apply config/ (the CRDs, the fn-system namespace, least-privilege RBAC, the
configuration, the Deployments, Services and the gateway's PodDisruptionBudget) with server-side
apply, images by digest; then wait until every component is available. Running it again changes
nothing unless something changed. --print writes the same manifests as one YAML stream instead
of applying them (for GitOps: kubectl apply -f, or commit it).

Functions are reached through the fn-gateway Service in fn-system (--gateway-service: a
LoadBalancer by default, or NodePort or ClusterIP behind your own ingress).`,
		Example: `  fn install --registry registry.example.com/fn
  fn install --print --registry registry.example.com/fn --platform linux/amd64 > fn.yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			o.GatewayService = corev1.ServiceType(gatewayService)
			if _, err := install.Manifests(o); err != nil {
				return &UsageError{fmt.Errorf("--gateway-service: %w", err)}
			}
			if o.Source == "" {
				wd, _ := os.Getwd()
				o.Source = install.FindSource(wd)
			}
			if err := install.CheckSource(o.Source); err != nil {
				return err
			}
			ctx := ctxOf(c)
			// The cluster is needed to apply, and to find its nodes' platforms.
			var cl *cluster
			if !print || len(platforms) == 0 {
				var err error
				if cl, err = fa.Connect(&cf); err != nil {
					return err
				}
			}
			if cl != nil && cl.local != nil && !cl.local.Install {
				return fmt.Errorf("the local platform runs fn's components in its own process: fn down, then fn up --install to run them as pods")
			}
			if cl != nil && cl.local != nil { // as fn up --install does
				home, err := fnHome()
				if err != nil {
					return err
				}
				lo, err := platform.InstallOptions(home, cl.local.Registry, cl.local.Gateway, strings.TrimPrefix(cl.local.Builder, "http://"))
				if err != nil {
					return err
				}
				o.Repo, o.FunctionRepo = cmp.Or(o.Repo, lo.Repo), cmp.Or(o.FunctionRepo, lo.FunctionRepo)
				o.GatewayURL, o.BuilderURL = cmp.Or(o.GatewayURL, lo.GatewayURL), cmp.Or(o.BuilderURL, lo.BuilderURL)
				o.Local = lo.Local
			}
			if o.Repo == "" {
				return &UsageError{fmt.Errorf("no registry to push fn's images to: pass --registry REGISTRY/PATH")}
			}
			if err := builder.CheckRegistry(ctx, o.Repo, o.Insecure); err != nil {
				return err
			}
			o.Platforms = platforms
			if len(o.Platforms) == 0 {
				ps, err := gitbuild.ClusterPlatforms(ctx, cl.kube)
				if err != nil {
					return fmt.Errorf("reading the platforms of the cluster's nodes: %w (or pass --platform)", err)
				}
				if len(ps) == 0 {
					return fmt.Errorf("the cluster has no Linux nodes to run fn on (or pass --platform)")
				}
				o.Platforms = ps
			}
			var err error
			if o.CacheDir, err = cacheDir(); err != nil {
				return err
			}
			o.Progress = s.ErrOut
			start := time.Now()
			objs, err := install.Render(ctx, o)
			if err != nil {
				return err
			}
			if print {
				b, err := install.Marshal(objs)
				if err != nil {
					return err
				}
				_, err = s.Out.Write(b)
				return err
			}
			fmt.Fprintf(s.ErrOut, "Applying %d objects\n", len(objs))
			res, err := install.Apply(ctx, cl.config, objs, s.ErrOut)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.ErrOut, "Waiting for fn's components to be available\n")
			if err := install.Wait(ctx, cl.config, objs, timeout, s.ErrOut); err != nil {
				return err
			}
			took := time.Since(start).Round(10 * time.Millisecond)
			if out.structured() {
				return out.print(s.Out, map[string]any{"created": res.Created, "changed": res.Changed, "unchanged": res.Unchanged, "seconds": took.Seconds()})
			}
			fmt.Fprintf(s.Out, "fn is installed in %s (%s, %s)\n", install.Namespace, res, took)
			return nil
		},
	}
	cf.add(c)
	f := c.Flags()
	f.StringVar(&o.Repo, "registry", "", "repository to push fn's images to, REGISTRY/PATH (default: the local platform's registry)")
	f.BoolVar(&o.Insecure, "insecure-registry", false, "allow plain HTTP and unverified TLS to the registry (loopback registries always may)")
	f.StringVar(&o.BuilderBase, "builder-base", "", "base image of fn-builder, holding Go and git (default: made from this machine's, for its platform)")
	f.StringVar(&o.FunctionRepo, "function-registry", "", "repository fn-builder pushes functions' images to (default: --registry/fns)")
	f.StringVar(&o.BuilderURL, "builder-url", "", "where clients reach fn-builder (git push, webhooks), recorded as functions' sources")
	f.StringVar(&o.Source, "source", "", "a checkout of fn to build the images from (default: the one holding the working directory)")
	f.StringVar(&gatewayService, "gateway-service", "LoadBalancer", "type of the gateway's Service: LoadBalancer, NodePort or ClusterIP")
	f.StringVar(&o.Domain, "domain", "", "domain of functions' host names at the gateway (default fn.local)")
	f.StringVar(&o.GatewayURL, "gateway-url", "", "where users reach the gateway, shown as functions' URLs")
	f.StringVar(&o.NATS, "nats", "", "URL of the cluster's NATS with JetStream (nats://HOST:PORT[,...]) for asynchronous calls, schedules and triggers (default: none; they answer 503)")
	f.StringSliceVar(&platforms, "platform", nil, "platforms to build for, e.g. linux/amd64,linux/arm64 (default: those of the cluster's nodes)")
	f.BoolVar(&print, "print", false, "write the manifests to stdout as one YAML stream instead of applying them")
	f.DurationVar(&timeout, "timeout", timeout, "how long to wait for the components to be available")
	out.add(c)
	return c
}

func newUninstallCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var o install.UninstallOptions
	c := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what fn install created; Functions are kept unless --functions",
		Long: `Remove fn's components from the cluster: the fn-system namespace with all it holds and fn's
cluster-wide RBAC. Functions (and the Deployments they own) are kept, and run on without a
controller, unless --functions, which removes fn's CRDs and with them every Function.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			if err := install.Uninstall(ctxOf(c), cl.config, o, s.ErrOut); err != nil {
				return err
			}
			fmt.Fprintln(s.Out, "fn is uninstalled")
			return nil
		},
	}
	cf.add(c)
	c.Flags().BoolVar(&o.Functions, "functions", false, "also remove fn's CRDs, and so every Function")
	return c
}
