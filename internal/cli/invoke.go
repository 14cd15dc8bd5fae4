package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/spf13/cobra"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

type invokeOptions struct {
	url         string
	data        string
	file        string
	method      string
	headers     []string
	contentType string
	timeout     time.Duration
	token       string
	async       bool
	key         string
	callback    string

	cloudevent bool
	ceType     string
	ceSource   string
	ceID       string
	mode       string

	out     outputFlag
	cluster clusterFlags
	name    string
	path    string // NAME's /path?query, then --path
	connect func(*clusterFlags) (*cluster, error)
}

func newInvokeCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	o := &invokeOptions{connect: fa.Connect}
	c := &cobra.Command{
		Use:   "invoke [NAME | --url URL]",
		Short: "Call a function over HTTP or with a CloudEvent",
		Long: `Call a function and print its answer: the response body, or the reply event as JSON for a
CloudEvent. Exits non-zero when the function answers with an error status.`,
		Example: `  fn invoke hello
  fn invoke hello --async --key order-17 -d '{"order":17}'
  fn invoke --url http://localhost:8080 --cloudevent --type com.example.ping --source me --data '{}'
  fn invoke --url http://localhost:8080 --cloudevent --mode structured --file event-data.json -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.validate(args); err != nil {
				return err
			}
			return o.run(c.Context(), s)
		},
	}
	f := c.Flags()
	f.StringVar(&o.url, "url", "", "URL of the function; with NAME, the gateway's address")
	f.StringVar(&o.path, "path", "", "path and query to call under the function's URL")
	f.StringVarP(&o.data, "data", "d", "", "request body or event data")
	f.StringVarP(&o.file, "file", "f", "", "read the request body or event data from a file (- for stdin)")
	f.StringVarP(&o.method, "method", "X", "", "HTTP method (default: POST with data, GET without)")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "extra request header 'Name: value' (repeatable)")
	f.StringVar(&o.contentType, "content-type", "", "content type of the data (default: application/json when it is JSON, else text/plain)")
	f.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this long")
	f.StringVar(&o.token, "token", "", "access token of a private function (default with NAME: the namespace's, as fn token prints it)")
	f.BoolVar(&o.async, "async", false, "call asynchronously: the gateway answers 202 with the call's id at once and delivers it later, trying again on failure (fn calls shows it)")
	f.StringVar(&o.key, "key", "", "with --async, an Idempotency-Key: the same key again within the window accepts nothing new")
	f.StringVar(&o.callback, "callback", "", "with --async, a URL that gets the call's outcome (POST)")
	f.BoolVar(&o.cloudevent, "cloudevent", false, "send the data as a CloudEvent")
	f.StringVar(&o.ceType, "type", "dev.fnkit.invoke", "CloudEvent type")
	f.StringVar(&o.ceSource, "source", "fn/invoke", "CloudEvent source")
	f.StringVar(&o.ceID, "id", "", "CloudEvent id (default: random)")
	f.StringVar(&o.mode, "mode", "binary", "CloudEvent content mode: binary or structured")
	o.out.add(c)
	o.cluster.add(c)
	o.cluster.complete(c, fa, true)
	return c
}

func (o *invokeOptions) validate(args []string) error {
	if err := o.out.validate(); err != nil {
		return err
	}
	switch {
	case len(args) == 1:
		name, rest := args[0], ""
		if i := strings.IndexAny(name, "/?"); i >= 0 {
			name, rest = name[:i], name[i:]
		}
		if name == "" {
			return &UsageError{fmt.Errorf("%q: want NAME[/PATH][?QUERY]", args[0])}
		}
		o.name, o.path = name, joinPath(rest, o.path)
	case o.url == "":
		return &UsageError{fmt.Errorf("give the function's name (fn invoke NAME) or its address with --url")}
	}
	if o.data != "" && o.file != "" {
		return &UsageError{fmt.Errorf("--data and --file both give the body: use one")}
	}
	if (o.key != "" || o.callback != "") && !o.async {
		return &UsageError{fmt.Errorf("--key and --callback are for asynchronous calls: add --async")}
	}
	if o.mode != "binary" && o.mode != "structured" {
		return &UsageError{fmt.Errorf("--mode %q: use binary or structured", o.mode)}
	}
	for _, h := range o.headers {
		if k, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(k) == "" {
			return &UsageError{fmt.Errorf("--header %q: want 'Name: value'", h)}
		}
	}
	return nil
}

func (o *invokeOptions) body(s IOStreams) ([]byte, error) {
	switch {
	case o.file == "-":
		return io.ReadAll(s.In)
	case o.file != "":
		b, err := os.ReadFile(o.file)
		if err != nil {
			return nil, fmt.Errorf("reading --file: %w", err)
		}
		return b, nil
	}
	return []byte(o.data), nil
}

// invocation is what fn invoke prints with -o json.
type invocation struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body,omitempty"`
	Event   *event.Event      `json:"event,omitempty"`
}

