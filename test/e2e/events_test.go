package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fnkit.dev/fn/events"
)

// collector takes the reports of test/functions/recorder: every call it got, when.
type collector struct {
	url string // as pods reach it
	mu  sync.Mutex
	got []receipt
}

type receipt struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Path    string `json:"path"`
	Status  int    `json:"status"`
	CEType  string `json:"ceType"`
	CEID    string `json:"ceId"`
	CETime  string `json:"ceTime"`
	at      time.Time
}

// startCollector serves a collector on the host. Pods reach the host at the kubernetes
// Service's ClusterIP, which the agents hold on its loopback (10.96.0.1).
func startCollector(t *testing.T) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{url: fmt.Sprintf("http://10.96.0.1:%d/", ln.Addr().(*net.TCPAddr).Port)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rc receipt
		if err := json.NewDecoder(r.Body).Decode(&rc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.at = time.Now()
		c.mu.Lock()
		c.got = append(c.got, rc)
		c.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c
}

// byID is what the function got, by call id, in order.
func (c *collector) byID() map[string][]receipt {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string][]receipt{}
	for _, r := range c.got {
		m[r.ID] = append(m[r.ID], r)
	}
	return m
}

// writeRecorder writes function name from test/functions/recorder, reporting to col, with
// fn.yaml's extra lines.
func writeRecorder(t *testing.T, name string, col *collector, manifest string) string {
	t.Helper()
	dir := copyFunction(t, "recorder", name)
	y := "name: " + name + "\nenv:\n  - name: COLLECT\n    value: " + col.url + "\n" + manifest
	if err := os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type asyncAnswer struct {
	status    int
	id        string
	duplicate bool
	location  string
}

func asyncCall(t *testing.T, base, fn, path, key string) asyncAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/async/f/default/"+fn+path, strings.NewReader(`{"n":1}`))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("async call %s: %v", path, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return asyncAnswer{resp.StatusCode, resp.Header.Get(events.CallIDHeader), resp.Header.Get("Fn-Call-Duplicate") == "true", resp.Header.Get("Location")}
}

