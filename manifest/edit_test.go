package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const commented = `# orders: the shop's order intake
name: orders
# how long a request may take
timeout: 30s
env:
  - name: A
    value: "1"
`

func TestEdit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	if err := os.WriteFile(path, []byte(commented), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"set nested", func() error { return d.Set("scale.min", "1") }},
		{"set another", func() error { return d.Set("scale.max", "5") }},
		{"replace", func() error { return d.Set("timeout", "45s") }},
		{"env set new", func() error { return d.SetEnv("B", "9090") }},
		{"env set existing", func() error { return d.SetEnv("A", "two") }},
		{"env unset", func() error { return d.UnsetEnv("A") }},
		{"unset", func() error { return d.Unset("scale.max") }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if err := d.Save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	m, err := Parse(path, b)
	if err != nil {
		t.Fatalf("saved file does not parse: %v\n%s", err, b)
	}
	if m.Timeout.Duration.String() != "45s" || *m.Scale.Min != 1 || m.Scale.Max != nil || len(m.Env) != 1 || m.Env[0].Name != "B" || m.Env[0].Value != "9090" {
		t.Errorf("after the edits: %+v (scale %+v env %+v)\n%s", m, m.Scale, m.Env, b)
	}
	for _, c := range []string{"# orders: the shop's order intake", "# how long a request may take"} {
		if !strings.Contains(string(b), c) {
			t.Errorf("comment %q lost:\n%s", c, b)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the file's 0600 kept", fi.Mode().Perm())
	}
	if v, ok, err := d.Get("scale.min"); err != nil || !ok || v != "1\n" {
		t.Errorf("get scale.min = %q %v %v", v, ok, err)
	}
	if _, ok, err := d.Get("concurrency"); err != nil || ok {
		t.Errorf("get of an unset key: ok %v, err %v", ok, err)
	}

	// The last variable takes the env key with it; the last scale key the scale mapping.
	if err := d.UnsetEnv("B"); err != nil {
		t.Fatal(err)
	}
	if err := d.Unset("scale.min"); err != nil {
		t.Fatal(err)
	}
	b, _ = d.Bytes()
	if strings.Contains(string(b), "env") || strings.Contains(string(b), "scale") {
		t.Errorf("empty env or scale left behind:\n%s", b)
	}
}

func TestEditRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	if err := os.WriteFile(path, []byte(commented), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		do   func() error
		want string
	}{
		{"unknown key", func() error { return d.Set("scale.mni", "1") }, "scale.mni: unknown key; accepted here: initial, max"},
		{"unknown top key", func() error { return d.Set("image", "x") }, "image: unknown key"},
		{"invalid value", func() error { return d.Set("concurrency", "-5") }, "concurrency: invalid value: -5"},
		{"wrong type", func() error { return d.Set("scale.min", "lots") }, "scale.min: want an integer"},
		{"bounds", func() error { return d.Set("scale", "{min: 5, max: 2}") }, "scale.min: invalid value: 5"},
		{"unset unknown", func() error { return d.Unset("nmae") }, "nmae: unknown key"},
	} {
		if err := c.do(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// Refused changes leave the document as it was.
	b, _ := d.Bytes()
	m, err := Parse(path, b)
	if err != nil || m.Concurrency != nil || m.Scale != nil {
		t.Errorf("refused changes stayed: %+v %v\n%s", m, err, b)
	}

	// A file that is not a valid fn.yaml is not opened for editing.
	if err := os.WriteFile(path, []byte("nmae: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "nmae: unknown key") {
		t.Errorf("Open of an invalid fn.yaml: %v", err)
	}
	// No fn.yaml yet: set writes one.
	empty := t.TempDir()
	d, err = Open(empty)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set("scale.max", "3"); err != nil {
		t.Fatal(err)
	}
	if err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if m, _, ok, err := Load(empty); err != nil || !ok || *m.Scale.Max != 3 {
		t.Errorf("new fn.yaml: %+v %v %v", m, ok, err)
	}
}

func TestStarter(t *testing.T) {
	m, err := Parse("fn.yaml", Starter("hello"))
	if err != nil || m.Name != "hello" || m.Env != nil || m.Scale != nil {
		t.Errorf("the starter fn.yaml: %+v %v", m, err)
	}
	// Its commented keys are all valid once uncommented.
	var lines []string
	for _, l := range strings.Split(string(Starter("hello")), "\n") {
		if strings.HasPrefix(l, "# ") && strings.Contains(l, ":") && !strings.Contains(l, "fn deploy") && !strings.Contains(l, "schema") {
			l = strings.TrimPrefix(l, "# ")
			if i := strings.Index(l, "  #"); i > 0 {
				l = l[:i]
			}
			lines = append(lines, l)
		}
	}
	if _, err := Parse("fn.yaml", []byte("name: hello\n"+strings.Join(lines, "\n")+"\n")); err != nil {
		t.Errorf("the starter's commented keys, uncommented: %v\n%s", err, strings.Join(lines, "\n"))
	}
}
