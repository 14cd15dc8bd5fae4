package gitbuild

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// DeployRequest is fn deploy --git's request: build the head of a branch of a repository into
// a Function, which is built from it from then on.
type DeployRequest struct {
	URL  string `json:"url"`
	Ref  string `json:"ref,omitempty"`
	Path string `json:"path,omitempty"`
	// SecretRef names the Secret (of the Function's namespace) whose username and password
	// clone the repository.
	SecretRef string `json:"secretRef,omitempty"`
}

// The last line of a /builds response says how the build ended.
const (
	DeployOK     = "fn-builder: deployed "
	DeployFailed = "fn-builder: failed: "
)

// LsRemote is the commit ref (a branch name or a full ref) points at in the repository at url.
func LsRemote(ctx context.Context, url, ref string, auth *Auth) (string, error) {
	full := ref
	if !strings.HasPrefix(ref, "refs/") {
		full = "refs/heads/" + ref
	}
	cmd := exec.CommandContext(ctx, "git", "ls-remote", "--", url, full)
	cmd.Env = gitEnv(auth)
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", cloneError{fmt.Errorf("fn: reading %s of %s: %s", ref, url, msg)}
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if commit, name, ok := strings.Cut(line, "\t"); ok && name == full {
			return commit, nil
		}
	}
	return "", cloneError{fmt.Errorf("fn: %s has no branch %s", url, ref)}
}

// serveDeploy serves POST /builds/NAMESPACE/NAME (a DeployRequest, authorized as a push to the
// remote): the build's progress is streamed back as it goes, and its last line begins with
// DeployOK or DeployFailed.
func (s *Server) serveDeploy(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/builds/"), "/")
	if !ok || !dnsLabel.MatchString(ns) || !dnsLabel.MatchString(name) {
		http.Error(w, "POST /builds/NAMESPACE/NAME", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "builds take POST", http.StatusMethodNotAllowed)
		return
	}
	user, err := s.cluster.Authorize(r, ns)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="fn"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req DeployRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.URL == "" {
		http.Error(w, "want a JSON body with the repository's url", http.StatusBadRequest)
		return
	}
	req.Ref = cmp.Or(req.Ref, "main")
	src := &v1alpha1.GitSource{URL: req.URL, Ref: req.Ref, Path: req.Path}
	if req.SecretRef != "" {
		src.SecretRef = &corev1.LocalObjectReference{Name: req.SecretRef}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	out := &flushWriter{w: w}
	err = s.deploy(r.Context(), ns, name, user, src, out)
	if err != nil {
		fmt.Fprintf(out, "%s%s\n", DeployFailed, strings.ReplaceAll(err.Error(), "\n", " | "))
		return
	}
}

func (s *Server) deploy(ctx context.Context, ns, name, user string, src *v1alpha1.GitSource, out io.Writer) error {
	auth, err := s.cluster.authFrom(ctx, ns, src.SecretRef)
	if err != nil {
		return err
	}
	commit, err := LsRemote(ctx, src.URL, src.Ref, auth)
	if err != nil {
		return err
	}
	fn := ns + "/" + name
	ref := "refs/heads/" + strings.TrimPrefix(src.Ref, "refs/heads/")
	t := Trigger{Function: fn, Kind: v1alpha1.TriggerDeploy, User: user, URL: src.URL, Ref: ref, Commit: commit, Path: src.Path, Source: src}
	o := s.Builder.Options
	o.Dir, o.Name = src.Path, name
	j := Job{Function: fn, Repo: Repo{Namespace: ns, Name: name}, Commit: commit, Options: o,
		CloneURL: src.URL, Auth: auth, MirrorDir: s.Builder.MirrorDir}
	run, err := s.Builder.start(ctx, t, j, out)
	if err != nil {
		return err
	}
	if err := run.wait(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s%s\n", DeployOK, short(commit))
	return nil
}

// flushWriter sends each write to the client at once.
type flushWriter struct{ w http.ResponseWriter }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
