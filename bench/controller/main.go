// Command controller benchmarks fn-controller on a real control plane: 1,000 Functions created at
// once, the time until every one has its Deployment and Service, beside the baseline of this
// process creating the same 2,000 objects itself; the controller's memory; and the writes it
// makes in 30 s of steady state afterwards.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, ns := range []string{"fn-system", "baseline", "bench"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	// Baseline: this process writes the same Deployments and Services itself, 20 at a time.
	fmt.Fprintf(os.Stderr, "baseline: creating %d Deployments and Services directly...\n", n)
	start := time.Now()
	if err := parallel(n, 20, func(i int) error {
		f := function("baseline", i)
		if _, err := kube.AppsV1().Deployments("baseline").Create(ctx, resources.MakeDeployment(f, resources.DefaultConfig), metav1.CreateOptions{}); err != nil {
			return err
		}
		_, err := kube.CoreV1().Services("baseline").Create(ctx, resources.MakeService(f), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	baseline := time.Since(start)

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
	time.Sleep(2 * time.Second) // informers sync
	rssIdle := rss(cmd.Process.Pid)

	fmt.Fprintf(os.Stderr, "creating %d Functions at once...\n", n)
	var peak atomic.Int64
	stopSampling := sample(cmd.Process.Pid, &peak)
	start = time.Now()
	if err := parallel(n, 20, func(i int) error {
		_, err := fns.FnkitV1alpha1().Functions("bench").Create(ctx, function("bench", i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	created := time.Since(start)
	for {
		d, err := kube.AppsV1().Deployments("bench").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return err
		}
		s, err := kube.CoreV1().Services("bench").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return err
		}
		if len(d.Items) >= n && len(s.Items) >= n {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("after 10m only %d Deployments and %d Services", len(d.Items), len(s.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
	settled := time.Since(start)
	time.Sleep(3 * time.Second) // let status writes finish
	stopSampling()

	fmt.Fprintf(os.Stderr, "counting writes over %s of steady state...\n", steady)
	writes, err := countWrites(ctx, kube, fns, steady)
	if err != nil {
		return err
	}
	rssSteady := rss(cmd.Process.Pid)

	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tvalue\tbaseline\tratio\tgoal")
	fmt.Fprintf(w, "%d Functions created, until all have Deployment + Service\t%s\t%s (direct creates of the same %d objects)\t%.2fx\t<= 60 s %s\n",
		n, settled.Round(10*time.Millisecond), baseline.Round(10*time.Millisecond), 2*n, float64(settled)/float64(baseline), bench.Verdict(settled <= time.Minute))
	fmt.Fprintf(w, "  of which creating the Functions\t%s\t\t\t\n", created.Round(10*time.Millisecond))
	fmt.Fprintf(w, "controller RSS: idle / peak / steady\t%d / %d / %d MB\t\t\t\n", rssIdle>>20, peak.Load()>>20, rssSteady>>20)
	fmt.Fprintf(w, "writes to Functions and children in %s of steady state\t%d\t\t\t0 %s\n", steady, writes, bench.Verdict(writes == 0))
	w.Flush()
	fmt.Print(b.String())
	return bench.Record(resultsFile, "Controller benchmark",
		"Command: `make bench` (bench/controller). Real etcd + kube-apiserver (v1.37.2) + controller-manager (garbage collector, namespace) on loopback; fn-controller as its own process; benchmark client at 500 QPS.", b.String())
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
