package function

import (
	"reflect"
	"testing"
)

func TestContainsAndOverlay(t *testing.T) {
	have := map[string]any{
		"labels": map[string]any{"a": "1", "team": "x"},
		"spec":   map[string]any{"replicas": 3.0, "image": "old", "ports": []any{map[string]any{"name": "http", "port": 80.0, "protocol": "TCP"}}},
	}
	cases := []struct {
		name     string
		want     map[string]any
		contains bool
		overlaid map[string]any
	}{
		{"subset", map[string]any{"labels": map[string]any{"a": "1"}, "spec": map[string]any{"image": "old"}}, true, nil},
		{"unset fields are not compared", map[string]any{"spec": map[string]any{"image": "old", "extra": nil}}, true, nil},
		{"changed scalar", map[string]any{"spec": map[string]any{"image": "new"}}, false,
			map[string]any{"labels": map[string]any{"a": "1", "team": "x"}, "spec": map[string]any{"replicas": 3.0, "image": "new", "ports": have["spec"].(map[string]any)["ports"]}}},
		{"lists compare whole: element subset", map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"name": "http", "port": 80.0}}}}, true, nil},
		{"lists of another length differ and are replaced", map[string]any{"spec": map[string]any{"ports": []any{}}}, false,
			map[string]any{"labels": map[string]any{"a": "1", "team": "x"}, "spec": map[string]any{"replicas": 3.0, "image": "old", "ports": []any{}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := contains(have, c.want)
			if err != nil || got != c.contains {
				t.Fatalf("contains = %t, %v; want %t", got, err, c.contains)
			}
			if c.overlaid == nil {
				return
			}
			var out map[string]any
			if err := overlay(have, c.want, &out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, c.overlaid) {
				t.Errorf("overlay = %v\nwant %v", out, c.overlaid)
			}
			if ok, _ := contains(out, c.want); !ok {
				t.Errorf("the overlaid object does not contain what was overlaid")
			}
		})
	}
}
