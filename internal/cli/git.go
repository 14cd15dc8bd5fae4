package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/gitbuild"
)

// builderURL is where fn-builder answers: the local platform's, else $FN_BUILDER_URL.
func builderURL(cl *cluster) (string, error) {
	if u := os.Getenv("FN_BUILDER_URL"); u != "" {
		return strings.TrimRight(u, "/"), nil
	}
	if cl.local != nil && cl.local.Builder != "" {
		return cl.local.Builder, nil
	}
	if cl.local != nil {
		return "", errors.New("the local platform's builder is not running (see its log, logs/builder.log under FN_HOME): is git installed?")
	}
	return "", errors.New("no builder: fn up runs one on the local platform; for another cluster set FN_BUILDER_URL to its fn-builder's address")
}

// gitToken is the namespace's git token, from its Secret fn-git, which is created (with a new
// token and webhook secret) when there is none.
func gitToken(ctx context.Context, s IOStreams, cl *cluster) (string, error) {
	secrets := cl.kube.CoreV1().Secrets(cl.namespace)
	sec, err := secrets.Get(ctx, gitbuild.GitSecret, metav1.GetOptions{})
	if err == nil && len(sec.Data[gitbuild.TokenKey]) > 0 {
		return string(sec.Data[gitbuild.TokenKey]), nil
	}
	if err != nil && !apierrs.IsNotFound(err) {
		return "", fmt.Errorf("reading Secret %s/%s: %w", cl.namespace, gitbuild.GitSecret, err)
	}
	token, hook := randomHex(), randomHex()
	sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: gitbuild.GitSecret, Namespace: cl.namespace,
		Labels: map[string]string{"app.kubernetes.io/part-of": "fn"}},
		Data: map[string][]byte{gitbuild.TokenKey: []byte(token), gitbuild.WebhookSecretKey: []byte(hook)}}
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		if apierrs.IsAlreadyExists(err) { // made meanwhile
			return gitToken(ctx, s, cl)
		}
		return "", fmt.Errorf("creating Secret %s/%s: %w", cl.namespace, gitbuild.GitSecret, err)
	}
	fmt.Fprintf(s.ErrOut, "Created Secret %s/%s: its token pushes to fn's git remote, its webhook-secret signs webhooks.\n", cl.namespace, gitbuild.GitSecret)
	return token, nil
}

func randomHex() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newRemoteCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	var add string
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "remote NAME",
		Short: "Print the git remote that builds and deploys function NAME on push (--add: add it to this repository)",
		Long: `Print the URL of fn's own git remote for function NAME: a push of its branch (main) builds
the function and deploys it before the push is accepted, and a push whose build fails is
rejected with the compiler's message. The function need not exist: the first push creates it.

The remote's password is the namespace's token (Secret fn-git, created when missing). With
--add, the current git repository gets the remote (named fn unless --add=OTHER) and fn as
its credential helper, which reads the token from the cluster at each push, so that
  git push fn main
just works, with no token stored in the repository.`,
		Example: `  fn remote hello --add && git push fn main`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			name := args[0]
			if msgs := dnsLabelErrors(name); msgs != "" {
				return &UsageError{fmt.Errorf("function name %q: %s", name, msgs)}
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			base, err := builderURL(cl)
			if err != nil {
				return err
			}
			ctx := ctxOf(c)
			if _, err := gitToken(ctx, s, cl); err != nil {
				return err
			}
			url := fmt.Sprintf("%s/git/%s/%s.git", base, cl.namespace, name)
			if add != "" {
				if err := addRemote(ctx, s, add, url, cf); err != nil {
					return err
				}
				fmt.Fprintf(s.ErrOut, "Added git remote %s: git push %s main builds and deploys %s.\n", add, add, name)
			}
			if out.structured() {
				return out.print(s.Out, map[string]string{"url": url, "namespace": cl.namespace, "function": name,
					"tokenSecret": gitbuild.GitSecret, "hooks": base + "/hooks/"})
			}
			fmt.Fprintln(s.Out, url)
			return nil
		},
	}
	c.Flags().StringVar(&add, "add", "", "add the remote to the git repository of the current directory, with this name")
	c.Flags().Lookup("add").NoOptDefVal = "fn"
	cf.add(c)
	cf.complete(c, fa, true)
	out.add(c)
	return c
}

