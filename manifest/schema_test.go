package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// TestSchema: the published JSON Schema (generated from the CRD by hack/manifestschema) accepts
// a full fn.yaml, refuses what Parse refuses for its keys, and names the keys Manifest has.
func TestSchema(t *testing.T) {
	b, err := os.ReadFile("fn.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("fn.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("fn.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	check := func(y string) error {
		js, err := yaml.YAMLToJSON([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(v)
	}
	if err := check(full); err != nil {
		t.Errorf("the full fn.yaml: %v", err)
	}
	if err := check(string(Starter("hello"))); err != nil {
		t.Errorf("the starter fn.yaml: %v", err)
	}
	for _, bad := range []string{"nmae: x\n", "image: r.test/x:1\n", "scale:\n  mni: 1\n", "scale:\n  min: lots\n", "name: Hello_World\n", "scale: {metric: memory}\n"} {
		if err := check(bad); err == nil {
			t.Errorf("the schema accepts %q", bad)
		}
	}
	var s struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", "scale", "source"} {
		props := s.Properties
		var names []string
		if path == "" {
			for k := range props {
				names = append(names, k)
			}
		} else {
			for k := range props[path].Properties {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, KeysAt(path)) {
			t.Errorf("schema keys at %q: %v, Manifest's: %v (run make generate)", path, names, KeysAt(path))
		}
	}
}
