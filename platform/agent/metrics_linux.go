package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/utils/ptr"
)

// The kubelet's resource metrics (GET /metrics/resource), which metrics-server scrapes for
// `kubectl top` and HorizontalPodAutoscalers.
const (
	metricNodeCPU        = "node_cpu_usage_seconds_total"
	metricNodeMemory     = "node_memory_working_set_bytes"
	metricContainerCPU   = "container_cpu_usage_seconds_total"
	metricContainerMem   = "container_memory_working_set_bytes"
	metricContainerStart = "container_start_time_seconds"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// resourceMetrics measures the node and its running containers. A container is the process
// group its instance leads (each instance is a group leader) with the descendants of its
// members: their CPU times, those of the children they reaped, and their resident memory.
type resourceMetrics struct {
	p       *provider
	procDir string // "/proc"
	now     func() time.Time

	mu     sync.Mutex
	cpuMax map[*instance]float64 // the CPU last reported per instance, which never decreases
}

func newResourceMetrics(p *provider) *resourceMetrics {
	return &resourceMetrics{p: p, procDir: "/proc", now: time.Now, cpuMax: map[*instance]float64{}}
}

// runningContainer is a container with a live instance, as collect found it.
type runningContainer struct {
	namespace, pod, container string
	inst                      *instance
}

// running lists the containers (and init containers) with a live process, by pod.
func (m *resourceMetrics) running() []runningContainer {
	m.p.mu.Lock()
	pds := make([]*pod, 0, len(m.p.pods))
	for _, pd := range m.p.pods {
		pds = append(pds, pd)
	}
	m.p.mu.Unlock()
	sort.Slice(pds, func(i, j int) bool { return pds[i].key < pds[j].key })
	var out []runningContainer
	for _, pd := range pds {
		pd.mu.Lock()
		for _, c := range append(append([]*container{}, pd.inits...), pd.containers...) {
			if c.inst == nil {
				continue
			}
			select {
			case <-c.inst.exited:
				continue
			default:
			}
			out = append(out, runningContainer{namespace: pd.namespace, pod: pd.name, container: c.name, inst: c.inst})
		}
		pd.mu.Unlock()
	}
	return out
}

// collect serves virtual-kubelet's GetMetricsResource. metrics-server drops a node whose CPU
// or memory is 0 and a pod one of whose containers has either at 0: reported values are
// never 0.
func (m *resourceMetrics) collect(context.Context) ([]*dto.MetricFamily, error) {
	nodeCPU, err := readNodeCPU(filepath.Join(m.procDir, "stat"))
	if err != nil {
		return nil, err
	}
	nodeMem, err := readNodeMemory(filepath.Join(m.procDir, "meminfo"))
	if err != nil {
		return nil, err
	}
	ts := ptr.To(m.now().UnixMilli())
	gauge := func(v float64, labels ...*dto.LabelPair) *dto.Metric {
		return &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: ptr.To(v)}, TimestampMs: ts}
	}
	counter := func(v float64, labels ...*dto.LabelPair) *dto.Metric {
		return &dto.Metric{Label: labels, Counter: &dto.Counter{Value: ptr.To(v)}, TimestampMs: ts}
	}
	family := func(name, help string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: ptr.To(name), Help: ptr.To(help), Type: typ.Enum()}
	}
	cpuF := family(metricContainerCPU, "[STABLE] Cumulative cpu time consumed by the container in core-seconds", dto.MetricType_COUNTER)
	memF := family(metricContainerMem, "[STABLE] Current working set of the container in bytes", dto.MetricType_GAUGE)
	startF := family(metricContainerStart, "[STABLE] Start time of the container since unix epoch in seconds", dto.MetricType_GAUGE)
	nodeCPUF := family(metricNodeCPU, "[STABLE] Cumulative cpu time consumed by the node in core-seconds", dto.MetricType_COUNTER)
	nodeMemF := family(metricNodeMemory, "[STABLE] Current working set of the node in bytes", dto.MetricType_GAUGE)
	nodeCPUF.Metric = []*dto.Metric{counter(max(nodeCPU, 1e-9))}
	nodeMemF.Metric = []*dto.Metric{gauge(float64(max(nodeMem, 1)))}

	running := m.running()
	var procs procTable
	if len(running) > 0 {
		if procs, err = readProcs(m.procDir); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[*instance]float64, len(running))
	for _, rc := range running {
		cpu, mem, ok := procs.usage(rc.inst.pid)
		select {
		case <-rc.inst.exited: // the pid may be another process's by now
			ok = false
		default:
		}
		if !ok {
			continue
		}
		cpu = max(cpu, m.cpuMax[rc.inst], 1e-9)
		seen[rc.inst] = cpu
		labels := []*dto.LabelPair{ // sorted by name
			{Name: ptr.To("container"), Value: ptr.To(rc.container)},
			{Name: ptr.To("namespace"), Value: ptr.To(rc.namespace)},
			{Name: ptr.To("pod"), Value: ptr.To(rc.pod)},
		}
		cpuF.Metric = append(cpuF.Metric, counter(cpu, labels...))
		memF.Metric = append(memF.Metric, gauge(float64(max(mem, 1)), labels...))
		startF.Metric = append(startF.Metric, gauge(float64(rc.inst.started.UnixNano())/1e9, labels...))
	}
	m.cpuMax = seen
	out := []*dto.MetricFamily{nodeCPUF, nodeMemF}
	if len(cpuF.Metric) > 0 {
		out = append(out, cpuF, memF, startF)
	}
	return out, nil
}

