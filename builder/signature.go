package builder

import (
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kind is the form of a function's handler.
type Kind string

const (
	KindHTTP        Kind = "http"
	KindCloudEvents Kind = "cloudevents"
	KindTyped       Kind = "typed"
)

// EventResult is what a CloudEvents handler returns.
type EventResult string

const (
	ReturnsEventAndError EventResult = "event,error"
	ReturnsEvent         EventResult = "event"
	ReturnsError         EventResult = "error"
	ReturnsNothing       EventResult = "none"
)

// Signature describes a function's handler as found in its source.
type Signature struct {
	// Package is the Go package name of the function.
	Package string
	// Kind is the handler's form.
	Kind Kind
	// Context reports whether the handler takes a context.Context first.
	Context bool
	// ReturnsError reports whether an HTTP handler returns an error.
	ReturnsError bool
	// EventParam reports whether a CloudEvents handler takes the event.
	EventParam bool
	// EventResult is what a CloudEvents handler returns.
	EventResult EventResult
	// Instanced reports whether the handler is a method of the value New returns.
	Instanced bool
	// Hooks lists the lifecycle methods an instanced function declares: Start, Stop, Ready, Alive.
	Hooks []string
	// Pos is where the handler is declared, as file:line.
	Pos string
}

// AcceptedForms lists the function forms fn serves, for error messages.
const AcceptedForms = `accepted forms (ctx is context.Context; [x] is optional):
  HTTP         func Handle([ctx,] w http.ResponseWriter, r *http.Request) [error]
  CloudEvents  func Handle([ctx,] [e event.Event]) [(*event.Event, error) | *event.Event | error]
  typed JSON   func Handle([ctx,] in In) (Out, error)
  instanced    func New() *T, where *T has one of the Handle methods above and optionally
               Start(ctx, map[string]string) error, Stop(ctx) error, Ready(ctx) (bool, error), Alive(ctx) (bool, error)`

// SignatureError is a function directory whose handler fn cannot serve.
type SignatureError struct {
	Pos string // file:line, or the directory when there is no candidate
	Msg string
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("%s: %s\n%s", e.Pos, e.Msg, AcceptedForms)
}

// Detect finds the handler of the function in dir and describes its signature. The compiler
// checks it again through the generated main; Detect exists to give clear errors early.
func Detect(dir string) (*Signature, error) {
	pkg, err := parsePackage(dir)
	if err != nil {
		return nil, err
	}
	var handle, newFn *ast.FuncDecl
	methods := map[string]map[string]*ast.FuncDecl{} // receiver type -> name -> decl
	for _, f := range pkg.files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if fd.Recv != nil {
				if recv := receiverType(fd); recv != "" {
					if methods[recv] == nil {
						methods[recv] = map[string]*ast.FuncDecl{}
					}
					methods[recv][fd.Name.Name] = fd
				}
				continue
			}
			switch fd.Name.Name {
			case "Handle":
				handle = fd
			case "New":
				newFn = fd
			}
		}
	}
	rel := func(p token.Pos) string {
		pos := pkg.fset.Position(p)
		return fmt.Sprintf("%s:%d", displayPath(pos.Filename), pos.Line)
	}
	if pkg.name == "main" {
		return nil, &SignatureError{Pos: rel(pkg.files[0].Name.Pos()), Msg: "package main cannot be imported by fn's generated main: name the package anything else, e.g. package function"}
	}
	switch {
	case handle != nil && newFn != nil:
		return nil, &SignatureError{Pos: rel(newFn.Pos()), Msg: fmt.Sprintf("both func Handle (%s) and func New declare the function: keep one", rel(handle.Pos()))}
	case handle == nil && newFn == nil:
		return nil, &SignatureError{Pos: displayPath(dir), Msg: "no function found: declare func Handle or func New in package " + pkg.name}
	case handle != nil:
		sig, err := handlerSignature(handle, pkg.imports[handle])
		if err != nil {
			return nil, &SignatureError{Pos: rel(handle.Pos()), Msg: err.Error()}
		}
		sig.Package, sig.Pos = pkg.name, rel(handle.Pos())
		return sig, nil
	}

	// Instanced: func New() *T with methods on T.
	if newFn.Type.Params.NumFields() != 0 || newFn.Type.Results.NumFields() != 1 {
		return nil, &SignatureError{Pos: rel(newFn.Pos()), Msg: fmt.Sprintf("unsupported signature %s: New takes no arguments and returns one pointer, func New() *T", formatFunc(newFn))}
	}
	star, ok := newFn.Type.Results.List[0].Type.(*ast.StarExpr)
	ident, ok2 := ast.Expr(nil), false
	if ok {
		ident, ok2 = star.X.(*ast.Ident)
	}
	if !ok2 {
		return nil, &SignatureError{Pos: rel(newFn.Pos()), Msg: fmt.Sprintf("unsupported signature %s: New must return a pointer to a type of this package, func New() *T", formatFunc(newFn))}
	}
	typ := ident.(*ast.Ident).Name
	m := methods[typ]
	h := m["Handle"]
	if h == nil {
		return nil, &SignatureError{Pos: rel(newFn.Pos()), Msg: fmt.Sprintf("func New returns *%s, but %s has no Handle method", typ, typ)}
	}
	sig, err := handlerSignature(h, pkg.imports[h])
	if err != nil {
		return nil, &SignatureError{Pos: rel(h.Pos()), Msg: err.Error()}
	}
	sig.Package, sig.Pos, sig.Instanced = pkg.name, rel(h.Pos()), true
	for _, name := range []string{"Start", "Stop", "Ready", "Alive"} {
		fd := m[name]
		if fd == nil {
			continue
		}
		if err := checkHook(name, fd, pkg.imports[fd]); err != nil {
			return nil, &SignatureError{Pos: rel(fd.Pos()), Msg: err.Error()}
		}
		sig.Hooks = append(sig.Hooks, name)
	}
	return sig, nil
}

