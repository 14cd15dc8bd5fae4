// Command gateway benchmarks the fn gateway against the reverse proxies users would pick
// instead: a real function process (examples/hello) called directly, through the gateway,
// through nginx and through HAProxy (each with kept-alive upstream connections and an access
// log to a file), interleaved in the same run, at a fixed moderate rate (open loop, latency
// added over direct) and at saturation (wrk, throughput).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	fnfake "fnkit.dev/fn/controller/client/clientset/versioned/fake"
	"fnkit.dev/fn/gateway"
)

// The goals are nginx's figures in the same run: the gateway's throughput at saturation at
// least nginx's, and the latency it adds at 1,000 req/s (p50, p99) no more than nginx adds.
const goalPeer = "nginx"

func main() {
	rounds := flag.Int("rounds", 3, "interleaved rounds per target")
	rate := flag.Int("rate", 1000, "requests per second of the open-loop runs")
	rateDur := flag.Duration("rate-duration", 10*time.Second, "duration of each open-loop run")
	wrkDur := flag.Duration("wrk-duration", 5*time.Second, "duration of each wrk run")
	conns := flag.Int("connections", 50, "wrk connections")
	results := flag.String("results", "bench/results/gateway.md", "file to record the results in (empty: none)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the gateway under wrk (its first saturation round) to this file")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gateway.GCPercent) // the gateway runs in this process: as fn-gateway runs
	}
	if err := run(*rounds, *rate, *rateDur, *wrkDur, *conns, *results, *cpuprofile); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type target struct {
	name    string
	url     string
	cpu     func() time.Duration // the CPU time its proxy has used (nil: direct)
	latency []bench.Latencies    // open-loop rounds
	wrk     []bench.Result       // saturation rounds
	// CPU time per request at saturation, of the function's process and of this process (the
	// gateway's, while wrk loads it): figures that other load on the machine disturbs less.
	fnCPU, gwCPU []time.Duration
}