func (o *invokeOptions) run(ctx context.Context, s IOStreams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	switch {
	case o.name != "" && o.url != "":
		// By name through the gateway at --url: its route, no cluster needed.
		ns := o.cluster.namespace
		if ns == "" {
			ns = "default"
		}
		o.url = strings.TrimSuffix(o.url, "/") + "/f/" + ns + "/" + o.name + "/"
	case o.name != "":
		// By name: through the gateway, at the URL the Function's status gives.
		cl, err := o.connect(&o.cluster)
		if err != nil {
			return err
		}
		f, err := getFunction(ctx, cl, o.name)
		if err != nil {
			return err
		}
		if f.Status.URL == nil {
			return fmt.Errorf("function %s has no URL yet: see fn describe %s", o.name, o.name)
		}
		o.url = f.Status.URL.String()
		if f.Spec.Access == v1alpha1.AccessPrivate && o.token == "" {
			if o.token, _, err = accessToken(ctx, cl, false); err != nil {
				return fmt.Errorf("function %s is private: %w", o.name, err)
			}
		}
	}
	if p := joinPath(o.path, ""); p != "" {
		o.url = strings.TrimSuffix(o.url, "/") + "/" + strings.TrimPrefix(p, "/")
	}
	data, err := o.body(s)
	if err != nil {
		return err
	}
	req, err := o.request(ctx, data)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", o.url, unwrapURLError(err))
	}
	defer resp.Body.Close()

	var reply *event.Event
	var respBody []byte
	if m := cehttp.NewMessageFromHttpResponse(resp); o.cloudevent && m.ReadEncoding() != binding.EncodingUnknown {
		if reply, err = binding.ToEvent(ctx, m); err != nil {
			return fmt.Errorf("reading the reply event: %w", err)
		}
	} else if respBody, err = io.ReadAll(resp.Body); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}

	failed := resp.StatusCode >= 400
	if o.async && resp.StatusCode == http.StatusAccepted && resp.Header.Get("Preference-Applied") == "respond-async" {
		return o.accepted(s, resp, respBody)
	}
	if o.async && !failed {
		return fmt.Errorf("%s answered %s, not an accepted asynchronous call: is it fn's gateway?", o.url, resp.Status)
	}
	if o.out.json() {
		inv := invocation{Status: resp.StatusCode, Headers: map[string]string{}, Event: reply}
		for k := range resp.Header {
			inv.Headers[k] = resp.Header.Get(k)
		}
		if len(respBody) > 0 {
			if json.Valid(respBody) {
				inv.Body = respBody
			} else {
				inv.Body, _ = json.Marshal(string(respBody))
			}
		}
		if err := printJSON(s.Out, inv); err != nil {
			return err
		}
	} else if reply != nil {
		if err := printJSON(s.Out, reply); err != nil {
			return err
		}
	} else {
		if _, err := s.Out.Write(respBody); err != nil {
			return err
		}
		if o.cloudevent && !failed {
			fmt.Fprintf(s.ErrOut, "%s: no reply event\n", resp.Status)
		}
	}
	if failed {
		msg := strings.TrimSpace(string(respBody))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("the function answered %s: %s", resp.Status, msg)
	}
	return nil
}

