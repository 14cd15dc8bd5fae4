package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/platform"
)

// accessLine is the part of a gateway access line fn logs --requests shows.
type accessLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Namespace  string    `json:"namespace"`
	Function   string    `json:"function"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
	Upstream   string    `json:"upstream"`
	Error      string    `json:"error"`
}

// requestFilter turns the gateway's log lines into the access lines of function f.
type requestFilter struct {
	f    *v1alpha1.Function
	out  io.Writer
	mu   sync.Mutex
	tail int64    // keep only the last tail lines (-1: all) until flush
	kept []string // held for tail
}

func (r *requestFilter) line(raw []byte) {
	var a accessLine
	if json.Unmarshal(raw, &a) != nil || a.Msg != "request" || a.Namespace != r.f.Namespace || a.Function != r.f.Name {
		return
	}
	text := fmt.Sprintf("%s %s %s %d %.1fms %s", a.Time.UTC().Format(time.RFC3339Nano), a.Method, a.Path, a.Status, a.DurationMS, a.Upstream)
	if a.Error != "" {
		text += " " + a.Error
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tail < 0 {
		fmt.Fprintln(r.out, text)
		return
	}
	r.kept = append(r.kept, text)
	if int64(len(r.kept)) > r.tail {
		r.kept = r.kept[1:]
	}
}

// flush prints what tail held; later lines print as they come.
func (r *requestFilter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.kept {
		fmt.Fprintln(r.out, l)
	}
	r.kept, r.tail = nil, -1
}

// requestLines prints the gateway's access lines for f: from the local platform's gateway log,
// or from the fn-gateway pods of a cluster.
func requestLines(ctx context.Context, s IOStreams, cl *cluster, f *v1alpha1.Function, follow bool, tail int64) error {
	rf := &requestFilter{f: f, out: s.Out, tail: tail}
	if cl.local != nil && !cl.local.Install { // else its gateways are pods

		home, err := fnHome()
		if err != nil {
			return err
		}
		return scanFile(ctx, platform.ComponentLogPath(home, "gateway"), rf, follow)
	}
	pods, err := cl.kube.CoreV1().Pods("fn-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=fn-gateway"})
	if err != nil {
		return fmt.Errorf("listing the gateway's pods: %w", err)
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no fn-gateway pods in namespace fn-system: is fn installed?")
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(pods.Items))
	done := make(chan struct{})
	for _, p := range pods.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := cl.kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "gateway", Follow: follow}).Stream(ctx)
			if err != nil {
				errs <- fmt.Errorf("logs of gateway pod %s: %w", p.Name, err)
				return
			}
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				rf.line(sc.Bytes())
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	if follow {
		// What the pods already logged comes first; the tail is printed once it is in.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		rf.flush()
	}
	<-done
	rf.flush()
	close(errs)
	return joinErrors(errs)
}

// scanFile feeds path's lines to rf; with follow it goes on with what is appended until ctx ends.
func scanFile(ctx context.Context, path string, rf *requestFilter, follow bool) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("the local platform's gateway log: %w", err)
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 64<<10)
	var partial []byte
	for {
		chunk, err := br.ReadBytes('\n')
		partial = append(partial, chunk...)
		if err == nil {
			rf.line(partial)
			partial = partial[:0]
			continue
		}
		if err != io.EOF {
			return err
		}
		rf.flush()
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// joinErrors is the errors of a closed channel on one line, or nil when there were none.
func joinErrors(errs <-chan error) error {
	var msgs []string
	for err := range errs {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