func run(rounds, rate int, rateDur, wrkDur time.Duration, conns int, resultsFile, cpuprofile string) error {
	wrk, err := bench.EnsureWrk()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp, err := os.MkdirTemp("", "fn-bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The function: examples/hello as fn builds it, in its own process.
	fn, err := builder.Scaffold("examples/hello", "", filepath.Join(tmp, "cache"))
	if err != nil {
		return err
	}
	bin := filepath.Join(tmp, fn.Name)
	fmt.Fprintln(os.Stderr, "building examples/hello...")
	if err := fn.BuildBinary(ctx, bin); err != nil {
		return err
	}
	port, err := bench.FreePort()
	if err != nil {
		return err
	}
	proc := exec.Command(bin)
	proc.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	proc.Stderr = os.Stderr
	if err := proc.Start(); err != nil {
		return err
	}
	defer func() {
		_ = proc.Process.Kill()
		_, _ = proc.Process.Wait()
	}()
	direct := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := bench.WaitUp(direct); err != nil {
		return err
	}

	// The gateway, in this process, over fake clientsets that hold the function's Function and
	// EndpointSlice; its access log goes to a file through a LogBuffer, as fn-gateway's goes
	// to its container's log.
	logFile, err := os.Create(filepath.Join(tmp, "access.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	logs := gateway.NewLogBuffer(logFile, 100*time.Millisecond)
	defer logs.Close()
	kube := kubefake.NewClientset(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "hello-1", Namespace: "bench", Labels: map[string]string{discoveryv1.LabelServiceName: "hello"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	})
	fns := fnfake.NewSimpleClientset(&v1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "bench"},
		Spec:       v1alpha1.FunctionSpec{Image: "registry.test/hello", Timeout: &metav1.Duration{Duration: 30 * time.Second}},
	})
	gw, err := gateway.NewFromClients(ctx, kube, fns, gateway.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), AccessLog: logs})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- gateway.ServeListener(ctx, ln, gw) }()
	through := "http://" + ln.Addr().String() + "/f/bench/hello/"
	if err := bench.WaitUp(through); err != nil {
		return err
	}

	targets := []*target{{name: "direct", url: direct}, {name: "gateway", url: through, cpu: selfCPU}}
	for _, name := range []string{"nginx", "haproxy"} {
		p, err := bench.StartProxy(ctx, name, fmt.Sprintf("127.0.0.1:%d", port), tmp)
		if err != nil {
			return err
		}
		defer p.Stop()
		targets = append(targets, &target{name: name, url: p.URL, cpu: p.CPU})
	}
	client := bench.NewClient()
	fmt.Fprintln(os.Stderr, "warming up...")
	for _, t := range targets {
		if _, err := bench.OpenLoop(ctx, client, t.url, rate, time.Second); err != nil {
			return err
		}
		if _, err := bench.Wrk(ctx, wrk, t.url, conns, time.Second, ""); err != nil {
			return err
		}
	}
	for r := range rounds {
		for i := range targets {
			t := targets[(i+r)%len(targets)] // rotate the order so no target always runs first
			fmt.Fprintf(os.Stderr, "round %d/%d: %s at %d req/s for %s...\n", r+1, rounds, t.name, rate, rateDur)
			l, err := bench.OpenLoop(ctx, client, t.url, rate, rateDur)
			if err != nil {
				return err
			}
			if l.Errors > 0 {
				return fmt.Errorf("%s: %d errors at %d req/s, the first: %s", t.name, l.Errors, rate, l.FirstError)
			}
			t.latency = append(t.latency, l)
		}
		client.CloseIdleConnections()
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			fmt.Fprintf(os.Stderr, "round %d/%d: %s with wrk -c%d for %s...\n", r+1, rounds, t.name, conns, wrkDur)
			fn0, px0 := bench.ProcessCPU(proc.Process.Pid), time.Duration(0)
			if t.cpu != nil {
				px0 = t.cpu()
			}
			profiling := cpuprofile != "" && t.name == "gateway" && r == 0
			if profiling {
				f, err := os.Create(cpuprofile)
				if err == nil {
					err = pprof.StartCPUProfile(f)
				}
				if err != nil {
					return err
				}
			}
			res, err := bench.Wrk(ctx, wrk, t.url, conns, wrkDur, "")
			if profiling {
				pprof.StopCPUProfile()
			}
			if err != nil {
				return err
			}
			n := time.Duration(res.RPS * wrkDur.Seconds())
			t.fnCPU = append(t.fnCPU, (bench.ProcessCPU(proc.Process.Pid)-fn0)/n)
			if t.cpu != nil {
				t.gwCPU = append(t.gwCPU, (t.cpu()-px0)/n)
			}
			if res.Errors > 0 {
				return fmt.Errorf("%s: %d errors under wrk", t.name, res.Errors)
			}
			t.wrk = append(t.wrk, res)
		}
	}
	cancel()
	if err := <-served; err != nil {
		return err
	}

	report := table(targets, rate, conns)
	fmt.Print(report)
	return bench.Record(resultsFile, "Gateway benchmark", fmt.Sprintf(
		"Command: `go run ./bench/gateway`. examples/hello built by fn, called directly, through the gateway (in the benchmark's process, fake clientsets, access log through a LogBuffer to a file, GOGC=400 as fn-gateway sets it), "+
			"through nginx (Debian's, a worker per core, an upstream pool of 128 kept-alive connections, access log to a file) and through HAProxy (Debian's, a thread per core, http-reuse always, httplog to a file); "+
			"%d interleaved rounds per target: open loop at %d req/s for %s (Go client, latency from send to last byte), then wrk -t2 -c%d for %s. "+
			"Load generators, gateway and function share the machine.",
		rounds, rate, rateDur, conns, wrkDur), report)
}