// imports maps a file's import names to paths.
type imports map[string]string

type parsedPackage struct {
	name    string
	fset    *token.FileSet
	files   []*ast.File
	imports map[*ast.FuncDecl]imports
}

// parsePackage parses the non-test Go files of dir that build for linux/amd64.
func parsePackage(dir string) (*parsedPackage, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading function directory: %w", err)
	}
	ctxt := build.Default
	ctxt.GOOS, ctxt.GOARCH, ctxt.CgoEnabled = "linux", "amd64", false
	p := &parsedPackage{fset: token.NewFileSet(), imports: map[*ast.FuncDecl]imports{}}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		if ok, err := ctxt.MatchFile(dir, n); err != nil || !ok {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, &SignatureError{Pos: displayPath(dir), Msg: "no Go files: a function is a directory with a go.mod and a Go package declaring func Handle or func New"}
	}
	var errs []error
	for _, n := range names {
		f, err := parser.ParseFile(p.fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.name == "" {
			p.name = f.Name.Name
		} else if f.Name.Name != p.name {
			return nil, &SignatureError{Pos: displayPath(p.fset.Position(f.Name.Pos()).Filename), Msg: fmt.Sprintf("package %s, but other files are package %s: a function directory holds one package", f.Name.Name, p.name)}
		}
		imp := imports{}
		for _, is := range f.Imports {
			path, _ := strconv.Unquote(is.Path.Value)
			name := path[strings.LastIndex(path, "/")+1:]
			switch path {
			case "github.com/cloudevents/sdk-go/v2":
				name = "v2" // its package name is v2; usually imported as cloudevents
			}
			if is.Name != nil {
				name = is.Name.Name
			}
			imp[name] = path
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				p.imports[fd] = imp
			}
		}
		p.files = append(p.files, f)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parsing function: %w", errors.Join(errs...))
	}
	return p, nil
}

