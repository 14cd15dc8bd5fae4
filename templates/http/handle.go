// Package function is an HTTP function.
package function

import (
	"fmt"
	"net/http"
)

// Handle answers "Hello, <name>!" where name is the name query parameter, "world" by default.
func Handle(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello, %s!\n", name)
}
