package autoscaler

import (
	"context"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease, in the autoscaler's namespace, that elects the deciding replica.
const LeaseName = "fn-autoscaler"

// Election configures leader election.
type Election struct {
	// Namespace holds the Lease.
	Namespace string
	// Identity names this replica; a replica restarted under the same identity takes its lease
	// back at once.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's (defaults 15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunLeader runs the autoscaler's decisions while this replica holds the Lease, until ctx is
// done. Replicas that do not lead keep taking reports, so a new leader has a full window.
func (a *Autoscaler) RunLeader(ctx context.Context, e Election) {
	if e.LeaseDuration == 0 {
		e.LeaseDuration, e.RenewDeadline, e.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: e.Namespace},
		Client:     a.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.LeaseDuration,
			RenewDeadline:   e.RenewDeadline,
			RetryPeriod:     e.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					a.log.Infow("leading: deciding scale", "identity", e.Identity)
					a.Run(ctx)
				},
				OnStoppedLeading: func() { a.log.Infow("not leading", "identity", e.Identity) },
			},
		})
		if err != nil {
			a.log.Errorw("leader election", zap.Error(err))
			return
		}
		le.Run(ctx)
	}
}

// WatchConfig keeps the configuration in step with the ConfigMap config-autoscaler of namespace
// until ctx is done. An invalid ConfigMap is logged and the previous configuration kept.
func (a *Autoscaler) WatchConfig(ctx context.Context, namespace string) {
	f := informers.NewSharedInformerFactoryWithOptions(a.kube, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
		}))
	set := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		c, err := ParseConfig(cm.Data)
		if err != nil {
			a.log.Errorw("keeping the previous autoscaler configuration", zap.Error(err))
			return
		}
		a.SetConfig(c)
	}
	_, _ = f.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(any) { a.SetConfig(DefaultConfig) },
	})
	f.Start(ctx.Done())
}
