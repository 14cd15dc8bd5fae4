package gitbuild

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

func TestNormalizeURL(t *testing.T) {
	same := [][]string{
		{"https://github.com/acme/fns.git", "https://github.com/acme/fns", "http://GitHub.com/acme/fns/", "git@github.com:acme/fns.git",
			"https://user:pw@github.com/acme/fns.git"},
		{"/srv/git/fns", "file:///srv/git/fns", "/srv/git/fns.git", "/srv/git/fns/"},
	}
	for _, group := range same {
		for _, u := range group[1:] {
			if NormalizeURL(u) != NormalizeURL(group[0]) {
				t.Errorf("NormalizeURL(%q) = %q, want %q's %q", u, NormalizeURL(u), group[0], NormalizeURL(group[0]))
			}
		}
	}
	for _, pair := range [][2]string{
		{"https://github.com/acme/fns", "https://github.com/acme/fns2"},
		{"https://github.com/acme/fns", "https://gitlab.com/acme/fns"},
		{"https://github.com/acme/fns", "https://github.com/ACME/fns"}, // paths are case-sensitive
	} {
		if NormalizeURL(pair[0]) == NormalizeURL(pair[1]) {
			t.Errorf("%q and %q normalize alike (%q)", pair[0], pair[1], NormalizeURL(pair[0]))
		}
	}
}

func TestPruneDeliveries(t *testing.T) {
	data := map[string]string{}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		// Times whose fractions differ in length sort as times only in a fixed-width format.
		data[fmt.Sprintf("github.%02d", i)] = base.Add(time.Duration(i)*time.Second + time.Duration(i%3)*100*time.Millisecond).Format("2006-01-02T15:04:05.000000000Z")
	}
	pruneDeliveries(data, 5)
	var kept []string
	for k := range data {
		kept = append(kept, k)
	}
	sort.Strings(kept)
	if got := strings.Join(kept, " "); got != "github.07 github.08 github.09 github.10 github.11" {
		t.Errorf("kept %s, want the newest five", got)
	}
}

func TestBuildNameSortsInOrder(t *testing.T) {
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	prev := BuildName("hello", at)
	for _, d := range []time.Duration{time.Millisecond, 999 * time.Millisecond, time.Hour, 30 * 24 * time.Hour} {
		next := BuildName("hello", at.Add(d))
		if next <= prev {
			t.Errorf("a build %s later is named %s, not after %s", d, next, prev)
		}
		prev = next
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, v1alpha1.BuildReasonSucceeded},
		{ErrSuperseded, v1alpha1.BuildReasonSuperseded},
		{fmt.Errorf("waiting: %w", ErrTimeout), v1alpha1.BuildReasonTimeout},
		{cloneError{errors.New("fetching")}, v1alpha1.BuildReasonClone},
		{deployError{errors.New("invalid spec")}, v1alpha1.BuildReasonDeploy},
		{errors.New("does not compile"), v1alpha1.BuildReasonFailed},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestLogTail(t *testing.T) {
	var l logTail
	line := strings.Repeat("x", 99) + "\n"
	for range 200 {
		l.Write([]byte(line))
	}
	tail, n := l.snapshot()
	if n != 200*100 || len(tail) > 2*v1alpha1.FunctionBuildLogTail || !strings.HasSuffix(tail, line) {
		t.Errorf("tail of %d bytes (%d written): want at most %d, ending with the last line", len(tail), n, 2*v1alpha1.FunctionBuildLogTail)
	}
	var s v1alpha1.FunctionBuildStatus
	s.SetLogTail(tail)
	if len(s.LogTail) > v1alpha1.FunctionBuildLogTail || !strings.HasPrefix(s.LogTail, "x") || !strings.HasSuffix(s.LogTail, line) {
		t.Errorf("a record's tail of %d bytes, %q...: want at most %d, from a line's start", len(s.LogTail), s.LogTail[:10], v1alpha1.FunctionBuildLogTail)
	}
}
