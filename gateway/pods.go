package gateway

import (
	"context"
	"fmt"
	"iter"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"fnkit.dev/fn/controller/apis/fn"
	"fnkit.dev/fn/controller/reconciler/function/resources"
)

// A function's new pod is probed directly: its /_fn/ready is asked every probeInterval from the
// moment the pod has an IP, so the gateway routes to it as soon as it
// answers, before the kubelet's readiness probe and the EndpointSlice say so. That is what
// makes scale from zero fast. The pod's EndpointSlice takes over once it lists it ready.
const (
	probeInterval = 2 * time.Millisecond
	// Past probeFast, a pod that is still not ready is asked every probeSlow: one that takes
	// long to start (or never does) costs little.
	probeFast    = 2 * time.Second
	probeSlow    = 100 * time.Millisecond
	probeTimeout = 250 * time.Millisecond
	probeFor     = 5 * time.Minute
)

// functionIndex indexes Pods by "NAMESPACE/FUNCTION", or "NAMESPACE/REVISION" for a pod of a
// revision under rollout: the key of the route it serves.
const functionIndex = "function"

func podFunction(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	k, ok := podRoute(p)
	if !ok {
		return nil, nil
	}
	return []string{k.ns + "/" + k.name}, nil
}

// podRoute is the key of the route pod p serves: its revision's, when it runs a revision under
// rollout (labelled with it), else its function's.
func podRoute(p *corev1.Pod) (key, bool) {
	if rev := p.Labels[fn.RevisionLabelKey]; rev != "" {
		return key{p.Namespace, rev}, true
	}
	if name := p.Labels[fn.FunctionLabelKey]; name != "" {
		return key{p.Namespace, name}, true
	}
	return key{}, false
}

// podKey is the key of the function a Pod event is about.
func podKey(obj any) (key, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return key{}, false
	}
	return podRoute(p)
}

// prober probes new pods and remembers those that answered ready.
type prober struct {
	g      *Gateway
	client *http.Client

	mu      sync.Mutex
	probing map[types.UID]context.CancelFunc
	ready   map[key]map[string]types.UID // address -> pod, for pods that answered
}

func newProber(g *Gateway) *prober {
	return &prober{
		g: g,
		client: &http.Client{Timeout: probeTimeout, Transport: &http.Transport{
			DialContext:       (&net.Dialer{Timeout: probeTimeout}).DialContext,
			DisableKeepAlives: true,
		}},
		probing: map[types.UID]context.CancelFunc{},
		ready:   map[key]map[string]types.UID{},
	}
}

// podAddr is the address of a pod's runtime port, once it has an IP: the node agent reports the
// IP as soon as the pod's sandbox has it, before the container starts, so probing overlaps the
// process's start. A pod that ended, or whose container ran and stopped, has none.
func podAddr(p *corev1.Pod) (string, bool) {
	if p.Status.PodIP == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return "", false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == resources.ContainerName && cs.State.Terminated != nil {
			return "", false
		}
		if cs.Name == resources.ContainerName && cs.State.Waiting != nil && cs.RestartCount > 0 {
			return "", false // restarting: its EndpointSlice says when it serves again
		}
	}
	port := 0
	for _, c := range p.Spec.Containers {
		if c.Name != resources.ContainerName {
			continue
		}
		for _, cp := range c.Ports {
			if cp.Name == resources.PortName || port == 0 {
				port = int(cp.ContainerPort)
			}
		}
	}
	if port == 0 {
		return "", false
	}
	return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), true
}

// update follows a pod's changes: it starts probing a new running pod, and forgets a pod that
// stopped, is going away or is gone.
func (pr *prober) update(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k, ok := podKey(p)
	if !ok {
		return
	}
	addr, live := podAddr(p)
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if deleted || !live {
		if cancel := pr.probing[p.UID]; cancel != nil {
			cancel()
			delete(pr.probing, p.UID)
		}
		pr.forget(k, p.UID)
		return
	}
	if _, ok := pr.probing[p.UID]; ok {
		return
	}
	for _, uid := range pr.ready[k] {
		if uid == p.UID {
			return // answered already
		}
	}
	if pr.g.listedReady(k, addr) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeFor)
	pr.probing[p.UID] = cancel
	go pr.probe(ctx, k, p.UID, addr)
}

