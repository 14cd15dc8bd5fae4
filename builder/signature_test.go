package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFunction writes a function package with the given files into a new directory.
func writeFunction(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const ceImports = `import (
	"context"
	"net/http"
	"github.com/cloudevents/sdk-go/v2/event"
	cloudevents "github.com/cloudevents/sdk-go/v2"
)

var _ = http.StatusOK
var _ = context.Background
var _ cloudevents.Event
var _ event.Event
`

// eventVariants lists every CloudEvents handler form: with or without ctx and the event, and
// each result.
func eventVariants() []struct {
	decl string
	sig  Signature
} {
	var out []struct {
		decl string
		sig  Signature
	}
	results := []struct {
		src string
		res EventResult
	}{{"(*event.Event, error)", ReturnsEventAndError}, {"*event.Event", ReturnsEvent}, {"error", ReturnsError}, {"", ReturnsNothing}}
	for _, ctx := range []bool{true, false} {
		for _, ev := range []bool{true, false} {
			for _, r := range results {
				var params []string
				if ctx {
					params = append(params, "ctx context.Context")
				}
				if ev {
					params = append(params, "e event.Event")
				}
				body := map[EventResult]string{ReturnsEventAndError: "return nil, nil", ReturnsEvent: "return nil", ReturnsError: "return nil", ReturnsNothing: ""}[r.res]
				out = append(out, struct {
					decl string
					sig  Signature
				}{
					decl: fmt.Sprintf("func Handle(%s) %s { %s }", strings.Join(params, ", "), r.src, body),
					sig:  Signature{Package: "function", Kind: KindCloudEvents, Context: ctx, EventParam: ev, EventResult: r.res, Pos: "handle.go:14"},
				})
			}
		}
	}
	return out
}

func TestDetect(t *testing.T) {
	type tc struct {
		name string
		decl string
		want Signature
	}
	cases := []tc{
		{"http", "func Handle(w http.ResponseWriter, r *http.Request) {}", Signature{Kind: KindHTTP}},
		{"http ctx", "func Handle(ctx context.Context, w http.ResponseWriter, r *http.Request) {}", Signature{Kind: KindHTTP, Context: true}},
		{"http error", "func Handle(w http.ResponseWriter, r *http.Request) error { return nil }", Signature{Kind: KindHTTP, ReturnsError: true}},
		{"http ctx error", "func Handle(ctx context.Context, w http.ResponseWriter, r *http.Request) error { return nil }", Signature{Kind: KindHTTP, Context: true, ReturnsError: true}},
		{"cloudevents alias", "func Handle(ctx context.Context, e cloudevents.Event) (*cloudevents.Event, error) { return nil, nil }", Signature{Kind: KindCloudEvents, Context: true, EventParam: true, EventResult: ReturnsEventAndError}},
		{"typed", "type In struct{}\ntype Out struct{}\nfunc Handle(ctx context.Context, in In) (Out, error) { return Out{}, nil }", Signature{Kind: KindTyped, Context: true}},
		{"typed pointer, no ctx", "type In struct{}\nfunc Handle(in *In) (map[string]int, error) { return nil, nil }", Signature{Kind: KindTyped}},
	}
	for _, v := range eventVariants() {
		cases = append(cases, tc{"cloudevents " + v.decl, v.decl, v.sig})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFunction(t, map[string]string{"handle.go": "package function\n\n" + ceImports + "\n" + c.decl + "\n"})
			got, err := Detect(dir)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			want := c.want
			want.Package = "function"
			want.Pos = displayPath(filepath.Join(dir, "handle.go")) + ":" + fmt.Sprint(strings.Count(ceImports, "\n")+4+strings.Count(c.decl[:strings.Index(c.decl, "func Handle")], "\n"))
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDetectInstanced(t *testing.T) {
	dir := writeFunction(t, map[string]string{
		"fn.go": `package counter

import (
	"context"
	"net/http"
)

type Counter struct{ n int }

func New() *Counter { return &Counter{} }

func (c *Counter) Handle(ctx context.Context, w http.ResponseWriter, r *http.Request) error { return nil }
`,
		"hooks.go": `package counter

import "context"

func (c *Counter) Start(ctx context.Context, cfg map[string]string) error { return nil }
func (c *Counter) Ready(ctx context.Context) (bool, error) { return true, nil }
func (c Counter) Alive(ctx context.Context) (bool, error) { return true, nil }
func (c *Counter) Other() {}
`,
		"hooks_test.go": `package counter

func Handle() {} // test files are not part of the function
`,
	})
	got, err := Detect(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &Signature{Package: "counter", Kind: KindHTTP, Context: true, ReturnsError: true, Instanced: true,
		Hooks: []string{"Start", "Ready", "Alive"}, Pos: displayPath(filepath.Join(dir, "fn.go")) + ":12"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Detect (-want +got):\n%s", diff)
	}
}

func TestDetectErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		// want are substrings of the error, with DIR standing for the function's directory.
		want []string
	}{{
		name:  "no handler",
		files: map[string]string{"util.go": "package function\n\nfunc helper() {}\n"},
		want:  []string{"DIR: no function found: declare func Handle or func New in package function", "accepted forms"},
	}, {
		name:  "wrong signature",
		files: map[string]string{"handle.go": "package function\n\nfunc Handle(x int) {}\n"},
		want:  []string{"DIR/handle.go:3: unsupported signature func Handle(x int)", "HTTP         func Handle([ctx,] w http.ResponseWriter, r *http.Request) [error]", "typed JSON   func Handle([ctx,] in In) (Out, error)"},
	}, {
		name: "two candidates",
		files: map[string]string{
			"handle.go": "package function\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {}\n",
			"new.go":    "package function\n\ntype T struct{}\n\nfunc New() *T { return nil }\n",
		},
		want: []string{"DIR/new.go:5: both func Handle (DIR/handle.go:5) and func New declare the function: keep one"},
	}, {
		name:  "package main",
		files: map[string]string{"main.go": "package main\n\nfunc main() {}\n"},
		want:  []string{"DIR/main.go:1: package main cannot be imported"},
	}, {
		name:  "no go files",
		files: map[string]string{"README.md": "hi"},
		want:  []string{"DIR: no Go files"},
	}, {
		name:  "http handler missing the request",
		files: map[string]string{"handle.go": "package function\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter) {}\n"},
		want:  []string{"DIR/handle.go:5: unsupported signature func Handle(w http.ResponseWriter): an HTTP handler takes both"},
	}, {
		name:  "typed without error",
		files: map[string]string{"handle.go": "package function\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, in string) string { return in }\n"},
		want:  []string{"DIR/handle.go:5: unsupported signature func Handle(ctx context.Context, in string) string: a typed JSON handler returns (Out, error)"},
	}, {
		name: "bad hook",
		files: map[string]string{"fn.go": `package function

import "context"

type T struct{}

func New() *T { return &T{} }
func (t *T) Handle(ctx context.Context, in string) (string, error) { return in, nil }
func (t *T) Start() error { return nil }
`},
		want: []string{"DIR/fn.go:9: unsupported signature func (*T) Start() error: the Start hook is Start(ctx context.Context, cfg map[string]string) error"},
	}, {
		name:  "New without Handle",
		files: map[string]string{"fn.go": "package function\n\ntype T struct{}\n\nfunc New() *T { return &T{} }\n"},
		want:  []string{"DIR/fn.go:5: func New returns *T, but T has no Handle method"},
	}, {
		name:  "New returning a value",
		files: map[string]string{"fn.go": "package function\n\ntype T struct{}\n\nfunc New() T { return T{} }\n"},
		want:  []string{"DIR/fn.go:5: unsupported signature func New() T: New must return a pointer"},
	}, {
		name:  "syntax error",
		files: map[string]string{"fn.go": "package function\n\nfunc Handle( {\n"},
		want:  []string{"DIR/fn.go:3:"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFunction(t, c.files)
			_, err := Detect(dir)
			if err == nil {
				t.Fatal("Detect succeeded, want an error")
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "DIR", displayPath(dir))
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
