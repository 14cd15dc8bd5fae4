package builder

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDetect detects the signature of any Go file beside a go.mod: never a panic; either a
// signature with a kind and a function name, or an error (a SignatureError saying what to
// write, or why the package could not be read).
func FuzzDetect(f *testing.F) {
	for _, src := range []string{
		"package hello\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {}\n",
		"package hello\n" + ceImports + "\nfunc Receive(ctx context.Context, e event.Event) (*event.Event, error) { return nil, nil }\n",
		"package hello\n\nimport \"context\"\n\ntype In struct{ A int }\ntype Out struct{ B string }\n\nfunc Handle(ctx context.Context, in In) (Out, error) { return Out{}, nil }\n",
		"package hello\n\nfunc Handle() {}\nfunc Handle2(x, y, z int) {}\n",
		"package hello\n\nfunc (T) Handle(w, r int) {}\ntype T struct{}\n",
		"package hello\n\nfunc Init() error { return nil }\nfunc Handle[T any](t T) {}\n",
		"package main\n\nfunc main() {}\n",
		"package hello\n\nfunc Handle(",
		"",
	} {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		dir := writeFunction(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.24\n", "fn.go": src})
		sig, err := Detect(dir)
		if err != nil {
			var se *SignatureError
			if errors.As(err, &se) && strings.TrimSpace(se.Error()) == "" {
				t.Fatalf("a SignatureError that says nothing for %q", src)
			}
			return
		}
		if sig == nil || sig.Kind == "" || sig.Pos == "" || sig.Package == "" {
			t.Fatalf("Detect(%q) = %+v, nil: want a signature with its kind, package and position", src, sig)
		}
	})
}
