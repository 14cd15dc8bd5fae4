// Command gitpush benchmarks git-push builds on the local platform, with the fn binary and git
// as a user runs them: a one-line edit pushed to fn's git remote until the new version answers
// through the gateway, beside fn deploy of the same edit to another function, with warm caches;
// then once each with Go's build cache empty (cold).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/platform/controlplane"
)

func main() {
	rounds := flag.Int("rounds", 5, "warm rounds")
	results := flag.String("results", "bench/results/gitpush.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*rounds, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type env struct {
	tmp, fnBin, home string
	vars             []string
}

func (e *env) cmd(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, e.vars
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (e *env) fn(args ...string) (string, error) { return e.cmd("", e.fnBin, args...) }

func run(rounds int, resultsFile string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-gitpush-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{tmp: tmp, fnBin: filepath.Join(tmp, "fn"), home: filepath.Join(tmp, "home")}
	if out, err := exec.Command("go", "build", "-o", e.fnBin, "./cmd/fn").CombinedOutput(); err != nil {
		return fmt.Errorf("building fn: %v\n%s", err, out)
	}
	bin, err := controlplane.BinDir(ctx, os.Stderr)
	if err != nil {
		return err
	}
	base := append(os.Environ(), "FN_HOME="+e.home, "FN_CACHE_DIR="+filepath.Join(tmp, "cache"), "FN_K8S_BIN="+bin,
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.test", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.test")
	e.vars = base

	// The repository pushed, and a copy of the same function that fn deploy builds.
	repoDir, deployDir := filepath.Join(tmp, "repo"), filepath.Join(tmp, "deployed")
	for _, d := range []string{repoDir, deployDir} {
		if err := bench.CopyHello(d); err != nil {
			return err
		}
	}
	if _, err := e.cmd(repoDir, "git", "init", "-q", "-b", "main"); err != nil {
		return err
	}
	commit := func(msg string) error {
		if _, err := e.cmd(repoDir, "git", "add", "-A"); err != nil {
			return err
		}
		_, err := e.cmd(repoDir, "git", "commit", "-q", "-m", msg)
		return err
	}
	if err := commit("hello"); err != nil {
		return err
	}
	up := func() (string, error) {
		if _, err := e.fn("up"); err != nil {
			return "", err
		}
		var st struct{ Gateway string }
		b, err := os.ReadFile(filepath.Join(e.home, "platform.json"))
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		return st.Gateway, err
	}
	fmt.Fprintln(os.Stderr, "warming up...")
	gw, err := up()
	if err != nil {
		return err
	}
	defer e.fn("down")
	if _, err := e.cmd(repoDir, e.fnBin, "remote", "pushed", "--add"); err != nil {
		return err
	}
	if _, err := e.cmd(repoDir, "git", "push", "-q", "fn", "main"); err != nil {
		return err
	}
	if _, err := e.fn("deploy", deployDir, "--name", "deployed"); err != nil {
		return err
	}

	push := &bench.Figure{Name: "git push of a one-line edit, to the new answer", BaselineName: "fn deploy of the same edit, to the new answer", Goal: 3 * time.Second}
	edit := func(dir string, word string) error { return bench.SetHelloAnswer(dir, word) }
	pushRound := func(word string) (time.Duration, error) {
		if err := edit(repoDir, word); err != nil {
			return 0, err
		}
		if err := commit(word); err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := e.cmd(repoDir, "git", "push", "-q", "fn", "main"); err != nil {
			return 0, err
		}
		return time.Since(start), waitAnswer(gw+"/f/default/pushed/", word+", world!\n", start)
	}
	deployRound := func(word string) (time.Duration, error) {
		if err := edit(deployDir, word); err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := e.fn("deploy", deployDir, "--name", "deployed"); err != nil {
			return 0, err
		}
		err := waitAnswer(gw+"/f/default/deployed/", word+", world!\n", start)
		return time.Since(start), err
	}
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d...\n", r+1, rounds)
		// Alternate which goes first, so neither always follows the other's load.
		order := []func() error{
			func() error {
				d, err := timedAnswer(pushRound, fmt.Sprintf("Push%d", r))
				push.Runs = append(push.Runs, d)
				return err
			},
			func() error {
				d, err := timedAnswer(deployRound, fmt.Sprintf("Deploy%d", r))
				push.Baseline = append(push.Baseline, d)
				return err
			},
		}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, f := range order {
			if err := f(); err != nil {
				return err
			}
		}
	}

	// Cold: Go's build cache empty, for the builder (the platform restarted with a new one) and
	// for fn deploy alike; the module cache stays (no network).
	fmt.Fprintln(os.Stderr, "cold round...")
	if _, err := e.fn("down"); err != nil {
		return err
	}
	cold := &bench.Figure{Name: "git push, cold (empty Go build cache)", BaselineName: "fn deploy, cold", Goal: 0}
	for _, d := range []string{filepath.Join(e.home, "builder", "cache"), filepath.Join(tmp, "cache")} {
		os.RemoveAll(d)
	}
	e.vars = append(base, "GOCACHE="+filepath.Join(tmp, "gocache-builder"))
	if gw, err = up(); err != nil {
		return err
	}
	waitAnswer(gw+"/f/default/pushed/", "Push", time.Now()) // the platform restores the pod
	d, err := timedAnswer(pushRound, "PushCold")
	if err != nil {
		return err
	}
	cold.Runs = append(cold.Runs, d)
	e.vars = append(base, "GOCACHE="+filepath.Join(tmp, "gocache-deploy"))
	if d, err = timedAnswer(deployRound, "DeployCold"); err != nil {
		return err
	}
	cold.Baseline = append(cold.Baseline, d)

	table := bench.FigureTable(push, cold)
	fmt.Print(table)
	return bench.Record(resultsFile, "Git-push build benchmark",
		fmt.Sprintf("Command: `make bench` (bench/gitpush), %d warm rounds alternating which goes first, then one cold round each; the fn binary and git as a user runs them. Each time runs from the push (or deploy) to the first answer of the new version through the gateway.", rounds), table)
}

// timedAnswer runs round, which returns when its command ended; the figure is until the answer.
func timedAnswer(round func(string) (time.Duration, error), word string) (time.Duration, error) {
	start := time.Now()
	if _, err := round(word); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// waitAnswer polls url until its body has want (bounded: a minute from start).
func waitAnswer(url, want string, start time.Time) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Since(start) < time.Minute {
		if resp, err := client.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), want) {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %q within a minute", url, want)
}
