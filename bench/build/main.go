// Command build benchmarks fn build of examples/hello pushing to the embedded registry: cold
// (empty Go build cache), warm after an edit, warm with nothing changed, and with the image cache
// off, each beside a plain go build of the same generated main in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"fnkit.dev/fn/bench"
	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/registry"
)

func main() {
	rounds := flag.Int("rounds", 5, "warm rounds")
	results := flag.String("results", "bench/results/build.md", "file to record the results in (empty: none)")
	flag.Parse()
	if err := run(*rounds, *results); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

var answerRE = regexp.MustCompile(`Fprintf\(w, "Hello\d*, `)

type row struct {
	name     string
	fn       []time.Duration
	baseline []time.Duration
	note     string
}

func run(rounds int, resultsFile string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "fn-bench-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	reg, err := registry.New(ctx, filepath.Join(tmp, "registry"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = reg.Serve(rctx, ln) }()
	repo := ln.Addr().String() + "/fns"

	// A private copy of hello, so edits stay out of the repository.
	src := filepath.Join(tmp, "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"go.mod", "hello.go"} {
		b, err := os.ReadFile(filepath.Join("examples/hello", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			return err
		}
	}
	cache := filepath.Join(tmp, "fn-cache")
	edit := 0
	touch := func() error { // a real source change: the function's answer changes
		edit++
		b, err := os.ReadFile(filepath.Join(src, "hello.go"))
		if err != nil {
			return err
		}
		s := answerRE.ReplaceAllString(string(b), fmt.Sprintf(`Fprintf(w, "Hello%d, `, edit))
		if s == string(b) {
			return fmt.Errorf("examples/hello changed: cannot find its answer to edit")
		}
		return os.WriteFile(filepath.Join(src, "hello.go"), []byte(s), 0o644)
	}
	var size int64
	fnBuild := func(o builder.ImageOptions) (time.Duration, error) {
		start := time.Now()
		f, err := builder.Scaffold(src, "hello", cache)
		if err != nil {
			return 0, err
		}
		img, err := f.BuildImage(ctx, o)
		if err != nil {
			return 0, err
		}
		if _, err := img.Push(ctx, repo, false); err != nil {
			return 0, err
		}
		size, _ = img.Size()
		return time.Since(start), nil
	}
	goBuild := func() (time.Duration, error) {
		f, err := builder.Scaffold(src, "hello", cache)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(tmp, "hello.bin"), ".")
		cmd.Dir, cmd.Env = f.MainDir, builder.BuildEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("go build: %v\n%s", err, out)
		}
		return time.Since(start), nil
	}

	var rows []*row
	// Cold: an empty Go build cache (the runtime, its dependencies and the standard library compile).
	cold := &row{name: "cold (empty GOCACHE)", note: "baseline: go build, also from an empty GOCACHE"}
	for _, which := range []string{"baseline", "fn"} {
		if err := os.Setenv("GOCACHE", filepath.Join(tmp, "gocache-"+which)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "cold build (%s)...\n", which)
		var d time.Duration
		if which == "fn" {
			d, err = fnBuild(builder.ImageOptions{})
			cold.fn = append(cold.fn, d)
		} else {
			d, err = goBuild()
			cold.baseline = append(cold.baseline, d)
		}
		if err != nil {
			return err
		}
	}
	rows = append(rows, cold)
	// Warm rows use the fn cold run's GOCACHE.
	edited := &row{name: "warm, source edited", note: "compile of the function + link + image + push"}
	unchanged := &row{name: "warm, unchanged", note: "fn's image cache: no go invocation"}
	nocache := &row{name: "warm, unchanged, image cache off", note: "ko + Go build cache"}
	for r := 0; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "warm round %d/%d...\n", r+1, rounds)
		// Each after an edit of its own: go build after fn's build of the same edit would find
		// the function's package compiled.
		if err := touch(); err != nil {
			return err
		}
		d, err := goBuild()
		if err != nil {
			return err
		}
		edited.baseline = append(edited.baseline, d)
		if err := touch(); err != nil {
			return err
		}
		if d, err = fnBuild(builder.ImageOptions{}); err != nil {
			return err
		}
		edited.fn = append(edited.fn, d)
		for _, x := range []struct {
			row *row
			o   builder.ImageOptions
		}{{unchanged, builder.ImageOptions{}}, {nocache, builder.ImageOptions{NoCache: true}}} {
			d, err := fnBuild(x.o)
			if err != nil {
				return err
			}
			x.row.fn = append(x.row.fn, d)
			if d, err = goBuild(); err != nil {
				return err
			}
			x.row.baseline = append(x.row.baseline, d)
		}
	}
	rows = append(rows, edited, unchanged, nocache)

	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "fn build + push of examples/hello\tmedian\truns\tgo build of the same main (median)\tratio\tgoal\tnote")
	for _, r := range rows {
		m, base := bench.Median(r.fn), bench.Median(r.baseline)
		goal := ""
		if strings.HasPrefix(r.name, "warm") {
			goal = "<= 1.0 s " + bench.Verdict(m <= time.Second)
			if r == edited {
				goal += ", <= 1.2x " + bench.Verdict(float64(m) <= 1.2*float64(base))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.2fx\t%s\t%s\n", r.name, m.Round(time.Millisecond), bench.Durations(r.fn), base.Round(time.Millisecond), float64(m)/float64(base), goal, r.note)
	}
	fmt.Fprintf(w, "image size (compressed layers)\t%.2f MB\t\t\t\t<= 10 MB %s\t\n", float64(size)/1e6, bench.Verdict(size <= 10<<20))
	w.Flush()
	fmt.Print(b.String())
	return bench.Record(resultsFile, "Build benchmark",
		fmt.Sprintf("Command: `make bench` (bench/build). Registry: the embedded one on loopback. %d warm rounds.", rounds), b.String())
}
