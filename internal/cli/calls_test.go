package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/events"
	"fnkit.dev/fn/platform"
)

// fakeGateway serves the gateway's internal endpoints of asynchronous calls, recording what
// was asked.
func fakeGateway(t *testing.T) (*httptest.Server, *[]string) {
	now := time.Now()
	recs := []events.Record{
		{ID: "1", Namespace: "default", Function: "orders", State: events.StateDone, Attempts: 1, Status: 200, Accepted: now.Add(-time.Minute)},
		{ID: "2", Namespace: "default", Function: "orders", State: events.StateRetrying, Attempts: 2, Status: 503, Next: now.Add(30 * time.Second), Accepted: now.Add(-time.Minute)},
		{ID: "3", Namespace: "default", Function: "orders", State: events.StateDead, Attempts: 1, Status: 400, Reason: "the function answered 400", Redelivered: 1, Accepted: now.Add(-time.Minute)},
		{ID: "4", Namespace: "default", Function: "orders", State: events.StateQueued, Accepted: now},
	}
	var mu sync.Mutex
	var asked []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_gw/calls/default/orders", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(recs) })
	mux.HandleFunc("GET /_gw/calls/default/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, rec := range recs {
			if rec.ID == r.PathValue("id") {
				_ = json.NewEncoder(w).Encode(rec)
				return
			}
		}
		http.Error(w, "no such call", http.StatusNotFound)
	})
	mux.HandleFunc("GET /_gw/dead/default/orders", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode([]events.DeadLetter{{Record: recs[2], Request: events.Request{Method: "POST", Path: "/bad"},
			Answer: events.Answer{Status: 400, Body: []byte("no such order\nmore")}}})
	})
	record := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.Method == http.MethodDelete {
			_, _ = w.Write([]byte(`{"purged":1}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"9"}`))
	}
	mux.HandleFunc("POST /_gw/dead/default/orders/{id}/resend", record)
	mux.HandleFunc("DELETE /_gw/dead/default/orders", record)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &asked
}

func localFactory(t *testing.T, gw string, fns ...*v1alpha1.Function) (*Factory, *syncBuffer, *syncBuffer) {
	fa, out, errOut := testFactory(nil, fns...)
	connect := fa.Connect
	fa.Connect = func(cf *clusterFlags) (*cluster, error) {
		cl, err := connect(cf)
		if err == nil {
			cl.local = &platform.State{GatewayInternal: gw}
		}
		return cl, err
	}
	return fa, out, errOut
}

func TestCalls(t *testing.T) {
	srv, asked := fakeGateway(t)
	fa, out, errOut := localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "orders"}, fa); code != 0 {
		t.Fatalf("fn calls orders: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[2], "next in 29s") && !strings.Contains(lines[2], "next in 30s") ||
		!strings.Contains(lines[3], "the function answered 400") {
		t.Errorf("fn calls orders:\n%s", out)
	}
	if got := errOut.String(); got != "4 calls: 1 queued, 1 retrying, 1 done, 1 dead; 1 redelivered (possible duplicates at the function)\n" {
		t.Errorf("summary %q", got)
	}

	fa, out, _ = localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "orders", "3", "-o", "json"}, fa); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var r events.Record
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil || r.ID != "3" || r.State != events.StateDead {
		t.Errorf("fn calls orders 3 -o json: %v %s", err, out)
	}

	fa, out, _ = localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "orders", "--dead"}, fa); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "POST /bad  no such order\n") {
		t.Errorf("fn calls --dead shows the first line of the answer:\n%s", out)
	}

	fa, out, _ = localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "retry", "orders", "3"}, fa); code != 0 || out.String() != "3\t9\n" {
		t.Errorf("fn calls retry orders 3: exit %d, %q", code, out)
	}
	fa, out, _ = localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "retry", "orders", "--all"}, fa); code != 0 || out.String() != "3\t9\n" {
		t.Errorf("fn calls retry orders --all: exit %d, %q", code, out)
	}
	fa, out, _ = localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "purge", "orders"}, fa); code != 0 || out.String() != "1\n" {
		t.Errorf("fn calls purge orders: exit %d, %q", code, out)
	}
	if got := strings.Join(*asked, ", "); got != "POST /_gw/dead/default/orders/3/resend, POST /_gw/dead/default/orders/3/resend, DELETE /_gw/dead/default/orders" {
		t.Errorf("asked the gateway: %s", got)
	}

	fa, _, errOut = localFactory(t, srv.URL)
	if code := run(context.Background(), []string{"calls", "orders", "77"}, fa); code != 1 || !strings.Contains(errOut.String(), "no such call") {
		t.Errorf("an unknown call: exit %d, %q", code, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"calls", "orders", "x"}, `"x" is not a call id`},
		{[]string{"calls", "orders", "3", "--dead"}, "--dead lists a function's dead letters"},
		{[]string{"calls", "retry", "orders"}, "or give --all"},
		{[]string{"calls", "retry", "orders", "0"}, `"0" is not a call id`},
		{[]string{"invoke", "orders", "--key", "k"}, "add --async"},
		{[]string{"triggers", "create", "t"}, "--function is required"},
		{[]string{"triggers", "create", "t", "--function", "f", "--filter", "type"}, `--filter "type": want ATTRIBUTE=VALUE`},
		{[]string{"triggers", "create", "t", "--function", "f", "--prefix", "Type=x"}, "spec.filter.prefix"},
	} {
		fa, _, errOut := localFactory(t, srv.URL)
		if code := run(context.Background(), c.args, fa); code != 2 || !strings.Contains(errOut.String(), c.want) || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("fn %s: exit %d, %q; want exit 2 and one line about %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}

func TestTriggers(t *testing.T) {
	fa, _, errOut := testFactory(nil, testFunction("default", "ship"))
	if code := run(context.Background(), []string{"triggers", "create", "on-order", "--function", "ship", "--type", "order.created", "--prefix", "source=shop/"}, fa); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "matching type=order.created source=shop/* go to ship") {
		t.Errorf("fn triggers create says %q", errOut)
	}
	cl, _ := fa.Connect(&clusterFlags{})
	tr, err := cl.fns.FnkitV1alpha1().Triggers("default").Get(context.Background(), "on-order", metav1.GetOptions{})
	if err != nil || tr.Spec.Filter.Attributes["type"] != "order.created" || tr.Spec.Filter.Prefix["source"] != "shop/" || tr.Spec.Function != "ship" {
		t.Fatalf("the Trigger made: %+v, %v", tr, err)
	}
	tr.Status.SetConditions(apis.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionFalse, Reason: v1alpha1.TriggerReasonFunctionNotFound, Message: `no Function "ship"`}})
	if _, err := cl.fns.FnkitV1alpha1().Triggers("default").UpdateStatus(context.Background(), tr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	fa.IOStreams.Out = out
	if code := run(context.Background(), []string{"triggers"}, fa); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], `on-order  ship      type=order.created source=shop/*  False  no Function "ship"`) {
		t.Errorf("fn triggers:\n%s", out)
	}
	if code := run(context.Background(), []string{"triggers", "delete", "on-order"}, fa); code != 0 {
		t.Errorf("delete: exit %d", code)
	}
	if code := run(context.Background(), []string{"triggers", "delete", "on-order"}, fa); code != 1 {
		t.Errorf("delete again: exit %d, want 1", code)
	}
}