// calls is fn calls NAME -o json.
func calls(t *testing.T, name string) map[string]events.Record {
	t.Helper()
	m, err := tryCalls(t, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryCalls is calls, its error returned: right after a gateway is started again, its internal
// port (not held across restarts, as its public one is) may refuse for a moment.
func tryCalls(t *testing.T, name string) (map[string]events.Record, error) {
	t.Helper()
	out, errOut, err := fn(t, "calls", name, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("fn calls %s: %v: %s", name, err, errOut)
	}
	var recs []events.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		return nil, err
	}
	m := map[string]events.Record{}
	for _, r := range recs {
		m[r.ID] = r
	}
	return m, nil
}

func settled(r events.Record) bool {
	return r.State == events.StateDone || r.State == events.StateDead || r.State == events.StateFailed
}

// TestAsyncCallsSurviveKills: 200 asynchronous calls, 20 of them repeating an
// Idempotency-Key and 5 that the function answers 400, while the function's process is
// SIGKILLed and the gateway is SIGKILLed mid-delivery. Every distinct call is delivered at least
// once, the repeats accept nothing new, the dead letters hold exactly the 5, every attempt the
// function saw more than the platform decided on is counted as redelivered, and the retries of
// calls answered 503 are spaced as the backoff says, within 20%.
func TestAsyncCallsSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	col := startCollector(t)
	// Two replicas of five calls each: the dispatcher keeps ten in delivery, the rest wait
	// in the engine.
	dir := writeRecorder(t, "orders", col, `concurrency: 5
scale:
  min: 2
  max: 2
delivery:
  attempts: 4
  backoff: 500ms
  maxBackoff: 4s
`)
	mustFn(t, "deploy", dir)
	base := gatewayURL(t)

	// 160 calls that take 500 ms (so that deliveries are in flight when the kills come), 15
	// that fail twice with 503 before they succeed, 5 the function refuses, then 20 repeats.
	type sent struct{ path, key, id string }
	var distinct []sent
	for i := range 180 {
		path := "/ok?ms=500"
		switch {
		case i%36 == 7:
			path = "/bad"
		case i%12 == 3:
			path = "/flaky"
		}
		distinct = append(distinct, sent{path: path, key: fmt.Sprintf("order-%d", i)})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	send := func(list []sent, dup bool) {
		for i := range list {
			wg.Go(func() {
				a := asyncCall(t, base, "orders", list[i].path, list[i].key)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case a.status != http.StatusAccepted || a.id == "":
					failures = append(failures, fmt.Sprintf("%s (key %s): %d", list[i].path, list[i].key, a.status))
				case dup && (!a.duplicate || a.id != list[i].id):
					failures = append(failures, fmt.Sprintf("repeat of key %s: id %s duplicate %v, want id %s, a duplicate", list[i].key, a.id, a.duplicate, list[i].id))
				case !dup && a.duplicate:
					failures = append(failures, fmt.Sprintf("first call with key %s taken for a repeat", list[i].key))
				case a.location != "/async/calls/default/orders/"+a.id:
					failures = append(failures, fmt.Sprintf("Location %q", a.location))
				}
				list[i].id = a.id
			})
		}
		wg.Wait()
	}
	send(distinct, false)
	var repeats []sent
	for i := range 20 {
		repeats = append(repeats, distinct[i*9])
	}
	send(repeats, true)
	for _, f := range failures {
		t.Error(f)
	}

	// Mid-delivery: the function's process; once it answers again, the gateway, while the
	// function works on the calls it was given.
	waitFor(t, 30*time.Second, "deliveries under way", func() bool { return len(col.byID()) >= 20 })
	pids := functionProcesses("orders")
	if len(pids) == 0 {
		t.Fatal("no process of function orders")
	}
	// What the kills disturb: retries then wait for the function to start or the gateway to
	// come back, beyond their backoff.
	var disturbed [][2]time.Time
	k := time.Now()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	before := len(col.byID())
	waitFor(t, 30*time.Second, "the function answering again", func() bool { return len(col.byID()) >= before+10 })
	disturbed = append(disturbed, [2]time.Time{k, time.Now()})
	k = time.Now()
	killComponent(t, "gateway")
	disturbed = append(disturbed, [2]time.Time{k, time.Now()})

	// Everything settles: the gateway that took over waits out the engine's AckWait for the
	// deliveries the killed one had in flight.
	var recs map[string]events.Record
	waitFor(t, 3*time.Minute, "every call settled", func() bool {
		var err error
		if recs, err = tryCalls(t, "orders"); err != nil {
			return false
		}
		for _, s := range distinct {
			if r, ok := recs[s.id]; !ok || !settled(r) {
				return false
			}
		}
		return true
	})
	if len(recs) != len(distinct) {
		t.Errorf("fn calls lists %d calls, want the %d distinct ones", len(recs), len(distinct))
	}

	got := col.byID()
	var wantDead []string
	atFunction, reported, spaced := 0, 0, 0
	for _, s := range distinct {
		r, rcpts := recs[s.id], got[s.id]
		if len(rcpts) == 0 {
			t.Errorf("call %s (%s) was never delivered: %+v", s.id, s.path, r)
			continue
		}
		if s.path == "/bad" {
			wantDead = append(wantDead, s.id)
			if r.State != events.StateDead || r.Status != 400 || r.Attempts != 1 {
				t.Errorf("call %s to /bad: %+v, want dead with 400 after its one attempt (a 400 is final)", s.id, r)
			}
		} else if r.State != events.StateDone {
			t.Errorf("call %s to %s: %+v, want done", s.id, s.path, r)
		}
		if len(rcpts) > r.Attempts {
			t.Errorf("call %s: the function got it %d times, more than the %d attempts recorded", s.id, len(rcpts), r.Attempts)
		}
		// Duplicates, as the function saw them: a call it got again after it had answered it
		// for good (not 408, 429 or 5xx). The records must count at least as many.
		for i, rc := range rcpts {
			if rc.Status < 500 && rc.Status != 408 && rc.Status != 429 {
				atFunction += len(rcpts) - i - 1
				break
			}
		}
		reported += r.Redelivered
		if s.path == "/flaky" && r.Redelivered == 0 && len(rcpts) == 3 {
			for i, want := range []time.Duration{500 * time.Millisecond, time.Second} {
				from, to := rcpts[i].at, rcpts[i+1].at
				if overlaps(from, to, disturbed) {
					continue
				}
				spaced++
				gap := to.Sub(from)
				if gap < want*8/10 || gap > want*12/10 {
					t.Errorf("call %s: attempt %d came %s after the one before, want %s within 20%%", s.id, i+2, gap, want)
				}
			}
		}
	}
	if spaced < 10 {
		t.Errorf("only %d waits between attempts of /flaky were clear of the kills: too few to judge the backoff", spaced)
	}
	if atFunction == 0 {
		t.Errorf("no call reached the function twice, though the gateway was killed while the function had calls: the test did not test redelivery")
	}
	if atFunction > reported {
		t.Errorf("the function got %d deliveries more than the attempts decided on, but the records count %d redelivered", atFunction, reported)
	}
	t.Logf("%d distinct calls; duplicates at the function %d, reported as redelivered %d; %d waits between attempts checked", len(distinct), atFunction, reported, spaced)

	var dead []events.DeadLetter
	if err := json.Unmarshal([]byte(mustFn(t, "calls", "orders", "--dead", "-o", "json")), &dead); err != nil {
		t.Fatal(err)
	}
	var deadIDs []string
	for _, d := range dead {
		deadIDs = append(deadIDs, d.Record.ID)
		if d.Answer.Status != 400 || d.Request.Path != "/bad" {
			t.Errorf("dead letter %s: answer %d, request %s %s", d.Record.ID, d.Answer.Status, d.Request.Method, d.Request.Path)
		}
	}
	if fmt.Sprint(sortedIDs(deadIDs)) != fmt.Sprint(sortedIDs(wantDead)) {
		t.Errorf("dead letters %v, want exactly the calls to /bad %v", deadIDs, wantDead)
	}
	// The summary says it too.
	_, errOut, err := fn(t, "calls", "orders")
	if err != nil || !strings.Contains(errOut, "180 calls: 175 done, 5 dead") {
		t.Errorf("fn calls orders: %v; summary %q", err, errOut)
	}
}

