// Package function is a typed JSON function.
package function

import "context"

// In is the request body.
type In struct {
	Name string `json:"name"`
}

// Out is the response body.
type Out struct {
	Greeting string `json:"greeting"`
}

// Handle greets in.Name, "world" when it is empty.
func Handle(ctx context.Context, in In) (Out, error) {
	name := in.Name
	if name == "" {
		name = "world"
	}
	return Out{Greeting: "Hello, " + name + "!"}, nil
}