// proc is what /proc/<pid>/stat tells of a process.
type proc struct {
	pid, ppid, pgrp int
	zombie          bool
	ticks           uint64 // utime+stime+cutime+cstime
	rss             uint64 // bytes
}

// procTable is the host's processes, with their children.
type procTable struct {
	procs    map[int]*proc
	children map[int][]int
}

// readProcs reads every process's /proc/<pid>/stat; processes gone meanwhile are left out.
func readProcs(procDir string) (procTable, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return procTable{}, err
	}
	t := procTable{procs: make(map[int]*proc, len(ents)), children: map[int][]int{}}
	page := uint64(os.Getpagesize())
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue
		}
		pr, err := parseProcStat(b)
		if err != nil {
			continue
		}
		pr.pid = pid
		pr.rss *= page
		t.procs[pid] = pr
		t.children[pr.ppid] = append(t.children[pr.ppid], pid)
	}
	return t, nil
}

// parseProcStat parses a /proc/<pid>/stat line (rss in pages).
func parseProcStat(b []byte) (*proc, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed stat line")
	}
	// Fields from the 3rd: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return nil, fmt.Errorf("malformed stat line")
	}
	pr := &proc{zombie: f[0] == "Z" || f[0] == "X"}
	var err error
	num := func(s string) uint64 {
		v, e := strconv.ParseUint(s, 10, 64)
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	pr.ppid, pr.pgrp = int(num(f[1])), int(num(f[2]))
	pr.ticks = num(f[11]) + num(f[12]) + num(f[13]) + num(f[14])
	if rss, e := strconv.ParseInt(f[21], 10, 64); e == nil && rss > 0 {
		pr.rss = uint64(rss)
	}
	return pr, err
}

// usage is the CPU seconds and resident bytes of the container whose instance is the process
// leader: the members of leader's process group and the descendants of each. ok is false if
// the leader is gone or exited.
func (t procTable) usage(leader int) (cpu float64, mem uint64, ok bool) {
	l := t.procs[leader]
	if l == nil || l.zombie {
		return 0, 0, false
	}
	seen := map[int]bool{}
	queue := []int{leader}
	for _, pr := range t.procs {
		if pr.pgrp == leader && pr.pid != leader {
			queue = append(queue, pr.pid)
		}
	}
	var ticks uint64
	for len(queue) > 0 {
		pid := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		pr := t.procs[pid]
		if pr == nil {
			continue
		}
		ticks += pr.ticks
		mem += pr.rss
		queue = append(queue, t.children[pid]...)
	}
	return float64(ticks) / clockTicks, mem, true
}

// readNodeCPU is the CPU seconds the node spent busy: the cpu line of /proc/stat but idle
// and iowait (guest times are in user and nice already).
func readNodeCPU(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("%s: no cpu line", path)
	}
	var busy uint64
	for i, s := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		busy += v
	}
	return float64(busy) / clockTicks, nil
}

// readNodeMemory is the node's working set: MemTotal - MemAvailable.
func readNodeMemory(path string) (uint64, error) {
	fl, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fl.Close()
	var total, avail uint64
	var haveTotal, haveAvail bool
	s := bufio.NewScanner(fl)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total, haveTotal = v*1024, true
		case "MemAvailable:":
			avail, haveAvail = v*1024, true
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	if !haveTotal || !haveAvail {
		return 0, fmt.Errorf("%s: no MemTotal or MemAvailable", path)
	}
	if avail > total {
		return 0, nil
	}
	return total - avail, nil
}
