package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// pod is a pod the agent runs: its sandbox (namespaces and network), its volumes and one
// supervisor per container.
type pod struct {
	p               *provider
	key             string
	namespace, name string
	uid             types.UID
	restartPolicy   corev1.RestartPolicy
	dir             string // StateDir/pods/<uid>: containers' roots, volumes, /etc files, pid records

	ctx    context.Context // canceled when the pod is to stop
	cancel context.CancelFunc

	mu          sync.Mutex
	obj         *corev1.Pod // the latest pod from the API server (its status as it was then)
	ip          net.IP
	hostNetwork bool
	startTime   metav1.Time
	sandboxMsg  string // why the sandbox is not ready yet
	sandboxOK   bool
	netID       string // what the pod's network is attached as: its UID, or a warm sandbox's id
	initialized bool
	terminal    corev1.PodPhase // Succeeded or Failed once the pod ended for good
	inits       []*container
	containers  []*container
	conditions  map[corev1.PodConditionType]*corev1.PodCondition
	deadline    time.Time // when stopping: SIGKILL time
	deleting    bool      // stopping because of DeletePod (not the agent's shutdown)
	fromAPI     bool      // the pod was marked for deletion in the API server
	stopping    bool
	sb          *sandbox

	dirty        chan struct{}
	notifierStop chan struct{}
	notifierDone chan struct{}
}

func newPod(p *provider, obj *corev1.Pod) *pod {
	pd := &pod{
		p: p, key: podKey(obj.Namespace, obj.Name), namespace: obj.Namespace, name: obj.Name,
		uid: obj.UID, restartPolicy: obj.Spec.RestartPolicy,
		dir:          filepath.Join(p.stateDir, "pods", string(obj.UID)),
		obj:          obj.DeepCopy(),
		hostNetwork:  obj.Spec.HostNetwork || !p.root,
		startTime:    metav1.Now(),
		conditions:   map[corev1.PodConditionType]*corev1.PodCondition{},
		dirty:        make(chan struct{}, 1),
		notifierStop: make(chan struct{}),
		notifierDone: make(chan struct{}),
	}
	pd.ctx, pd.cancel = context.WithCancel(context.Background())
	for i := range obj.Spec.InitContainers {
		c := newContainer(pd, &obj.Spec.InitContainers[i], true)
		pd.inits = append(pd.inits, c)
	}
	for i := range obj.Spec.Containers {
		pd.containers = append(pd.containers, newContainer(pd, &obj.Spec.Containers[i], false))
	}
	return pd
}

// container returns the container (or init container) called name.
func (pd *pod) container(name string) *container {
	for _, c := range append(append([]*container{}, pd.inits...), pd.containers...) {
		if c.name == name {
			return c
		}
	}
	return nil
}

// changed schedules a status notification.
func (pd *pod) changed() {
	select {
	case pd.dirty <- struct{}{}:
	default:
	}
}

func (pd *pod) notifier() {
	defer close(pd.notifierDone)
	for {
		select {
		case <-pd.dirty:
			pd.p.notify(pd.snapshot())
		case <-pd.notifierStop:
			select {
			case <-pd.dirty:
				pd.p.notify(pd.snapshot())
			default:
			}
			return
		}
	}
}

func (pd *pod) logf(msg string, args ...any) {
	pd.p.log.Info(msg, append([]any{"pod", pd.key}, args...)...)
}

func (pd *pod) event(c *container, typ, reason, format string, args ...any) {
	pd.mu.Lock()
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pd.obj.Namespace, Name: pd.obj.Name, UID: pd.uid, ResourceVersion: pd.obj.ResourceVersion}
	pd.mu.Unlock()
	if c != nil {
		if c.init {
			ref.FieldPath = fmt.Sprintf("spec.initContainers{%s}", c.name)
		} else {
			ref.FieldPath = fmt.Sprintf("spec.containers{%s}", c.name)
		}
	}
	pd.p.recorder.Eventf(ref, typ, reason, format, args...)
}

