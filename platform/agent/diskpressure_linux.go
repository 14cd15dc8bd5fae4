package agent

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/internal/diskspace"
)

// diskCheckInterval is how often the agent looks at the free space of its state directory.
const diskCheckInterval = 10 * time.Second

// diskPressureNode keeps the Node's DiskPressure condition true while the file system of the
// agent's state (images and pods) has less than reserve free, as a kubelet's eviction
// threshold on its node file system does. The node lifecycle controller then taints the Node
// (node.kubernetes.io/disk-pressure:NoSchedule): no new pod is scheduled there until space is
// back. Pods that run go on running (nothing is evicted).
type diskPressureNode struct {
	node.NaiveNodeProvider
	template *corev1.Node // the Node's status, but for DiskPressure
	dir      string
	reserve  atomic.Int64
	every    time.Duration
}

// NotifyNodeStatus calls cb with the Node each time its disk pressure changes, until ctx is done.
func (d *diskPressureNode) NotifyNodeStatus(ctx context.Context, cb func(*corev1.Node)) {
	go func() {
		tick := time.NewTicker(d.every)
		defer tick.Stop()
		pressure := false // as registered
		for {
			err := diskspace.Check(d.reserve.Load(), d.dir)
			if now := err != nil; now != pressure {
				pressure = now
				n := d.template.DeepCopy()
				setDiskPressure(n, err, time.Now())
				cb(n)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// setDiskPressure sets n's DiskPressure condition from low (a *diskspace.LowError, or nil when
// there is room), as changed at now.
func setDiskPressure(n *corev1.Node, low error, now time.Time) {
	c := corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure",
		Message: "kubelet has no disk pressure", LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
	if low != nil {
		c.Status, c.Reason, c.Message = corev1.ConditionTrue, "KubeletHasDiskPressure", low.Error()
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeDiskPressure {
			n.Status.Conditions[i] = c
			return
		}
	}
	n.Status.Conditions = append(n.Status.Conditions, c)
}
