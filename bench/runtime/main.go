// Command runtime benchmarks the fn runtime serving examples/hello and examples/echo-event
// against a bare net/http server answering the same bytes and against the frameworks users
// would pick instead serving the same functions (functions-framework-go, cloudevents/sdk-go's
// receiver: bench/runtime/peers), with the same load generator (wrk), interleaved in the same
// run, and prints throughput ratios and latencies.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/builder"
)

const helloBody = "Hello, world!\n"

func main() {
	if os.Getenv("FN_BENCH_BARE") != "" {
		serveBare()
		return
	}
	rounds := flag.Int("rounds", 3, "interleaved rounds per target")
	dur := flag.Duration("duration", 5*time.Second, "duration of each load run")
	conns := flag.Int("connections", 50, "wrk connections")
	results := flag.String("results", "bench/results/runtime.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*rounds, *dur, *conns, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type target struct {
	name     string
	scenario string // which baseline it compares with
	baseline bool
	peer     bool // another framework serving the same function
	url      string
	pid      int
	script   string
	results  []bench.Result
	cpu      []float64 // the server's CPU per request in each round, in µs
}

func run(rounds int, dur time.Duration, conns int, resultsFile string) error {
	wrk, err := bench.EnsureWrk()
	if err != nil {
		return err
	}
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	hello, err := buildExample(ctx, "examples/hello", tmp)
	if err != nil {
		return err
	}
	echo, err := buildExample(ctx, "examples/echo-event", tmp)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	peers := filepath.Join(tmp, "peers")
	fmt.Fprintln(os.Stderr, "building bench/runtime/peers...")
	build := exec.CommandContext(ctx, "go", "build", "-o", peers, ".")
	build.Dir = filepath.Join("bench", "runtime", "peers")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the peers: %v\n%s", err, out)
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}()
	pids := map[string]int{}
	start := func(bin string, env ...string) (string, error) {
		port, err := bench.FreePort()
		if err != nil {
			return "", err
		}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), append(env, "PORT="+strconv.Itoa(port))...)
		if err := cmd.Start(); err != nil {
			return "", err
		}
		procs = append(procs, cmd)
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		pids[url] = cmd.Process.Pid
		return url, bench.WaitUp(url)
	}
	bareURL, err := start(self, "FN_BENCH_BARE=1")
	if err != nil {
		return err
	}
	helloURL, err := start(hello)
	if err != nil {
		return err
	}
	helloTimeoutURL, err := start(hello, "FN_TIMEOUT=30s", "FN_CONCURRENCY=1000")
	if err != nil {
		return err
	}
	echoURL, err := start(echo)
	if err != nil {
		return err
	}
	ffHTTP, err := start(peers, "PEER=ff-http")
	if err != nil {
		return err
	}
	ffCE, err := start(peers, "PEER=ff-cloudevent")
	if err != nil {
		return err
	}
	sdkCE, err := start(peers, "PEER=sdk-receiver")
	if err != nil {
		return err
	}
	ceScript := filepath.Join(tmp, "ce.lua")
	if err := os.WriteFile(ceScript, []byte(`wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["ce-specversion"] = "1.0"
wrk.headers["ce-id"] = "bench-1"
wrk.headers["ce-type"] = "dev.fnkit.bench"
wrk.headers["ce-source"] = "fn/bench"
`), 0o644); err != nil {
		return err
	}

	targets := []*target{
		{name: "bare net/http", scenario: "http", baseline: true, url: bareURL},
		{name: "fn runtime, examples/hello", scenario: "http", url: helloURL},
		{name: "fn runtime, hello, FN_TIMEOUT=30s FN_CONCURRENCY=1000", scenario: "http", url: helloTimeoutURL},
		{name: "bare net/http, same reply bytes", scenario: "cloudevents", baseline: true, url: bareURL, script: ceScript},
		{name: "fn runtime, examples/echo-event", scenario: "cloudevents", url: echoURL, script: ceScript},
		{name: "functions-framework-go, hello", scenario: "http", url: ffHTTP, peer: true},
		{name: "sdk-go client.StartReceiver, echo-event", scenario: "cloudevents", url: sdkCE, script: ceScript, peer: true},
		{name: "functions-framework-go, echo-event (no reply: it has none)", scenario: "cloudevents", url: ffCE, script: ceScript, peer: true},
	}
	// Warm up every server (JIT-free, but connection pools, page cache and CPU frequency).
	for _, t := range targets {
		if _, err := bench.Wrk(ctx, wrk, t.url, conns, time.Second, t.script); err != nil {
			return err
		}
	}
	for r := 0; r < rounds; r++ {
		for i := range targets {
			t := targets[(i+r)%len(targets)] // rotate the order so no target always runs first
			fmt.Fprintf(os.Stderr, "round %d/%d: %s...\n", r+1, rounds, t.name)
			cpu0 := bench.ProcessCPU(pids[t.url])
			res, err := bench.Wrk(ctx, wrk, t.url, conns, dur, t.script)
			if err != nil {
				return err
			}
			if res.Errors > 0 {
				return fmt.Errorf("%s: %d errors under load", t.name, res.Errors)
			}
			t.results = append(t.results, res)
			if res.Requests > 0 {
				t.cpu = append(t.cpu, float64(bench.ProcessCPU(pids[t.url])-cpu0)/float64(time.Microsecond)/float64(res.Requests))
			}
		}
	}
	report := table(targets, rounds, dur, conns)
	fmt.Print(report)
	return bench.Record(resultsFile, "Runtime benchmark",
		fmt.Sprintf("Command: `make bench` (bench/runtime). wrk -t2 -c%d, %d interleaved rounds of %s per target; load generator, servers and functions share the machine, so throughput moves with the load generator's share of it; CPU/req, the server process's user and system time per answered request, does not.",
			conns, rounds, dur), report)
}

