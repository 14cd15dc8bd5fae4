// Command platform benchmarks the local platform with the fn binary, as a user runs it: fn up with
// cached binaries, with one node agent and with three (beside a bare etcd + kube-apiserver start), fn deploy of unchanged hello (beside
// fn build of it), and edit, deploy, first answer from the new version (beside fn build after the
// same edit).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each figure")
	results := flag.String("results", "bench/results/platform.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*rounds, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(rounds int, resultsFile string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-platform-")
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
	timed := func(f func() error) (time.Duration, error) {
		start := time.Now()
		err := f()
		return time.Since(start), err
	}
	src := filepath.Join(tmp, "src", "hello")
	if err := bench.CopyHello(src); err != nil {
		return err
	}

	up := &bench.Figure{Name: "fn up, cached binaries", BaselineName: "etcd + kube-apiserver alone, to ready", Goal: 10 * time.Second}
	up3 := &bench.Figure{Name: "fn up --nodes 3, cached binaries", BaselineName: "etcd + kube-apiserver alone, to ready", Goal: 10 * time.Second}
	deploy := &bench.Figure{Name: "fn deploy of unchanged hello", BaselineName: "fn build of it, no push", Goal: 5 * time.Second}
	edit := &bench.Figure{Name: "edit, fn deploy, first answer from the new version", BaselineName: "fn build after the same edit", Goal: 5 * time.Second}

	// A first up and deploy warm the caches (Go build cache, image layers, the cluster's data).
	fmt.Fprintln(os.Stderr, "warming up...")
	if _, err := fn("up"); err != nil {
		return err
	}
	if _, err := fn("deploy", src); err != nil {
		return err
	}
	if _, err := fn("down"); err != nil {
		return err
	}
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d...\n", r+1, rounds)
		dir, err := os.MkdirTemp(tmp, "cp-")
		if err != nil {
			return err
		}
		var cp *controlplane.ControlPlane
		d, err := timed(func() (err error) {
			cp, err = controlplane.Start(ctx, controlplane.Options{Dir: dir, BinDir: bin})
			return err
		})
		if err != nil {
			return err
		}
		if err := cp.Stop(); err != nil {
			return err
		}
		up.Baseline = append(up.Baseline, d)
		if d, err = timed(func() error { _, err := fn("up"); return err }); err != nil {
			return err
		}
		up.Runs = append(up.Runs, d)
		// The platform restores hello's pod after an up; time the deploy once it serves.
		for deadline := time.Now().Add(time.Minute); ; {
			if _, err := fn("invoke", "hello"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("hello does not serve after fn up")
			}
			time.Sleep(50 * time.Millisecond)
		}

		if d, err = timed(func() error { _, err := fn("deploy", src); return err }); err != nil {
			return err
		}
		deploy.Runs = append(deploy.Runs, d)
		if d, err = timed(func() error { _, err := fn("build", src, "--push=false"); return err }); err != nil {
			return err
		}
		deploy.Baseline = append(deploy.Baseline, d)

		answer := fmt.Sprintf("Round%d, world!\n", r)
		if err := bench.SetHelloAnswer(src, fmt.Sprintf("Round%d", r)); err != nil {
			return err
		}
		if d, err = timed(func() error {
			if _, err := fn("deploy", src); err != nil {
				return err
			}
			for deadline := time.Now().Add(time.Minute); ; {
				if out, err := fn("invoke", "hello"); err == nil && out == answer {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the new version did not answer within a minute")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}); err != nil {
			return err
		}
		edit.Runs = append(edit.Runs, d)
		if err := bench.SetHelloAnswer(src, fmt.Sprintf("Again%d", r)); err != nil {
			return err
		}
		if d, err = timed(func() error { _, err := fn("build", src, "--push=false"); return err }); err != nil {
			return err
		}
		edit.Baseline = append(edit.Baseline, d)
		if _, err := fn("down"); err != nil {
			return err
		}
		// The same platform with three node agents (each a Node, all three Ready).
		up3.Baseline = append(up3.Baseline, up.Baseline[len(up.Baseline)-1])
		if d, err = timed(func() error { _, err := fn("up", "--nodes", "3"); return err }); err != nil {
			return err
		}
		up3.Runs = append(up3.Runs, d)
		if _, err := fn("down"); err != nil {
			return err
		}
	}

	mem, err := idleMemory(fn, home, tmp)
	if err != nil {
		return err
	}
	table := bench.FigureTable(up, up3, deploy, edit) + "\n" + mem
	fmt.Print(table)
	return bench.Record(resultsFile, "Local platform benchmark",
		fmt.Sprintf("Command: `make bench` (bench/platform), %d rounds, the fn binary as a user runs it. Memory: every process of the platform (fn up's process and its descendants), %s after four functions answered.", rounds, idleWait), table)
}

// idleWait is how long the platform idles before its memory is read.
const idleWait = 30 * time.Second

// idleMemory brings the platform up with four function pods (hello, hello-2, echo-event,
// typed), lets it idle, and tables the memory of each of its processes, summed per component.
func idleMemory(fn func(args ...string) (string, error), home, tmp string) (string, error) {
	fmt.Fprintln(os.Stderr, "memory: fn up with four functions...")
	if _, err := fn("up", "--nodes", "1"); err != nil { // not as many as the last up
		return "", err
	}
	defer func() { _, _ = fn("down") }()
	hello2 := filepath.Join(tmp, "src", "hello-2")
	if err := bench.CopyHello(hello2); err != nil {
		return "", err
	}
	for _, dir := range []string{filepath.Join(tmp, "src", "hello"), hello2, "examples/echo-event", "examples/typed"} {
		if _, err := fn("deploy", dir); err != nil {
			return "", err
		}
	}
	for _, name := range []string{"hello", "hello-2"} {
		if _, err := fn("invoke", name); err != nil {
			return "", err
		}
	}
	time.Sleep(idleWait)
	b, err := os.ReadFile(filepath.Join(home, "platform.pid"))
	if err != nil {
		return "", err
	}
	root, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", err
	}
	sums := map[string]*bench.Memory{}
	var order []string
	add := func(name string, m bench.Memory) {
		if sums[name] == nil {
			sums[name] = &bench.Memory{}
			order = append(order, name)
		}
		sums[name].RSS += m.RSS
		sums[name].PSS += m.PSS
	}
	add("fn up (the platform's supervisor)", bench.ProcessMemory(root))
	procs := bench.Descendants(root)
	agents := map[int]bool{}
	for _, pid := range procs {
		if args := bench.CommandLine(pid); len(args) >= 3 && args[0] == "fn" && args[2] == "agent" {
			agents[pid] = true
		}
	}
	for _, pid := range procs {
		args := bench.CommandLine(pid)
		name := "function pods (4)"
		switch {
		case len(args) == 0:
			continue
		case len(args) >= 3 && args[0] == "fn" && args[1] == "internal":
			name = "fn " + args[2]
		case strings.HasPrefix(args[0], "etcd") || strings.HasPrefix(args[0], "kube-") || args[0] == "metrics-server":
			name = args[0]
		case !underAgent(pid, agents):
			name = "other: " + args[0]
		}
		add(name, bench.ProcessMemory(pid))
	}
	sort.SliceStable(order, func(i, j int) bool { return sums[order[i]].PSS > sums[order[j]].PSS })
	var total bench.Memory
	var out strings.Builder
	w := tabwriter.NewWriter(&out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "memory at idle, four function pods\tPSS\tRSS")
	for _, name := range order {
		m := sums[name]
		total.PSS += m.PSS
		total.RSS += m.RSS
		fmt.Fprintf(w, "  %s\t%.0f MB\t%.0f MB\n", name, float64(m.PSS)/1e6, float64(m.RSS)/1e6)
	}
	fmt.Fprintf(w, "the local platform in all\t%.0f MB\t%.0f MB\tgoal <= 500 MB (PSS) %s\n", float64(total.PSS)/1e6, float64(total.RSS)/1e6, bench.Verdict(total.PSS <= 500e6))
	w.Flush()
	return out.String(), nil
}

// underAgent reports whether pid descends from one of agents.
func underAgent(pid int, agents map[int]bool) bool {
	for p := bench.ParentOf(pid); p > 1; p = bench.ParentOf(p) {
		if agents[p] {
			return true
		}
	}
	return false
}
