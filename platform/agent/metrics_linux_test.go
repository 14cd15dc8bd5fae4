package agent

import (
	"bufio"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"golang.org/x/sys/unix"
)

// The helpers of the metrics tests: the test binary run again as a container's processes.
func init() {
	switch os.Getenv("FN_AGENT_TEST_METRICS") {
	case "burn": // burn CPU, then stay
		burnCPU(300 * time.Millisecond)
		os.Stdout.WriteString("burnt\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "burn-exit": // burn CPU, then exit
		burnCPU(300 * time.Millisecond)
		os.Exit(0)
	case "tree": // a child that stays, a reaped child, and CPU of its own
		exe, _ := os.Executable()
		stay := exec.Command(exe)
		stay.Env, stay.Stdout = append(os.Environ(), "FN_AGENT_TEST_METRICS=burn"), os.Stdout
		if err := stay.Start(); err != nil {
			os.Exit(1)
		}
		reaped := exec.Command(exe)
		reaped.Env = append(os.Environ(), "FN_AGENT_TEST_METRICS=burn-exit")
		if err := reaped.Run(); err != nil {
			os.Exit(1)
		}
		burnCPU(300 * time.Millisecond)
		os.Stdout.WriteString("burnt\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

// burnCPU spins until the process used d of CPU time.
func burnCPU(d time.Duration) {
	x := 0
	for {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
			break
		}
		for i := 0; i < 100000; i++ {
			x += i
		}
	}
	_ = x
}

// startBurner starts a container-like process tree (its own process group): the leader,
// which burnt 0.3 s itself and reaped a child that burnt 0.3 s, and a live child that burnt
// 0.3 s. It returns once all of them burnt.
func startBurner(t *testing.T) *instance {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "FN_AGENT_TEST_METRICS=tree")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inst := &instance{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), exited: make(chan struct{})}
	t.Cleanup(func() {
		_ = unix.Kill(-inst.pid, unix.SIGKILL)
		_ = cmd.Wait()
	})
	done := make(chan int)
	go func() {
		n := 0
		s := bufio.NewScanner(out)
		for s.Scan() && s.Text() == "burnt" {
			if n++; n == 2 {
				break
			}
		}
		done <- n
	}()
	select {
	case n := <-done:
		if n != 2 {
			t.Fatalf("the burner's processes reported %d burns, not 2", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the burner's processes did not burn their CPU in 30s")
	}
	return inst
}

func vmRSS(t *testing.T, pid int) uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n * 1024
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// metricsFixture is a provider running pod ns1/web, whose container app is the burner, its
// container idle not started and its init container done; and pod ns1/gone, whose container
// exited.
func metricsFixture(t *testing.T) (*resourceMetrics, *instance, time.Time) {
	inst := startBurner(t)
	p := &provider{pods: map[string]*pod{}}
	web := &pod{p: p, key: podKey("ns1", "web"), namespace: "ns1", name: "web"}
	web.inits = []*container{{pd: web, name: "init", init: true}}
	web.containers = []*container{{pd: web, name: "app", inst: inst}, {pd: web, name: "idle"}}
	exited := &instance{pid: os.Getpid(), started: time.Now(), exited: make(chan struct{})}
	close(exited.exited)
	gone := &pod{p: p, key: podKey("ns1", "gone"), namespace: "ns1", name: "gone"}
	gone.containers = []*container{{pd: gone, name: "app", inst: exited}}
	p.pods[web.key], p.pods[gone.key] = web, gone
	m := newResourceMetrics(p)
	now := time.Unix(1700000000, 123e6)
	m.now = func() time.Time { return now }
	return m, inst, now
}

var resourceMetricNames = []string{
	"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_start_time_seconds",
	"node_cpu_usage_seconds_total", "node_memory_working_set_bytes",
}

func TestResourceMetricsUsage(t *testing.T) {
	inst := startBurner(t)
	procs, err := readProcs("/proc")
	if err != nil {
		t.Fatal(err)
	}
	cpu, mem, ok := procs.usage(inst.pid)
	if !ok {
		t.Fatal("the burner is not running")
	}
	// 0.9 s burnt: the leader's own, its reaped child's and its live child's.
	if cpu < 0.75 || cpu > 30 {
		t.Errorf("cpu = %.3f s, want about 0.9 (the group leader, its reaped child and its live child)", cpu)
	}
	if rss := vmRSS(t, inst.pid); mem <= rss {
		t.Errorf("memory = %d bytes, want more than the leader's VmRSS %d (it has a live child)", mem, rss)
	}
	if _, _, ok := procs.usage(1 << 30); ok {
		t.Error("a pid that does not exist has usage")
	}
}

func TestResourceMetricsCollect(t *testing.T) {
	m, inst, now := metricsFixture(t)
	fams, err := m.collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	var names []string
	for _, f := range fams {
		byName[f.GetName()] = f
		names = append(names, f.GetName())
	}
	slices.Sort(names)
	if !slices.Equal(names, resourceMetricNames) {
		t.Fatalf("metric families %q, want %q", names, resourceMetricNames)
	}
	types := map[string]dto.MetricType{
		"container_cpu_usage_seconds_total": dto.MetricType_COUNTER, "node_cpu_usage_seconds_total": dto.MetricType_COUNTER,
		"container_memory_working_set_bytes": dto.MetricType_GAUGE, "container_start_time_seconds": dto.MetricType_GAUGE,
		"node_memory_working_set_bytes": dto.MetricType_GAUGE,
	}
	value := func(m *dto.Metric) float64 {
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	for name, f := range byName {
		if f.GetType() != types[name] {
			t.Errorf("%s: type %s, want %s", name, f.GetType(), types[name])
		}
		if len(f.Metric) != 1 {
			t.Fatalf("%s: %d samples, want 1 (node, or ns1/web's app)", name, len(f.Metric))
		}
		s := f.Metric[0]
		if s.GetTimestampMs() != now.UnixMilli() {
			t.Errorf("%s: timestamp %d, want %d", name, s.GetTimestampMs(), now.UnixMilli())
		}
		var labels []string
		for _, l := range s.Label {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		want := []string{"container=app", "namespace=ns1", "pod=web"}
		if strings.HasPrefix(name, "node_") {
			want = nil
		}
		if !slices.Equal(labels, want) {
			t.Errorf("%s: labels %q, want %q", name, labels, want)
		}
		if v := value(s); !(v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if v := value(byName["container_cpu_usage_seconds_total"].Metric[0]); v < 0.75 {
		t.Errorf("container cpu = %.3f s, want about 0.9", v)
	}
	if v := value(byName["container_memory_working_set_bytes"].Metric[0]); v < float64(vmRSS(t, inst.pid)) {
		t.Errorf("container memory = %v bytes, less than the leader's VmRSS", v)
	}
	if v, want := value(byName["container_start_time_seconds"].Metric[0]), float64(inst.started.UnixNano())/1e9; math.Abs(v-want) > 1e-3 {
		t.Errorf("container start time = %f, want %f", v, want)
	}

	// The CPU counter never decreases over an instance's life (a descendant whose time its
	// parent did not reap).
	m.cpuMax[inst] = 1e6
	fams, err = m.collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "container_cpu_usage_seconds_total" && f.Metric[0].Counter.GetValue() != 1e6 {
			t.Errorf("container cpu = %v after 1e6 was reported", f.Metric[0].Counter.GetValue())
		}
	}

	// Without running containers: the node only.
	close(inst.exited)
	fams, err = m.collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 2 || fams[0].GetName() != "node_cpu_usage_seconds_total" || fams[1].GetName() != "node_memory_working_set_bytes" {
		t.Errorf("with no running container: families %v", fams)
	}
}

// TestResourceMetricsEndpoint reads /metrics/resource through virtual-kubelet's handler, as
// metrics-server does.
func TestResourceMetricsEndpoint(t *testing.T) {
	m, _, now := metricsFixture(t)
	srv := httptest.NewServer(api.PodHandler(api.PodHandlerConfig{GetMetricsResource: m.collect}, false))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics/resource")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics/resource: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	text := string(body)
	t.Logf("/metrics/resource:\n%s", text)

	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, resourceMetricNames) {
		t.Errorf("metric families %q, want %q", names, resourceMetricNames)
	}

	ts := strconv.FormatInt(now.UnixMilli(), 10)
	num := `[0-9.e+-]+`
	var samples []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.HasPrefix(l, "#") {
			samples = append(samples, l)
		}
	}
	want := []string{
		`node_cpu_usage_seconds_total ` + num + ` ` + ts,
		`node_memory_working_set_bytes ` + num + ` ` + ts,
		`container_cpu_usage_seconds_total\{container="app",namespace="ns1",pod="web"\} ` + num + ` ` + ts,
		`container_memory_working_set_bytes\{container="app",namespace="ns1",pod="web"\} ` + num + ` ` + ts,
		`container_start_time_seconds\{container="app",namespace="ns1",pod="web"\} ` + num + ` ` + ts,
	}
	if len(samples) != len(want) {
		t.Fatalf("%d samples, want %d:\n%s", len(samples), len(want), strings.Join(samples, "\n"))
	}
	for i, w := range want {
		if !regexp.MustCompile("^" + w + "$").MatchString(samples[i]) {
			t.Errorf("sample %q, want /%s/", samples[i], w)
		}
		f := strings.Fields(samples[i])
		if v, err := strconv.ParseFloat(f[len(f)-2], 64); err != nil || !(v > 0) {
			t.Errorf("sample %q: value not > 0", samples[i])
		}
	}
	for _, typ := range []string{
		"# TYPE node_cpu_usage_seconds_total counter", "# TYPE node_memory_working_set_bytes gauge",
		"# TYPE container_cpu_usage_seconds_total counter", "# TYPE container_memory_working_set_bytes gauge",
		"# TYPE container_start_time_seconds gauge",
	} {
		if !strings.Contains(text, typ+"\n") {
			t.Errorf("no %q", typ)
		}
	}
}

func TestResourceMetricsProcFiles(t *testing.T) {
	pr, err := parseProcStat([]byte("4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 150 25 30 5 20 0 1 0 12345 1000000 321 18446744073709551615\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pr.ppid != 17 || pr.pgrp != 4242 || pr.ticks != 210 || pr.rss != 321 || pr.zombie {
		t.Errorf("parsed %+v", *pr)
	}
	if pr, err := parseProcStat([]byte("7 (z) Z 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0 0\n")); err != nil || !pr.zombie {
		t.Errorf("zombie: %+v, %v", pr, err)
	}

	dir := t.TempDir()
	stat := filepath.Join(dir, "stat")
	os.WriteFile(stat, []byte("cpu  100 20 30 400 50 6 7 8 9 10\ncpu0 100 20 30 400 50 6 7 8 9 10\n"), 0o644)
	if cpu, err := readNodeCPU(stat); err != nil || math.Abs(cpu-1.71) > 1e-9 {
		t.Errorf("node cpu = %v, %v; want 1.71 (user nice system irq softirq steal)", cpu, err)
	}
	meminfo := filepath.Join(dir, "meminfo")
	os.WriteFile(meminfo, []byte("MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    6000 kB\n"), 0o644)
	if mem, err := readNodeMemory(meminfo); err != nil || mem != 10000*1024 {
		t.Errorf("node memory = %v, %v; want %d", mem, err, 10000*1024)
	}
	cpu, err := readNodeCPU("/proc/stat")
	if err != nil || cpu <= 0 {
		t.Errorf("this node's cpu = %v, %v", cpu, err)
	}
	mem, err := readNodeMemory("/proc/meminfo")
	if err != nil || mem == 0 {
		t.Errorf("this node's memory = %v, %v", mem, err)
	}
}