// table renders per round and median figures of every target: latencies at the fixed rate and
// what each proxy adds over direct (median over paired rounds), throughput at saturation and
// its ratio to direct's, and the CPU a request costs; the gateway's goals are goalPeer's figures.
func table(targets []*target, rate, conns int) string {
	direct := targets[0]
	var peer *target
	for _, t := range targets {
		if t.name == goalPeer {
			peer = t
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\ttarget\tper round\tmedian\tover direct\tgoal")
	us := func(d float64) string { return fmt.Sprintf("%.0fµs", d/float64(time.Microsecond)) }
	// paired is the median over rounds of f(t's round, direct's same round).
	paired := func(t *target, f func(i int) float64) float64 {
		var v []float64
		for i := range t.latency {
			v = append(v, f(i))
		}
		return bench.Median(v)
	}
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		added := func(t *target) float64 {
			return paired(t, func(i int) float64 { return float64(t.latency[i].Percentile(q.p) - direct.latency[i].Percentile(q.p)) })
		}
		for _, t := range targets {
			var per []string
			var vals []float64
			for _, l := range t.latency {
				per = append(per, us(float64(l.Percentile(q.p))))
				vals = append(vals, float64(l.Percentile(q.p)))
			}
			add, goal := "", ""
			if t != direct {
				add = fmt.Sprintf("%+.0fµs", added(t)/float64(time.Microsecond))
			}
			if t.name == "gateway" && peer != nil {
				goal = fmt.Sprintf("<= %s's %+.0fµs %s", peer.name, added(peer)/float64(time.Microsecond), bench.Verdict(added(t) <= added(peer)))
			}
			fmt.Fprintf(w, "%d req/s %s\t%s\t%s\t%s\t%s\t%s\n", rate, q.name, t.name, strings.Join(per, " "), us(bench.Median(vals)), add, goal)
		}
	}
	for _, t := range targets {
		var per []string
		var rps, p50, p99 []float64
		for _, r := range t.wrk {
			per = append(per, fmt.Sprintf("%.0f", r.RPS))
			rps = append(rps, r.RPS)
			p50 = append(p50, float64(r.P50))
			p99 = append(p99, float64(r.P99))
		}
		ratio, goal := "", ""
		if t != direct {
			ratio = fmt.Sprintf("%.2fx", bench.Median(ratios(t, direct)))
		}
		if t.name == "gateway" && peer != nil {
			m := bench.Median(ratios(t, peer))
			goal = fmt.Sprintf("%.2fx of %s's, >= 1.0x %s", m, peer.name, bench.Verdict(m >= 1))
		}
		fmt.Fprintf(w, "saturation, wrk -c%d\t%s\t%s req/s\t%.0f req/s (p50 %s, p99 %s)\t%s\t%s\n", conns, t.name, strings.Join(per, " "), bench.Median(rps),
			time.Duration(bench.Median(p50)).Round(time.Microsecond), time.Duration(bench.Median(p99)).Round(time.Microsecond), ratio, goal)
	}
	// Where the CPU goes at saturation: what a request costs the function, and each proxy.
	cpu := func(name string, ds []time.Duration) {
		var per []string
		var vals []float64
		for _, d := range ds {
			per = append(per, us(float64(d)))
			vals = append(vals, float64(d))
		}
		fmt.Fprintf(w, "CPU per request at saturation\t%s\t%s\t%s\t\t\n", name, strings.Join(per, " "), us(bench.Median(vals)))
	}
	for _, t := range targets {
		cpu("function, "+t.name, t.fnCPU)
	}
	for _, t := range targets[1:] {
		cpu(t.name, t.gwCPU)
	}
	w.Flush()
	return b.String()
}

// ratios are t's throughputs over base's, round by round.
func ratios(t, base *target) []float64 {
	var r []float64
	for i := range t.wrk {
		r = append(r, t.wrk[i].RPS/base.wrk[i].RPS)
	}
	return r
}

// selfCPU is the CPU time this process has used: the gateway's, while only it runs here.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
