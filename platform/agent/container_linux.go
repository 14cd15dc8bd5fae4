package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Restart backoff: the first restart is immediate, the next ones wait 1 s, 2 s, 4 s... up to
// maxBackoff; a container that ran for resetBackoff starts over.
const (
	maxBackoff   = 30 * time.Second
	resetBackoff = 2 * maxBackoff
)

// container supervises one container of a pod: it pulls its image, prepares its root, starts
// it, probes it and restarts it by the pod's restart policy.
type container struct {
	pd   *pod
	name string
	init bool

	// Guarded by pd.mu.
	spec        corev1.Container
	state       corev1.ContainerState
	lastExit    *corev1.ContainerStateTerminated // the latest instance's end
	prevExit    *corev1.ContainerStateTerminated // the one before
	restarts    int32
	ready       bool
	started     bool
	everStarted bool
	imageID     string
	containerID string
	logs        *logFile // the current (or last) instance's log
	inst        *instance

	restartReq chan string // stop the running instance (liveness failure, new image) and restart

	// Owned by the container's loop.
	img      *image
	root     string // the host path of its root
	rootFor  string // the image ID root was made from
	roots    int
	failures int // restarts since the container last ran long enough
}

// instance is one run of a container: a process (the leader of its own process group).
type instance struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	launch  launch
	exited  chan struct{}
	status  syscall.WaitStatus
}

// signal signals the instance's process group.
func (in *instance) signal(sig syscall.Signal) { _ = unix.Kill(-in.pid, sig) }

// reap waits for cmd's process (the leader of its own process group) to exit, kills what it
// left in its group, and reaps it.
func reap(cmd *exec.Cmd) <-chan error {
	done := make(chan error, 1)
	go func() {
		var info unix.Siginfo
		for {
			if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		// The leader is a zombie until reaped: its group cannot be reused yet.
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		done <- cmd.Wait()
	}()
	return done
}

func newContainer(pd *pod, spec *corev1.Container, init bool) *container {
	reason := "ContainerCreating"
	if !init && len(pd.obj.Spec.InitContainers) > 0 {
		reason = "PodInitializing"
	}
	return &container{
		pd: pd, name: spec.Name, init: init, spec: *spec.DeepCopy(),
		state:      corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}},
		restartReq: make(chan string, 1),
	}
}

