// Package version is a test function for rollouts: it answers its VERSION, and 500 for every
// request when FAIL is set.
package version

import (
	"net/http"
	"os"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	if os.Getenv("FAIL") != "" {
		http.Error(w, os.Getenv("VERSION")+" fails", http.StatusInternalServerError)
		return
	}
	w.Write([]byte(os.Getenv("VERSION")))
}
