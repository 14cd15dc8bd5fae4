// Command events benchmarks asynchronous calls on the local platform: N calls of hello
// accepted through the gateway and delivered by its dispatcher (accepted to acknowledged),
// beside the same N called synchronously through the gateway in the same run, from the same
// number of clients; the time from acceptance to the function's answer per call; and the event
// engine's start-up and memory inside fn up.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/events"
	"fnkit.dev/fn/events/engine"
	"fnkit.dev/fn/platform"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	calls := flag.Int("calls", 2000, "calls per round")
	clients := flag.Int("clients", 16, "concurrent clients")
	rounds := flag.Int("rounds", 3, "rounds")
	results := flag.String("results", "bench/results/events.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*calls, *clients, *rounds, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type round struct {
	sync, accept, async time.Duration // N synchronous calls; N accepted; N accepted and acknowledged
	latencies           []time.Duration
}

func run(n, clients, rounds int, resultsFile string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-events-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fnBin := filepath.Join(tmp, "fn")
	if out, err := exec.Command("go", "build", "-o", fnBin, "./cmd/fn").CombinedOutput(); err != nil {
		return fmt.Errorf("building fn: %v\n%s", err, out)
	}
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		return err
	}
	home := filepath.Join(tmp, "home")
	env := append(os.Environ(), "FN_HOME="+home, "FN_CACHE_DIR="+filepath.Join(tmp, "cache"), "FN_K8S_BIN="+bin)
	fn := bench.Runner(fnBin, env)
	src := filepath.Join(tmp, "src", "hello")
	if err := bench.CopyHello(src); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "fn up, fn deploy hello...")
	if _, err := fn("up", "--nodes", "1"); err != nil {
		return err
	}
	defer func() { _, _ = fn("down") }()
	// One replica, so that both ways meet the same capacity.
	if _, err := fn("deploy", src, "--min", "1", "--max", "1"); err != nil {
		return err
	}
	st, err := platform.ReadState(home)
	if err != nil {
		return err
	}
	client := bench.NewClient()
	syncURL, asyncURL := st.Gateway+"/f/default/hello/", st.Gateway+"/async/f/default/hello/"
	if _, err := fn("invoke", "hello"); err != nil {
		return err
	}

	var rs []round
	for r := 0; r <= rounds; r++ { // round 0 warms up
		fmt.Fprintf(os.Stderr, "round %d/%d...\n", r, rounds)
		var rd round
		if rd.sync, err = load(client, syncURL, n, clients, http.StatusOK, nil); err != nil {
			return err
		}
		before, err := dispatched(st)
		if err != nil {
			return err
		}
		start := time.Now()
		ids := make([]string, 0, n)
		var mu sync.Mutex
		if rd.accept, err = load(client, asyncURL, n, clients, http.StatusAccepted, func(resp *http.Response) {
			mu.Lock()
			ids = append(ids, resp.Header.Get(events.CallIDHeader))
			mu.Unlock()
		}); err != nil {
			return err
		}
		for deadline := time.Now().Add(5 * time.Minute); ; {
			done, err := dispatched(st)
			if err != nil {
				return err
			}
			if done-before >= uint64(n) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d calls acknowledged after 5 minutes", done-before, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		rd.async = time.Since(start)
		if rd.latencies, err = latencies(st, ids); err != nil {
			return err
		}
		if r > 0 {
			rs = append(rs, rd)
		}
	}

	// The engine's memory, as the platform runs it, after the rounds.
	mem := "the engine's process not found"
	for _, pid := range bench.Descendants(st.PID) {
		if args := bench.CommandLine(pid); len(args) >= 3 && args[1] == "internal" && args[2] == "events" {
			m := bench.ProcessMemory(pid)
			mem = fmt.Sprintf("%.0f MB PSS, %.0f MB RSS", float64(m.PSS)/1e6, float64(m.RSS)/1e6)
		}
	}
	if _, err := fn("down"); err != nil {
		return err
	}
	startEmpty, startStore, err := engineStart(tmp, filepath.Join(home, "events"))
	if err != nil {
		return err
	}

	table := tableOf(rs, n, clients, mem, startEmpty, startStore)
	fmt.Print(table)
	return bench.Record(resultsFile, "Asynchronous calls benchmark",
		fmt.Sprintf("Command: `make bench` (bench/events), %d rounds after one to warm up, on the local platform (fn up --nodes 1). Each round: %d calls of hello (one replica) from %d clients synchronously through the gateway, then %d asynchronous calls from as many clients, timed from the first accepted to the last acknowledged (the gateway's dispatcher counts). Accept to answer: each call's record, from the time the engine stored it to the time its outcome was recorded.", rounds, n, clients, n), table)
}

