package bench

import (
	"strings"
	"testing"
	"time"
)

func TestFigureTable(t *testing.T) {
	s := time.Second
	table := FigureTable(
		&Figure{Name: "fast", BaselineName: "base", Goal: 3 * s, Runs: []time.Duration{2 * s, 1 * s, 3 * s}, Baseline: []time.Duration{s, s, s}},
		&Figure{Name: "slow", Goal: s, Runs: []time.Duration{2 * s}},
	)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", table)
	}
	for _, want := range []string{"fast", "2s", "base", "1s", "2.00x", "<= 3s met"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if f := strings.Fields(lines[2]); len(f) < 6 || f[3] != "-" || f[5] != "-" || !strings.Contains(lines[2], "<= 1s MISSED") {
		t.Errorf("row without a baseline, over its goal: %q", lines[2])
	}
}
