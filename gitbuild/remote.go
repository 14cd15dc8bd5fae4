package gitbuild

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Remote serves bare repositories over git's smart HTTP protocol, at
// /git/NAMESPACE/NAME.git, with git's own git-http-backend (through CGI): clone, fetch and
// push as any git host, with side-band progress. A push first creates its repository.
//
// Every push runs a pre-receive hook (HookCommand, a program that calls RunHook) that hands
// the pushed refs to Receive over a Unix socket: what Receive writes reaches the pusher as
// "remote:" lines while the push waits, and an error rejects the push, so that a branch never
// runs ahead of what is deployed.
type Remote struct {
	// Dir holds the repositories, as Dir/NAMESPACE/NAME.git.
	Dir string
	// Authorize says who a request is, for the namespace it addresses; an error answers 401.
	Authorize func(r *http.Request, namespace string) (user string, err error)
	// Receive takes a push's updates before git applies them.
	Receive func(ctx context.Context, repo Repo, updates []RefUpdate, out io.Writer) error
	// HookCommand is the pre-receive hook's command line: a program and its arguments, or a
	// program alone that runs RunHook when run by the name pre-receive (fn-builder).
	HookCommand []string

	backend string
	hooks   string // core.hooksPath of every repository
	socket  string
	ln      net.Listener

	mu     sync.Mutex
	pushes map[string]push // by the token in the hook's environment
}

// Repo is a repository of a Remote.
type Repo struct {
	Namespace, Name string
	// Path is the bare repository's directory.
	Path string
	// User is who pushed.
	User string
	// quarantine is the environment in which git reads a push's objects before it takes them
	// (GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES, GIT_QUARANTINE_PATH, as the
	// pre-receive hook got them).
	quarantine []string
}

// quarantineEnv are the variables git gives a pre-receive hook to read the pushed objects.
var quarantineEnv = []string{"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"}