// overlaps reports whether [from, to] meets one of the windows.
func overlaps(from, to time.Time, windows [][2]time.Time) bool {
	for _, w := range windows {
		if !to.Before(w[0]) && !from.After(w[1]) {
			return true
		}
	}
	return false
}

func sortedIDs(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if len(out[j]) < len(out[i]) || (len(out[j]) == len(out[i]) && out[j] < out[i]) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestAsyncWakesFromZero: a call queued for a function at zero wakes it; the function answers
// and fn calls shows the call done. Bad input: an unknown function 404, a body over the cap
// 413, neither accepted.
func TestAsyncWakesFromZero(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	col := startCollector(t)
	dir := writeRecorder(t, "dozy", col, "scale:\n  initial: 0\n")
	mustFn(t, "deploy", dir)
	waitZero(t, "dozy", time.Minute)

	out, errOut, err := fn(t, "invoke", "dozy", "--async", "-d", `{"wake":true}`)
	if err != nil {
		t.Fatalf("fn invoke --async: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	waitFor(t, time.Minute, "the call done", func() bool {
		var r events.Record
		return json.Unmarshal([]byte(mustFn(t, "calls", "dozy", id, "-o", "json")), &r) == nil && r.State == events.StateDone
	})
	if got := col.byID()[id]; len(got) != 1 || got[0].Status != 200 {
		t.Errorf("the function got call %s: %+v, want once", id, got)
	}

	base := gatewayURL(t)
	if a := asyncCall(t, base, "nosuch", "/", ""); a.status != http.StatusNotFound {
		t.Errorf("async call to an unknown function: %d, want 404", a.status)
	}
	big := strings.NewReader(strings.Repeat("x", 5<<20))
	resp, err := http.Post(base+"/async/f/default/dozy/", "text/plain", big)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5 MiB async call: %d, want 413", resp.StatusCode)
	}
	if n := len(calls(t, "dozy")); n != 1 {
		t.Errorf("fn calls dozy lists %d calls, want the one accepted", n)
	}
}

// TestScheduleFiresOnceForMissedTicks: a schedule of every second fires 10 ± 1 times in 10 s,
// each tick a CloudEvent of its own; after a minute with the platform down, it fires once for
// the ticks missed, not sixty times.
func TestScheduleFiresOnceForMissedTicks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	col := startCollector(t)
	dir := writeRecorder(t, "ticker", col, `scale:
  min: 1
schedules:
  - name: every-second
    cron: "* * * * * *"
    data: {report: daily}
`)
	mustFn(t, "deploy", dir)
	ticks := func() []receipt {
		var out []receipt
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, r := range col.got {
			if r.CEType == "dev.fnkit.schedule" {
				out = append(out, r)
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "the first tick", func() bool { return len(ticks()) > 0 })
	n0 := len(ticks())
	time.Sleep(10 * time.Second)
	if n := len(ticks()) - n0; n < 9 || n > 11 {
		t.Errorf("%d ticks in 10 s, want 10 ± 1", n)
	}
	ids := map[string]bool{}
	for _, r := range ticks() {
		if r.CEID == "" || ids[r.CEID] || r.Path != "/" {
			t.Errorf("tick %+v: want a CloudEvent id of its own, to /", r)
		}
		ids[r.CEID] = true
	}

	mustFn(t, "down")
	down := time.Now()
	time.Sleep(time.Minute)
	if out, err := exec.Command(fnBin, "up").CombinedOutput(); err != nil {
		t.Fatalf("fn up: %v\n%s", err, out)
	}
	up := time.Now()
	waitFor(t, time.Minute, "a tick after fn up", func() bool {
		last := ticks()
		return len(last) > 0 && tickTime(t, last[len(last)-1]).After(down)
	})
	time.Sleep(5 * time.Second)
	// Ticks the engine made after the platform came back, by their CloudEvent time: one a
	// second since, and one for all those missed.
	var after int
	for _, r := range ticks() {
		if tickTime(t, r).After(down) {
			after++
		}
	}
	elapsed := time.Since(up).Seconds()
	t.Logf("%d ticks in the %.1f s since fn up (down %.0f s)", after, elapsed, up.Sub(down).Seconds())
	if float64(after) > elapsed+3 {
		t.Errorf("%d ticks in the %.1f s since fn up: the ticks missed while down fired in a burst", after, elapsed)
	}
	mustFn(t, "delete", "ticker")
}

func tickTime(t *testing.T, r receipt) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, r.CETime)
	if err != nil {
		t.Fatalf("tick %+v: Ce-Time: %v", r, err)
	}
	return ts
}

