package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestAccessLogWriter: the gateway's own encoding of a request line says what slog's JSON handler
// says of it, whatever the path holds.
func TestAccessLogWriter(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		path string
		err  error
	}{
		{"/plain", nil},
		{`/q"uote\back` + "\n\r\t\x00\x1f", errors.New(`dial "tcp": refused` + "\n")},
		{"/utf-8/héllo/日本/\xff\xfe/end", nil},
		{"/<html>&amp;", errors.New("x")},
	} {
		var fast, viaSlog bytes.Buffer
		fg := &Gateway{opts: Options{AccessLog: &fast}, log: slog.New(slog.NewJSONHandler(&viaSlog, nil))}
		sg := &Gateway{log: slog.New(slog.NewJSONHandler(&viaSlog, nil))}
		for _, g := range []*Gateway{fg, sg} {
			g.logRequest(t.Context(), key{"ns", "fn"}, "GET", tt.path, 502, 1234567*time.Nanosecond, "10.0.0.1:8080", tt.err)
		}
		if viaSlog.Len() == 0 || strings.Count(fast.String(), "\n") != 1 {
			t.Fatalf("%q: slog %q, access log %q", tt.path, viaSlog.String(), fast.String())
		}
		var a, b map[string]any
		if err := json.Unmarshal(fast.Bytes(), &a); err != nil {
			t.Fatalf("%q: access log line %q is not JSON: %v", tt.path, fast.String(), err)
		}
		if err := json.Unmarshal(viaSlog.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, a["time"].(string)); err != nil {
			t.Errorf("%q: time %v", tt.path, a["time"])
		}
		delete(a, "time")
		delete(b, "time")
		if d := cmp.Diff(b, a); d != "" {
			t.Errorf("%q: access log line differs from slog's (-slog +access log):\n%s", tt.path, d)
		}
	}
}

// TestAccessLogOption: with Options.AccessLog, request lines go there and not to the Logger.
func TestAccessLogOption(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "a", nil)
	access := &syncBuffer{}
	f := newFixture(t, Options{AccessLog: access}, function("hello", "ns"), slice("hello-1", "ns", "hello", withEndpoint(b.URL, true)))
	if resp, _ := f.get(t, "/f/ns/hello/x"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	f.get(t, "/f/ns/nope/")
	lines := access.lines(t)
	if len(lines) != 2 || lines[0]["path"] != "/f/ns/hello/x" || lines[0]["status"] != 200.0 || lines[1]["status"] != 404.0 {
		t.Errorf("access log %v", lines)
	}
	if l := f.logs.lines(t); len(l) != 0 {
		t.Errorf("request lines also went to the Logger: %v", l)
	}
}
