package v1alpha1

import (
	"strings"
	"testing"
)

func TestTriggerFilterMatches(t *testing.T) {
	event := map[string]string{"type": "order.created", "source": "shop/eu", "region": "eu-west"}
	attr := func(k string) (string, bool) { v, ok := event[k]; return v, ok }
	for _, c := range []struct {
		name string
		f    TriggerFilter
		want bool
	}{
		{"empty takes all", TriggerFilter{}, true},
		{"exact", TriggerFilter{Attributes: map[string]string{"type": "order.created"}}, true},
		{"exact is not prefix", TriggerFilter{Attributes: map[string]string{"type": "order"}}, false},
		{"exact other", TriggerFilter{Attributes: map[string]string{"type": "order.cancelled"}}, false},
		{"all must hold", TriggerFilter{Attributes: map[string]string{"type": "order.created", "source": "shop/us"}}, false},
		{"extension", TriggerFilter{Attributes: map[string]string{"region": "eu-west"}}, true},
		{"missing attribute", TriggerFilter{Attributes: map[string]string{"subject": ""}}, false},
		{"prefix", TriggerFilter{Prefix: map[string]string{"source": "shop/"}}, true},
		{"prefix other", TriggerFilter{Prefix: map[string]string{"source": "store/"}}, false},
		{"suffix", TriggerFilter{Suffix: map[string]string{"type": ".created"}}, true},
		{"suffix other", TriggerFilter{Suffix: map[string]string{"type": ".cancelled"}}, false},
		{"suffix of a missing one", TriggerFilter{Suffix: map[string]string{"subject": ""}}, false},
	} {
		if got := c.f.Matches(attr); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTriggerValidate(t *testing.T) {
	ok := Trigger{Spec: TriggerSpec{Function: "ship", Filter: TriggerFilter{Attributes: map[string]string{"type": "order.created"}}}}
	if err := ok.Validate(t.Context()); err != nil {
		t.Errorf("%+v: %v", ok.Spec, err)
	}
	for _, c := range []struct {
		spec TriggerSpec
		want string
	}{
		{TriggerSpec{}, "spec.function"},
		{TriggerSpec{Function: "Ship"}, "spec.function"},
		{TriggerSpec{Function: "ship", Filter: TriggerFilter{Prefix: map[string]string{"Type": "x"}}}, "spec.filter.prefix"},
		{TriggerSpec{Function: "ship", Filter: TriggerFilter{Attributes: map[string]string{"a-b": "x"}}}, "spec.filter.attributes"},
		{TriggerSpec{Function: "ship", Delivery: &Delivery{Attempts: new(int32(0))}}, "spec.delivery.attempts"},
	} {
		tr := Trigger{Spec: c.spec}
		if err := tr.Validate(t.Context()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error at %s", c.spec, err, c.want)
		}
	}
}
