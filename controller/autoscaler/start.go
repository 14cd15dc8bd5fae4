package autoscaler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"fnkit.dev/fn/controller/client/clientset/versioned"
	fninformers "fnkit.dev/fn/controller/client/informers/externalversions"
)

// DefaultNamespace holds the autoscaler's Lease and ConfigMap unless told otherwise.
const DefaultNamespace = "fn-system"

// StartOptions configure Start.
type StartOptions struct {
	Options
	// Election elects the deciding replica (Namespace default DefaultNamespace).
	Election Election
}

// Start runs an Autoscaler against the cluster of cfg until ctx is done: it watches Functions,
// Deployments and its ConfigMap, and decides while it holds the Lease. It returns once its
// informers have synced; give it reports (Report or ServeHTTP).
func Start(ctx context.Context, cfg *rest.Config, o StartOptions) (*Autoscaler, error) {
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "fn-autoscaler")
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	fns, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if o.Election.Namespace == "" {
		o.Election.Namespace = DefaultNamespace
	}
	kf := informers.NewSharedInformerFactory(kube, 0)
	ff := fninformers.NewSharedInformerFactory(fns, 0)
	deploys := kf.Apps().V1().Deployments()
	functions := ff.Fnkit().V1alpha1().Functions()
	a := New(kube, fns, functions.Lister(), deploys.Lister(), o.Options)
	// A request held at zero is decided at once; one arriving just after a Deployment changed is
	// decided on its current replicas.
	di, fi := deploys.Informer(), functions.Informer()
	kf.Start(ctx.Done())
	ff.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), di.HasSynced, fi.HasSynced) {
		return nil, fmt.Errorf("autoscaler: listing Functions and Deployments: not done within a minute: check its access to them (RBAC) and the API server")
	}
	if o.Config == nil {
		a.WatchConfig(ctx, o.Election.Namespace)
	}
	go a.RunLeader(ctx, o.Election)
	return a, nil
}

// Client sends reports to autoscalers over HTTP (POST /report), for gateways in processes of
// their own.
type Client struct {
	HTTP *http.Client
}

// Send posts r to the autoscaler at base (http://host:port).
func (c *Client) Send(ctx context.Context, base string, r Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/report", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("autoscaler %s: %s", base, resp.Status)
	}
	return nil
}
