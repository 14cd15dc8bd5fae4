// Command soak runs the local platform for a long while under bounded load and watches it:
// three functions (HTTP, CloudEvents, typed) answer a steady open-loop load through the gateway,
// the HTTP one is redeployed with an edit every minute, and a fourth cycles through scale to
// zero and back. Every 10 s it samples each of the platform's processes: resident memory, open
// descriptors and, for fn's own, goroutines (from their debug sockets). It records
// bench/results/soak.md, and fails when a request failed or the p99 of the last minute is more
// than 20% over the first's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/platform"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long the load runs")
	rate := flag.Int("rate", 20, "requests per second to each of the three loaded functions")
	results := flag.String("results", "bench/results/soak.md", "file to record the results in (empty: none)")
	flag.Parse()
	ok, err := run(*duration, *rate, *results)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// target is a loaded function and how one request to it is made and checked.
type target struct {
	name, method, url string
	body              []byte
	header            http.Header
	want              string // in the answer
}

// minute is what one minute of load gave.
type minute struct {
	ok, failed int
	lat        []time.Duration
	firstError string
	deploy     time.Duration // the redeploy in it
	coldStart  time.Duration // the scale-from-zero request in it
	coldErr    string
}

// sample is one process's figures at one time.
type sample struct {
	rss, fds, goroutines int // rss in KiB; goroutines -1 when it has no debug socket
}

