package bench

import (
	"fmt"
	"os"
	goruntime "runtime"
	"time"
)

// startLoad is the machine's load average when the benchmark's process started.
var startLoad = LoadAverage()

// Record writes a benchmark's results file: a title, when and on what machine it ran, the
// machine's load average when the benchmark started and when it ended, how, and its table. An
// empty path records nothing.
func Record(path, title, how, table string) error {
	if path == "" {
		return nil
	}
	text := fmt.Sprintf("# %s\n\nRecorded %s on %s, %s, %s/%s; load average %s at the start, %s at the end.\n%s\n\n```\n%s```\n", title,
		time.Now().UTC().Format("2006-01-02 15:04 MST"), Machine(), goruntime.Version(), goruntime.GOOS, goruntime.GOARCH,
		startLoad, LoadAverage(), how, table)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "recorded in %s\n", path)
	return nil
}