// Export writes the files of commit (in the push being received, or already in the
// repository) into dst, an empty directory: what a build builds. git itself writes them, so no
// path of the commit leaves dst.
func (r Repo) Export(ctx context.Context, commit, dst string) error {
	idx, err := os.CreateTemp("", "fn-index-")
	if err != nil {
		return err
	}
	idx.Close()
	os.Remove(idx.Name()) // git wants to make it
	defer os.Remove(idx.Name())
	cmd := exec.CommandContext(ctx, "git", "--git-dir", r.Path, "--work-tree", dst, "-c", "core.hooksPath=/dev/null",
		"checkout", "--force", commit, "--", ".")
	cmd.Env = append(append(os.Environ(), "GIT_INDEX_FILE="+idx.Name()), r.quarantine...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("checking out %s: %v: %s", commit, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RefUpdate is one ref a push moves: from Old to New (all zeros for a new or deleted ref).
type RefUpdate struct {
	Ref      string `json:"ref"`
	Old, New string
}

type push struct {
	repo Repo
	ctx  context.Context
}

// dnsLabel is what a namespace or function name may be (a DNS label), so no path escapes Dir.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Start prepares the hooks and the hook socket; Close stops them.
func (rm *Remote) Start() error {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git's smart HTTP server needs git: %w", err)
	}
	rm.backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(rm.backend); err != nil {
		return fmt.Errorf("git's smart HTTP server: %w", err)
	}
	private := filepath.Join(rm.Dir, ".fn")
	if err := os.MkdirAll(private, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(private, 0o700); err != nil {
		return err
	}
	rm.hooks = filepath.Join(private, "hooks")
	if err := os.MkdirAll(rm.hooks, 0o700); err != nil {
		return err
	}
	if err := writeHook(filepath.Join(rm.hooks, "pre-receive"), rm.HookCommand); err != nil {
		return err
	}
	rm.socket = filepath.Join(private, "hook.sock")
	_ = os.Remove(rm.socket)
	if rm.ln, err = net.Listen("unix", rm.socket); err != nil {
		return fmt.Errorf("the git hook socket: %w", err)
	}
	rm.pushes = map[string]push{}
	go rm.serveHooks()
	return nil
}

// Close stops the hook socket.
func (rm *Remote) Close() error { return rm.ln.Close() }

// ServeHTTP serves /git/NAMESPACE/NAME.git/...
func (rm *Remote) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/git/")
	ns, rest, ok2 := strings.Cut(rest, "/")
	repoName, sub, ok3 := strings.Cut(rest, "/")
	fname, ok4 := strings.CutSuffix(repoName, ".git")
	if !ok || !ok2 || !ok3 || !ok4 || !dnsLabel.MatchString(ns) || !dnsLabel.MatchString(fname) {
		http.Error(w, "no such repository: the built-in remote serves /git/NAMESPACE/NAME.git", http.StatusNotFound)
		return
	}
	user, err := rm.Authorize(r, ns)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="fn"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	repo := Repo{Namespace: ns, Name: fname, Path: filepath.Join(rm.Dir, ns, fname+".git"), User: user}
	pushing := sub == "git-receive-pack" || r.URL.Query().Get("service") == "git-receive-pack"
	if _, err := os.Stat(repo.Path); err != nil {
		if !pushing {
			http.Error(w, fmt.Sprintf("no repository %s/%s yet: push to it first", ns, fname), http.StatusNotFound)
			return
		}
		if err := initBare(repo.Path); err != nil {
			http.Error(w, "creating the repository: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	token := ""
	if sub == "git-receive-pack" {
		var b [16]byte
		rand.Read(b[:])
		token = hex.EncodeToString(b[:])
		rm.mu.Lock()
		rm.pushes[token] = push{repo: repo, ctx: r.Context()}
		rm.mu.Unlock()
		defer func() {
			rm.mu.Lock()
			delete(rm.pushes, token)
			rm.mu.Unlock()
		}()
	}
	h := &cgi.Handler{
		Path: rm.backend,
		Root: "/git",
		Env: []string{
			"GIT_PROJECT_ROOT=" + rm.Dir, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user,
			"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=core.hooksPath", "GIT_CONFIG_VALUE_0=" + rm.hooks,
			"FN_GIT_HOOK_SOCKET=" + rm.socket, "FN_GIT_PUSH=" + token,
		},
		InheritEnv: []string{"PATH", "HOME"},
	}
	h.ServeHTTP(w, r)
}

func initBare(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command("git", "init", "--quiet", "--bare", tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr != nil { // not made by a push at the same time
			return err
		}
	}
	return nil
}

// The hook's socket carries, from the hook, one JSON line (the push's token and its ref
// updates); back to it, frames of a kind byte and a 4-byte length: 'o' output, then one 'x'
// whose payload is the message that rejects the push (empty: accepted).
type hookRequest struct {
	Push    string      `json:"push"`
	Updates []RefUpdate `json:"updates"`
	Env     []string    `json:"env"` // the quarantine's variables
}

func (rm *Remote) serveHooks() {
	for {
		c, err := rm.ln.Accept()
		if err != nil {
			return
		}
		go rm.serveHook(c)
	}
}

func (rm *Remote) serveHook(c net.Conn) {
	defer c.Close()
	var req hookRequest
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	rm.mu.Lock()
	p, ok := rm.pushes[req.Push]
	rm.mu.Unlock()
	switch {
	case err != nil:
		writeFrame(c, 'x', []byte("fn: a malformed hook request"))
		return
	case !ok || req.Push == "":
		writeFrame(c, 'x', []byte("fn: this push is not one the remote is serving"))
		return
	}
	repo := p.repo
	for _, kv := range req.Env {
		k, _, _ := strings.Cut(kv, "=")
		for _, q := range quarantineEnv {
			if k == q {
				repo.quarantine = append(repo.quarantine, kv)
			}
		}
	}
	out := &frameWriter{w: c}
	if err := rm.Receive(p.ctx, repo, req.Updates, out); err != nil {
		writeFrame(c, 'x', []byte(err.Error()))
		return
	}
	writeFrame(c, 'x', nil)
}

type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := writeFrame(f.w, 'o', b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func writeFrame(w io.Writer, kind byte, b []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(b)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// RunHook is the pre-receive hook: it reads git's "OLD NEW REF" lines from stdin, hands them
// to the Remote that serves the push, copies what it answers to stdout (git shows it as
// "remote:" lines) and returns the hook's exit code: 0 accepts the push.
func RunHook(stdin io.Reader, stdout io.Writer, getenv func(string) string) int {
	req := hookRequest{Push: getenv("FN_GIT_PUSH"), Updates: []RefUpdate{}}
	for _, k := range quarantineEnv {
		if v := getenv(k); v != "" {
			req.Env = append(req.Env, k+"="+v)
		}
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 {
			req.Updates = append(req.Updates, RefUpdate{Old: f[0], New: f[1], Ref: f[2]})
		}
	}
	c, err := net.Dial("unix", getenv("FN_GIT_HOOK_SOCKET"))
	if err != nil {
		fmt.Fprintf(stdout, "fn: the build service cannot be reached: %v\n", err)
		return 1
	}
	defer c.Close()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		fmt.Fprintf(stdout, "fn: the build service: %v\n", err)
		return 1
	}
	r := bufio.NewReader(c)
	for {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			fmt.Fprintf(stdout, "fn: the build service ended the push without a result: %v\n", err)
			return 1
		}
		payload := make([]byte, binary.BigEndian.Uint32(h[1:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			fmt.Fprintf(stdout, "fn: the build service: %v\n", err)
			return 1
		}
		switch h[0] {
		case 'o':
			stdout.Write(payload)
		case 'x':
			if len(payload) == 0 {
				return 0
			}
			msg := string(payload)
			if !strings.HasSuffix(msg, "\n") {
				msg += "\n"
			}
			io.WriteString(stdout, msg)
			return 1
		}
	}
}

// writeHook makes the hook at path run command: a symbolic link to it when it is a program
// alone (fn-builder, which knows itself a hook by the name it is run as, so that its image
// needs no shell), else a shell script.
func writeHook(path string, command []string) error {
	_ = os.Remove(path)
	if len(command) == 1 {
		return os.Symlink(command[0], path)
	}
	script := "#!/bin/sh\nexec"
	for _, a := range command {
		script += " '" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return os.WriteFile(path, []byte(script+"\n"), 0o700)
}
