package runtime_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processMain is a function program as fn's generated main would be: its /slow requests wait
// until the file named by FN_TEST_RELEASE exists.
const processMain = `package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"time"

	"fnkit.dev/fn/runtime"
)

func main() {
	release := os.Getenv("FN_TEST_RELEASE")
	runtime.Main(runtime.HTTP(func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/slow" {
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(release); err == nil {
					break
				}
			}
		}
		_, err := io.WriteString(w, "done "+r.URL.Path)
		return err
	}))
}
`

// TestProcessDrainsOnSIGTERM builds a real function program with runtime.Main, sends it SIGTERM
// while requests are in flight, and checks that they all complete and the process exits 0.
func TestProcessDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a program")
	}
	t.Parallel()
	bin := buildProcessMain(t)

	port := freePort(t)
	release := filepath.Join(t.TempDir(), "release")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "FN_TEST_RELEASE="+release, "FN_LOG_LEVEL=debug")
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{}) // closed when the program has exited, with waitErr set
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("the program's output:\n%s", stderr.String())
		}
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rs := &running{url: "http://" + addr, addr: addr, client: newClient(t)}
	rs.waitStatus(t, "/_fn/ready", http.StatusOK)

	const n = 20
	results := make(chan response, n)
	for i := 0; i < n; i++ {
		go func() {
			res, err := rs.client.Get(rs.url + "/slow")
			if err != nil {
				results <- response{Body: err.Error()}
				return
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				b = []byte(err.Error())
			}
			results <- response{Code: res.StatusCode, Body: string(b)}
		}()
	}
	var inFlight float64
	waitFor(t, "the program to have every request in flight", func() bool {
		inFlight, _ = metricValue(rs.metrics(t), "fn_requests_in_flight", nil)
		return inFlight == n
	}, func() string { return fmt.Sprintf("last fn_requests_in_flight %v", inFlight) })

	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// It stops accepting connections but keeps running while the requests are in flight.
	waitFor(t, "the program to close its listener", func() bool { return isConnRefused(addr) })
	select {
	case <-exited:
		t.Fatalf("the program exited (%v) with %d requests in flight", waitErr, n)
	default:
	}

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case got := <-results:
			if got.Code != http.StatusOK || got.Body != "done /slow" {
				t.Errorf("in-flight request = %d %q, want 200 \"done /slow\"", got.Code, got.Body)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("only %d of %d in-flight requests completed", i, n)
		}
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("the program exited with %v, want status 0", waitErr)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the program did not exit after draining")
	}
	// The request log gives durations in milliseconds, as the gateway's does.
	if log := stderr.String(); !strings.Contains(log, `"msg":"request"`) || !strings.Contains(log, `"duration_ms":`) {
		t.Errorf("no request line with duration_ms in the log:\n%s", log)
	}
}

// buildProcessMain writes processMain as a module that uses this runtime module, and builds it.
func buildProcessMain(t *testing.T) string {
	t.Helper()
	runtimeDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	goMod := "module fnprocess\n\ngo 1.24\n\nrequire fnkit.dev/fn/runtime v0.0.0-00010101000000-000000000000\n\n" +
		"replace fnkit.dev/fn/runtime => " + runtimeDir + "\n"
	sum, err := os.ReadFile(filepath.Join(runtimeDir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"go.mod":  []byte(goMod),
		"go.sum":  sum,
		"main.go": []byte(processMain),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the program: %v", err)
	}
	bin := filepath.Join(dir, "fnprocess")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
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

// syncBuffer is a bytes.Buffer safe for the writes of a running program and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestProcessBadConfig: a configuration the runtime refuses ends the process with exit 2 and one
// JSON log line, like the runtime's other logs, not a line that reads as an fn command's error.
func TestProcessBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a program")
	}
	t.Parallel()
	bin := buildProcessMain(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT=8080", "FN_TIMEOUT=soon")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2", err)
	}
	var line struct{ Level, Msg, Error string }
	if jerr := json.Unmarshal(bytes.TrimSpace(stderr.Bytes()), &line); jerr != nil || line.Level != "ERROR" ||
		line.Msg != "the function's configuration is invalid" || !strings.Contains(line.Error, "FN_TIMEOUT") {
		t.Errorf("stderr %q (%v), want one JSON line at level ERROR naming FN_TIMEOUT", stderr.String(), jerr)
	}
}
