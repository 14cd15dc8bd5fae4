package function

import (
	"encoding/json"
	"reflect"
)

// The reconciler owns only the fields its resources set. A child read back from the API server
// also holds fields the server defaulted and fields other tools set; comparing with DeepEqual
// would see a difference on every pass and write forever. Instead, a child is up to date when
// everything the desired object sets is present, equal, in the actual one (contains), and an
// update overlays the desired fields on the actual object, leaving the rest alone (overlay).
// Lists are compared and replaced whole.

// contains reports whether every field set in want is set to the same value in have.
func contains(have, want any) (bool, error) {
	h, w, err := toJSON(have, want)
	if err != nil {
		return false, err
	}
	return containsValue(h, w), nil
}

func containsValue(have, want any) bool {
	switch w := want.(type) {
	case nil:
		return true // not set
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		for k, wv := range w {
			if !containsValue(h[k], wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !containsValue(h[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(have, want)
}

// overlay writes into out the object have with every field set in want overlaid on it.
func overlay(have, want, out any) error {
	h, w, err := toJSON(have, want)
	if err != nil {
		return err
	}
	b, err := json.Marshal(overlayValue(h, w))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func overlayValue(have, want any) any {
	w, ok := want.(map[string]any)
	h, ok2 := have.(map[string]any)
	if !ok || !ok2 {
		return want
	}
	for k, wv := range w {
		if wv != nil {
			h[k] = overlayValue(h[k], wv)
		}
	}
	return h
}

func toJSON(have, want any) (any, any, error) {
	var h, w any
	for _, x := range []struct {
		in  any
		out *any
	}{{have, &h}, {want, &w}} {
		b, err := json.Marshal(x.in)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, x.out); err != nil {
			return nil, nil, err
		}
	}
	return h, w, nil
}
