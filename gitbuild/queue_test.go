package gitbuild

import (
	"slices"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	b := func(id, fn string, created int, state BuildState) QueuedBuild {
		qb := QueuedBuild{ID: id, Function: fn, Created: at(created), State: state}
		if state == Running {
			qb.Started = at(created)
		}
		return qb
	}
	const timeout = 10 * time.Minute
	for _, c := range []struct {
		name   string
		builds []QueuedBuild
		max    int
		now    time.Time
		want   Actions
	}{
		{"one push starts", []QueuedBuild{b("1", "ns/a", 0, Pending)}, 2, at(1),
			Actions{Start: []string{"1"}}},
		{"a newer push supersedes a running build", []QueuedBuild{b("1", "ns/a", 0, Running), b("2", "ns/a", 5, Pending)}, 2, at(6),
			// 1 still counts until it is Done: 2 starts beside it only because max is 2.
			Actions{Start: []string{"2"}, Supersede: []string{"1"}}},
		{"the newer waits for the superseded one's slot", []QueuedBuild{b("1", "ns/a", 0, Running), b("2", "ns/a", 5, Pending)}, 1, at(6),
			Actions{Supersede: []string{"1"}}},
		{"of three pending, only the newest runs", []QueuedBuild{b("1", "ns/a", 0, Pending), b("3", "ns/a", 2, Pending), b("2", "ns/a", 1, Pending)}, 2, at(3),
			Actions{Start: []string{"3"}, Supersede: []string{"1", "2"}}},
		{"same time: the higher id wins", []QueuedBuild{b("a1", "ns/a", 0, Pending), b("a2", "ns/a", 0, Pending)}, 2, at(0),
			Actions{Start: []string{"a2"}, Supersede: []string{"a1"}}},
		{"functions side by side up to the bound, oldest first", []QueuedBuild{
			b("c", "ns/c", 2, Pending), b("a", "ns/a", 0, Pending), b("b", "ns/b", 1, Pending)}, 2, at(3),
			Actions{Start: []string{"a", "b"}}},
		{"the bound counts what runs", []QueuedBuild{b("a", "ns/a", 0, Running), b("b", "ns/b", 1, Running), b("c", "ns/c", 2, Pending)}, 2, at(3),
			Actions{}},
		{"done builds count for nothing", []QueuedBuild{b("a", "ns/a", 0, Done), b("b", "ns/a", 1, Pending)}, 1, at(3),
			Actions{Start: []string{"b"}}},
		{"a build past its timeout ends", []QueuedBuild{b("a", "ns/a", 0, Running)}, 2, at(0).Add(timeout + time.Second),
			Actions{TimeOut: []string{"a"}}},
		{"at its timeout, not yet", []QueuedBuild{b("a", "ns/a", 0, Running)}, 2, at(0).Add(timeout),
			Actions{}},
		{"steady: one running, nothing to do", []QueuedBuild{b("a", "ns/a", 0, Running)}, 2, at(30),
			Actions{}},
	} {
		got := Plan(c.builds, c.max, timeout, c.now)
		if !slices.Equal(got.Start, c.want.Start) || !slices.Equal(got.Supersede, c.want.Supersede) || !slices.Equal(got.TimeOut, c.want.TimeOut) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