// addRemote adds (or points) git remote name at url in the current repository, with fn as the
// URL's credential helper.
func addRemote(ctx context.Context, s IOStreams, name, url string, cf clusterFlags) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	git := func(args ...string) error {
		out, err := exec.CommandContext(ctx, "git", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := git("rev-parse", "--git-dir"); err != nil {
		return fmt.Errorf("--add: the current directory is not in a git repository (git init first)")
	}
	if git("remote", "get-url", name) == nil {
		if err := git("remote", "set-url", name, url); err != nil {
			return err
		}
	} else if err := git("remote", "add", name, url); err != nil {
		return err
	}
	helper := "!" + shellQuote(exe) + " internal git-credential"
	for _, f := range []struct{ flag, v string }{{"--kubeconfig", cf.kubeconfig}, {"--context", cf.context}} {
		if f.v != "" {
			helper += " " + f.flag + " " + shellQuote(f.v)
		}
	}
	key := "credential." + url
	for _, kv := range [][2]string{{key + ".helper", ""}, {key + ".helper", helper}, {key + ".username", "fn"}} {
		// An empty helper first resets any helper set for all URLs (a store must not keep it).
		if err := git("config", "--add", kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// newGitCredentialCommand is the credential helper fn remote --add installs: for "get" of a
// URL of the remote, it answers the namespace's token.
func newGitCredentialCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	c := &cobra.Command{
		Use:   "git-credential [get|store|erase]",
		Short: "git's credential helper for fn's git remote (fn remote --add sets it)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] != "get" {
				return nil // nothing is stored, so nothing to store or erase
			}
			attrs := map[string]string{}
			sc := bufio.NewScanner(s.In)
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), "="); ok {
					attrs[k] = v
				}
			}
			// Without the path (credential.useHttpPath), the namespace is the remote URL's.
			ns := ""
			if p := strings.Split(strings.Trim(attrs["path"], "/"), "/"); len(p) >= 2 && p[0] == "git" {
				ns = p[1]
			}
			if ns == "" {
				out, _ := exec.Command("git", "config", "--get-regexp", `^remote\..*\.url$`).Output()
				for line := range strings.SplitSeq(string(out), "\n") {
					if i := strings.Index(line, "/git/"); i >= 0 && strings.Contains(line, attrs["host"]) {
						ns, _, _ = strings.Cut(line[i+len("/git/"):], "/")
						break
					}
				}
			}
			if ns == "" {
				return errors.New("git-credential: cannot tell the namespace from the remote's URL")
			}
			cf.namespace = ns
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			sec, err := cl.kube.CoreV1().Secrets(ns).Get(ctxOf(c), gitbuild.GitSecret, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("git-credential: reading the token of namespace %s: %w", ns, err)
			}
			fmt.Fprintf(s.Out, "username=%s\npassword=%s\n", cmp.Or(attrs["username"], "fn"), sec.Data[gitbuild.TokenKey])
			return nil
		},
	}
	cf.add(c)
	return c
}

// buildsOf lists function name's builds, newest first.
func buildsOf(ctx context.Context, cl *cluster, name string) ([]v1alpha1.FunctionBuild, error) {
	list, err := cl.fns.FnkitV1alpha1().FunctionBuilds(cl.namespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.FunctionLabel + "=" + name})
	if err != nil {
		return nil, fmt.Errorf("listing the builds of %s: %w", name, err)
	}
	bs := list.Items
	sort.Slice(bs, func(i, j int) bool { return bs[i].Name > bs[j].Name })
	return bs, nil
}

// buildState is a build's state in one word, and why when it failed.
func buildState(b *v1alpha1.FunctionBuild) string {
	c := b.Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded)
	switch {
	case c == nil:
		return "Pending"
	case c.IsUnknown():
		return cmp.Or(c.Reason, "Pending")
	case c.IsTrue():
		return "Succeeded"
	}
	return "Failed (" + c.Reason + ")"
}

func buildDuration(b *v1alpha1.FunctionBuild) string {
	if b.Status.StartTime == nil {
		return "-"
	}
	end := time.Now()
	if b.Status.CompletionTime != nil {
		end = b.Status.CompletionTime.Time
	}
	return end.Sub(b.Status.StartTime.Time).Round(100 * time.Millisecond).String()
}

func newBuildsCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	var cf clusterFlags
	out := outputFlag{yaml: true}
	c := &cobra.Command{
		Use:   "builds NAME",
		Short: "List the git builds of a function, newest first (fn logs NAME --build shows one's log)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			cl, err := fa.Connect(&cf)
			if err != nil {
				return err
			}
			bs, err := buildsOf(ctxOf(c), cl, args[0])
			if err != nil {
				return err
			}
			if out.structured() {
				items := make([]any, len(bs))
				for i := range bs {
					b := bs[i].DeepCopy()
					b.APIVersion, b.Kind, b.ManagedFields = v1alpha1.SchemeGroupVersion.String(), "FunctionBuild", nil
					items[i] = b
				}
				return out.print(s.Out, map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{}, "items": items})
			}
			if len(bs) == 0 {
				fmt.Fprintf(s.ErrOut, "No builds of %s in namespace %s: git push to fn remote %s, or fn deploy --git.\n", args[0], cl.namespace, args[0])
				return nil
			}
			w := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BUILD\tCOMMIT\tTRIGGER\tSTATE\tDURATION\tIMAGE\tAGE")
			for i := range bs {
				b := &bs[i]
				commit := b.Spec.Git.Commit
				if len(commit) > 12 {
					commit = commit[:12]
				}
				img := "-"
				if _, dg, ok := strings.Cut(b.Status.Image, "@"); ok {
					img = strings.TrimPrefix(dg, "sha256:")[:12]
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, commit, b.Spec.Trigger, buildState(b), buildDuration(b), img, age(b.CreationTimestamp))
			}
			return w.Flush()
		},
	}
	out.add(c)
	cf.add(c)
	cf.complete(c, fa, true)
	return c
}

