// Package restconfig finds the cluster of fn's components (fn-gateway, fn-builder): a named
// kubeconfig, else the in-cluster config, else $KUBECONFIG or ~/.kube/config.
package restconfig

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load is the kubeconfig file's config when one is named, else the in-cluster config, else the
// one of $KUBECONFIG or ~/.kube/config.
func Load(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	switch {
	case err != nil && kubeconfig != "":
		return nil, fmt.Errorf("reading the kubeconfig %s: %w", kubeconfig, err)
	case err != nil:
		return nil, fmt.Errorf("no cluster: not in a cluster, and no kubeconfig (--kubeconfig or $KUBECONFIG): %w", err)
	}
	return cfg, nil
}
