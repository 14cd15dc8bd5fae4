// Command rollout benchmarks what a bad release costs on the local platform: a revision that
// answers 500 to every request, released under load as a canary (rolled back by fn's analysis)
// beside the same release as a rolling update undone by fn rollback the moment its first
// failure is seen (the fastest a watching operator or a script could be). For each: the time
// from the bad revision's first failing request to all traffic back on the good one, and the
// share of requests in that time and overall that the bad revision answered.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/platform"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each way")
	clients := flag.Int("clients", 4, "concurrent clients")
	results := flag.String("results", "bench/results/rollout.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*rounds, *clients, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// outcome is one bad release: from its first failing request to the last.
type outcome struct {
	back          time.Duration // first failure to the last failure (all traffic back after it)
	bad, total    int64         // requests the bad revision answered, and all, over the release
	badInWindow   int64
	totalInWindow int64
}

func run(rounds, clients int, resultsFile string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-rollout-")
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
	src := filepath.Join(tmp, "src", "release")
	if err := os.CopyFS(src, os.DirFS("test/functions/version")); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "fn up...")
	if _, err := fn("up", "--nodes", "1"); err != nil {
		return err
	}
	defer func() { _, _ = fn("down") }()
	st, err := platform.ReadState(home)
	if err != nil {
		return err
	}
	url := st.Gateway + "/f/default/release/"
	client := bench.NewClient()

	var canary, rolling []outcome
	for r := 1; r <= rounds; r++ {
		for _, way := range []string{"canary", "rolling"} {
			fmt.Fprintf(os.Stderr, "round %d/%d: %s...\n", r, rounds, way)
			if _, err := fn("deploy", src, "--env", "VERSION=good", "--min", "1"); err != nil {
				return err
			}
			o, err := release(fn, client, url, src, way, clients)
			if err != nil {
				return err
			}
			if way == "canary" {
				canary = append(canary, o)
			} else {
				rolling = append(rolling, o)
			}
			if _, err := fn("delete", "release"); err != nil {
				return err
			}
		}
	}
	table := tableOf(canary, rolling)
	fmt.Print(table)
	return bench.Record(resultsFile, "Bad release benchmark",
		fmt.Sprintf("Command: `make bench` (bench/rollout), %d rounds of each way on the local platform (fn up --nodes 1), under %d clients asking without a pause. A good revision (one replica) is released over by a bad one that answers 500 to every request: as a canary (`fn deploy --canary --steps 20`, fn's analysis with its defaults), and as a rolling update undone by `fn rollback` issued the moment the load sees its first failure. Back: from the first failing request to the last; bad: the share of requests the bad revision answered, over that time and over the whole release (deploy to all traffic back, 10 s of load at least).", rounds, clients), table)
}

// release deploys the bad revision the way given under load and waits until it answers no
// more.
func release(fn func(...string) (string, error), client *http.Client, url, src, way string, clients int) (outcome, error) {
	var (
		mu          sync.Mutex
		first, last time.Time
		bad, total  atomic.Int64
		times       []time.Time // of every request's end, bad or not, for the window's share
		badTimes    []time.Time
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		failedOnce  = make(chan struct{})
		once        sync.Once
	)
	deadline := time.Now().Add(3 * time.Minute)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				now := time.Now()
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				total.Add(1)
				mu.Lock()
				times = append(times, now)
				if resp.StatusCode == http.StatusInternalServerError {
					bad.Add(1)
					badTimes = append(badTimes, now)
					if first.IsZero() {
						first = now
					}
					last = now
					once.Do(func() { close(failedOnce) })
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	args := []string{"deploy", src, "--env", "VERSION=bad", "--env", "FAIL=1", "--min", "1"}
	if way == "canary" {
		args = append(args, "--canary", "--steps", "20", "--pause", "1m")
	}
	if _, err := fn(args...); err != nil {
		close(stop)
		wg.Wait()
		return outcome{}, err
	}
	if way == "rolling" {
		select {
		case <-failedOnce:
		case <-time.After(time.Minute):
			close(stop)
			wg.Wait()
			return outcome{}, fmt.Errorf("the bad revision never answered")
		}
		if _, err := fn("rollback", "release"); err != nil {
			close(stop)
			wg.Wait()
			return outcome{}, err
		}
	}
	// All traffic back: no failure for 5 s, and the load ran 10 s at least.
	start := time.Now()
	for {
		time.Sleep(250 * time.Millisecond)
		mu.Lock()
		quiet := !last.IsZero() && time.Since(last) > 5*time.Second
		mu.Unlock()
		if quiet && time.Since(start) > 10*time.Second {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			return outcome{}, fmt.Errorf("the bad revision still answered after 3 minutes")
		}
	}
	close(stop)
	wg.Wait()
	o := outcome{back: last.Sub(first), bad: bad.Load(), total: total.Load()}
	for _, t := range times {
		if !t.Before(first) && !t.After(last) {
			o.totalInWindow++
		}
	}
	o.badInWindow = int64(len(badTimes))
	return o, nil
}

func tableOf(canary, rolling []outcome) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "| release | first failure to all back (median, each) | bad share in that time | bad share of the whole release |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, way := range []struct {
		name string
		os   []outcome
	}{{"canary, rolled back by fn's analysis", canary}, {"rolling update, then fn rollback at the first failure", rolling}} {
		var backs []time.Duration
		var bad, total, badW, totalW int64
		for _, o := range way.os {
			backs = append(backs, o.back)
			bad, total, badW, totalW = bad+o.bad, total+o.total, badW+o.badInWindow, totalW+o.totalInWindow
		}
		fmt.Fprintf(w, "| %s | %s (%s) | %.1f%% | %.2f%% (%d of %d) |\n", way.name, bench.Median(backs).Round(time.Millisecond), bench.Durations(backs),
			pct(badW, totalW), pct(bad, total), bad, total)
	}
	w.Flush()
	return b.String()
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
