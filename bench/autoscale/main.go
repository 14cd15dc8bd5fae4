// Command autoscale benchmarks scale from zero and scale-out on the local platform: the cold start
// of a function through the gateway with a per-hop breakdown, beside a warm request and the
// function's process start alone (the floor); 100 requests at zero; and a 10x load step until
// every new replica serves.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	trials := flag.Int("trials", 30, "cold starts to measure")
	rounds := flag.Int("rounds", 3, "rounds of the burst and the load step")
	results := flag.String("results", "bench/results/autoscale.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*trials, *rounds, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type env struct {
	fnBin   string
	environ []string
	kube    kubernetes.Interface
	gateway string
}

func (e *env) fn(args ...string) (string, error) {
	cmd := exec.Command(e.fnBin, args...)
	cmd.Env = e.environ
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func run(trials, rounds int, resultsFile string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-autoscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{fnBin: filepath.Join(tmp, "fn")}
	if out, err := exec.Command("go", "build", "-o", e.fnBin, "./cmd/fn").CombinedOutput(); err != nil {
		return fmt.Errorf("building fn: %v\n%s", err, out)
	}
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		return err
	}
	home := filepath.Join(tmp, "home")
	e.environ = append(os.Environ(), "FN_HOME="+home, "FN_CACHE_DIR="+filepath.Join(tmp, "cache"), "FN_K8S_BIN="+bin)
	fmt.Fprintln(os.Stderr, "fn up...")
	if _, err := e.fn("up"); err != nil {
		return err
	}
	defer e.fn("down")
	var st struct{ Kubeconfig, Gateway string }
	b, err := os.ReadFile(filepath.Join(home, "platform.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	e.gateway = st.Gateway
	rc, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return err
	}
	if e.kube, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	// test/functions/slow sleeps ?ms= milliseconds and answers its pod's name.
	src := filepath.Join(tmp, "src", "cold")
	if err := os.CopyFS(src, os.DirFS("test/functions/slow")); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "deploying...")
	if _, err := e.fn("deploy", src, "--window", "2s", "--scale-down-delay", "0s", "--max", "10"); err != nil {
		return err
	}
	url := e.gateway + "/f/default/cold/"

	// The floor: the function's binary, taken from its running pod, started and asked until ready.
	exe, err := functionBinary("cold", tmp)
	if err != nil {
		return err
	}

	hops := []string{"scale written", "Pod created", "Pod bound", "Pod IP reported", "process started", "Pod reported running", "first byte"}
	perHop := map[string][]time.Duration{}
	// Trials alternate. The goal's figure comes from trials nothing observes but the client:
	// the watches that see the hops cost the API server and this machine's two cores enough
	// to slow the start they watch (measured: about 17 ms of the p50). The hops come from the
	// trials between, whose own first byte is shown too.
	var cold, watched, warm, floor []time.Duration
	var writesBefore map[string]float64
	cycles := 2 * trials
	for i := 0; i < cycles; i++ {
		if i == 1 { // the first cycle's writes include the deployment's
			if writesBefore, err = e.apiWrites(ctx); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "cold start %d/%d...\n", i+1, cycles)
		if err := e.waitZero("cold", 2*time.Minute); err != nil {
			return err
		}
		if i%2 == 0 {
			time.Sleep(50 * time.Millisecond) // as long as a watched trial waits for its watches
			d, err := firstByte(url)
			if err != nil {
				return err
			}
			cold = append(cold, d)
			if d, err = firstByte(url); err != nil {
				return err
			}
			warm = append(warm, d)
			if d, err = processStart(exe); err != nil {
				return err
			}
			floor = append(floor, d)
			continue
		}
		tr, err := e.coldStart(url)
		if err != nil {
			return err
		}
		watched = append(watched, tr.firstByte)
		for _, h := range hops {
			if d, ok := tr.hops[h]; ok {
				perHop[h] = append(perHop[h], d)
			}
		}
	}

	var writes map[string]float64
	if cycles > 1 {
		if writes, err = e.apiWrites(ctx); err != nil {
			return err
		}
		for k, v := range writes {
			writes[k] = (v - writesBefore[k]) / float64(cycles-1)
		}
	}

	var bursts []time.Duration
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "burst %d/%d...\n", r+1, rounds)
		if err := e.waitZero("cold", 2*time.Minute); err != nil {
			return err
		}
		d, err := burst(url+"?ms=50", 100)
		if err != nil {
			return err
		}
		bursts = append(bursts, d)
	}

	var reactions []time.Duration
	if rounds > 0 {
		rsrc := filepath.Join(tmp, "src", "react")
		if err := os.CopyFS(rsrc, os.DirFS("test/functions/slow")); err != nil {
			return err
		}
		if _, err := e.fn("deploy", rsrc, "--min", "1", "--max", "10", "--target", "1", "--window", "10s", "--scale-down-delay", "0s"); err != nil {
			return err
		}
	}
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "load step %d/%d...\n", r+1, rounds)
		if err := e.waitReplicas("react", 1, 2*time.Minute); err != nil {
			return err
		}
		d, err := loadStep(e.gateway+"/f/default/react/?ms=100", 10, 10)
		if err != nil {
			return err
		}
		reactions = append(reactions, d)
	}

	q := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(int(p*float64(len(s))), len(s)-1)]
	}
	var out strings.Builder
	w := tabwriter.NewWriter(&out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tp50\tp99\tgoal\truns")
	verdict := func(d, goal time.Duration) string {
		if d <= goal {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "cold start through the gateway, 0 to first byte\t%s\t%s\tp50 <= 100ms %s, p99 <= 300ms %s\t%d\n", ms(q(cold, 0.5)), ms(q(cold, 0.99)),
		verdict(q(cold, 0.5), 100*time.Millisecond), verdict(q(cold, 0.99), 300*time.Millisecond), len(cold))
	fmt.Fprintf(w, "  the same, with the watches that see the hops below\t%s\t%s\t\t%d\n", ms(q(watched, 0.5)), ms(q(watched, 0.99)), len(watched))
	fmt.Fprintf(w, "warm request through the gateway\t%s\t%s\t\t%d\n", ms(q(warm, 0.5)), ms(q(warm, 0.99)), len(warm))
	fmt.Fprintf(w, "the function's process alone, exec to ready (floor)\t%s\t%s\t\t%d\n", ms(q(floor, 0.5)), ms(q(floor, 0.99)), len(floor))
	if rounds > 0 { // -rounds 0 measures cold starts only
		fmt.Fprintf(w, "100 concurrent requests at zero, until all answered\t%s\t%s\t<= 1s %s\t%s\n", ms(bench.Median(bursts)), ms(slices.Max(bursts)), verdict(bench.Median(bursts), time.Second), bench.Durations(bursts))
		fmt.Fprintf(w, "10x load step until every new replica serves\t%s\t%s\t<= panic window + 1s = 2s %s\t%s\n", ms(bench.Median(reactions)), ms(slices.Max(reactions)), verdict(bench.Median(reactions), 2*time.Second), bench.Durations(reactions))
	}
	fmt.Fprintln(w, "\ncold start, per hop (time since the request left the client)\tp50\tp99\t\truns")
	for _, h := range hops {
		if len(perHop[h]) > 0 {
			fmt.Fprintf(w, "  %s\t%s\t%s\t\t%d\n", h, ms(q(perHop[h], 0.5)), ms(q(perHop[h], 0.99)), len(perHop[h]))
		}
	}
	if len(writes) > 0 {
		fmt.Fprintln(w, "\nAPI writes per cycle (scale from zero and back), by resource\tcount\t\t\truns")
		keys := slices.Collect(maps.Keys(writes))
		slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(writes[b], writes[a]), strings.Compare(a, b)) })
		var total float64
		for _, k := range keys {
			total += writes[k]
		}
		fmt.Fprintf(w, "  all\t%.1f\t\t\t%d\n", total, cycles-1)
		for _, k := range keys {
			if writes[k] >= 0.5 {
				fmt.Fprintf(w, "  %s\t%.1f\t\t\t%d\n", k, writes[k], cycles-1)
			}
		}
	}
	w.Flush()
	fmt.Print(out.String())
	return bench.Record(resultsFile, "Autoscaling benchmark",
		fmt.Sprintf("Command: `make bench` (bench/autoscale) on the local platform: %d cold starts of a Go HTTP function "+
			"(window 2s, no scale-down delay, so it is back at zero between trials), each followed by a warm request and a start "+
			"of the function's binary alone, alternating with as many cold starts watched for their hops "+
			"(the watches slow what they watch, so the goal's figure is from the others); %d rounds of 100 requests at zero and of a load step to 10 in flight against a "+
			"target of 1 (window 10s, panic window 1s). Hops are seen by watches and /proc from the benchmark's clock; "+
			"the process start has the 10 ms resolution of /proc.", trials, rounds), out.String())
}

