package gitbuild

import (
	"cmp"
	"slices"
	"time"
)

// BuildState is where a build is in the queue.
type BuildState int

const (
	Pending BuildState = iota
	Running
	Done
)

// QueuedBuild is what the queue knows of one build.
type QueuedBuild struct {
	ID string
	// Function is the Function it builds ("NAMESPACE/NAME").
	Function string
	// Created is when its trigger (a push, a webhook delivery) arrived; Started when it ran.
	Created, Started time.Time
	State            BuildState
}

// Actions are what the queue does now: builds to start, and running or pending builds to end
// with their reason.
type Actions struct {
	Start     []string
	Supersede []string // a newer build of the same Function arrived
	TimeOut   []string // running for longer than the timeout
}

// Plan decides, from the builds that are not done, what the queue does at now. It is a pure
// function of its inputs:
//   - Latest trigger wins: of a Function's builds, all but the newest (by Created, then ID) are
//     superseded, whether they run or wait.
//   - A build running for longer than timeout ends with TimeOut.
//   - The newest build of each Function starts, oldest trigger first, while fewer than max run.
//     A build that is being ended still counts until it reports Done, so the bound holds.
func Plan(builds []QueuedBuild, max int, timeout time.Duration, now time.Time) Actions {
	var a Actions
	newest := map[string]QueuedBuild{}
	for _, b := range builds {
		if b.State == Done {
			continue
		}
		if n, ok := newest[b.Function]; !ok || newer(b, n) {
			newest[b.Function] = b
		}
	}
	running := 0
	var waiting []QueuedBuild
	for _, b := range builds {
		switch b.State {
		case Done:
			continue
		case Running:
			running++
		}
		switch {
		case newest[b.Function].ID != b.ID:
			a.Supersede = append(a.Supersede, b.ID)
		case b.State == Running && timeout > 0 && now.Sub(b.Started) > timeout:
			a.TimeOut = append(a.TimeOut, b.ID)
		case b.State == Pending:
			waiting = append(waiting, b)
		}
	}
	slices.SortFunc(waiting, func(x, y QueuedBuild) int {
		return cmp.Or(x.Created.Compare(y.Created), cmp.Compare(x.ID, y.ID))
	})
	for _, b := range waiting {
		if running >= max {
			break
		}
		a.Start = append(a.Start, b.ID)
		running++
	}
	return a
}

func newer(x, y QueuedBuild) bool {
	if c := x.Created.Compare(y.Created); c != 0 {
		return c > 0
	}
	return x.ID > y.ID
}
