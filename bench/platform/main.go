// Command platform benchmarks the local platform with the fn binary, as a user runs it: fn up with
// cached binaries, with one node agent and with three (beside a bare etcd + kube-apiserver start), fn deploy of unchanged hello (beside
// fn build of it), and edit, deploy, first answer from the new version (beside fn build after the
// same edit).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

type figure struct {
	name, baselineName string
	goal               time.Duration
	fn, baseline       []time.Duration
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
	fn := func(args ...string) (string, error) {
		cmd := exec.Command(fnBin, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("fn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), nil
	}
	timed := func(f func() error) (time.Duration, error) {
		start := time.Now()
		err := f()
		return time.Since(start), err
	}
	src := filepath.Join(tmp, "src", "hello")
	if err := bench.CopyHello(src); err != nil {
		return err
	}

	up := &figure{name: "fn up, cached binaries", baselineName: "etcd + kube-apiserver alone, to ready", goal: 10 * time.Second}
	up3 := &figure{name: "fn up --nodes 3, cached binaries", baselineName: "etcd + kube-apiserver alone, to ready", goal: 10 * time.Second}
	deploy := &figure{name: "fn deploy of unchanged hello", baselineName: "fn build of it, no push", goal: 5 * time.Second}
	edit := &figure{name: "edit, fn deploy, first answer from the new version", baselineName: "fn build after the same edit", goal: 5 * time.Second}

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
		up.baseline = append(up.baseline, d)
		if d, err = timed(func() error { _, err := fn("up"); return err }); err != nil {
			return err
		}
		up.fn = append(up.fn, d)
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
		deploy.fn = append(deploy.fn, d)
		if d, err = timed(func() error { _, err := fn("build", src, "--push=false"); return err }); err != nil {
			return err
		}
		deploy.baseline = append(deploy.baseline, d)

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
		edit.fn = append(edit.fn, d)
		if err := bench.SetHelloAnswer(src, fmt.Sprintf("Again%d", r)); err != nil {
			return err
		}
		if d, err = timed(func() error { _, err := fn("build", src, "--push=false"); return err }); err != nil {
			return err
		}
		edit.baseline = append(edit.baseline, d)
		if _, err := fn("down"); err != nil {
			return err
		}
		// The same platform with three node agents (each a Node, all three Ready).
		up3.baseline = append(up3.baseline, up.baseline[len(up.baseline)-1])
		if d, err = timed(func() error { _, err := fn("up", "--nodes", "3"); return err }); err != nil {
			return err
		}
		up3.fn = append(up3.fn, d)
		if _, err := fn("down"); err != nil {
			return err
		}
	}

	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tmedian\truns\tbaseline\tbaseline median\tratio\tgoal")
	for _, f := range []*figure{up, up3, deploy, edit} {
		m, bm := bench.Median(f.fn), bench.Median(f.baseline)
		verdict := "met"
		if m > f.goal {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%.2fx\t<= %s %s\n", f.name, m.Round(time.Millisecond), bench.Durations(f.fn), f.baselineName, bm.Round(time.Millisecond), float64(m)/float64(bm), f.goal, verdict)
	}
	w.Flush()
	fmt.Print(b.String())
	return bench.Record(resultsFile, "Local platform benchmark",
		fmt.Sprintf("Command: `make bench` (bench/platform), %d rounds, the fn binary as a user runs it.", rounds), b.String())
}
