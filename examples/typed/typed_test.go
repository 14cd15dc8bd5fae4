package typed

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

func TestHandle(t *testing.T) {
	o := Order{Items: []Item{
		{Name: "coffee", Price: 3.10, Quantity: 2},
		{Name: "croissant", Price: 2.25, Quantity: 1},
		{Name: "water", Price: 0.10, Quantity: 3},
	}}

	got, err := Handle(context.Background(), o)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	want := Receipt{Total: 8.75, ItemCount: 6}
	if got != want {
		t.Errorf("Handle = %+v, want %+v", got, want)
	}
}

func TestHandleJSON(t *testing.T) {
	var o Order
	body := `{"items":[{"name":"tea","price":1.5,"quantity":4}]}`
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatal(err)
	}
	r, err := Handle(context.Background(), o)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), `{"total":6,"itemCount":4}`; got != want {
		t.Errorf("response = %s, want %s", got, want)
	}
}

func TestHandleRejects(t *testing.T) {
	tests := []struct {
		name  string
		order Order
	}{
		{"nil items", Order{}},
		{"empty items", Order{Items: []Item{}}},
		{"zero quantity", Order{Items: []Item{{Name: "tea", Price: 1, Quantity: 0}}}},
		{"negative price", Order{Items: []Item{{Name: "tea", Price: -1, Quantity: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Handle(context.Background(), tt.order)
			if err == nil {
				t.Fatalf("Handle = %+v, nil; want an error", r)
			}
			var se interface{ StatusCode() int }
			if !errors.As(err, &se) {
				t.Fatalf("error %q has no StatusCode() method", err)
			}
			if got := se.StatusCode(); got != http.StatusUnprocessableEntity {
				t.Errorf("StatusCode() = %d, want %d", got, http.StatusUnprocessableEntity)
			}
			if r != (Receipt{}) {
				t.Errorf("receipt = %+v, want the zero value", r)
			}
		})
	}
}