// update takes a newer version of the pod from the API server.
func (pd *pod) update(obj *corev1.Pod) {
	pd.mu.Lock()
	pd.obj = obj.DeepCopy()
	var restart []*container
	for _, c := range append(append([]*container{}, pd.inits...), pd.containers...) {
		for _, s := range append(append([]corev1.Container{}, obj.Spec.InitContainers...), obj.Spec.Containers...) {
			if s.Name == c.name && s.Image != c.spec.Image {
				c.spec = *s.DeepCopy()
				restart = append(restart, c)
			}
		}
	}
	pd.mu.Unlock()
	for _, c := range restart {
		c.requestRestart("its image changed")
	}
	pd.changed()
}

// terminate stops the pod: its containers get SIGTERM, then SIGKILL after grace. deleting says
// the pod is deleted (its logs go, and with fromAPI it is deleted from the API server once
// stopped) rather than stopped with the agent.
func (pd *pod) terminate(grace time.Duration, deleting, fromAPI bool) {
	pd.mu.Lock()
	if pd.stopping {
		// A shorter grace period (a second, forced deletion) still applies.
		if d := time.Now().Add(grace); d.Before(pd.deadline) {
			pd.deadline = d
		}
		pd.fromAPI = pd.fromAPI || fromAPI
		pd.mu.Unlock()
		return
	}
	pd.stopping, pd.deleting, pd.fromAPI = true, deleting, fromAPI
	pd.deadline = time.Now().Add(grace)
	pd.mu.Unlock()
	pd.logf("stopping pod", "grace", grace, "deleted", deleting)
	pd.cancel()
}

func (pd *pod) killDeadline() time.Time {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	return pd.deadline
}

// run is the pod's supervisor: sandbox, volumes, init containers, then the containers, until
// the pod stops or ends.
func (pd *pod) run() {
	go pd.notifier()
	// No status until the sandbox has its IP (or setup fails): a status that says only
	// Pending would hold the one with the IP behind it in the pod controller's queue, and the
	// gateway waits for the IP.
	defer pd.finish()
	if !pd.setupWithRetry() {
		return
	}
	ctx := pd.ctx
	sidecarCtx, stopSidecars := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopSidecars()
	for _, c := range pd.inits {
		if c.sidecar() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.loop(sidecarCtx, false)
			}()
			if !c.waitStarted(ctx) {
				return
			}
			continue
		}
		if !c.loop(ctx, true) {
			if ctx.Err() == nil { // failed for good (restartPolicy Never)
				pd.setTerminal(corev1.PodFailed)
			}
			return
		}
	}
	pd.mu.Lock()
	pd.initialized = true
	pd.mu.Unlock()
	pd.changed()
	var cwg sync.WaitGroup
	for _, c := range pd.containers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			c.loop(ctx, false)
		}()
	}
	cwg.Wait()
	if ctx.Err() == nil {
		// Every container ended for good (restartPolicy Never or OnFailure).
		pd.mu.Lock()
		phase := pd.phaseLocked()
		pd.mu.Unlock()
		pd.setTerminal(phase)
	}
}

func (pd *pod) setTerminal(phase corev1.PodPhase) {
	pd.mu.Lock()
	if phase != corev1.PodSucceeded {
		phase = corev1.PodFailed
	}
	pd.terminal = phase
	pd.mu.Unlock()
	pd.logf("pod ended", "phase", phase)
	pd.changed()
}