// publish posts a CloudEvent to the ingest of namespace default, in binary mode, or
// structured when structured is set.
func publish(t *testing.T, base, id, ceType string, structured bool) (int, string) {
	t.Helper()
	var req *http.Request
	if structured {
		body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"shop","type":%q,"datacontenttype":"application/json","data":{"order":%q}}`, id, ceType, id)
		req, _ = http.NewRequest(http.MethodPost, base+"/events/default", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
	} else {
		req, _ = http.NewRequest(http.MethodPost, base+"/events/default", strings.NewReader(`{"order":"`+id+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", id)
		req.Header.Set("Ce-Source", "shop")
		req.Header.Set("Ce-Type", ceType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publishing %s: %v", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTriggerRoutesMatchingEvents: a Trigger on type=order.created is not Ready while its
// function is missing, says why, and once it is there delivers the matching events published
// to the namespace's ingest (either mode) to the function, and no others; an event published
// again (same source and id) is not delivered twice; what is no CloudEvent is refused.
func TestTriggerRoutesMatchingEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the local platform")
	}
	mustFn(t, "triggers", "create", "on-order", "--function", "shipper", "--type", "order.created")
	defer mustFn(t, "triggers", "delete", "on-order")
	triggerState := func() string {
		return kubectl(t, "get", "trigger", "on-order", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}`)
	}
	waitFor(t, 30*time.Second, "the Trigger not Ready for want of its function", func() bool { return triggerState() == "False FunctionNotFound" })
	if out := mustFn(t, "triggers"); !strings.Contains(out, `no Function "shipper"`) || !strings.Contains(out, "type=order.created") {
		t.Errorf("fn triggers does not say why on-order is not Ready:\n%s", out)
	}

	col := startCollector(t)
	mustFn(t, "deploy", writeRecorder(t, "shipper", col, "scale:\n  min: 1\n"))
	waitFor(t, 30*time.Second, "the Trigger Ready", func() bool { return triggerState() == "True " })
	base := gatewayURL(t)
	want := map[string]bool{}
	for i, e := range []struct {
		ceType     string
		structured bool
	}{{"order.created", false}, {"order.cancelled", false}, {"order.created", true}, {"order.created.v2", false}, {"order.created", false}, {"order.cancelled", true}} {
		id := fmt.Sprintf("evt-%d", i)
		code, body := publish(t, base, id, e.ceType, e.structured)
		if code != http.StatusAccepted {
			t.Fatalf("publishing %s: %d %s", id, code, body)
		}
		if e.ceType == "order.created" {
			want[id] = true
			if !strings.Contains(body, `"matched":1`) {
				t.Errorf("event %s of type order.created: %s, want one call", id, body)
			}
		} else if !strings.Contains(body, `"matched":0`) {
			t.Errorf("event %s of type %s: %s, want no call", id, e.ceType, body)
		}
	}
	if code, body := publish(t, base, "evt-0", "order.created", false); code != http.StatusAccepted || !strings.Contains(body, `"duplicate":true`) {
		t.Errorf("an event published again: %d %s, want it taken for the duplicate it is", code, body)
	}
	waitFor(t, 30*time.Second, "the matching events delivered", func() bool {
		n := 0
		for _, r := range col.byID() {
			if len(r) > 0 && r[0].CEType == "order.created" {
				n++
			}
		}
		return n == len(want)
	})
	time.Sleep(time.Second) // what should not come would have by now
	got := map[string]int{}
	for _, rs := range col.byID() {
		for _, r := range rs {
			got[r.CEID]++
			if r.CEType != "order.created" || !want[r.CEID] {
				t.Errorf("the function got event %s of type %s", r.CEID, r.CEType)
			}
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, got[id])
		}
	}
	resp, err := http.Post(base+"/events/default", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("publishing what is no CloudEvent: %d, want 400", resp.StatusCode)
	}
	mustFn(t, "delete", "shipper")
}
