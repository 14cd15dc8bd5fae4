package bench

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is a duration measured over rounds beside a baseline measured in the same rounds, with
// a goal for its median (0: none). Baseline empty: no baseline.
type Figure struct {
	Name, BaselineName string
	Goal               time.Duration
	Runs, Baseline     []time.Duration
}

// FigureTable is the results table of figures: median, runs, the baseline's median, the ratio
// of the medians and whether the goal was met.
func FigureTable(figs ...*Figure) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tmedian\truns\tbaseline\tbaseline median\tratio\tgoal")
	for _, f := range figs {
		m := Median(f.Runs)
		goal := "-"
		if f.Goal > 0 {
			goal = fmt.Sprintf("<= %s %s", f.Goal, Verdict(m <= f.Goal))
		}
		base, bm, ratio := "-", "-", "-"
		if len(f.Baseline) > 0 {
			med := Median(f.Baseline)
			base, bm, ratio = f.BaselineName, med.Round(time.Millisecond).String(), fmt.Sprintf("%.2fx", float64(m)/float64(med))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, m.Round(time.Millisecond), Durations(f.Runs), base, bm, ratio, goal)
	}
	w.Flush()
	return b.String()
}

// Verdict is how a goal's line ends: met, or MISSED.
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
