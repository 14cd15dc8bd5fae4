// Package slow is a test function: it sleeps ?ms= milliseconds and answers its pod's name.
package slow

import (
	"net/http"
	"os"
	"strconv"
	"time"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	w.Write([]byte(os.Getenv("HOSTNAME")))
}