// table renders the figures: per target every round's throughput, the median, the ratio of
// medians of paired rounds against the scenario's baseline, and median p50/p99 latency.
func table(targets []*target, rounds int, dur time.Duration, conns int) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\ttarget\treq/s per round\tmedian req/s\tvs baseline\tp50\tp99\tCPU/req\tgoal")
	base := map[string]*target{}
	for _, t := range targets {
		if t.baseline {
			base[t.scenario] = t
		}
	}
	goals := map[string]float64{"http": 0.9, "cloudevents": 0.6}
	timedGoal := 0.95
	for _, t := range targets {
		var rps, ratios []float64
		var p50, p99 []float64
		var per []string
		for i, r := range t.results {
			rps = append(rps, r.RPS)
			ratios = append(ratios, r.RPS/base[t.scenario].results[i].RPS)
			p50 = append(p50, float64(r.P50))
			p99 = append(p99, float64(r.P99))
			per = append(per, fmt.Sprintf("%.0f", r.RPS))
		}
		ratio, goal := "1.00 (baseline)", ""
		if !t.baseline {
			m := bench.Median(ratios)
			ratio = fmt.Sprintf("%.2fx", m)
			want := goals[t.scenario]
			if strings.Contains(t.name, "FN_TIMEOUT") {
				want = timedGoal
			}
			if !t.peer {
				goal = fmt.Sprintf(">= %.2fx %s", want, bench.Verdict(m >= want))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%.1f µs\t%s\n", t.scenario, t.name, strings.Join(per, " "), bench.Median(rps), ratio,
			time.Duration(bench.Median(p50)).Round(time.Microsecond), time.Duration(bench.Median(p99)).Round(time.Microsecond), bench.Median(t.cpu), goal)
	}
	w.Flush()
	// fn's runtime against each peer serving the same function in the same scenario.
	fmt.Fprintln(&b)
	w = tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tfn runtime\tagainst\tthroughput ratio\tgoal\tCPU per request, fn / the peer")
	for _, p := range targets {
		if !p.peer {
			continue
		}
		for _, t := range targets {
			if t.baseline || t.peer || t.scenario != p.scenario || strings.Contains(t.name, "FN_TIMEOUT") {
				continue
			}
			var ratios []float64
			for i := range t.results {
				ratios = append(ratios, t.results[i].RPS/p.results[i].RPS)
			}
			m := bench.Median(ratios)
			fmt.Fprintf(w, "%s\t%s\t%s\t%.2fx\t>= 1.00x %s\t%.2fx\n", t.scenario, t.name, p.name, m, bench.Verdict(m >= 1), bench.Median(t.cpu)/bench.Median(p.cpu))
		}
	}
	w.Flush()
	return b.String()
}

func buildExample(ctx context.Context, dir, tmp string) (string, error) {
	fn, err := builder.Scaffold(dir, "", filepath.Join(tmp, "cache"))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(tmp, fn.Name)
	fmt.Fprintf(os.Stderr, "building %s...\n", dir)
	return bin, fn.BuildBinary(ctx, bin)
}

// serveBare is the baseline: a bare net/http server answering what hello and echo-event answer,
// with no parsing, metrics or limits.
func serveBare() {
	reply := []byte(`{"n":1}`)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Ce-Specversion") != "" {
			h := w.Header()
			h.Set("Ce-Specversion", "1.0")
			h.Set("Ce-Id", "4a2c4f5e-6b1d-4f7e-9d1a-0c3b5e7f9a21")
			h.Set("Ce-Type", "dev.fnkit.echo")
			h.Set("Ce-Source", "fn/echo-event")
			h.Set("Ce-Echoedid", r.Header.Get("Ce-Id"))
			h.Set("Content-Type", "application/json")
			h.Set("Content-Length", strconv.Itoa(len(reply)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(reply)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(helloBody))
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
