// Command install benchmarks fn on a cluster with its components as pods, as a user runs it:
// fn install on a control plane with nothing of fn (warm build cache), beside kubectl apply of
// the same manifests and the wait for their rollout (what installing prebuilt images costs);
// fn up --install --nodes 3 to ready, beside fn up --nodes 3 (components in its process); and
// a node lost under a function of 4 replicas, to 4 replicas Ready again on the others.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each figure")
	results := flag.String("results", "bench/results/install.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*rounds, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(rounds int, resultsFile string) error {
	ctx := context.Background()
	repo, _ := os.Getwd()
	tmp, err := os.MkdirTemp("", "fn-bench-install-")
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
	kubeconfig := filepath.Join(home, "cluster", "kubeconfig")
	env := append(os.Environ(), "FN_HOME="+home, "FN_CACHE_DIR="+filepath.Join(tmp, "cache"), "FN_K8S_BIN="+bin)
	command := func(name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Dir = env, repo
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), nil
	}
	fn := func(args ...string) (string, error) { return command(fnBin, args...) }
	kubectl := func(args ...string) (string, error) {
		return command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
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

	install := &bench.Figure{Name: "fn install, nothing of fn on the cluster, to all available", BaselineName: "kubectl apply of its --print, rollout status", Goal: 30 * time.Second}
	up3 := &bench.Figure{Name: "fn up --install --nodes 3 to ready", BaselineName: "fn up --nodes 3 (components in its process)", Goal: 30 * time.Second}
	loss := &bench.Figure{Name: "node lost under 4 replicas, to 4 Ready on the others", Goal: 40 * time.Second}

	// A first up builds fn's images (Go build cache, registry blobs) and the toolchain base.
	fmt.Fprintln(os.Stderr, "warming up...")
	if _, err := fn("up", "--install", "--nodes", "2"); err != nil {
		return err
	}
	printed, err := fn("install", "--print")
	if err != nil {
		return err
	}
	manifest := filepath.Join(tmp, "fn.yaml")
	if err := os.WriteFile(manifest, []byte(printed), 0o644); err != nil {
		return err
	}
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d...\n", r+1, rounds)
		if _, err := fn("uninstall", "--functions"); err != nil {
			return err
		}
		d, err := timed(func() error { _, err := fn("install"); return err })
		if err != nil {
			return err
		}
		install.Runs = append(install.Runs, d)
		if _, err := fn("uninstall", "--functions"); err != nil {
			return err
		}
		if d, err = timed(func() error {
			if _, err := kubectl("apply", "-f", manifest); err != nil {
				return err
			}
			for _, c := range []string{"fn-controller", "fn-gateway", "fn-builder"} {
				if _, err := kubectl("rollout", "status", "-n", "fn-system", "deployment/"+c, "--timeout=3m"); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		install.Baseline = append(install.Baseline, d)

		if _, err := fn("down"); err != nil {
			return err
		}
		if d, err = timed(func() error { _, err := fn("up", "--nodes", "3"); return err }); err != nil {
			return err
		}
		up3.Baseline = append(up3.Baseline, d)
		if _, err := fn("down"); err != nil {
			return err
		}
		if d, err = timed(func() error { _, err := fn("up", "--install", "--nodes", "3"); return err }); err != nil {
			return err
		}
		up3.Runs = append(up3.Runs, d)

		if d, err = nodeLoss(fn, kubectl, src); err != nil {
			return err
		}
		loss.Runs = append(loss.Runs, d)
		// The lost node comes back with the next up.
		if _, err := fn("down"); err != nil {
			return err
		}
		if _, err := fn("up", "--install", "--nodes", "2"); err != nil {
			return err
		}
	}
	if _, err := fn("down"); err != nil {
		return err
	}

	table := bench.FigureTable(install, up3, loss)
	fmt.Print(table)
	return bench.Record(resultsFile, "fn on a cluster: install, several nodes, node loss",
		fmt.Sprintf("Command: `make bench` (bench/install), %d rounds, the fn binary as a user runs it, on the local platform with fn's components as pods (fn up --install).", rounds), table)
}

// nodeLoss deploys hello with 4 replicas over the platform's nodes, kills the last node's
// agent, and returns how long until 4 replicas are Ready on the other nodes.
func nodeLoss(fn, kubectl func(...string) (string, error), src string) (time.Duration, error) {
	if _, err := fn("deploy", src, "--min", "4"); err != nil {
		return 0, err
	}
	const lost = "fn-local-3"
	out, err := exec.Command("pgrep", "-f", "internal agent --node "+lost+" ").Output()
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || perr != nil {
		return 0, fmt.Errorf("finding the agent of %s: %v %v (%q)", lost, err, perr, out)
	}
	start := time.Now()
	if err := exec.Command("kill", "-KILL", strconv.Itoa(pid)).Run(); err != nil {
		return 0, err
	}
	for deadline := start.Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := kubectl("get", "pods", "-l", "fnkit.dev/function=hello", "-o",
			`jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			continue
		}
		ready := 0
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] != lost && f[1] == "True" {
				ready++
			}
		}
		if ready >= 4 {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("4 replicas were not Ready on the remaining nodes within 3 minutes")
}
