// Command controller benchmarks fn-controller on a real control plane: 1,000 Functions created at
// once, the time until every one has its Deployment and Service, beside the baseline of this
// process creating the same 2,000 objects itself; the controller's memory; and the writes it
// makes in 30 s of steady state afterwards.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"k8s.io/apimachinery/pkg/api/meta"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"fnkit.dev/fn/bench"
	fncontroller "fnkit.dev/fn/controller"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnclient "fnkit.dev/fn/controller/client/clientset/versioned"
	"fnkit.dev/fn/controller/reconciler/function/resources"
	"fnkit.dev/fn/platform/controlplane"
)

const digest = "@sha256:0000000000000000000000000000000000000000000000000000000000000001"

func main() {
	n := flag.Int("functions", 1000, "Functions to create")
	steady := flag.Duration("steady", 30*time.Second, "steady-state window")
	results := flag.String("results", "bench/results/controller.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*n, *steady, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(n int, steady time.Duration, resultsFile string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fn-bench-controller-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(os.Stderr, "starting the control plane...")
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: tmp, BinDir: bin, Controllers: []string{"garbagecollector", "namespace"}})
	if err != nil {
		return err
	}
	defer cp.Stop()
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = 500, 1000
	kube := kubernetes.NewForConfigOrDie(cfg)
	fns := fnclient.NewForConfigOrDie(cfg)
	if err := fncontroller.InstallCRD(ctx, cfg); err != nil {
		return err
	}
	for _, ns := range []string{"fn-system", "baseline", "baseline-2", "bench"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	pids := cp.Pids()
	pids["bench client"] = os.Getpid()
	cpu := func() map[string]time.Duration {
		m := map[string]time.Duration{}
		for name, pid := range pids {
			m[name] = bench.ProcessCPU(pid)
		}
		return m
	}
	// Baseline: this process writes the same Deployments and Services itself, 20 at a time;
	// once before the controller's run and once after, against the noise of a shared machine.
	direct := func(ns string) (time.Duration, cpuUse, error) {
		fmt.Fprintf(os.Stderr, "baseline: creating %d Deployments and Services directly in %s...\n", n, ns)
		cpu0 := cpu()
		start := time.Now()
		err := parallel(n, 20, func(i int) error {
			f := function(ns, i)
			if _, err := kube.AppsV1().Deployments(ns).Create(ctx, resources.MakeDeployment(f, resources.DefaultConfig), metav1.CreateOptions{}); err != nil {
				return err
			}
			_, err := kube.CoreV1().Services(ns).Create(ctx, resources.MakeService(f), metav1.CreateOptions{})
			return err
		})
		return time.Since(start), since(cpu(), cpu0), err
	}
	baseline1, cpuBaseline, err := direct("baseline")
	if err != nil {
		return err
	}

	// The controller, as its own process, built from cmd/fn-controller.
	ctrl := filepath.Join(tmp, "fn-controller")
	if out, err := exec.Command("go", "build", "-o", ctrl, "./cmd/fn-controller").CombinedOutput(); err != nil {
		return fmt.Errorf("building fn-controller: %v\n%s", err, out)
	}
	cmd := exec.Command(ctrl, "--kubeconfig", cp.KubeconfigPath())
	cmd.Env = append(os.Environ(), "SYSTEM_NAMESPACE=fn-system", "FN_DOMAIN=fn.bench")
	logf, _ := os.Create(filepath.Join(tmp, "controller.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	pids["fn-controller"] = cmd.Process.Pid
	time.Sleep(2 * time.Second) // informers sync
	rssIdle := rss(cmd.Process.Pid)

	fmt.Fprintf(os.Stderr, "creating %d Functions at once...\n", n)
	var peak atomic.Int64
	stopSampling := sample(cmd.Process.Pid, &peak)
	// Watched, not listed: listing 2000 objects every tenth of a second took a twelfth of the
	// API server's CPU away from the controller.
	children, err := watchChildren(ctx, kube, fns, n)
	if err != nil {
		return err
	}
	cpu0 := cpu()
	start := time.Now()
	if err := parallel(n, 20, func(i int) error {
		_, err := fns.FnkitV1alpha1().Functions("bench").Create(ctx, function("bench", i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	created := time.Since(start)
	childrenMade, settled, err := children.wait(start, 10*time.Minute)
	if err != nil {
		return err
	}
	cpuFn := since(cpu(), cpu0)
	stopSampling()

	fmt.Fprintf(os.Stderr, "counting writes over %s of steady state...\n", steady)
	writes, err := countWrites(ctx, kube, fns, steady)
	if err != nil {
		return err
	}
	rssSteady := rss(cmd.Process.Pid)
	// The second baseline without the controller, whose watches would take their share.
	_ = cmd.Process.Kill()
	_, _ = cmd.Process.Wait()
	delete(pids, "fn-controller")
	baseline2, _, err := direct("baseline-2")
	if err != nil {
		return err
	}
	baseline := (baseline1 + baseline2) / 2
	ratio := func(d time.Duration) string { return fmt.Sprintf("%.2fx", float64(d)/float64(baseline)) }

	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tvalue\tbaseline\tratio\tgoal")
	fmt.Fprintf(w, "%d Functions created, until all have Deployment + Service\t%s\t%s (direct creates of the same %d objects: %s, %s)\t%s\t<= 1.5x %s\n",
		n, childrenMade.Round(10*time.Millisecond), baseline.Round(10*time.Millisecond), 2*n,
		baseline1.Round(10*time.Millisecond), baseline2.Round(10*time.Millisecond), ratio(childrenMade), bench.Verdict(float64(childrenMade) <= 1.5*float64(baseline)))
	fmt.Fprintf(w, "  of which creating the Functions\t%s\t\t\t\n", created.Round(10*time.Millisecond))
	fmt.Fprintf(w, "  until every status is settled (the autoscaler's reason on it)\t%s\t\t%s\t<= 60 s %s\n",
		settled.Round(10*time.Millisecond), ratio(settled), bench.Verdict(settled <= time.Minute))
	fmt.Fprintf(w, "CPU during the first baseline\t%s\t\t\t\n", cpuBaseline)
	fmt.Fprintf(w, "CPU until settled\t%s\t\t\t\n", cpuFn)
	fmt.Fprintf(w, "controller RSS: idle / peak / steady\t%d / %d / %d MB\t\t\t\n", rssIdle>>20, peak.Load()>>20, rssSteady>>20)
	fmt.Fprintf(w, "writes to Functions and children in %s of steady state\t%d\t\t\t0 %s\n", steady, writes, bench.Verdict(writes == 0))
	w.Flush()
	fmt.Print(b.String())
	return bench.Record(resultsFile, "Controller benchmark",
		"Command: `make bench` (bench/controller). Real etcd + kube-apiserver (v1.37.2) + controller-manager (garbage collector, namespace) on loopback; fn-controller (cmd/fn-controller, as on a cluster) as its own process; benchmark client at 500 QPS, 20 creates at a time; children counted by watch. CPU: each process's user + system time.", b.String())
}

func function(ns string, i int) *v1alpha1.Function {
	f := &v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fn-%04d", i), Namespace: ns, UID: "0"},
		Spec:       v1alpha1.FunctionSpec{Image: "127.0.0.1:5000/fns/bench" + digest},
	}
	return f
}

func parallel(n, workers int, f func(int) error) error {
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	next := atomic.Int64{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// countWrites watches Functions, Deployments and Services in the bench namespace and counts the
// changes seen during d.
func countWrites(ctx context.Context, kube kubernetes.Interface, fns fnclient.Interface, d time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	opts := metav1.ListOptions{}
	var watchers []watch.Interface
	for _, open := range []func() (watch.Interface, error){
		func() (watch.Interface, error) {
			return fns.FnkitV1alpha1().Functions("bench").Watch(ctx, listNow(ctx, kube, opts))
		},
		func() (watch.Interface, error) {
			return kube.AppsV1().Deployments("bench").Watch(ctx, listNow(ctx, kube, opts))
		},
		func() (watch.Interface, error) {
			return kube.CoreV1().Services("bench").Watch(ctx, listNow(ctx, kube, opts))
		},
	} {
		w, err := open()
		if err != nil {
			return 0, err
		}
		watchers = append(watchers, w)
	}
	var count atomic.Int64
	var wg sync.WaitGroup
	for _, w := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			for {
				select {
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if ev.Type != watch.Bookmark {
						count.Add(1)
						if count.Load() <= 3 {
							if m, err := meta.Accessor(ev.Object); err == nil {
								fmt.Fprintf(os.Stderr, "a write in steady state: %s %T %s\n", ev.Type, ev.Object, m.GetName())
							}
						}
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	return int(count.Load()), nil
}

// listNow returns list options that start a watch at the current resource version.
func listNow(ctx context.Context, kube kubernetes.Interface, _ metav1.ListOptions) metav1.ListOptions {
	l, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return metav1.ListOptions{}
	}
	return metav1.ListOptions{ResourceVersion: l.ResourceVersion}
}

// rss is a process's resident memory in bytes.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(s.Text())[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func sample(pid int, peak *atomic.Int64) func() {
	done := make(chan struct{})
	go func() {
		for {
			if r := rss(pid); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { close(done) }
}

// cpuUse is the CPU time each process used over a span.
type cpuUse map[string]time.Duration

func since(now, then map[string]time.Duration) cpuUse {
	d := cpuUse{}
	for name, t := range now {
		d[name] = t - then[name]
	}
	return d
}

func (c cpuUse) String() string {
	names := make([]string, 0, len(c))
	for name := range c {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return c[names[i]] > c[names[j]] })
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", name, c[name].Seconds()))
	}
	return strings.Join(parts, ", ")
}

// childWatch watches the Deployments and Services made in namespace bench, and the Functions'
// statuses.
type childWatch struct {
	n                          int
	deployments, services, fns watch.Interface
}

func watchChildren(ctx context.Context, kube kubernetes.Interface, fns fnclient.Interface, n int) (*childWatch, error) {
	opts := listNow(ctx, kube, metav1.ListOptions{})
	w := &childWatch{n: n}
	var err error
	if w.deployments, err = kube.AppsV1().Deployments("bench").Watch(ctx, opts); err != nil {
		return nil, err
	}
	if w.services, err = kube.CoreV1().Services("bench").Watch(ctx, opts); err != nil {
		return nil, err
	}
	if w.fns, err = fns.FnkitV1alpha1().Functions("bench").Watch(ctx, opts); err != nil {
		return nil, err
	}
	return w, nil
}

// wait returns how long after start n Deployments and n Services were added, and how long until
// the status of each of n Functions was settled: up to date with its spec, and taken by the
// autoscaler (AutoscalerReady true). It fails after timeout.
func (w *childWatch) wait(start time.Time, timeout time.Duration) (children, settled time.Duration, err error) {
	defer w.deployments.Stop()
	defer w.services.Stop()
	defer w.fns.Stop()
	deadline := time.After(timeout)
	var d, s int
	done := map[string]bool{}
	for children == 0 || settled == 0 {
		select {
		case ev, ok := <-w.deployments.ResultChan():
			if !ok {
				return 0, 0, errors.New("the watch of Deployments ended")
			}
			if ev.Type == watch.Added {
				d++
			}
		case ev, ok := <-w.services.ResultChan():
			if !ok {
				return 0, 0, errors.New("the watch of Services ended")
			}
			if ev.Type == watch.Added {
				s++
			}
		case ev, ok := <-w.fns.ResultChan():
			if !ok {
				return 0, 0, errors.New("the watch of Functions ended")
			}
			if f, ok := ev.Object.(*v1alpha1.Function); ok && f.Status.ObservedGeneration == f.Generation &&
				f.Status.GetCondition(v1alpha1.FunctionConditionAutoscalerReady).IsTrue() {
				done[f.Name] = true
			}
		case <-deadline:
			return 0, 0, fmt.Errorf("after %s only %d Deployments, %d Services and %d settled Functions", timeout, d, s, len(done))
		}
		if children == 0 && d >= w.n && s >= w.n {
			children = time.Since(start)
		}
		if settled == 0 && len(done) >= w.n {
			settled = time.Since(start)
		}
	}
	return children, settled, nil
}
