package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Latencies are the figures of an open-loop run.
type Latencies struct {
	// Sorted holds every successful request's latency, shortest first.
	Sorted []time.Duration
	// Errors counts requests that failed or did not answer 200.
	Errors int
	// Late counts requests sent more than a millisecond after their slot: the load generator
	// itself fell behind.
	Late int
	// FirstError describes the first error, if any.
	FirstError string
}

// Percentile is the latency below which a fraction p (0 to 1) of requests answered.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l.Sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(l.Sorted)) + 0.5)
	return l.Sorted[min(max(i-1, 0), len(l.Sorted)-1)]
}

// NewClient is an HTTP client for load: it keeps connections alive and reuses many at once, and
// never compresses or goes through a proxy.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 10 * time.Second,
	}
}

// OpenLoop sends GET url rate times a second for d, each request at its own time on its own
// goroutine whatever the earlier ones do: an open-loop load, where a slow server meets the same
// arrivals (wrk's closed loop waits for answers instead). It returns the requests' latencies.
func OpenLoop(ctx context.Context, client *http.Client, url string, rate int, d time.Duration) (Latencies, error) {
	if rate <= 0 || d <= 0 {
		return Latencies{}, fmt.Errorf("open loop: rate %d and duration %s must be positive", rate, d)
	}
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	late := make([]bool, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
				return Latencies{}, ctx.Err()
			case <-time.After(wait):
			}
		}
		wg.Go(func() {
			t0 := time.Now()
			late[i] = t0.Sub(at) > time.Millisecond
			lat[i], errs[i] = get(ctx, client, url)
		})
	}
	wg.Wait()
	var l Latencies
	for i := range n {
		if late[i] {
			l.Late++
		}
		if errs[i] != nil {
			if l.Errors == 0 {
				l.FirstError = errs[i].Error()
			}
			l.Errors++
			continue
		}
		l.Sorted = append(l.Sorted, lat[i])
	}
	slices.Sort(l.Sorted)
	return l, nil
}

// get times one request, from sending it to reading the whole answer.
func get(ctx context.Context, client *http.Client, url string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return d, nil
}
