package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// provider runs the node's pods. It implements virtual-kubelet's PodLifecycleHandler and
// PodNotifier: pod status changes are pushed to the pod controller as they happen.
type provider struct {
	nodeName    string
	stateDir    string
	log         *slog.Logger
	kube        kubernetes.Interface
	podLister   corev1listers.PodLister
	configMaps  corev1listers.ConfigMapLister
	secrets     corev1listers.SecretLister
	recorder    record.EventRecorder
	images      *imageStore
	net         *podNetwork // nil without root: pods share the host's network
	warm        *warmPool   // nil without root
	root        bool        // the agent runs as root: pods get namespaces, chroot and their users
	hostIP      net.IP      // the host as pods see it (the gateway, or the host's address)
	hostNetIP   net.IP      // the pod IP of pods on the host's network
	allocatable corev1.ResourceList
	apiService  *apiService // where pods reach the API server (nil: unknown)

	mu       sync.Mutex
	pods     map[string]*pod // by namespace/name
	notifyFn func(*corev1.Pod)
	stopping bool
	stopped  []*pod // the pods shutdown stopped
	wg       sync.WaitGroup
}

var (
	_ node.PodLifecycleHandler = (*provider)(nil)
	_ node.PodNotifier         = (*provider)(nil)
)

func podKey(namespace, name string) string { return namespace + "/" + name }

func (p *provider) lookup(namespace, name string) *pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[podKey(namespace, name)]
}

// CreatePod starts running pod; it returns at once, the pod's status follows through NotifyPods.
func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return errors.New("the node agent is stopping")
	}
	if old, ok := p.pods[key]; ok {
		if old.uid == pod.UID {
			return nil
		}
		return fmt.Errorf("pod %s: the previous pod of that name is still stopping", key)
	}
	pd := newPod(p, pod)
	p.pods[key] = pd
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pd.run()
	}()
	p.log.Info("pod accepted", "pod", key, "uid", pod.UID)
	return nil
}

// UpdatePod takes the pod's new labels, annotations and images (a container whose image
// changed restarts with the new one).
func (p *provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	pd := p.lookup(pod.Namespace, pod.Name)
	if pd == nil || pd.uid != pod.UID {
		return errdefs.NotFoundf("pod %s/%s is not running on this node", pod.Namespace, pod.Name)
	}
	pd.update(pod)
	return nil
}

// DeletePod stops the pod's containers (SIGTERM, then SIGKILL after the grace period) and
// frees what it holds; it returns at once. Once stopped, a pod marked for deletion is deleted
// from the API server. A pod this agent does not run but which is marked for deletion (left by
// a previous run) is deleted from the API server at once.
func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	pd := p.lookup(pod.Namespace, pod.Name)
	if pd == nil || pd.uid != pod.UID {
		if pod.DeletionTimestamp != nil {
			go p.forceDelete(pod.Namespace, pod.Name, pod.UID)
		}
		return errdefs.NotFoundf("pod %s/%s is not running on this node", pod.Namespace, pod.Name)
	}
	pd.terminate(gracePeriod(pod), true, pod.DeletionTimestamp != nil)
	return nil
}

// gracePeriod is how long a pod's containers get between SIGTERM and SIGKILL.
func gracePeriod(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// GetPod returns the pod with its current status.
func (p *provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pd := p.lookup(namespace, name)
	if pd == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not running on this node", namespace, name)
	}
	return pd.snapshot(), nil
}

// GetPodStatus returns the pod's current status.
func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods returns every pod the agent runs.
func (p *provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	pds := make([]*pod, 0, len(p.pods))
	for _, pd := range p.pods {
		pds = append(pds, pd)
	}
	p.mu.Unlock()
	out := make([]*corev1.Pod, len(pds))
	for i, pd := range pds {
		out[i] = pd.snapshot()
	}
	sort.Slice(out, func(i, j int) bool {
		return podKey(out[i].Namespace, out[i].Name) < podKey(out[j].Namespace, out[j].Name)
	})
	return out, nil
}

// NotifyPods registers the pod controller's callback for status changes.
func (p *provider) NotifyPods(ctx context.Context, f func(*corev1.Pod)) {
	p.mu.Lock()
	p.notifyFn = f
	p.mu.Unlock()
}

