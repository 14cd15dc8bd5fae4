package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	fnclient "fnkit.dev/fn/controller/client/clientset/versioned"
	"fnkit.dev/fn/platform"
)

// clusterFlags are the flags that choose a cluster and namespace.
//
// How fn finds its cluster: --kubeconfig or --context when given; else the local platform when
// it is up (fn up); else the usual kubeconfig ($KUBECONFIG, then ~/.kube/config).
type clusterFlags struct {
	kubeconfig string
	context    string
	namespace  string
}

func (c *clusterFlags) add(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the local platform when up, else $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&c.context, "context", "", "kubeconfig context")
	f.StringVarP(&c.namespace, "namespace", "n", "", "namespace (default: the context's, else default)")
}

// cluster is a chosen cluster: clients, the namespace, and the local platform if that is it.
type cluster struct {
	config    *rest.Config
	kube      kubernetes.Interface
	fns       fnclient.Interface
	namespace string
	local     *platform.State // nil unless the cluster is fn's local platform
}

func (c *clusterFlags) connect() (*cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	var local *platform.State
	switch {
	case c.kubeconfig != "" || c.context != "":
		rules.ExplicitPath = c.kubeconfig
	default:
		home, err := fnHome()
		if err != nil {
			return nil, err
		}
		st, err := platform.ReadState(home)
		switch {
		case err == nil:
			local, rules.ExplicitPath = st, st.Kubeconfig
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no cluster: run fn up for the local platform, or point --kubeconfig or $KUBECONFIG at one")
		}
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	ns := c.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	fns, err := fnclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &cluster{config: cfg, kube: kube, fns: fns, namespace: ns, local: local}, nil
}

// complete registers shell completion of -n with the cluster's namespaces and, when names is
// set, of the command's NAME argument with the namespace's functions.
func (c *clusterFlags) complete(cmd *cobra.Command, fa *Factory, names bool) {
	_ = cmd.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		cl, err := fa.Connect(c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(ctxOf(cmd), 5*time.Second)
		defer cancel()
		list, err := cl.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, ns := range list.Items {
			if strings.HasPrefix(ns.Name, prefix) {
				out = append(out, ns.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	if !names {
		return
	}
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := fa.Connect(c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(ctxOf(cmd), 5*time.Second)
		defer cancel()
		list, err := cl.fns.FnkitV1alpha1().Functions(cl.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, f := range list.Items {
			if strings.HasPrefix(f.Name, prefix) {
				out = append(out, f.Name)
			}
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