// sidecar reports whether c is an init container that runs along the pod (restartPolicy Always).
func (c *container) sidecar() bool {
	return c.init && c.spec.RestartPolicy != nil && *c.spec.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func (c *container) statusLocked() corev1.ContainerStatus {
	started := c.started
	st := corev1.ContainerStatus{
		Name: c.name, State: *c.state.DeepCopy(), Ready: c.ready, RestartCount: c.restarts,
		Image: c.spec.Image, ImageID: c.imageID, ContainerID: c.containerID, Started: &started,
	}
	last := c.lastExit
	if c.state.Terminated != nil {
		last = c.prevExit
	}
	if last != nil {
		st.LastTerminationState.Terminated = last.DeepCopy()
	}
	return st
}

func (c *container) getSpec() corev1.Container {
	c.pd.mu.Lock()
	defer c.pd.mu.Unlock()
	return *c.spec.DeepCopy()
}

func (c *container) setWaiting(reason, msg string) {
	c.pd.mu.Lock()
	w := c.state.Waiting
	changed := w == nil || w.Reason != reason || w.Message != msg
	c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	c.ready = false
	c.pd.mu.Unlock()
	if changed {
		c.pd.changed()
	}
}

func (c *container) setReady(ready bool) {
	c.pd.mu.Lock()
	changed := c.ready != ready && c.inst != nil
	if changed {
		c.ready = ready
	}
	c.pd.mu.Unlock()
	if changed {
		c.pd.changed()
	}
}

func (c *container) setStarted() {
	c.pd.mu.Lock()
	changed := !c.started && c.inst != nil
	c.started = c.started || c.inst != nil
	c.pd.mu.Unlock()
	if changed {
		c.pd.changed()
	}
}

// waitStarted waits until the container runs and passed its startup probe.
func (c *container) waitStarted(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		c.pd.mu.Lock()
		started := c.started
		c.pd.mu.Unlock()
		if started {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// requestRestart stops the running instance so that the container restarts.
func (c *container) requestRestart(why string) {
	select {
	case c.restartReq <- why:
	default:
	}
}

// loop runs the container until ctx is done or, by the restart policy, it ended for good
// (init containers: until it succeeded). It reports whether the container's last exit was a
// success.
func (c *container) loop(ctx context.Context, untilSuccess bool) bool {
	retryDelay := time.Second
	for {
		if ctx.Err() != nil {
			return false
		}
		spec := c.getSpec()
		inst, err := c.start(ctx, spec)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			reason, retry := classify(err)
			c.pd.p.log.Warn("container cannot start", "pod", c.pd.key, "container", c.name, "reason", reason, "error", err)
			c.setWaiting(reason, err.Error())
			c.pd.event(c, corev1.EventTypeWarning, "Failed", "Error: %s: %s", reason, err)
			if !retry { // until the pod changes (a new image) or goes
				select {
				case <-ctx.Done():
					return false
				case <-c.restartReq:
					continue
				}
			}
			if reason == "ErrImagePull" {
				c.setWaiting("ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: %s", spec.Image, err))
			}
			if !c.sleep(ctx, retryDelay) {
				return false
			}
			retryDelay = min(retryDelay*2, maxBackoff)
			continue
		}
		retryDelay = time.Second
		code, ran, restartAsked := c.watch(ctx, inst, spec)
		if ctx.Err() != nil {
			return false
		}
		if untilSuccess && code == 0 {
			return true
		}
		if !c.shouldRestart(code, restartAsked) {
			return code == 0
		}
		if ran >= resetBackoff {
			c.failures = 0
		}
		delay := time.Duration(0)
		if c.failures > 0 {
			delay = min(time.Second<<(c.failures-1), maxBackoff)
		}
		c.failures++
		if delay > 0 {
			c.setWaiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.name, c.pd.name, c.pd.namespace, c.pd.uid))
			c.pd.event(c, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.name, c.pd.name)
			if !c.sleep(ctx, delay) {
				return false
			}
		}
	}
}

// sleep waits d, or less if a restart is asked for; false means ctx is done.
func (c *container) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-c.restartReq:
	}
	return true
}

func (c *container) shouldRestart(code int32, asked bool) bool {
	policy := c.pd.restartPolicy
	if c.sidecar() {
		return true
	}
	if c.init && policy == corev1.RestartPolicyAlways {
		policy = corev1.RestartPolicyOnFailure
	}
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0 || asked && !c.init
	}
	return true
}

// classify maps a start failure to the container's waiting reason, and whether retrying may help.
func classify(err error) (reason string, retry bool) {
	var cr *cannotRunError
	var pe *pullError
	var ce *configError
	switch {
	case errors.As(err, &cr):
		return "CannotRun", false
	case errors.As(err, &pe):
		return "ErrImagePull", true
	case errors.As(err, &ce):
		return "CreateContainerConfigError", true
	case errors.Is(err, errSandboxClosed):
		return "ContainerCreating", true
	}
	return "RunContainerError", true
}