func run(d time.Duration, rate int, resultsFile string) (bool, error) {
	tmp, err := os.MkdirTemp("", "fn-soak-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	fnBin := filepath.Join(tmp, "fn")
	if out, err := exec.Command("go", "build", "-o", fnBin, "./cmd/fn").CombinedOutput(); err != nil {
		return false, fmt.Errorf("building fn: %v\n%s", err, out)
	}
	bin, err := controlplane.BinDir(context.Background(), os.Stderr)
	if err != nil {
		return false, err
	}
	home := filepath.Join(tmp, "home")
	env := append(os.Environ(), "FN_HOME="+home, "FN_CACHE_DIR="+filepath.Join(tmp, "cache"), "FN_K8S_BIN="+bin)
	fnRun := bench.Runner(fnBin, env)
	fn := func(args ...string) (string, error) {
		out, err := fnRun(args...)
		return strings.TrimSpace(out), err
	}
	fmt.Fprintln(os.Stderr, "fn up...")
	if _, err := fn("up"); err != nil {
		return false, err
	}
	defer fn("down")

	src := func(example, name string) (string, error) {
		dir := filepath.Join(tmp, "src", name)
		return dir, os.CopyFS(dir, os.DirFS(filepath.Join("examples", example)))
	}
	deploy := func(example, name string, flags ...string) (dir, url string, err error) {
		if dir, err = src(example, name); err != nil {
			return "", "", err
		}
		fmt.Fprintf(os.Stderr, "deploying %s...\n", name)
		url, err = fn(append([]string{"deploy", dir}, flags...)...)
		return dir, url, err
	}
	helloDir, helloURL, err := deploy("hello", "hello", "--min", "1")
	if err != nil {
		return false, err
	}
	_, echoURL, err := deploy("echo-event", "echo", "--min", "1")
	if err != nil {
		return false, err
	}
	_, typedURL, err := deploy("typed", "typed", "--min", "1")
	if err != nil {
		return false, err
	}
	_, sleeperURL, err := deploy("hello", "sleeper", "--min", "0", "--window", "10s", "--scale-down-delay", "5s")
	if err != nil {
		return false, err
	}
	targets := []target{
		{name: "hello", method: "GET", url: helloURL, want: ", "},
		{name: "echo", method: "POST", url: echoURL, body: []byte(`{"n":1}`), want: `{"n":1}`, header: http.Header{
			"Ce-Specversion": {"1.0"}, "Ce-Id": {"soak"}, "Ce-Type": {"dev.fnkit.soak"}, "Ce-Source": {"fn/soak"}, "Content-Type": {"application/json"}}},
		{name: "typed", method: "POST", url: typedURL, body: []byte(`{"items":[{"name":"tea","price":2.5,"quantity":2}]}`),
			want: `"total":5`, header: http.Header{"Content-Type": {"application/json"}}},
	}

	minutes := make([]minute, int((d+time.Minute-1)/time.Minute))
	var mu sync.Mutex
	start := time.Now()
	at := func(t time.Time) *minute { return &minutes[min(int(t.Sub(start)/time.Minute), len(minutes)-1)] }
	client := bench.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup

	// The load: rate a second to each target, each request at its own time whatever the others
	// do, at most 200 in flight in all.
	inflight := make(chan struct{}, 200)
	for _, tg := range targets {
		wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				select {
				case inflight <- struct{}{}:
				default:
					mu.Lock()
					m := at(time.Now())
					m.failed++
					m.firstError = cmpOr(m.firstError, "the load generator has 200 requests in flight")
					mu.Unlock()
					continue
				}
				wg.Go(func() {
					defer func() { <-inflight }()
					t0 := time.Now()
					err := request(client, tg)
					took := time.Since(t0)
					mu.Lock()
					defer mu.Unlock()
					m := at(t0)
					if err != nil {
						m.failed++
						m.firstError = cmpOr(m.firstError, tg.name+": "+err.Error())
						return
					}
					m.ok++
					m.lat = append(m.lat, took)
				})
			}
		})
	}

	// A redeploy of hello with an edit every minute (at 30 s), and a request for the sleeper at
	// zero every minute (at 45 s: it went to zero 15 s after the last).
	wg.Go(func() {
		for k := 0; ; k++ {
			next := start.Add(time.Duration(k)*time.Minute + 30*time.Second)
			if !sleepUntil(ctx, next) {
				return
			}
			if err := bench.SetHelloAnswer(helloDir, fmt.Sprintf("Soak%d", k)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			t0 := time.Now()
			_, err := fn("deploy", helloDir)
			mu.Lock()
			if err != nil {
				at(t0).firstError = cmpOr(at(t0).firstError, "redeploy: "+err.Error())
				at(t0).failed++
			}
			at(t0).deploy = time.Since(t0)
			mu.Unlock()
			if !sleepUntil(ctx, next.Add(15*time.Second)) {
				return
			}
			t0 = time.Now()
			err = request(&http.Client{Timeout: 30 * time.Second}, target{name: "sleeper", method: "GET", url: sleeperURL, want: ", "})
			mu.Lock()
			at(t0).coldStart = time.Since(t0)
			if err != nil {
				at(t0).coldErr = err.Error()
				at(t0).failed++
			}
			mu.Unlock()
		}
	})

	// The samples, every 10 s.
	samples := map[string][]sample{}
	var order []string
	wg.Go(func() {
		for {
			for name, s := range sampleProcesses(home) {
				if _, seen := samples[name]; !seen {
					order = append(order, name)
				}
				samples[name] = append(samples[name], s)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
	})
	for elapsed := time.Duration(0); elapsed < d; elapsed += time.Minute {
		if !sleepUntil(ctx, start.Add(elapsed+time.Minute)) {
			break
		}
		mu.Lock()
		m := minutes[min(int(elapsed/time.Minute), len(minutes)-1)]
		mu.Unlock()
		fmt.Fprintf(os.Stderr, "[%s] %d ok, %d failed\n", elapsed+time.Minute, m.ok, m.failed)
	}
	wg.Wait()

	// The results.
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "minute\trequests\tfailed\tp50\tp99\tredeploy\tfrom zero")
	failed := 0
	for i, m := range minutes {
		slices.Sort(m.lat)
		failed += m.failed
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%s\t%s\n", i+1, m.ok+m.failed, m.failed, pct(m.lat, 0.5), pct(m.lat, 0.99),
			m.deploy.Round(time.Millisecond), cmpOr(m.coldErr, m.coldStart.Round(time.Millisecond).String()))
	}
	w.Flush()
	first, last := pct(minutes[0].lat, 0.99), pct(minutes[len(minutes)-1].lat, 0.99)
	ratio := float64(last) / float64(max(first, 1))
	fmt.Fprintf(&b, "\np99 of the last minute / the first: %s / %s = %.2f (goal <= 1.20: %s)\n", last, first, ratio, bench.Verdict(ratio <= 1.2))
	fmt.Fprintf(&b, "failed requests: %d (goal 0: %s)\n", failed, bench.Verdict(failed == 0))
	for _, m := range minutes {
		if m.firstError != "" || m.coldErr != "" {
			fmt.Fprintf(&b, "  first error of a minute: %s\n", cmpOr(m.firstError, m.coldErr))
		}
	}

	fmt.Fprintln(&b, "\nprocesses, sampled every 10 s: at the start, after the first minute, at the end, the highest; drift = end - after one minute")
	w = tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "process\tRSS MiB (start, 1 min, end, max)\tdrift\tgoroutines (start, 1 min, end, max)\tdrift\tfds (start, 1 min, end, max)\tdrift")
	for _, name := range order {
		ss := samples[name]
		warm := ss[min(6, len(ss)-1)]
		end := ss[len(ss)-1]
		// col is one figure's start, warm, end and highest value (over scale, with prec
		// decimals), and its drift.
		col := func(get func(sample) int, scale float64, prec int) (string, string) {
			if get(end) < 0 {
				return "-", "-"
			}
			hi := 0
			for _, s := range ss {
				hi = max(hi, get(s))
			}
			f := func(v int) string { return strconv.FormatFloat(float64(v)/scale, 'f', prec, 64) }
			return fmt.Sprintf("%s, %s, %s, %s", f(get(ss[0])), f(get(warm)), f(get(end)), f(hi)),
				fmt.Sprintf("%+.*f", prec, float64(get(end)-get(warm))/scale)
		}
		rss, rssD := col(func(s sample) int { return s.rss }, 1024, 1)
		gor, gorD := col(func(s sample) int { return s.goroutines }, 1, 0)
		fds, fdsD := col(func(s sample) int { return s.fds }, 1, 0)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, rss, rssD, gor, gorD, fds, fdsD)
	}
	w.Flush()
	fmt.Fprint(os.Stderr, b.String())
	how := fmt.Sprintf("`make soak` (go run ./bench/soak -duration %s -rate %d): fn up with one node; hello (HTTP), echo-event (a binary-mode CloudEvent) and typed (JSON) each get %d requests a second, open loop, through the gateway; hello is redeployed with an edit at 30 s of every minute; sleeper (window 10 s, scale-down delay 5 s) gets one request at 45 s of every minute, from zero.", d, rate, rate)
	if err := bench.Record(resultsFile, "Soak", how, b.String()); err != nil {
		return false, err
	}
	return failed == 0 && ratio <= 1.2, nil
}

