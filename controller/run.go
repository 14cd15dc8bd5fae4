package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/logging"
	"sigs.k8s.io/yaml"

	"fnkit.dev/fn/config"
	"fnkit.dev/fn/controller/autoscaler"
	"fnkit.dev/fn/controller/reconciler/function"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/controller/reconciler/trigger"
)

// The controller's defaults, on a cluster and on the local platform. A reconcile waits on its
// API writes, so the workers are many; the client's rate limit is above what one API server
// takes, so the server, not the client, paces a burst (bench/controller).
const (
	DefaultWorkers = 16
	DefaultQPS     = 500
	DefaultBurst   = 1000
)

// Options configure an in-process controller.
type Options struct {
	// Config shapes the Functions' children; zero fields take resources.DefaultConfig's.
	Config resources.Config
	// Logger receives the controller's logs (default: none).
	Logger *zap.SugaredLogger
	// Workers is the number of concurrent reconciles (default DefaultWorkers).
	Workers int
	// Autoscaler configures the concurrency and rps autoscaler that runs beside the reconciler.
	Autoscaler autoscaler.StartOptions
}

// Controller is a running controller.
type Controller struct {
	// Autoscaler takes gateways' reports.
	Autoscaler *autoscaler.Autoscaler
}

// Run runs the Function controller and the autoscaler against the cluster of cfg until ctx is
// done: the same as cmd/fn-controller, for the local platform and tests. It returns once
// informers are synced and both run; errors after that are logged.
func Run(ctx context.Context, cfg *rest.Config, o Options) (*Controller, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop().Sugar()
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	c := resources.DefaultConfig
	if o.Config.Port != 0 {
		c.Port = o.Config.Port
	}
	if o.Config.Domain != "" {
		c.Domain = o.Config.Domain
	}
	c.GatewayURL = o.Config.GatewayURL

	ctx = logging.WithLogger(ctx, o.Logger)
	ao := o.Autoscaler
	if ao.Logger == nil {
		ao.Logger = o.Logger.Named("autoscaler")
	}
	if ao.Election.Identity == "" {
		ao.Election.Identity = "fn-controller-" + string(uuid.NewUUID())
	}
	as, err := autoscaler.Start(ctx, cfg, ao)
	if err != nil {
		return nil, err
	}
	ctx = function.WithFigures(ctx, as) // canaries are judged on the gateways' reports
	ctx, informers := injection.Default.SetupInformers(ctx, cfg)
	impl := function.NewControllerWithConfig(ctx, configmap.NewStaticWatcher(), c)
	triggers := trigger.NewController(ctx, configmap.NewStaticWatcher())
	if err := controller.StartInformers(ctx.Done(), informers...); err != nil {
		return nil, fmt.Errorf("starting informers: %w", err)
	}
	go func() {
		if err := impl.RunContext(ctx, o.Workers); err != nil {
			o.Logger.Errorw("function controller stopped", zap.Error(err))
		}
	}()
	go func() {
		if err := triggers.RunContext(ctx, 2); err != nil {
			o.Logger.Errorw("trigger controller stopped", zap.Error(err))
		}
	}()
	return &Controller{Autoscaler: as}, nil
}

// InstallCRD creates or updates fn's CRDs (config.CRDs) and waits until the API server serves
// them.
func InstallCRD(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	var names, paths []string
	for _, path := range config.CRDs {
		data, err := config.Manifests.ReadFile(path)
		if err != nil {
			return err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		have, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		switch {
		case apierrs.IsNotFound(err):
			_, err = crds.Create(ctx, &crd, metav1.CreateOptions{})
		case err == nil:
			crd.ResourceVersion = have.ResourceVersion
			_, err = crds.Update(ctx, &crd, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("installing the CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
		for _, v := range crd.Spec.Versions {
			if v.Served {
				paths = append(paths, "/apis/"+crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Plural)
			}
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			got, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil || !established(got) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return err
	}
	// Established is not yet served: the API server makes a custom resource's storage and watch
	// cache on its first request. A controller's informers whose first list comes first fail it
	// and back off for about a second (that was most of fn up's wait for its controller); one
	// plain list each here makes them and proves the resources served.
	rc := client.ApiextensionsV1().RESTClient()
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, path := range paths {
			if last = rc.Get().AbsPath(path).Param("limit", "1").Do(ctx).Error(); last != nil {
				last = fmt.Errorf("listing %s: %w", path, last)
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("fn's CRDs are established but not served: %w", errors.Join(err, last))
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
