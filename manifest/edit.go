package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Doc is fn.yaml opened for editing: changes keep its comments and the order of its keys.
type Doc struct {
	Path string
	root yaml.Node // a document node holding one mapping
}

// Open reads dir's fn.yaml for editing; a directory without one gets an empty document.
func Open(dir string) (*Doc, error) {
	d := &Doc{Path: filepath.Join(dir, File)}
	data, err := os.ReadFile(d.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return nil, err
	}
	if _, err := Parse(d.Path, data); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.Unmarshal(data, &d.root); err != nil {
			return nil, &Error{File: d.Path, Msg: err.Error()}
		}
	}
	if d.root.Kind != yaml.DocumentNode || len(d.root.Content) == 0 || d.root.Content[0].Kind != yaml.MappingNode {
		comments := d.root.HeadComment
		d.root = yaml.Node{Kind: yaml.DocumentNode, HeadComment: comments, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	return d, nil
}

func (d *Doc) top() *yaml.Node { return d.root.Content[0] }

// checkKey refuses a key path fn.yaml does not have, listing what is accepted.
func (d *Doc) checkKey(key string) ([]string, error) {
	if key == "" {
		return nil, &Error{File: d.Path, Msg: "no key given"}
	}
	segs := strings.Split(key, ".")
	for i := range segs {
		parent := strings.Join(segs[:i], ".")
		accepted := KeysAt(parent)
		found := false
		for _, k := range accepted {
			found = found || k == segs[i]
		}
		if !found {
			msg := "unknown key"
			if len(accepted) > 0 {
				msg += "; accepted here: " + strings.Join(accepted, ", ")
			}
			return nil, &Error{File: d.Path, Key: strings.Join(segs[:i+1], "."), Msg: msg}
		}
	}
	return segs, nil
}

// lookup finds key's value node under m, and its index in m.Content.
func lookup(m *yaml.Node, key string) (*yaml.Node, int) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1], i
		}
	}
	return nil, -1
}

// Get is the YAML of key's value (a dotted path such as scale.min); ok is false when unset.
func (d *Doc) Get(key string) (out string, ok bool, err error) {
	if key == "" {
		b, err := d.Bytes()
		return string(b), true, err
	}
	segs, err := d.checkKey(key)
	if err != nil {
		return "", false, err
	}
	n := d.top()
	for _, s := range segs {
		if n, _ = lookup(n, s); n == nil {
			return "", false, nil
		}
	}
	if n.Kind == yaml.ScalarNode {
		return n.Value + "\n", true, nil
	}
	b, err := yaml.Marshal(n)
	return string(b), true, err
}

// Set gives key the value written in YAML (2, 30s, "[a, b]"), creating the mappings above it.
// The result is checked as fn deploy checks fn.yaml; a value it refuses changes nothing.
func (d *Doc) Set(key, value string) error {
	segs, err := d.checkKey(key)
	if err != nil {
		return err
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte(value), &v); err != nil {
		return &Error{File: d.Path, Key: key, Msg: fmt.Sprintf("value %q is not YAML: %v", value, err)}
	}
	val := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	if len(v.Content) > 0 {
		val = v.Content[0]
	}
	return d.change(func(top *yaml.Node) {
		n := top
		for i, s := range segs {
			child, idx := lookup(n, s)
			last := i == len(segs)-1
			switch {
			case last && idx >= 0:
				n.Content[idx+1] = val
			case last:
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s}, val)
			case child == nil || child.Kind != yaml.MappingNode:
				child = &yaml.Node{Kind: yaml.MappingNode}
				if idx >= 0 {
					n.Content[idx+1] = child
				} else {
					n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s}, child)
				}
			}
			n = child
		}
	})
}

// Unset removes key, and the mappings above it left empty; an unset key is no error.
func (d *Doc) Unset(key string) error {
	segs, err := d.checkKey(key)
	if err != nil {
		return err
	}
	return d.change(func(top *yaml.Node) { unset(top, segs) })
}

func unset(m *yaml.Node, segs []string) {
	child, idx := lookup(m, segs[0])
	if idx < 0 {
		return
	}
	if len(segs) > 1 {
		unset(child, segs[1:])
		if child.Kind != yaml.MappingNode || len(child.Content) > 0 {
			return
		}
	}
	m.Content = append(m.Content[:idx], m.Content[idx+2:]...)
}

// SetEnv sets environment variable name to a plain value, in place if it is there.
func (d *Doc) SetEnv(name, value string) error {
	return d.change(func(top *yaml.Node) {
		env := envList(top, true)
		item := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: name},
			{Kind: yaml.ScalarNode, Value: "value"}, {Kind: yaml.ScalarNode, Value: value, Style: quoteStyle(value)},
		}}
		for i, e := range env.Content {
			if n, _ := lookup(e, "name"); n != nil && n.Value == name {
				env.Content[i] = item
				return
			}
		}
		env.Content = append(env.Content, item)
	})
}

// UnsetEnv removes environment variable name; the env key goes with its last variable.
func (d *Doc) UnsetEnv(name string) error {
	return d.change(func(top *yaml.Node) {
		env := envList(top, false)
		if env == nil {
			return
		}
		kept := env.Content[:0]
		for _, e := range env.Content {
			if n, _ := lookup(e, "name"); n == nil || n.Value != name {
				kept = append(kept, e)
			}
		}
		env.Content = kept
		if len(kept) == 0 {
			unset(top, []string{"env"})
		}
	})
}

func envList(top *yaml.Node, create bool) *yaml.Node {
	env, idx := lookup(top, "env")
	if env != nil && env.Kind == yaml.SequenceNode {
		return env
	}
	if !create {
		return nil
	}
	env = &yaml.Node{Kind: yaml.SequenceNode}
	if idx >= 0 {
		top.Content[idx+1] = env
	} else {
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "env"}, env)
	}
	return env
}

// quoteStyle quotes a value YAML would read as something other than a string (9090, true).
func quoteStyle(v string) yaml.Style {
	var n yaml.Node
	if yaml.Unmarshal([]byte(v), &n) != nil || len(n.Content) == 0 || n.Content[0].Tag != "!!str" {
		return yaml.DoubleQuotedStyle
	}
	return 0
}

// change applies f to a copy of the document and keeps the result only if it is a valid fn.yaml.
func (d *Doc) change(f func(top *yaml.Node)) error {
	before, err := yaml.Marshal(&d.root)
	if err != nil {
		return err
	}
	f(d.top())
	after, err := d.Bytes()
	if err == nil {
		_, err = Parse(d.Path, after)
	}
	if err != nil {
		var restored yaml.Node
		if yaml.Unmarshal(before, &restored) == nil {
			d.root = restored
		}
		return err
	}
	return nil
}

// Bytes is the document as YAML.
func (d *Doc) Bytes() ([]byte, error) {
	if len(d.top().Content) == 0 && d.root.HeadComment == "" {
		return nil, nil
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&d.root); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// Save writes the document back to its file, by way of a temporary file, so a reader never
// sees half of it.
func (d *Doc) Save() error {
	b, err := d.Bytes()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.Path), ".fn.yaml-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(d.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), d.Path)
}