// start starts an instance of the container.
func (c *container) start(ctx context.Context, spec corev1.Container) (*instance, error) {
	p := c.pd.p
	c.pd.mu.Lock()
	why := refused(c.pd.obj, &spec)
	c.pd.mu.Unlock()
	if why != "" { // before anything is pulled or made
		return nil, &configError{why}
	}
	img, err := p.images.get(ctx, spec.Image, spec.ImagePullPolicy)
	if err != nil {
		return nil, err
	}
	if c.img == nil || c.img.id != img.id {
		c.pd.event(c, corev1.EventTypeNormal, "Pulled", "Container image %q is present (%s)", spec.Image, img.id)
	}
	c.img = img
	cfg := img.config.Config
	env, err := c.pd.envSource().containerEnv(&spec)
	if err != nil {
		return nil, err
	}
	argv := resolveArgv(cfg.Entrypoint, cfg.Cmd, spec.Command, spec.Args, envMap(env))
	if len(argv) == 0 {
		return nil, &cannotRunError{"no command: the image has no entrypoint and the container sets no command"}
	}
	c.pd.mu.Lock()
	obj := c.pd.obj.DeepCopy()
	c.pd.mu.Unlock()
	l := launch{chroot: p.root, argv: argv, env: mergeEnv(cfg.Env, env, hostname(obj)), dir: spec.WorkingDir}
	if l.dir == "" {
		l.dir = cfg.WorkingDir
	}
	if l.dir == "" {
		l.dir = "/"
	}
	if p.root {
		if l.uid, l.gid, l.groups, err = c.user(obj, spec, img); err != nil {
			return nil, err
		}
		if l.caps, err = capabilities(spec.SecurityContext); err != nil {
			return nil, err
		}
		l.noNewPrivs, l.seccomp = noNewPrivs(&spec), seccompDefault(obj, &spec)
		l.readOnly = spec.SecurityContext != nil && spec.SecurityContext.ReadOnlyRootFilesystem != nil && *spec.SecurityContext.ReadOnlyRootFilesystem
	}
	if c.rootFor != img.id {
		if err := c.makeRoot(spec, img, l.dir); err != nil {
			return nil, err
		}
	}
	l.root = c.root
	if p.root {
		if l.procDir, err = resolveIn(l.root, "/proc"); err != nil || !within(l.root, l.procDir) {
			return nil, &cannotRunError{"the image's /proc leaves the container's root"}
		}
	}
	pathEnv := defaultPath
	for _, kv := range l.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	if l.exe, err = findExecutable(l.root, argv[0], l.dir, pathEnv); err != nil {
		return nil, err
	}
	if err := checkRunnable(l.root, l.exe); err != nil {
		return nil, err
	}

	select { // a restart asked for the previous instance
	case <-c.restartReq:
	default:
	}
	lf, err := c.openLog()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := l.command(outW, errW)
	c.pd.mu.Lock()
	sb := c.pd.sb
	c.pd.mu.Unlock()
	err = l.start(sb, cmd)
	outW.Close()
	errW.Close()
	lf.copyStream("stdout", outR)
	lf.copyStream("stderr", errR)
	lf.closeWhenDone()
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			switch errno {
			case syscall.ENOENT, syscall.ENOEXEC, syscall.EACCES, syscall.ELIBBAD, syscall.ENOTDIR, syscall.EPERM:
				return nil, &cannotRunError{fmt.Sprintf("starting %s: %v", l.exe, err)}
			}
		}
		return nil, fmt.Errorf("starting %s: %w", l.exe, err)
	}
	inst := &instance{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), launch: l, exited: make(chan struct{})}
	inst.launch.joinPid = inst.pid // what runs in the container later joins its namespaces
	c.recordPid(inst.pid)
	go func() {
		<-reap(cmd)
		if cmd.ProcessState != nil {
			inst.status, _ = cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
		close(inst.exited)
	}()

	id := make([]byte, 32)
	_, _ = rand.Read(id)
	c.pd.mu.Lock()
	if c.everStarted {
		c.restarts++
	}
	c.everStarted = true
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(inst.started)}}
	c.containerID = "fn://" + hex.EncodeToString(id)
	c.imageID = img.id
	c.inst = inst
	c.logs = lf
	c.started = spec.StartupProbe == nil
	c.ready = c.started && spec.ReadinessProbe == nil
	c.pd.mu.Unlock()
	c.pd.changed()
	p.log.Info("container started", "pod", c.pd.key, "container", c.name, "pid", inst.pid, "argv", argv)
	c.pd.event(c, corev1.EventTypeNormal, "Started", "Started container %s", c.name)
	return inst, nil
}

