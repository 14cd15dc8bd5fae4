package gateway

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

func splitTable(percent int32) (*table, *route, *route) {
	canary := &route{key: key{"default", "hello-00002"}, revisionOf: "hello", eps: []*endpoint{{addr: "10.0.0.2:8080"}}}
	fn := &route{key: key{"default", "hello"}, stable: "hello-00001", canary: canary.key, percent: percent, eps: []*endpoint{{addr: "10.0.0.1:8080"}}}
	return &table{routes: map[key]*route{fn.key: fn}, revs: map[key]*route{canary.key: canary}}, fn, canary
}

func TestSplitShare(t *testing.T) {
	for _, pct := range []int32{0, 5, 20, 50, 99} {
		tbl, fn, canary := splitTable(pct)
		const n = 20000
		got := 0
		for range n {
			if tbl.split(fn, httptest.NewRequest("GET", "/", nil)) == canary {
				got++
			}
		}
		share := 100 * float64(got) / n
		if d := share - float64(pct); d < -1.5 || d > 1.5 {
			t.Errorf("at %d%%: the canary took %.1f%% of %d requests", pct, share, n)
		}
	}
	// A canary whose route is not built yet takes none; nor one with no ready endpoint while
	// the stable revision has one (held, its requests would wait for nothing).
	tbl, fn, canary := splitTable(50)
	canary.eps = nil
	for range 100 {
		if tbl.split(fn, httptest.NewRequest("GET", "/", nil)) != fn {
			t.Fatal("a request went to a canary with no endpoint")
		}
	}
	delete(tbl.revs, fn.canary)
	for range 100 {
		if tbl.split(fn, httptest.NewRequest("GET", "/", nil)) != fn {
			t.Fatal("a request went to a canary with no route")
		}
	}
}

func TestSplitSticky(t *testing.T) {
	// A session stays on its side at every share, and once on the canary stays there as the
	// share grows; over many sessions the share holds.
	onCanary := 0
	for i := range 1000 {
		session := fmt.Sprintf("user-%d", i)
		was := false
		for _, pct := range []int32{5, 25, 50, 99} {
			tbl, fn, canary := splitTable(pct)
			req := httptest.NewRequest("GET", "/", nil)
			if i%2 == 0 {
				req.Header.Set(SessionHeader, session)
			} else {
				req.Header.Set("Cookie", SessionCookie+"="+session)
			}
			first := tbl.split(fn, req)
			for range 5 {
				if tbl.split(fn, req) != first {
					t.Fatalf("session %s moved between revisions at %d%%", session, pct)
				}
			}
			if was && first != canary {
				t.Fatalf("session %s left the canary as its share grew to %d%%", session, pct)
			}
			was = first == canary
			if pct == 25 && was {
				onCanary++
			}
		}
	}
	if onCanary < 200 || onCanary > 300 {
		t.Errorf("at 25%%, %d of 1000 sessions were on the canary", onCanary)
	}
}

func TestRevisionAddressing(t *testing.T) {
	tbl, fn, canary := splitTable(0)
	for _, tt := range []struct {
		rev  string
		want *route
		msg  string
	}{
		{"1", fn, ""},
		{"hello-00001", fn, ""},
		{"2", canary, ""},
		{"hello-00002", canary, ""},
		{"3", nil, "does not run"},
		{"other-00001", nil, "no revision"},
	} {
		got, msg := tbl.revision(fn, tt.rev)
		if got != tt.want || !strings.Contains(msg, tt.msg) {
			t.Errorf("revision %q: %v %q, want %v %q", tt.rev, got, msg, tt.want, tt.msg)
		}
	}
}

func TestMatchRevision(t *testing.T) {
	g := &Gateway{hostSuffix: ".fn.local"}
	for _, tt := range []struct {
		path, name, rev, fnPath string
		ok                      bool
	}{
		{"/f/default/hello@2/x", "hello", "2", "/x", true},
		{"/f/default/hello@hello-00002/", "hello", "hello-00002", "/", true},
		{"/f/default/hello@/x", "", "", "", false},
		{"/f/default/hello@A/x", "", "", "", false},
		{"/f/default/hello/x", "hello", "", "/x", true},
	} {
		r := httptest.NewRequest("GET", tt.path, nil)
		r.Host = "gateway"
		got, ok := g.match(r)
		if ok != tt.ok || got.name != tt.name || got.revision != tt.rev || (ok && got.functionPath(r) != tt.fnPath) {
			t.Errorf("%s: %+v %v, want name %q revision %q path %q ok %v", tt.path, got, ok, tt.name, tt.rev, tt.fnPath, tt.ok)
		}
	}
}
