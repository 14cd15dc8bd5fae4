package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fn runs the fn command in-process and returns its exit code, stdout and stderr.
func fn(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut syncBuffer
	code := Main(context.Background(), args, IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runFunction starts `fn run dir` and returns its URL once it printed it; the function is
// stopped, and fn run's clean exit asserted, when the test ends.
func runFunction(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	t.Setenv("FN_CACHE_DIR", cacheForTests(t))
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	args := append([]string{"run", dir, "--port", fmt.Sprint(port)}, extra...)
	go func() { done <- Main(ctx, args, IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("fn run exited %d after Ctrl-C, want 0; stderr:\n%s", code, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("fn run did not stop within 30s of Ctrl-C")
		}
	})
	deadline := time.After(3 * time.Minute)
	for {
		if u := strings.TrimSpace(out.String()); u != "" {
			if want := fmt.Sprintf("http://127.0.0.1:%d", port); u != want && !slices.Contains(extra, "--address") {
				t.Fatalf("fn run printed %q, want %q", u, want)
			}
			return u
		}
		select {
		case code := <-done:
			t.Fatalf("fn run exited %d before printing its URL; stderr:\n%s", code, errOut.String())
		case <-deadline:
			t.Fatalf("fn run printed no URL within 3m; stderr:\n%s", errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cacheForTests shares one fn cache across the package's tests, so functions compile once.
var (
	cacheOnce sync.Once
	cachePath string
)

func cacheForTests(t *testing.T) string {
	cacheOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fn-cli-test-cache-")
		if err != nil {
			t.Fatal(err)
		}
		cachePath = dir
	})
	return cachePath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cachePath != "" {
		os.RemoveAll(cachePath)
	}
	os.Exit(code)
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "greeter")
	code, out, stderr := fn(t, "init", dir, "--template", "http")
	if code != 0 {
		t.Fatalf("fn init exited %d: %s", code, stderr)
	}
	if strings.TrimSpace(out) != dir {
		t.Errorf("fn init printed %q, want the directory %q", out, dir)
	}
	for _, f := range []string{"go.mod", "handle.go", "handle_test.go", "README.md", "fn.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("fn init did not write %s: %v", f, err)
		}
	}
	if fnYAML, _ := os.ReadFile(filepath.Join(dir, "fn.yaml")); !strings.Contains(string(fnYAML), "\nname: greeter\n") {
		t.Errorf("fn.yaml does not name the function greeter:\n%s", fnYAML)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.HasPrefix(string(gomod), "module greeter\n") {
		t.Errorf("go.mod starts %q, want module greeter", gomod)
	}

	// A second init into the same, now non-empty, directory is refused and changes nothing.
	code, _, stderr = fn(t, "init", dir, "--template", "typed")
	if code == 0 || !strings.Contains(stderr, "is not empty") {
		t.Errorf("fn init into a non-empty dir: exit %d, stderr %q; want a refusal", code, stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !bytes.Equal(again, gomod) {
		t.Errorf("refused fn init modified go.mod")
	}

	code, _, stderr = fn(t, "init", filepath.Join(t.TempDir(), "x"), "--template", "grpc")
	if code == 0 || !strings.Contains(stderr, "cloudevents") {
		t.Errorf("fn init --template grpc: exit %d, stderr %q; want an error listing the templates", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--port", "0"}, "--port 0 is not a TCP port"},
		{[]string{"run", "--address", "example.com"}, `--address "example.com" is not an IP address`},
		{[]string{"registry", "--addr", "0.0.0.0:5000"}, "listens beyond loopback, where anyone could push what functions run: pass --htpasswd FILE"},
		{[]string{"registry", "--addr", "0.0.0.0:5000", "--htpasswd", "/nonexistent/htpasswd"}, "--htpasswd /nonexistent/htpasswd"},
		{[]string{"run", "--nope"}, "unknown flag: --nope (see fn run --help)"},
		{[]string{"invoke"}, "give the function's name (fn invoke NAME) or its address with --url"},
		{[]string{"invoke", "--url", "http://x", "--data", "a", "--file", "b"}, "use one"},
		{[]string{"invoke", "--url", "http://x", "--mode", "batch"}, `--mode "batch"`},
		{[]string{"version", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"init"}, "accepts 1 arg(s), received 0 (see fn init --help)"},
		{[]string{"deploy", "a", "b"}, "accepts at most 1 arg(s), received 2 (see fn deploy --help)"},
		{[]string{"config", "set", "timeout"}, "accepts 2 arg(s), received 1 (see fn config set --help)"},
		{[]string{"bogus"}, `unknown command "bogus" for "fn"`},
		{[]string{"config", "bogus"}, `unknown command "bogus" for "fn config"`},
		{[]string{"deplyo"}, `unknown command "deplyo" for "fn" (did you mean deploy?)`},
		{[]string{"init", "Bad_Name"}, `function name "Bad_Name" is not valid`},
	}
	for _, c := range cases {
		code, _, stderr := fn(t, c.args...)
		if code != 2 || !strings.HasPrefix(stderr, "fn: ") || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("fn %s: exit %d, stderr %q; want exit 2 and one line containing %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := fn(t, "version", "-o", "json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" || !strings.HasPrefix(v["go"], "go1.") {
		t.Errorf("fn version -o json: exit %d, %q", code, out)
	}
}

func TestRunHello(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	url := runFunction(t, "../../examples/hello")
	// On loopback only: another machine (here: this one's other addresses) cannot reach it.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil {
				continue
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), 2*time.Second); err == nil {
				c.Close()
				t.Errorf("fn run answers on %s, not only on loopback", ipn.IP)
			}
		}
	}
	resp, err := http.Get(url + "/?name=fn")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 200 || body != "Hello, fn!\n" {
		t.Errorf("GET /?name=fn = %d %q, want 200 \"Hello, fn!\\n\"", resp.StatusCode, body)
	}
	code, out, stderr := fn(t, "invoke", "--url", url)
	if code != 0 || out != "Hello, world!\n" {
		t.Errorf("fn invoke: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, _ = fn(t, "invoke", "--url", url+"/_fn/nope", "-o", "json")
	var inv invocation
	if err := json.Unmarshal([]byte(out), &inv); err != nil || code != 1 || inv.Status != 404 {
		t.Errorf("fn invoke of a 404 with -o json: exit %d, %q (%v); want exit 1 and status 404", code, out, err)
	}
}

func TestRunEchoEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	url := runFunction(t, "../../examples/echo-event")
	for _, mode := range []string{"binary", "structured"} {
		t.Run(mode, func(t *testing.T) {
			code, out, stderr := fn(t, "invoke", "--url", url, "--cloudevent", "--type", "t", "--source", "s", "--id", "id-1", "--mode", mode, "--data", `{"n":1}`, "-o", "json")
			if code != 0 {
				t.Fatalf("fn invoke: exit %d, stderr %s", code, stderr)
			}
			var inv struct {
				Status  int               `json:"status"`
				Headers map[string]string `json:"headers"`
				Event   map[string]any    `json:"event"`
			}
			if err := json.Unmarshal([]byte(out), &inv); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if inv.Status != 200 || inv.Event["type"] != "dev.fnkit.echo" || inv.Event["echoedid"] != "id-1" {
				t.Errorf("reply = %d %v, want 200 with a dev.fnkit.echo event echoing id-1", inv.Status, inv.Event)
			}
			if d, _ := json.Marshal(inv.Event["data"]); string(d) != `{"n":1}` {
				t.Errorf("reply data = %s, want {\"n\":1}", d)
			}
			ct := inv.Headers["Content-Type"]
			if structured := strings.HasPrefix(ct, "application/cloudevents+json"); structured != (mode == "structured") {
				t.Errorf("reply Content-Type %q for a %s request: the reply must come back in the request's mode", ct, mode)
			}
			if _, binary := inv.Headers["Ce-Id"]; binary != (mode == "binary") {
				t.Errorf("reply headers %v for a %s request", inv.Headers, mode)
			}
		})
	}
	// Plain HTTP to a CloudEvents function says what is missing.
	code, _, stderr := fn(t, "invoke", "--url", url, "--data", "{}")
	if code != 1 || !strings.Contains(stderr, "400 Bad Request: request is not a CloudEvent") {
		t.Errorf("plain POST to a CloudEvents function: exit %d, stderr %q", code, stderr)
	}
}

func TestRunTyped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	url := runFunction(t, "../../examples/typed", "--env", "FN_MAX_BODY=64")
	code, out, stderr := fn(t, "invoke", "--url", url, "--data", `{"items":[{"name":"tea","price":2.5,"quantity":2}]}`)
	if code != 0 || strings.TrimSpace(out) != `{"total":5,"itemCount":2}` {
		t.Errorf("fn invoke typed: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, stderr = fn(t, "invoke", "--url", url, "--data", `{"items": "tea"}`)
	if code != 1 || !strings.Contains(stderr, "400 Bad Request") || !strings.Contains(out, "typed.Order") {
		t.Errorf("bad typed JSON: exit %d, stdout %q, stderr %q; want 400 naming typed.Order", code, out, stderr)
	}
	code, _, stderr = fn(t, "invoke", "--url", url, "--data", `{"items":[]}`)
	if code != 1 || !strings.Contains(stderr, "422") {
		t.Errorf("empty order: exit %d, stderr %q; want the function's 422", code, stderr)
	}
	code, _, stderr = fn(t, "invoke", "--url", url, "--data", strings.Repeat("x", 65))
	if code != 1 || !strings.Contains(stderr, "413 Request Entity Too Large") {
		t.Errorf("oversized body: exit %d, stderr %q; want 413", code, stderr)
	}
}

func TestRunCompileError(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a function")
	}
	t.Setenv("FN_CACHE_DIR", cacheForTests(t))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "handle.go"), []byte("package broken\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {\n\tw.Write(nope)\n}\n"), 0o644)
	code, out, stderr := fn(t, "run", dir, "--port", fmt.Sprint(freePort(t)), "--name", "broken")
	if code != 1 || out != "" || !strings.Contains(stderr, "handle.go:6:10: undefined: nope") || !strings.Contains(stderr, "function broken does not compile") {
		t.Errorf("fn run of a broken function: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestRunSignatureError(t *testing.T) {
	t.Setenv("FN_CACHE_DIR", cacheForTests(t))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module bad\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "handle.go"), []byte("package bad\n\nfunc Handle(x int) {}\n"), 0o644)
	code, _, stderr := fn(t, "run", dir, "--port", fmt.Sprint(freePort(t)), "--name", "bad")
	if code != 1 || !strings.Contains(stderr, "handle.go:3: unsupported signature func Handle(x int)") || !strings.Contains(stderr, "accepted forms") {
		t.Errorf("fn run with a bad signature: exit %d, stderr %q", code, stderr)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestBuildAndRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	t.Setenv("FN_CACHE_DIR", cacheForTests(t))
	ctx, cancel := context.WithCancel(context.Background())
	var regOut, regErr syncBuffer
	done := make(chan int, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	go func() {
		done <- Main(ctx, []string{"registry", "--addr", addr, "--root", t.TempDir()}, IOStreams{In: strings.NewReader(""), Out: &regOut, ErrOut: &regErr})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("fn registry exited %d: %s", code, regErr.String())
		}
	}()
	for i := 0; strings.TrimSpace(regOut.String()) != addr; i++ {
		if i > 200 {
			t.Fatalf("fn registry printed %q, want %q; stderr %s", regOut.String(), addr, regErr.String())
		}
		time.Sleep(25 * time.Millisecond)
	}

	t.Setenv("FN_REGISTRY", addr+"/fns")
	code, out, stderr := fn(t, "build", "../../examples/hello")
	if code != 0 || !regexp.MustCompile(`^`+regexp.QuoteMeta(addr)+`/fns/hello@sha256:[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("fn build: exit %d, stdout %q (want exactly one line REPO/hello@sha256:...), stderr %s", code, out, stderr)
	}
	if !strings.Contains(stderr, "Building hello") || !strings.Contains(stderr, "Pushing to") {
		t.Errorf("fn build shows no progress on stderr: %q", stderr)
	}
	code, again, _ := fn(t, "build", "../../examples/hello", "-o", "json")
	var res buildResult
	if code != 0 || json.Unmarshal([]byte(again), &res) != nil || res.Image != strings.TrimSpace(out) || res.Size <= 0 {
		t.Errorf("fn build -o json: exit %d, %q; want the same image %s", code, again, out)
	}

	layoutDir := filepath.Join(t.TempDir(), "oci")
	code, out, stderr = fn(t, "build", "../../examples/hello", "--push=false", "--output", layoutDir)
	if code != 0 || !strings.HasPrefix(out, layoutDir+"@sha256:") {
		t.Errorf("fn build --push=false --output: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(layoutDir, "index.json")); err != nil {
		t.Errorf("no OCI layout written: %v", err)
	}

	code, _, stderr = fn(t, "build", "../../examples/hello", "--registry", fmt.Sprintf("127.0.0.1:%d/fns", freePort(t)))
	if code != 1 || !strings.Contains(stderr, "is unreachable") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("fn build to an unreachable registry: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("FN_REGISTRY", "")
	t.Setenv("KO_DOCKER_REPO", "")
	code, _, stderr = fn(t, "build", "../../examples/hello")
	if code != 2 || !strings.Contains(stderr, "no registry to push to") {
		t.Errorf("fn build without a registry: exit %d, stderr %q", code, stderr)
	}
}

// TestInitHints: the invoke fn init prints for each template works against fn run of it.
func TestInitHints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs functions")
	}
	for _, tmpl := range []string{"http", "typed", "cloudevents"} {
		t.Run(tmpl, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "hint-"+tmpl)
			code, _, stderr := fn(t, "init", dir, "--template", tmpl)
			if code != 0 {
				t.Fatalf("fn init: %s", stderr)
			}
			if !strings.Contains(stderr, invokeHint(tmpl)) {
				t.Errorf("fn init printed %q, want the hint %q", stderr, invokeHint(tmpl))
			}
			url := runFunction(t, dir)
			code, out, stderr := fn(t, invokeArgs(tmpl, url)...)
			if code != 0 || !strings.Contains(out, "Gopher") {
				t.Errorf("fn %v: exit %d, stdout %q, stderr %q", invokeArgs(tmpl, url), code, out, stderr)
			}
		})
	}
}

// TestRunSecondInterrupt: a first interrupt lets fn run's function finish what it serves; a
// second stops it at once.
func TestRunSecondInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	t.Setenv("FN_CACHE_DIR", cacheForTests(t))
	port := freePort(t)
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"run", "../../test/functions/slow", "--port", fmt.Sprint(port)}, IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for strings.TrimSpace(out.String()) == "" {
		if time.Now().After(deadline) {
			t.Fatalf("fn run printed no URL; stderr:\n%s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A request the function will work on for 5 minutes keeps a graceful stop waiting.
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/?ms=300000", port))
		if err == nil {
			resp.Body.Close()
		}
	}()
	for {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/_fn/metrics", port))
		if err == nil {
			body := readAll(t, resp)
			if strings.Contains(body, "fn_requests_in_flight 1") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached the function")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(errOut.String(), "Stopping") {
		if time.Now().After(deadline) {
			t.Fatalf("no Stopping after the first interrupt; stderr:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("fn run exited %d after one interrupt, with a request in flight; stderr:\n%s", code, errOut.String())
	case <-time.After(500 * time.Millisecond):
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(errOut.String(), "stopped at once by a second interrupt") {
			t.Errorf("after the second interrupt: exit %d; stderr:\n%s", code, errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("fn run still running a minute after the second interrupt; stderr:\n%s", errOut.String())
	}
}