// watch probes the instance until it exits, stopping it when the pod stops or a restart is
// asked for. It reports the exit code, how long the instance ran and whether a restart was asked.
func (c *container) watch(ctx context.Context, inst *instance, spec corev1.Container) (code int32, ran time.Duration, restartAsked bool) {
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.probe(ictx, inst, &spec)
	why := ""
	select {
	case <-inst.exited:
	case <-ctx.Done():
		c.stop(inst, &spec, c.pd.killDeadline)
	case why = <-c.restartReq:
		restartAsked = true
		c.pd.event(c, corev1.EventTypeNormal, "Killing", "Stopping container %s: %s", c.name, why)
		c.pd.mu.Lock()
		deadline := time.Now().Add(gracePeriod(c.pd.obj))
		c.pd.mu.Unlock()
		c.stop(inst, &spec, func() time.Time { return deadline })
	}
	<-inst.exited
	cancel()
	c.removePid()
	ws := inst.status
	reason := "Completed"
	var sig int32
	switch {
	case ws.Signaled():
		sig = int32(ws.Signal())
		code, reason = 128+sig, "Error"
	default:
		code = int32(ws.ExitStatus())
		if code != 0 {
			reason = "Error"
		}
	}
	now := time.Now()
	term := &corev1.ContainerStateTerminated{
		ExitCode: code, Signal: sig, Reason: reason, Message: why,
		StartedAt: metav1.NewTime(inst.started), FinishedAt: metav1.NewTime(now), ContainerID: c.containerID,
	}
	c.pd.mu.Lock()
	c.state = corev1.ContainerState{Terminated: term}
	c.prevExit, c.lastExit = c.lastExit, term.DeepCopy()
	c.ready, c.started, c.inst = false, false, nil
	c.pd.mu.Unlock()
	c.pd.changed()
	c.pd.p.log.Info("container exited", "pod", c.pd.key, "container", c.name, "code", code, "ran", now.Sub(inst.started).Round(time.Millisecond))
	return code, now.Sub(inst.started), restartAsked
}

// stop runs the preStop hook, then sends SIGTERM, then SIGKILL once deadline() passed.
func (c *container) stop(inst *instance, spec *corev1.Container, deadline func() time.Time) {
	if spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
		hctx, cancel := context.WithDeadline(context.Background(), deadline())
		if err := c.runLifecycleHandler(hctx, inst, spec, spec.Lifecycle.PreStop); err != nil {
			c.pd.event(c, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
		}
		cancel()
	}
	inst.signal(syscall.SIGTERM)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-inst.exited:
			return
		case <-t.C:
			if time.Now().After(deadline()) {
				inst.signal(syscall.SIGKILL)
				<-inst.exited
				return
			}
		}
	}
}

