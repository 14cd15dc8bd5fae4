package runtime_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fnkit.dev/fn/runtime"
)

// waitTimeout bounds every wait of the suite, so that a bug cannot hang it.
const waitTimeout = 10 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConfig is a configuration for tests: the defaults of an empty environment.
func testConfig(t testing.TB) runtime.Config {
	t.Helper()
	cfg, err := runtime.ConfigFromLookup(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("ConfigFromLookup(empty) = %v", err)
	}
	return cfg
}

// running is a Server served by Run on a loopback listener.
type running struct {
	s      *runtime.Server
	url    string
	addr   string
	cancel context.CancelFunc
	done   chan error // receives Run's result once
	client *http.Client

	result   error
	finished bool
}

// start runs f with cfg on a fresh loopback listener and, when waitReady is set, waits until
// /_fn/ready answers 200. The server is stopped at the end of the test.
func start(t testing.TB, f runtime.Function, cfg runtime.Config, waitReady bool) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := runtime.New(f, cfg, runtime.WithLogger(quietLogger()), runtime.WithListener(ln))
	ctx, cancel := context.WithCancel(context.Background())
	rs := &running{
		s:      s,
		url:    "http://" + ln.Addr().String(),
		addr:   ln.Addr().String(),
		cancel: cancel,
		done:   make(chan error, 1),
		client: newClient(t),
	}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if !rs.finished {
			select {
			case rs.result = <-rs.done:
				rs.finished = true
			case <-time.After(waitTimeout):
				t.Errorf("Run did not return within %v of its context being cancelled", waitTimeout)
			}
		}
	})
	if waitReady {
		rs.waitStatus(t, "/_fn/ready", http.StatusOK)
	}
	return rs
}

// wait returns Run's result, failing the test if Run does not return in time.
func (rs *running) wait(t testing.TB) error {
	t.Helper()
	if rs.finished {
		return rs.result
	}
	select {
	case rs.result = <-rs.done:
		rs.finished = true
		return rs.result
	case <-time.After(waitTimeout):
		t.Fatalf("Run did not return within %v", waitTimeout)
		return nil
	}
}

// waitStatus polls GET path until it answers want.
func (rs *running) waitStatus(t testing.TB, path string, want int) {
	t.Helper()
	last := "no answer"
	waitFor(t, fmt.Sprintf("GET %s to answer %d", path, want), func() bool {
		res, err := rs.client.Get(rs.url + path)
		if err != nil {
			last = err.Error()
			return false
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		last = res.Status
		return res.StatusCode == want
	}, func() string { return "last answer: " + last })
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "timed out waiting for " + what
			for _, d := range detail {
				msg += "; " + d()
			}
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newClient returns a client of its own (so that tests do not share connections), with a bound
// on every request.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// response is what a test looks at in an answer.
type response struct {
	Code   int
	Header http.Header
	Body   string
}

// do sends req with c and reads the whole answer.
func do(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{Code: res.StatusCode, Header: res.Header, Body: string(b)}
}

func newRequest(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (rs *running) get(t testing.TB, path string) response {
	t.Helper()
	return do(t, rs.client, newRequest(t, http.MethodGet, rs.url+path, nil))
}

func (rs *running) post(t testing.TB, path, contentType, body string) response {
	t.Helper()
	req := newRequest(t, http.MethodPost, rs.url+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, rs.client, req)
}

// chunked wraps s in a reader of unknown length, so that the client sends it with chunked
// transfer encoding and no Content-Length.
func chunked(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

// statusErr is an error that answers with a chosen status, as user code would write it without
// importing the runtime.
type statusErr struct {
	code int
	msg  string
}

func (e statusErr) Error() string   { return e.msg }
func (e statusErr) StatusCode() int { return e.code }

// sample is one line of a Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics parses the Prometheus text format (as much of it as the runtime writes): it
// fails the test on any malformed line, on a sample whose family has no TYPE before it, and on a
// family declared twice.
func parseMetrics(t testing.TB, text string) []sample {
	t.Helper()
	types := map[string]string{}
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(why string) { t.Fatalf("metrics line %d %q: %s\nfull text:\n%s", n, line, why, text) }
		switch {
		case line == "":
			fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			if f := strings.Fields(line); len(f) < 4 || !validMetricName(f[2]) {
				fail("malformed HELP")
			}
			continue
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || !validMetricName(f[2]) {
				fail("malformed TYPE")
			}
			switch f[3] {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				fail("unknown type " + f[3])
			}
			if _, dup := types[f[2]]; dup {
				fail("family declared twice")
			}
			types[f[2]] = f[3]
			continue
		case strings.HasPrefix(line, "#"):
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i < 0 {
			fail("no value")
		} else {
			s.name, rest = rest[:i], rest[i:]
		}
		if !validMetricName(s.name) {
			fail("bad metric name")
		}
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				fail("unterminated labels")
			}
			for _, pair := range strings.Split(rest[1:end], ",") {
				if pair == "" {
					continue
				}
				k, v, ok := strings.Cut(pair, "=")
				if !ok || !validMetricName(k) || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
					fail("bad label " + pair)
				}
				s.labels[k] = v[1 : len(v)-1]
			}
			rest = rest[end+1:]
		}
		if !strings.HasPrefix(rest, " ") {
			fail("no space before the value")
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			fail("bad value: " + err.Error())
		}
		s.value = v
		family := s.name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.name, suffix); ok && types[base] == "histogram" {
				family = base
			}
		}
		if _, ok := types[family]; !ok {
			fail("sample before its family's TYPE")
		}
		out = append(out, s)
	}
	return out
}

func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// metricValue returns the value of the sample named name with exactly the given labels.
func metricValue(samples []sample, name string, labels map[string]string) (float64, bool) {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

func (rs *running) metrics(t testing.TB) []sample {
	t.Helper()
	res := rs.get(t, "/_fn/metrics")
	if res.Code != http.StatusOK {
		t.Fatalf("GET /_fn/metrics = %d %s", res.Code, res.Body)
	}
	return parseMetrics(t, res.Body)
}

// serveDirect calls h for req without a network, as the fuzz targets do.
func serveDirect(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// startDirect runs f with cfg and returns its Server once started, for tests that call its
// ServeHTTP directly (no connection per request).
func startDirect(t testing.TB, f runtime.Function, cfg runtime.Config) *runtime.Server {
	t.Helper()
	rs := start(t, f, cfg, false)
	waitFor(t, "the server to be ready", func() bool {
		return serveDirect(rs.s, httptest.NewRequest(http.MethodGet, "/_fn/ready", nil)).Code == http.StatusOK
	})
	return rs.s
}

// isConnRefused reports whether dialing addr is refused, i.e. the server's listener is closed.
func isConnRefused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	c.Close()
	return false
}

// diff describes how got differs from want, or returns "" when they are deeply equal. The
// runtime's tests use no diff library: the runtime's go.mod is what every function build sees,
// so it carries no test-only dependencies.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("-want %#v\n+got  %#v", want, got)
}