// request makes one request to tg and checks its answer.
func request(client *http.Client, tg target) error {
	req, err := http.NewRequest(tg.method, tg.url, bytes.NewReader(tg.body))
	if err != nil {
		return err
	}
	for k, v := range tg.header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(tg.want)) {
		return fmt.Errorf("%s: %.100s", resp.Status, body)
	}
	return nil
}

// sampleProcesses is each of the platform's processes' figures now, by name: the platform's own
// and every component fn status lists.
func sampleProcesses(home string) map[string]sample {
	out := map[string]sample{}
	pids := map[string]int{}
	if b, err := os.ReadFile(platform.PIDPath(home)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids["platform"] = pid
		}
	}
	if st, err := platform.ReadStatus(home); err == nil {
		for _, c := range st.Components {
			if c.PID > 0 {
				pids[c.Name] = c.PID
			}
		}
	}
	for name, pid := range pids {
		s := sample{rss: statusField(pid, "VmRSS"), goroutines: goroutines(platform.DebugSocketPath(home, name))}
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			s.fds = len(fds)
		}
		out[name] = s
	}
	return out
}

// statusField is a number of /proc/PID/status (VmRSS: KiB).
func statusField(pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// goroutines is the goroutine count a process serves on its debug socket, -1 without one.
func goroutines(socket string) int {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Get("http://fn/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total")))
	if err != nil {
		return -1
	}
	return n
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return bench.Latencies{Sorted: sorted}.Percentile(p).Round(100 * time.Microsecond)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
