// Package recorder is a test function of asynchronous calls: it reports every call it gets
// (its Fn-Call-Id, attempt and path) to the URL in $COLLECT before it answers, so that what it
// received outlives its process. It sleeps ?ms= milliseconds first; /bad answers 400, and
// /flaky answers 503 to attempts before the third.
package recorder

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"time"
)

var client = &http.Client{Timeout: 5 * time.Second}

func Handle(w http.ResponseWriter, r *http.Request) {
	if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	attempt, _ := strconv.Atoi(r.Header.Get("Fn-Call-Attempt"))
	status := http.StatusOK
	switch r.URL.Path {
	case "/bad":
		status = http.StatusBadRequest
	case "/flaky":
		if attempt < 3 {
			status = http.StatusServiceUnavailable
		}
	}
	if url := os.Getenv("COLLECT"); url != "" {
		b, _ := json.Marshal(map[string]any{"id": r.Header.Get("Fn-Call-Id"), "attempt": attempt, "path": r.URL.Path,
			"status": status, "ceType": r.Header.Get("Ce-Type"), "ceId": r.Header.Get("Ce-Id"), "ceTime": r.Header.Get("Ce-Time")})
		resp, err := client.Post(url, "application/json", bytes.NewReader(b))
		if err != nil {
			http.Error(w, "reporting the call: "+err.Error(), http.StatusInternalServerError)
			return
		}
		resp.Body.Close()
	}
	w.WriteHeader(status)
	w.Write([]byte(os.Getenv("HOSTNAME")))
}
