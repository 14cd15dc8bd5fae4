package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"fnkit.dev/fn/internal/diskspace"
)

func diskPressure(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeDiskPressure {
			return c
		}
	}
	return corev1.NodeCondition{}
}

// A state directory with less free than the reserve puts the Node under disk pressure, with the
// reason in the condition's message; the rest of the Node's status is the registered one.
func TestDiskPressure(t *testing.T) {
	dir := t.TempDir()
	free, err := diskspace.Free(dir)
	if err != nil {
		t.Fatal(err)
	}
	template := nodeObject("n", "10.244.0.0/24", dir, 10250)
	d := &diskPressureNode{template: template, dir: dir, every: 10 * time.Millisecond}
	d.reserve.Store(free + 1<<40)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan *corev1.Node, 1)
	d.NotifyNodeStatus(ctx, func(n *corev1.Node) { got <- n })
	select {
	case n := <-got:
		c := diskPressure(n)
		if c.Status != corev1.ConditionTrue || !strings.Contains(c.Message, dir) {
			t.Errorf("DiskPressure under the reserve: %+v, want True naming %s", c, dir)
		}
		if r := n.Status.Conditions[0]; r.Type != corev1.NodeReady || r.Status != corev1.ConditionTrue {
			t.Errorf("the Node's other conditions changed: %+v", n.Status.Conditions)
		}
		if diskPressure(template).Status != corev1.ConditionFalse {
			t.Errorf("the template was changed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no node status under the reserve")
	}

	// Room again: False.
	d.reserve.Store(0)
	select {
	case n := <-got:
		if c := diskPressure(n); c.Status != corev1.ConditionFalse {
			t.Errorf("DiskPressure with room: %+v, want False", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no node status once there was room")
	}
}