// accepted prints an asynchronous call's id (the gateway's JSON with -o json).
func (o *invokeOptions) accepted(s IOStreams, resp *http.Response, body []byte) error {
	id := resp.Header.Get("Fn-Call-Id")
	if o.out.json() {
		_, err := s.Out.Write(body)
		return err
	}
	fmt.Fprintln(s.Out, id)
	name := o.name
	if name == "" {
		name = "NAME"
	}
	if resp.Header.Get("Fn-Call-Duplicate") != "" {
		fmt.Fprintf(s.ErrOut, "a call with key %q was accepted already, as call %s: nothing new was accepted\n", o.key, id)
	} else {
		fmt.Fprintf(s.ErrOut, "accepted as call %s: fn calls %s %s shows what becomes of it\n", id, name, id)
	}
	return nil
}

func (o *invokeOptions) request(ctx context.Context, data []byte) (*http.Request, error) {
	method := o.method
	if method == "" {
		method = http.MethodGet
		if len(data) > 0 || o.cloudevent {
			method = http.MethodPost
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, o.url, nil)
	if err != nil {
		return nil, &UsageError{fmt.Errorf("--url %q: %v", o.url, err)}
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, &UsageError{fmt.Errorf("--url %q: want an http:// or https:// URL", o.url)}
	}
	contentType := o.contentType
	if contentType == "" && len(data) > 0 {
		contentType = "text/plain; charset=utf-8"
		if json.Valid(data) {
			contentType = "application/json"
		}
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	for _, h := range o.headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if o.async {
		req.Header.Set("Prefer", "respond-async")
		if o.key != "" {
			req.Header.Set("Idempotency-Key", o.key)
		}
		if o.callback != "" {
			req.Header.Set("Fn-Callback", o.callback)
		}
	}
	if !o.cloudevent {
		if len(data) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(data))
			req.ContentLength = int64(len(data))
			req.Header.Set("Content-Type", contentType)
		}
		return req, nil
	}

	e := event.New()
	e.SetID(o.ceID)
	if e.ID() == "" {
		e.SetID(randomID())
	}
	e.SetType(o.ceType)
	e.SetSource(o.ceSource)
	e.SetTime(time.Now())
	if len(data) > 0 {
		// JSON and text travel as themselves in structured mode; other bytes as base64.
		var v any = data
		switch {
		case strings.Contains(contentType, "json") && json.Valid(data):
			v = json.RawMessage(data)
		case strings.HasPrefix(contentType, "text/"):
			v = string(data)
		}
		if err := e.SetData(contentType, v); err != nil {
			return nil, fmt.Errorf("event data: %w", err)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, &UsageError{fmt.Errorf("the event is not valid: %v", err)}
	}
	wctx := binding.WithForceBinary(ctx)
	if o.mode == "structured" {
		wctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(wctx, binding.ToMessage(&e), req); err != nil {
		return nil, fmt.Errorf("encoding the event: %w", err)
	}
	return req, nil
}

// joinPath puts path b after path a; either may carry a ?query (the last one given wins).
func joinPath(a, b string) string {
	pa, qa, _ := strings.Cut(a, "?")
	pb, qb, hasQB := strings.Cut(b, "?")
	p := strings.TrimSuffix(pa, "/")
	if pb != "" {
		p += "/" + strings.TrimPrefix(pb, "/")
	} else if strings.HasSuffix(pa, "/") {
		p += "/"
	}
	q := qa
	if hasQB {
		q = qb
	}
	if q != "" {
		if p == "" {
			p = "/"
		}
		p += "?" + q
	}
	return p
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// unwrapURLError drops net/http's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
