// Package hot is a test function: it burns CPU for ?ms= milliseconds.
package hot

import (
	"net/http"
	"strconv"
	"time"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	x := 0
	for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x += i
		}
	}
	w.Write([]byte(strconv.Itoa(x % 7)))
}