// load sends n POSTs to url from clients goroutines and returns how long they took; each must
// answer want.
func load(client *http.Client, url string, n, clients, want int, each func(*http.Response)) (time.Duration, error) {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(url, "application/json", strings.NewReader(`{"bench":true}`))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if each != nil {
					each(resp)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d calls to %s failed; first: %v", f, n, url, firstErr.Load())
	}
	return time.Since(start), nil
}

// dispatched is how many calls the gateway's dispatcher has settled as done.
func dispatched(st *platform.State) (uint64, error) {
	resp, err := http.Get(st.GatewayInternal + "/_gw/async")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var s struct{ Done uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, err
	}
	return s.Done, nil
}

// latencies are the calls' times from acceptance to the recorded answer, shortest first,
// from each call's record.
func latencies(st *platform.State, ids []string) ([]time.Duration, error) {
	var ds []time.Duration
	for _, id := range ids {
		resp, err := http.Get(st.GatewayInternal + "/_gw/calls/default/hello/" + id)
		if err != nil {
			return nil, err
		}
		var r events.Record
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("call %s: %w", id, err)
		}
		if r.State != events.StateDone {
			return nil, fmt.Errorf("call %s: %s, want done", id, r.State)
		}
		ds = append(ds, r.Updated.Sub(r.Accepted))
	}
	slices.Sort(ds)
	return ds, nil
}

// engineStart times the engine's start to accepting connections: on an empty store, and on the
// store the rounds left (which it recovers).
func engineStart(tmp, store string) (empty, recovered time.Duration, err error) {
	port, err := bench.FreePort()
	if err != nil {
		return 0, 0, err
	}
	for i, dir := range []string{filepath.Join(tmp, "empty-events"), store} {
		start := time.Now()
		s, err := engine.Start(engine.Options{Dir: dir, Addr: "127.0.0.1:" + strconv.Itoa(port)}, nil)
		if err != nil {
			return 0, 0, err
		}
		d := time.Since(start)
		s.Shutdown()
		s.WaitForShutdown()
		if i == 0 {
			empty = d
		} else {
			recovered = d
		}
	}
	return empty, recovered, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func tableOf(rs []round, n, clients int, mem string, startEmpty, startStore time.Duration) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	perSec := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	var syncs, accepts, asyncs []float64
	var all []time.Duration
	fmt.Fprintln(w, "round\tsync calls/s\tasync accepted/s\tasync accepted to acknowledged, calls/s\tratio\taccept to answer p50\tp99")
	for i, r := range rs {
		syncs, accepts, asyncs = append(syncs, perSec(r.sync)), append(accepts, perSec(r.accept)), append(asyncs, perSec(r.async))
		all = append(all, r.latencies...)
		fmt.Fprintf(w, "%d\t%.0f\t%.0f\t%.0f\t%.2fx\t%s\t%s\n", i+1, perSec(r.sync), perSec(r.accept), perSec(r.async),
			perSec(r.async)/perSec(r.sync), percentile(r.latencies, 0.5).Round(10*time.Microsecond), percentile(r.latencies, 0.99).Round(10*time.Microsecond))
	}
	slices.Sort(all)
	fmt.Fprintf(w, "median\t%.0f\t%.0f\t%.0f\t%.2fx\t%s\t%s\n", bench.Median(syncs), bench.Median(accepts), bench.Median(asyncs),
		bench.Median(asyncs)/bench.Median(syncs), percentile(all, 0.5).Round(10*time.Microsecond), percentile(all, 0.99).Round(10*time.Microsecond))
	fmt.Fprintf(w, "\n%d calls per round from %d clients, hello at one replica\n", n, clients)
	fmt.Fprintf(w, "the engine's memory in fn up, after the rounds\t%s\n", mem)
	fmt.Fprintf(w, "the engine's start to accepting connections\t%s on an empty store, %s on the rounds' store\n",
		startEmpty.Round(100*time.Microsecond), startStore.Round(100*time.Microsecond))
	w.Flush()
	return b.String()
}