// openLog starts a new log file for an instance; a restart keeps the previous one.
func (c *container) openLog() (*logFile, error) {
	p := c.pd.p
	path := LogPath(p.stateDir, c.pd.namespace, c.pd.name, c.name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	c.pd.mu.Lock()
	restart := c.everStarted
	c.pd.mu.Unlock()
	if restart {
		_ = os.Rename(path, PreviousLogPath(p.stateDir, c.pd.namespace, c.pd.name, c.name))
	}
	return createLogFile(path)
}

// makeRoot builds the container's root from its image and, with root, mounts what it needs.
func (c *container) makeRoot(spec corev1.Container, img *image, workdir string) error {
	p := c.pd.p
	c.roots++
	dir := filepath.Join(c.pd.dir, "containers", fmt.Sprintf("%s-%d", c.name, c.roots))
	readOnly := p.root && spec.SecurityContext != nil && spec.SecurityContext.ReadOnlyRootFilesystem != nil && *spec.SecurityContext.ReadOnlyRootFilesystem
	// A read-only root can share the store's files; a writable one gets copies. Without root
	// the processes run as the agent's user, who could write to the store: always copies.
	if err := materialize(img.rootfs, dir, !readOnly, p.root); err != nil {
		return fmt.Errorf("preparing the container's root: %w", err)
	}
	if wd, err := resolveIn(dir, workdir); err == nil {
		_ = os.MkdirAll(wd, 0o755)
	}
	if p.root {
		if err := c.pd.mountRoot(dir, spec, readOnly); err != nil {
			return err
		}
	}
	c.root, c.rootFor = dir, img.id
	return nil
}

// user is the uid, gid and groups the container runs as.
func (c *container) user(obj *corev1.Pod, spec corev1.Container, img *image) (uid, gid uint32, groups []uint32, err error) {
	psc := obj.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := spec.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	runAsUser, runAsGroup, nonRoot := psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
	if sc.RunAsUser != nil {
		runAsUser = sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		runAsGroup = sc.RunAsGroup
	}
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	imageGID := int64(-1)
	if runAsUser != nil {
		uid = uint32(*runAsUser)
	} else if u := img.config.Config.User; u != "" {
		name, group, _ := strings.Cut(u, ":")
		n, perr := strconv.ParseUint(name, 10, 32)
		if perr != nil {
			var ok bool
			var pgid int64
			if n, pgid, ok = lookupUser(img.rootfs, name); !ok {
				if nonRoot != nil && *nonRoot {
					return 0, 0, nil, &configError{fmt.Sprintf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", name)}
				}
				return 0, 0, nil, &cannotRunError{fmt.Sprintf("the image's user %q is not in its /etc/passwd", name)}
			}
			imageGID = pgid
		}
		uid = uint32(n)
		if group != "" {
			if g, perr := strconv.ParseUint(group, 10, 32); perr == nil {
				imageGID = int64(g)
			}
		}
	}
	if nonRoot != nil && *nonRoot && uid == 0 {
		return 0, 0, nil, &configError{"container has runAsNonRoot and image will run as root"}
	}
	switch {
	case runAsGroup != nil:
		gid = uint32(*runAsGroup)
	case imageGID >= 0:
		gid = uint32(imageGID)
	}
	for _, g := range psc.SupplementalGroups {
		groups = append(groups, uint32(g))
	}
	if psc.FSGroup != nil {
		groups = append(groups, uint32(*psc.FSGroup))
	}
	return uid, gid, groups, nil
}

// lookupUser finds name in the image's /etc/passwd, resolved inside the image (a link to the
// host's /etc/passwd reads the image's, or nothing).
func lookupUser(rootfs, name string) (uid uint64, gid int64, ok bool) {
	f, err := openInRoot(rootfs, "/etc/passwd", unix.O_RDONLY)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) < 4 || fields[0] != name {
			continue
		}
		u, err1 := strconv.ParseUint(fields[2], 10, 32)
		g, err2 := strconv.ParseInt(fields[3], 10, 64)
		if err1 == nil && err2 == nil {
			return u, g, true
		}
	}
	return 0, 0, false
}

// recordPid notes the instance's process so that a later run of the agent can kill it if
// this one dies without cleaning up.
func (c *container) recordPid(pid int) {
	st, err := processStartTime(pid)
	if err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(c.pd.dir, "pids", c.name), []byte(fmt.Sprintf("%d %d\n", pid, st)), 0o644)
}

func (c *container) removePid() { _ = os.Remove(filepath.Join(c.pd.dir, "pids", c.name)) }

// processStartTime is the start time of a process (in clock ticks since boot), which tells a
// process from a later one with the same pid.
func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64) // field 22 of the whole line
}

// envSource resolves containers' environments against the pod as it is now.
func (pd *pod) envSource() *envSource {
	pd.mu.Lock()
	obj := pd.obj.DeepCopy()
	ip := pd.ip
	hostNet := pd.hostNetwork
	pd.mu.Unlock()
	p := pd.p
	hostIP := p.hostIP
	if hostNet {
		hostIP = p.hostNetIP
	}
	s := &envSource{pod: obj, hostIP: hostIP.String(), allocatable: p.allocatable, services: p.apiService.env(),
		configMap: func(ns, name string) (*corev1.ConfigMap, error) {
			cm, err := p.configMaps.ConfigMaps(ns).Get(name)
			if apierrors.IsNotFound(err) { // the informer may lag behind a new ConfigMap
				return p.kube.CoreV1().ConfigMaps(ns).Get(pd.ctx, name, metav1.GetOptions{})
			}
			return cm, err
		},
		secret: func(ns, name string) (*corev1.Secret, error) {
			sec, err := p.secrets.Secrets(ns).Get(name)
			if apierrors.IsNotFound(err) {
				return p.kube.CoreV1().Secrets(ns).Get(pd.ctx, name, metav1.GetOptions{})
			}
			return sec, err
		},
	}
	if ip != nil {
		s.podIP = ip.String()
	}
	return s
}
