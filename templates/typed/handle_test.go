package function

import (
	"context"
	"testing"
)

func TestHandle(t *testing.T) {
	tests := []struct {
		in   In
		want Out
	}{
		{In{}, Out{Greeting: "Hello, world!"}},
		{In{Name: "Gopher"}, Out{Greeting: "Hello, Gopher!"}},
	}
	for _, tt := range tests {
		got, err := Handle(context.Background(), tt.in)
		if err != nil {
			t.Fatalf("Handle(%+v): %v", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("Handle(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