// forget drops pod uid's ready address; the caller holds pr.mu.
func (pr *prober) forget(k key, uid types.UID) {
	for addr, u := range pr.ready[k] {
		if u == uid {
			delete(pr.ready[k], addr)
			if len(pr.ready[k]) == 0 {
				delete(pr.ready, k)
			}
			pr.g.markDirty(k)
		}
	}
}

// probe asks a pod's /_fn/ready until it answers 200.
func (pr *prober) probe(ctx context.Context, k key, uid types.UID, addr string) {
	url := "http://" + addr + "/_fn/ready"
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	slow := time.Now().Add(probeFast)
	for {
		if slow.Before(time.Now()) {
			t.Reset(probeSlow)
			slow = time.Now().Add(probeFor)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := pr.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if ctx.Err() != nil {
		return // forgotten meanwhile
	}
	if cancel := pr.probing[uid]; cancel != nil {
		cancel()
		delete(pr.probing, uid)
	}
	if pr.ready[k] == nil {
		pr.ready[k] = map[string]types.UID{}
	}
	pr.ready[k][addr] = uid
	pr.g.markDirty(k)
}

// readyAddrs are the addresses of function k's pods that answered ready.
func (pr *prober) readyAddrs(k key) []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make([]string, 0, len(pr.ready[k]))
	for addr := range pr.ready[k] {
		out = append(out, addr)
	}
	return out
}

// handedOver drops the probed addresses of k that its EndpointSlices now list ready.
func (pr *prober) handedOver(k key, listed map[string]bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for addr := range pr.ready[k] {
		if listed[addr] {
			delete(pr.ready[k], addr)
		}
	}
	if len(pr.ready[k]) == 0 {
		delete(pr.ready, k)
	}
}

// cannotStart are the reasons a container waits with that mean its pod will not serve soon.
var cannotStart = map[string]bool{
	"CannotRun": true, "ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CrashLoopBackOff": true, "CreateContainerConfigError": true, "CreateContainerError": true,
	"RunContainerError": true, "ErrImageNeverPull": true,
}

// failure is why none of function k's pods can serve, or "" when one might: every pod of it
// waits for a reason that does not pass by itself, or cannot be scheduled.
func (g *Gateway) failure(k key) string {
	if g.pods == nil {
		return ""
	}
	objs, _ := g.pods.ByIndex(functionIndex, k.ns+"/"+k.name)
	why := ""
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			continue
		}
		r := podFailure(p)
		if r == "" {
			return "" // this one may still serve
		}
		why = r
	}
	return why
}

// podFailure is why pod p cannot serve, or "".
func podFailure(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("pod %s failed: %s %s", p.Name, p.Status.Reason, p.Status.Message)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && cannotStart[w.Reason] {
			msg := w.Message
			if msg == "" && cs.LastTerminationState.Terminated != nil {
				t := cs.LastTerminationState.Terminated
				msg = fmt.Sprintf("last exit code %d %s", t.ExitCode, t.Reason)
			}
			return fmt.Sprintf("%s: %s", w.Reason, msg)
		}
	}
	return ""
}

// revisionIPs are the IPs of the pods of revision k that the gateway knows (none unless it
// watches pods).
func (g *Gateway) revisionIPs(k key) iter.Seq[string] {
	return func(yield func(string) bool) {
		if g.pods == nil {
			return
		}
		objs, _ := g.pods.ByIndex(functionIndex, k.ns+"/"+k.name)
		for _, obj := range objs {
			if p := obj.(*corev1.Pod); p.Status.PodIP != "" && !yield(p.Status.PodIP) {
				return
			}
		}
	}
}