func receiverType(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) != 1 {
		return ""
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// handlerSignature classifies a Handle function or method.
func handlerSignature(fd *ast.FuncDecl, imp imports) (*Signature, error) {
	params := fieldTypes(fd.Type.Params)
	results := fieldTypes(fd.Type.Results)
	unsupported := func(why string) error {
		return fmt.Errorf("unsupported signature %s: %s", formatFunc(fd), why)
	}
	sig := &Signature{}
	if len(params) > 0 && imp.is(params[0], "context", "Context") {
		sig.Context = true
		params = params[1:]
	}
	switch {
	case len(params) == 2 && imp.is(params[0], "net/http", "ResponseWriter") && imp.isPtr(params[1], "net/http", "Request"):
		sig.Kind = KindHTTP
		switch {
		case len(results) == 0:
		case len(results) == 1 && isError(results[0]):
			sig.ReturnsError = true
		default:
			return nil, unsupported("an HTTP handler returns nothing or error")
		}
		return sig, nil
	case len(params) == 0 || (len(params) == 1 && imp.isEvent(params[0])):
		sig.Kind, sig.EventParam = KindCloudEvents, len(params) == 1
		switch {
		case len(results) == 0:
			sig.EventResult = ReturnsNothing
		case len(results) == 1 && isError(results[0]):
			sig.EventResult = ReturnsError
		case len(results) == 1 && imp.isEventPtr(results[0]):
			sig.EventResult = ReturnsEvent
		case len(results) == 2 && imp.isEventPtr(results[0]) && isError(results[1]):
			sig.EventResult = ReturnsEventAndError
		default:
			return nil, unsupported("a CloudEvents handler returns (*event.Event, error), *event.Event, error or nothing")
		}
		return sig, nil
	case len(params) == 1:
		if imp.is(params[0], "net/http", "ResponseWriter") || imp.isPtr(params[0], "net/http", "Request") {
			return nil, unsupported("an HTTP handler takes both w http.ResponseWriter and r *http.Request")
		}
		if imp.isEventPtr(params[0]) {
			return nil, unsupported("a CloudEvents handler takes the event by value, e event.Event")
		}
		if len(results) != 2 || !isError(results[1]) {
			return nil, unsupported("a typed JSON handler returns (Out, error)")
		}
		sig.Kind = KindTyped
		return sig, nil
	}
	return nil, unsupported("it matches none of the accepted forms")
}

// checkHook checks the signature of an instanced function's lifecycle method.
func checkHook(name string, fd *ast.FuncDecl, imp imports) error {
	params, results := fieldTypes(fd.Type.Params), fieldTypes(fd.Type.Results)
	ctxOnly := len(params) == 1 && imp.is(params[0], "context", "Context")
	var ok bool
	var want string
	switch name {
	case "Start":
		want = "Start(ctx context.Context, cfg map[string]string) error"
		ok = len(params) == 2 && imp.is(params[0], "context", "Context") && isStringMap(params[1]) && len(results) == 1 && isError(results[0])
	case "Stop":
		want = "Stop(ctx context.Context) error"
		ok = ctxOnly && len(results) == 1 && isError(results[0])
	case "Ready", "Alive":
		want = name + "(ctx context.Context) (bool, error)"
		ok = ctxOnly && len(results) == 2 && isIdent(results[0], "bool") && isError(results[1])
	}
	if !ok {
		return fmt.Errorf("unsupported signature %s: the %s hook is %s", formatFunc(fd), name, want)
	}
	return nil
}

// fieldTypes expands a field list into one type per parameter.
func fieldTypes(fl *ast.FieldList) []ast.Expr {
	if fl == nil {
		return nil
	}
	var out []ast.Expr
	for _, f := range fl.List {
		n := len(f.Names)
		if n == 0 {
			n = 1
		}
		for range n {
			out = append(out, f.Type)
		}
	}
	return out
}

// is reports whether e names pkgPath.name through the file's imports.
func (imp imports) is(e ast.Expr, pkgPath, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && imp[x.Name] == pkgPath
}

func (imp imports) isPtr(e ast.Expr, pkgPath, name string) bool {
	s, ok := e.(*ast.StarExpr)
	return ok && imp.is(s.X, pkgPath, name)
}

func (imp imports) isEvent(e ast.Expr) bool {
	return imp.is(e, "github.com/cloudevents/sdk-go/v2/event", "Event") || imp.is(e, "github.com/cloudevents/sdk-go/v2", "Event")
}

func (imp imports) isEventPtr(e ast.Expr) bool {
	s, ok := e.(*ast.StarExpr)
	return ok && imp.isEvent(s.X)
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func isError(e ast.Expr) bool { return isIdent(e, "error") }

func isStringMap(e ast.Expr) bool {
	m, ok := e.(*ast.MapType)
	return ok && isIdent(m.Key, "string") && isIdent(m.Value, "string")
}

// formatFunc renders a declaration's signature as source, e.g. "func Handle(x int)".
func formatFunc(fd *ast.FuncDecl) string {
	var b strings.Builder
	b.WriteString("func ")
	if fd.Recv != nil && len(fd.Recv.List) == 1 {
		b.WriteString("(" + exprString(fd.Recv.List[0].Type) + ") ")
	}
	b.WriteString(fd.Name.Name + "(")
	b.WriteString(fieldsString(fd.Type.Params))
	b.WriteString(")")
	if r := fd.Type.Results; r != nil && len(r.List) > 0 {
		s := fieldsString(r)
		if len(r.List) > 1 || len(r.List[0].Names) > 0 {
			s = "(" + s + ")"
		}
		b.WriteString(" " + s)
	}
	return b.String()
}

func fieldsString(fl *ast.FieldList) string {
	var parts []string
	for _, f := range fl.List {
		t := exprString(f.Type)
		if len(f.Names) == 0 {
			parts = append(parts, t)
			continue
		}
		var names []string
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
		parts = append(parts, strings.Join(names, ", ")+" "+t)
	}
	return strings.Join(parts, ", ")
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(e.X)
	case *ast.ArrayType:
		if e.Len == nil {
			return "[]" + exprString(e.Elt)
		}
		return "[...]" + exprString(e.Elt)
	case *ast.MapType:
		return "map[" + exprString(e.Key) + "]" + exprString(e.Value)
	case *ast.InterfaceType:
		return "interface{...}"
	case *ast.Ellipsis:
		return "..." + exprString(e.Elt)
	case *ast.FuncType:
		return "func(...)"
	case *ast.ChanType:
		return "chan " + exprString(e.Value)
	case *ast.IndexExpr:
		return exprString(e.X) + "[" + exprString(e.Index) + "]"
	}
	return "..."
}

// displayPath shows p relative to the working directory when it is inside it, as compilers do.
func displayPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, abs); err == nil && r != ".." && !strings.HasPrefix(r, "../") {
			return r
		}
	}
	return abs
}