// setupWithRetry prepares the sandbox and volumes, retrying with backoff; false means the pod
// stopped first.
func (pd *pod) setupWithRetry() bool {
	delay := time.Second
	for {
		err := pd.setup()
		if err == nil {
			return true
		}
		pd.logf("pod setup failed", "error", err)
		pd.mu.Lock()
		pd.sandboxMsg = err.Error()
		pd.mu.Unlock()
		var ce *configError
		if errors.As(err, &ce) {
			pd.event(nil, corev1.EventTypeWarning, "FailedMount", "%s", err)
		} else {
			pd.event(nil, corev1.EventTypeWarning, "FailedCreatePodSandBox", "%s", err)
		}
		pd.changed()
		select {
		case <-pd.ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// setup creates the pod's sandbox, network, /etc files and volumes (what exists is kept).
func (pd *pod) setup() error {
	pd.mu.Lock()
	obj := pd.obj.DeepCopy()
	sb := pd.sb
	pd.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(pd.dir, "pids"), 0o755); err != nil {
		return err
	}
	if sb == nil {
		noNewPrivs := true
		for _, c := range append(append([]corev1.Container{}, obj.Spec.InitContainers...), obj.Spec.Containers...) {
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				noNewPrivs = false
			}
		}
		o := sandboxOptions{noNewPrivs: noNewPrivs}
		if pd.p.root {
			o.mounts = true
			o.net, o.uts = !pd.hostNetwork, !pd.hostNetwork
			o.ipc = !obj.Spec.HostIPC
			o.hostname = hostname(obj)
		}
		ip, netID := pd.p.hostNetIP, string(pd.uid)
		if ws, ok := pd.p.warm.take(o); ok {
			sb, ip, netID = ws.sb, ws.ip, ws.netID
		} else {
			var err error
			if sb, err = newSandbox(o); err != nil {
				return err
			}
			if !o.net && ip == nil {
				sb.close()
				return &configError{"the host has no global IPv4 address to give pods on the host's network"}
			}
			if o.net {
				if ip, err = pd.p.net.attach(sb, netID); err != nil {
					sb.close()
					return err
				}
			}
		}
		pd.mu.Lock()
		pd.sb, pd.ip, pd.netID, pd.sandboxOK = sb, ip, netID, true
		pd.mu.Unlock()
		pd.logf("pod sandbox ready", "ip", ip.String())
		pd.changed()
	}
	if err := pd.writeEtcFiles(obj); err != nil {
		return err
	}
	if err := pd.prepareVolumes(pd.ctx, obj); err != nil {
		return err
	}
	pd.mu.Lock()
	pd.sandboxMsg = ""
	pd.mu.Unlock()
	return nil
}

func hostname(obj *corev1.Pod) string {
	h := obj.Name
	if obj.Spec.Hostname != "" {
		h = obj.Spec.Hostname
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// writeEtcFiles writes the pod's /etc/hosts, /etc/hostname and /etc/resolv.conf, which each
// container's root gets.
func (pd *pod) writeEtcFiles(obj *corev1.Pod) error {
	dir := filepath.Join(pd.dir, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pd.mu.Lock()
	ip := pd.ip
	pd.mu.Unlock()
	h := hostname(obj)
	hosts := "# Kubernetes-managed hosts file (fn node agent).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip != nil {
		hosts += fmt.Sprintf("%s\t%s\n", ip, h)
	}
	for _, ha := range obj.Spec.HostAliases {
		hosts += fmt.Sprintf("%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	for name, data := range map[string][]byte{"hosts": []byte(hosts), "hostname": []byte(h + "\n"), "resolv.conf": resolv} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// finish runs once every container stopped: it frees the sandbox, the network and the pod's
// directory; a pod that ended on its own keeps its status until deleted.
func (pd *pod) finish() {
	pd.teardown()
	<-pd.ctx.Done() // an ended pod stays, with its final status, until deleted
	pd.mu.Lock()
	deleting, fromAPI := pd.deleting, pd.fromAPI
	pd.mu.Unlock()
	ns, name := pd.namespace, pd.name
	pd.changed()
	close(pd.notifierStop)
	<-pd.notifierDone
	if deleting {
		_ = os.RemoveAll(filepath.Dir(LogPath(pd.p.stateDir, ns, name, "x")))
	}
	pd.p.remove(pd)
	if fromAPI {
		pd.p.forceDelete(ns, name, pd.uid)
	}
	pd.logf("pod stopped")
}

// teardown frees what the pod holds on the host: its link and IP, its namespaces, its files.
func (pd *pod) teardown() {
	pd.mu.Lock()
	sb, ip, netID := pd.sb, pd.ip, pd.netID
	pd.sb = nil
	pd.sandboxOK = false
	pd.mu.Unlock()
	if sb != nil {
		if sb.netns >= 0 {
			if err := pd.p.net.detach(netID, ip); err != nil {
				pd.p.log.Warn("removing the pod's network", "pod", pd.key, "error", err)
			}
		}
		sb.close()
	}
	if err := os.RemoveAll(pd.dir); err != nil {
		pd.p.log.Warn("removing the pod's directory", "pod", pd.key, "error", err)
	}
	pd.changed()
}

// snapshot is the pod with its current status.
func (pd *pod) snapshot() *corev1.Pod {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	out := pd.obj.DeepCopy()
	out.Status = pd.statusLocked()
	return out
}

// phaseLocked is the pod's phase by kubelet's rules.
func (pd *pod) phaseLocked() corev1.PodPhase {
	if pd.terminal != "" {
		return pd.terminal
	}
	if !pd.initialized {
		return corev1.PodPending
	}
	var pending, running, stopped, succeeded int
	for _, c := range pd.containers {
		switch {
		case c.state.Running != nil:
			running++
		case c.state.Terminated != nil:
			stopped++
			if c.state.Terminated.ExitCode == 0 {
				succeeded++
			}
		case c.lastExit != nil:
			stopped++
		default:
			pending++
		}
	}
	switch {
	case pending > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch pd.restartPolicy {
		case corev1.RestartPolicyNever:
			if succeeded == stopped {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		case corev1.RestartPolicyOnFailure:
			if succeeded == stopped {
				return corev1.PodSucceeded
			}
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}

func (pd *pod) setCondition(t corev1.PodConditionType, ok bool, reason, msg string) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
		reason, msg = "", ""
	}
	c, found := pd.conditions[t]
	if !found || c.Status != status {
		c = &corev1.PodCondition{Type: t, Status: status, LastTransitionTime: metav1.Now()}
		pd.conditions[t] = c
	}
	c.Reason, c.Message = reason, msg
}

// statusLocked is the pod's status as the kubelet reports it.
func (pd *pod) statusLocked() corev1.PodStatus {
	phase := pd.phaseLocked()
	st := corev1.PodStatus{
		Phase:     phase,
		StartTime: &pd.startTime,
		QOSClass:  pd.obj.Status.QOSClass,
	}
	if pd.ip != nil {
		st.PodIP = pd.ip.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	hostIP := pd.p.hostIP
	if pd.hostNetwork {
		hostIP = pd.p.hostNetIP
	}
	if hostIP != nil {
		st.HostIP = hostIP.String()
		st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	}

	var notInit, notReady []string
	for _, c := range pd.inits {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.statusLocked())
		if !(c.state.Terminated != nil && c.state.Terminated.ExitCode == 0) && !(c.sidecar() && c.started) {
			notInit = append(notInit, c.name)
		}
	}
	for _, c := range pd.containers {
		st.ContainerStatuses = append(st.ContainerStatuses, c.statusLocked())
		if !c.ready {
			notReady = append(notReady, c.name)
		}
	}
	pd.setCondition(corev1.PodReadyToStartContainers, pd.sandboxOK, "", "")
	pd.setCondition(corev1.PodInitialized, pd.initialized, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	ready := len(notReady) == 0 && pd.initialized && phase == corev1.PodRunning
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
	if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
		reason, msg = "PodCompleted", ""
	}
	pd.setCondition(corev1.ContainersReady, ready, reason, msg)
	// Readiness gates: conditions others set on the pod.
	var gates []string
	for _, g := range pd.obj.Spec.ReadinessGates {
		ok := false
		for _, c := range pd.obj.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			gates = append(gates, string(g.ConditionType))
		}
	}
	if ready && len(gates) > 0 {
		pd.setCondition(corev1.PodReady, false, "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is false", gates[0]))
	} else {
		pd.setCondition(corev1.PodReady, ready, reason, msg)
	}
	managed := map[corev1.PodConditionType]bool{}
	for t, c := range pd.conditions {
		st.Conditions = append(st.Conditions, *c)
		managed[t] = true
	}
	for _, c := range pd.obj.Status.Conditions { // PodScheduled, and whatever others set
		if !managed[c.Type] {
			st.Conditions = append(st.Conditions, c)
		}
	}
	if !managed[corev1.PodScheduled] && !hasCondition(st.Conditions, corev1.PodScheduled) {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: pd.startTime})
	}
	order := map[corev1.PodConditionType]int{corev1.PodReadyToStartContainers: 0, corev1.PodInitialized: 1, corev1.PodReady: 2, corev1.ContainersReady: 3, corev1.PodScheduled: 4}
	sort.SliceStable(st.Conditions, func(i, j int) bool {
		oi, iok := order[st.Conditions[i].Type]
		oj, jok := order[st.Conditions[j].Type]
		if !iok {
			oi = 5
		}
		if !jok {
			oj = 5
		}
		return oi < oj
	})
	if pd.sandboxMsg != "" && phase == corev1.PodPending {
		st.Message = pd.sandboxMsg
	}
	return st
}

func hasCondition(cs []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range cs {
		if c.Type == t {
			return true
		}
	}
	return false
}