// buildLog prints build id's log (the newest build of f when id is "latest"): what its record
// keeps of it, and with follow, what comes until it ends.
func buildLog(ctx context.Context, s IOStreams, cl *cluster, f *v1alpha1.Function, id string, follow bool) error {
	get := func() (*v1alpha1.FunctionBuild, error) {
		if id != "latest" {
			b, err := cl.fns.FnkitV1alpha1().FunctionBuilds(cl.namespace).Get(ctx, id, metav1.GetOptions{})
			if apierrs.IsNotFound(err) {
				return nil, fmt.Errorf("no build %s in namespace %s: fn builds %s lists them", id, cl.namespace, f.Name)
			}
			if err == nil && b.Spec.Function != f.Name {
				return nil, fmt.Errorf("build %s is of function %s, not %s", id, b.Spec.Function, f.Name)
			}
			return b, err
		}
		bs, err := buildsOf(ctx, cl, f.Name)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 {
			return nil, fmt.Errorf("function %s has no builds", f.Name)
		}
		return &bs[0], nil
	}
	b, err := get()
	if err != nil {
		return err
	}
	id = b.Name
	printed := ""
	for {
		io.WriteString(s.Out, newLogText(printed, b.Status.LogTail))
		printed = b.Status.LogTail
		if !follow || b.Status.IsDone() {
			if c := b.Status.GetCondition(v1alpha1.FunctionBuildConditionSucceeded); c != nil && c.IsFalse() {
				return fmt.Errorf("build %s failed (%s)", id, c.Reason)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if b, err = get(); err != nil {
			return err
		}
	}
}

// newLogText is what of tail, a log's end, follows printed, the end printed before: the tail
// moves on as the log grows, so what was printed is found in it by its last line.
func newLogText(printed, tail string) string {
	if printed == "" {
		return tail
	}
	if strings.HasPrefix(tail, printed) {
		return tail[len(printed):]
	}
	last := printed
	if i := strings.LastIndexByte(strings.TrimSuffix(printed, "\n"), '\n'); i >= 0 {
		last = printed[i+1:]
	}
	if i := strings.LastIndex(tail, last); i >= 0 {
		return tail[i+len(last):]
	}
	return tail
}

// deployGit is fn deploy --git: the builder builds the branch's head into Function name, which
// is built from the repository from then on.
func (o *deployOptions) deployGit(ctx context.Context, s IOStreams, cl *cluster, name string) (*v1alpha1.Function, error) {
	base, err := builderURL(cl)
	if err != nil {
		return nil, err
	}
	token, err := gitToken(ctx, s, cl)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(gitbuild.DeployRequest{URL: o.gitURL, Ref: o.gitRef, Path: o.gitPath, SecretRef: o.gitSecret})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/builds/%s/%s", base, cl.namespace, name), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("fn", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching the builder at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("the builder answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	fmt.Fprintf(s.ErrOut, "Building %s from %s (%s)...\n", name, o.gitURL, cmp.Or(o.gitRef, "main"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	result := ""
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, gitbuild.DeployOK) || strings.HasPrefix(line, gitbuild.DeployFailed) {
			result = line
			continue
		}
		fmt.Fprintln(s.ErrOut, line)
	}
	switch {
	case strings.HasPrefix(result, gitbuild.DeployFailed):
		return nil, errors.New(strings.TrimPrefix(result, gitbuild.DeployFailed))
	case result == "":
		return nil, fmt.Errorf("the builder's answer ended before the build did: %v", sc.Err())
	}
	fmt.Fprintf(s.ErrOut, "Webhooks: POST %s/hooks/github (or gitea, gitlab), signed with the webhook-secret of Secret %s/%s, rebuild it on each push.\n",
		base, cl.namespace, gitbuild.GitSecret)
	return getFunction(ctx, cl, name)
}

// dnsLabelErrors says why name is not a DNS label, as function names must be ("" if it is).
func dnsLabelErrors(name string) string { return strings.Join(validation.IsDNS1123Label(name), "; ") }
