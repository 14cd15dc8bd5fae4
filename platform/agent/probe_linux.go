package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fastProbe is how often readiness and startup probes run until their first success, whatever
// their period: a function's cold start then costs ~0.1 s of probing, not a period.
const fastProbe = 100 * time.Millisecond

var probeClient = &http.Client{
	Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as kubelets
	},
}

func seconds(s int32, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

func threshold(n, def int32) int {
	if n <= 0 {
		return int(def)
	}
	return int(n)
}

// probe runs the instance's startup probe, then its readiness and liveness probes, until ctx
// is done (the instance ended).
func (c *container) probe(ctx context.Context, inst *instance, spec *corev1.Container) {
	if sp := spec.StartupProbe; sp != nil {
		ok, succ, fail := false, 0, 0
		c.probeLoop(ctx, inst, spec, sp, func() bool { return true }, func(err error) bool {
			if err == nil {
				succ, fail = succ+1, 0
				ok = succ >= threshold(sp.SuccessThreshold, 1)
				return !ok
			}
			succ, fail = 0, fail+1
			if fail >= threshold(sp.FailureThreshold, 3) {
				c.pd.event(c, corev1.EventTypeWarning, "Unhealthy", "Startup probe failed: %v", err)
				c.requestRestart(fmt.Sprintf("startup probe failed: %v", err))
				return false
			}
			return true
		})
		if !ok {
			return
		}
		c.setStarted()
		if spec.ReadinessProbe == nil {
			c.setReady(true)
		}
	}
	if rp := spec.ReadinessProbe; rp != nil {
		go func() {
			succ, fail, everReady, ready := 0, 0, false, false
			c.probeLoop(ctx, inst, spec, rp, func() bool { return !everReady }, func(err error) bool {
				if err == nil {
					succ, fail = succ+1, 0
					if succ >= threshold(rp.SuccessThreshold, 1) && !ready {
						ready, everReady = true, true
						c.setReady(true)
					}
					return true
				}
				succ, fail = 0, fail+1
				if fail == threshold(rp.FailureThreshold, 3) {
					// Once per streak of failures: a container that never gets ready says why too.
					c.pd.event(c, corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: %v", err)
				}
				if fail >= threshold(rp.FailureThreshold, 3) && ready {
					ready = false
					c.setReady(false)
				}
				return true
			})
		}()
	}
	if lp := spec.LivenessProbe; lp != nil {
		fail := 0
		c.probeLoop(ctx, inst, spec, lp, nil, func(err error) bool {
			if err == nil {
				fail = 0
				return true
			}
			fail++
			c.pd.event(c, corev1.EventTypeWarning, "Unhealthy", "Liveness probe failed: %v", err)
			if fail >= threshold(lp.FailureThreshold, 3) {
				c.requestRestart(fmt.Sprintf("liveness probe failed: %v", err))
				return false
			}
			return true
		})
	}
}

// probeLoop runs pr after its initial delay, then every period (every fastProbe while fast
// says so), handing each outcome to result until it returns false or ctx is done.
func (c *container) probeLoop(ctx context.Context, inst *instance, spec *corev1.Container, pr *corev1.Probe, fast func() bool, result func(error) bool) {
	if !sleepCtx(ctx, time.Duration(pr.InitialDelaySeconds)*time.Second) {
		return
	}
	period, timeout := seconds(pr.PeriodSeconds, 10), seconds(pr.TimeoutSeconds, 1)
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.runHandler(pctx, inst, spec, pr.ProbeHandler)
		cancel()
		if ctx.Err() != nil || !result(err) {
			return
		}
		next := period
		if fast != nil && fast() {
			next = min(period, fastProbe)
		}
		if !sleepCtx(ctx, next) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runHandler runs one probe: nil is a success.
func (c *container) runHandler(ctx context.Context, inst *instance, spec *corev1.Container, h corev1.ProbeHandler) error {
	switch {
	case h.HTTPGet != nil:
		return c.httpGet(ctx, spec, h.HTTPGet)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, spec)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.probeHost(h.TCPSocket.Host), strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case h.Exec != nil:
		return c.exec(ctx, inst, h.Exec.Command)
	case h.GRPC != nil:
		return errors.New("gRPC probes are not supported by fn's node agent")
	}
	return errors.New("the probe has no handler")
}

// runLifecycleHandler runs a postStart or preStop hook.
func (c *container) runLifecycleHandler(ctx context.Context, inst *instance, spec *corev1.Container, h *corev1.LifecycleHandler) error {
	if h.Sleep != nil {
		sleepCtx(ctx, time.Duration(h.Sleep.Seconds)*time.Second)
		return nil
	}
	return c.runHandler(ctx, inst, spec, corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket})
}

func (c *container) probeHost(host string) string {
	if host != "" {
		return host
	}
	c.pd.mu.Lock()
	defer c.pd.mu.Unlock()
	if c.pd.ip == nil {
		return "127.0.0.1"
	}
	return c.pd.ip.String()
}

// resolvePort is a probe's port: a number, or the name of one of the container's ports.
func resolvePort(p intstr.IntOrString, spec *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", spec.Name, p.StrVal)
}

func (c *container) httpGet(ctx context.Context, spec *corev1.Container, h *corev1.HTTPGetAction) error {
	port, err := resolvePort(h.Port, spec)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(c.probeHost(h.Host), strconv.Itoa(port)), path))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Set(hd.Name, hd.Value)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		// The answer says why (the runtime's "not ready: <the hook's error>"): keep its start.
		if why := probeAnswer(body); why != "" {
			return fmt.Errorf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, why)
		}
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// probeAnswer is the first line of a failed probe's answer, at most 200 bytes, if it is text.
func probeAnswer(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\n")
	line = strings.TrimSpace(line)
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	if !utf8.ValidString(line) || strings.ContainsFunc(line, func(r rune) bool { return r < ' ' && r != '\t' }) {
		return ""
	}
	return line
}

// exec runs a command in the container, as its process runs (exec probes and hooks).
func (c *container) exec(ctx context.Context, inst *instance, command []string) error {
	if len(command) == 0 {
		return errors.New("exec: no command")
	}
	l, err := inst.launch.forCommand(command)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := l.command(w, w)
	err = c.startInSandbox(l, cmd)
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, io.LimitReader(r, 10<<10))
		_, _ = io.Copy(io.Discard, r)
		r.Close()
		close(copied)
	}()
	waited := reap(cmd)
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		return fmt.Errorf("command %q timed out", command)
	}
	<-copied
	if err != nil {
		return fmt.Errorf("command %q: %v: %s", command, err, strings.TrimSpace(out.String()))
	}
	return nil
}
