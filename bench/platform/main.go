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

	table := bench.FigureTable(up, up3, deploy, edit)
	fmt.Print(table)
	return bench.Record(resultsFile, "Local platform benchmark",
		fmt.Sprintf("Command: `make bench` (bench/platform), %d rounds, the fn binary as a user runs it.", rounds), table)
}