// apiWrites are the API server's write requests so far (POST, PUT, PATCH, DELETE), by
// "VERB resource[/subresource]" and, for conflicts, " 409".
func (e *env) apiWrites(ctx context.Context) (map[string]float64, error) {
	b, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	out := map[string]float64{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		switch l["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			continue
		}
		k := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			k += "/" + l["subresource"]
		}
		if l["code"] == "409" {
			k += " 409"
		}
		out[k] += m.GetCounter().GetValue()
	}
	return out, nil
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

// waitZero waits until function name has no replica and no pod.
func (e *env) waitZero(name string, d time.Duration) error {
	return e.waitReplicas(name, 0, d)
}

// waitReplicas waits until function name's Deployment wants n replicas and has exactly n pods.
func (e *env) waitReplicas(name string, n int32, d time.Duration) error {
	ctx := context.Background()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		dep, err := e.kube.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil || dep.Spec.Replicas == nil || *dep.Spec.Replicas != n {
			continue
		}
		pods, err := e.kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "fnkit.dev/function=" + name})
		if err == nil && len(pods.Items) == int(n) {
			return nil
		}
	}
	return fmt.Errorf("%s did not settle at %d replicas within %s", name, n, d)
}

type trial struct {
	firstByte time.Duration
	hops      map[string]time.Duration
}