func (p *provider) notify(pod *corev1.Pod) {
	p.mu.Lock()
	f, stopping := p.notifyFn, p.stopping
	p.mu.Unlock()
	if f == nil || stopping {
		return
	}
	if p.podLister != nil {
		// A pod gone from the API server needs no status; the pod controller would wait for
		// it a while before giving up.
		if cur, err := p.podLister.Pods(pod.Namespace).Get(pod.Name); err != nil || cur.UID != pod.UID {
			return
		}
	}
	f(pod)
}

// remove forgets pd once it stopped.
func (p *provider) remove(pd *pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pods[pd.key] == pd {
		delete(p.pods, pd.key)
	}
}

// forceDelete deletes a pod whose containers are gone from the API server, as a kubelet does
// once a pod marked for deletion stopped.
func (p *provider) forceDelete(namespace, name string, uid types.UID) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.kube.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.log.Warn("deleting a stopped pod", "pod", podKey(namespace, name), "error", err)
	}
}

// shutdown stops every pod (each with its grace period) and waits until they are gone.
func (p *provider) shutdown() {
	p.mu.Lock()
	p.stopping = true
	pds := make([]*pod, 0, len(p.pods))
	for _, pd := range p.pods {
		pds = append(pds, pd)
	}
	p.mu.Unlock()
	for _, pd := range pds {
		pd.mu.Lock()
		grace := gracePeriod(pd.obj)
		pd.mu.Unlock()
		pd.terminate(grace, false, false)
	}
	p.wg.Wait()
	p.stopped = pds
}

// reportStopped writes the last statuses of the pods the agent stopped (containers terminated,
// not ready: Services stop routing to them) and marks the node not ready, until the agent runs
// again.
func (p *provider) reportStopped(nodeObj *corev1.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pd := range p.stopped {
		st := pd.snapshot()
		pods := p.kube.CoreV1().Pods(st.Namespace)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := pods.Get(ctx, st.Name, metav1.GetOptions{})
			if err != nil || cur.UID != st.UID {
				return err
			}
			cur.Status = st.Status
			_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil && !apierrors.IsNotFound(err) {
			p.log.Warn("reporting a stopped pod", "pod", pd.key, "error", err)
		}
	}
	now := metav1.Now()
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady",
		Message: "fn's node agent stopped", LastHeartbeatTime: now, LastTransitionTime: now,
	}}}})
	if _, err := p.kube.CoreV1().Nodes().PatchStatus(ctx, nodeObj.Name, patch); err != nil {
		p.log.Warn("marking the node not ready", "error", err)
	}
}

// GetContainerLogs serves the kubelet API's container logs (kubectl logs).
func (p *provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	pd := p.lookup(namespace, podName)
	if pd == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not running on this node", namespace, podName)
	}
	c := pd.container(containerName)
	if c == nil {
		return nil, errdefs.NotFoundf("container %q is not in pod %s/%s", containerName, namespace, podName)
	}
	o := logOptions{tail: -1, limitBytes: opts.LimitBytes, timestamps: opts.Timestamps, follow: opts.Follow, since: opts.SinceTime}
	if opts.Tail > 0 {
		o.tail = opts.Tail
	}
	if opts.SinceSeconds > 0 {
		o.since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	}
	if opts.Previous {
		path := PreviousLogPath(p.stateDir, namespace, podName, containerName)
		if _, err := os.Stat(path); err != nil {
			return nil, errdefs.NotFoundf("previous terminated container %q in pod %q not found", containerName, podName)
		}
		closed := make(chan struct{})
		close(closed)
		return readLogs(ctx, path, o, closed)
	}
	pd.mu.Lock()
	lf, waiting := c.logs, c.state.Waiting
	pd.mu.Unlock()
	if lf == nil {
		reason := "ContainerCreating"
		if waiting != nil {
			reason = waiting.Reason
		}
		return nil, errdefs.InvalidInputf("container %q in pod %q is waiting to start: %s", containerName, podName, reason)
	}
	return readLogs(ctx, LogPath(p.stateDir, namespace, podName, containerName), o, lf.done)
}

// PortForward connects stream to a port of the pod (kubectl port-forward).
func (p *provider) PortForward(ctx context.Context, namespace, podName string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	pd := p.lookup(namespace, podName)
	if pd == nil {
		return errdefs.NotFoundf("pod %s/%s is not running on this node", namespace, podName)
	}
	pd.mu.Lock()
	ip := pd.ip
	pd.mu.Unlock()
	if ip == nil {
		return errdefs.InvalidInputf("pod %s/%s has no IP yet", namespace, podName)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); errc <- err }()
	go func() { _, err := io.Copy(stream, conn); errc <- err }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	return err
}