// coldStart sends one request to a function at zero and times it and its hops.
func (e *env) coldStart(url string) (trial, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := trial{hops: map[string]time.Duration{}}
	var mu sync.Mutex
	var start time.Time
	seen := func(h string) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := tr.hops[h]; !ok && !start.IsZero() {
			tr.hops[h] = time.Since(start)
		}
	}
	dw, err := e.kube.AppsV1().Deployments("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=cold"})
	if err != nil {
		return tr, err
	}
	defer dw.Stop()
	pw, err := e.kube.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "fnkit.dev/function=cold"})
	if err != nil {
		return tr, err
	}
	defer pw.Stop()
	var podName string
	go func() {
		for ev := range dw.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && d.Spec.Replicas != nil && *d.Spec.Replicas > 0 {
				seen("scale written")
			}
		}
	}()
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || p.DeletionTimestamp != nil {
				continue
			}
			seen("Pod created")
			mu.Lock()
			podName = p.Name
			mu.Unlock()
			if p.Spec.NodeName != "" {
				seen("Pod bound")
			}
			if p.Status.PodIP != "" {
				seen("Pod IP reported")
			}
			if p.Status.Phase == corev1.PodRunning {
				seen("Pod reported running")
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // the watches are established
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	d, err := firstByte(url)
	if err != nil {
		return tr, err
	}
	tr.firstByte = d
	mu.Lock()
	tr.hops["first byte"] = d
	name := podName
	mu.Unlock()
	if t, ok := processStarted(name); ok {
		mu.Lock()
		tr.hops["process started"] = t.Sub(start)
		mu.Unlock()
	}
	time.Sleep(100 * time.Millisecond) // late watch events
	return tr, nil
}

// firstByte is the time from sending a GET to the first byte of its answer, on a new connection.
func firstByte(url string) (time.Duration, error) {
	var first time.Time
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() { first = time.Now() },
	}))
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return first.Sub(start), nil
}

// processStarted is when the process of pod name started (from /proc, 10 ms resolution).
func processStarted(pod string) (time.Time, bool) {
	now, up, hz := time.Now(), uptime(), 100.0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if !bytes.Contains(env, []byte("HOSTNAME="+pod+"\x00")) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+2:]))
		if len(f) < 20 {
			continue
		}
		ticks, _ := strconv.ParseFloat(f[19], 64)
		return now.Add(-time.Duration((up - ticks/hz) * float64(time.Second))), true
	}
	return time.Time{}, false
}

// uptime is the time since boot in seconds, as /proc/uptime says it.
func uptime() float64 {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	s, _ := strconv.ParseFloat(f[0], 64)
	return s
}

// functionBinary copies the binary of a running pod of function name out of its root.
func functionBinary(name, dir string) (string, error) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if !bytes.Contains(env, []byte("FN_NAME="+name+"\x00")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, "floor-"+name)
		return p, os.WriteFile(p, b, 0o755)
	}
	return "", fmt.Errorf("no running process of function %s", name)
}

// processStart starts the binary on a free port and times it until /_fn/ready answers 200.
func processStart(exe string) (time.Duration, error) {
	port, err := bench.FreePort()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{"PORT=" + strconv.Itoa(port)}
	client := &http.Client{Timeout: 100 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 100 * time.Millisecond}).DialContext}}
	url := fmt.Sprintf("http://127.0.0.1:%d/_fn/ready", port)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := start.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), nil
			}
		}
	}
	return 0, fmt.Errorf("%s did not get ready within 10s", exe)
}

// burst sends n requests at once and times them until all are answered 200.
func burst(url string, n int) (time.Duration, error) {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(url)
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return d, nil
}

// loadStep runs `clients` request loops until `replicas` distinct pods have answered, and
// returns that time; it is bounded to 30 s.
func loadStep(url string, clients, replicas int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	pods := map[string]bool{}
	done := make(chan time.Duration, 1)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				pods[string(b)] = true
				if len(pods) == replicas {
					select {
					case done <- time.Since(start):
					default:
					}
				}
				mu.Unlock()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	select {
	case d := <-done:
		return d, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("load step: only %d of %d replicas served within 30s", len(pods), replicas)
	}
}
