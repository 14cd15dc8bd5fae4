package gitbuild

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"knative.dev/pkg/kmeta"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	fnlisters "fnkit.dev/fn/controller/client/listers/fn/v1alpha1"
)

// The Secret of a namespace that holds its git credentials, and its keys: the token that
// pushes to the built-in remote, and the secret webhooks are signed with. A Function's own
// secretRef Secret may hold a webhook-secret of its own (and username and password, which
// clone its repository).
const (
	GitSecret        = "fn-git"
	TokenKey         = "token"
	WebhookSecretKey = "webhook-secret"
	UsernameKey      = "username"
	PasswordKey      = "password"
)

// KubeRecorder records builds as FunctionBuilds, owned by their Function (a Function a push
// creates owns its first build once it exists).
type KubeRecorder struct {
	Client versioned.Interface
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (k *KubeRecorder) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// BuildName is the name of a build of Function fn created at t: builds of a Function sort by
// name in the order they were made (base 36 milliseconds, 8 digits until 2059).
func BuildName(fn string, t time.Time) string {
	return fn + "-" + strconv.FormatInt(t.UnixMilli(), 36)
}

// Record creates t's FunctionBuild, pending.
func (k *KubeRecorder) Record(ctx context.Context, t Trigger) (Record, error) {
	ns, name, _ := strings.Cut(t.Function, "/")
	b := &v1alpha1.FunctionBuild{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Labels: map[string]string{v1alpha1.FunctionLabel: name}},
		Spec: v1alpha1.FunctionBuildSpec{Function: name, Trigger: t.Kind, Delivery: t.Delivery, User: t.User,
			Git: v1alpha1.BuildGitSource{URL: t.URL, Ref: t.Ref, Commit: t.Commit, Path: t.Path}},
	}
	f, err := k.Client.FnkitV1alpha1().Functions(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		b.OwnerReferences = []metav1.OwnerReference{*kmeta.NewControllerRef(f)}
	case !apierrs.IsNotFound(err):
		return nil, err
	}
	builds := k.Client.FnkitV1alpha1().FunctionBuilds(ns)
	at := k.now()
	var created *v1alpha1.FunctionBuild
	for i := 0; ; i++ {
		b.Name = BuildName(name, at.Add(time.Duration(i)*time.Millisecond))
		created, err = builds.Create(ctx, b, metav1.CreateOptions{})
		if !apierrs.IsAlreadyExists(err) || i == 9 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	r := &kubeRecord{k: k, ns: ns, name: created.Name, function: name}
	r.update(ctx, func(s *v1alpha1.FunctionBuildStatus) { s.InitializeConditions() })
	return r, nil
}

// EndInterrupted ends every build recorded as pending or running, as a builder that starts
// finds them: no builder runs them any more (fn-builder is one process), so they are marked
// failed, Interrupted, and the Functions they would have built say so.
func (k *KubeRecorder) EndInterrupted(ctx context.Context) error {
	list, err := k.Client.FnkitV1alpha1().FunctionBuilds(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing the builds left by a previous builder: %w", err)
	}
	for _, b := range list.Items {
		if b.Status.IsDone() {
			continue
		}
		r := &kubeRecord{k: k, ns: b.Namespace, name: b.Name, function: b.Spec.Function}
		r.update(ctx, func(s *v1alpha1.FunctionBuildStatus) {
			if !s.IsDone() {
				s.MarkFailed(v1alpha1.BuildReasonInterrupted, "the builder stopped before the build ended: push again, or redeliver the webhook", k.now())
			}
		})
	}
	return nil
}

type kubeRecord struct {
	k                  *KubeRecorder
	ns, name, function string
}

func (r *kubeRecord) Name() string { return r.name }

func (r *kubeRecord) Running(ctx context.Context) {
	r.update(ctx, func(s *v1alpha1.FunctionBuildStatus) { s.MarkRunning(r.k.now()) })
}

func (r *kubeRecord) Log(ctx context.Context, log string) {
	r.update(ctx, func(s *v1alpha1.FunctionBuildStatus) { s.SetLogTail(log) })
}

func (r *kubeRecord) End(ctx context.Context, image string, err error, log string) {
	r.adopt(ctx)
	r.update(ctx, func(s *v1alpha1.FunctionBuildStatus) {
		s.SetLogTail(log)
		if err == nil {
			s.MarkSucceeded(image, r.k.now())
			return
		}
		s.MarkFailed(Reason(err), err.Error(), r.k.now())
	})
}

// update writes a change of the build's status; a failure is logged: the build goes on.
func (r *kubeRecord) update(ctx context.Context, change func(*v1alpha1.FunctionBuildStatus)) {
	builds := r.k.Client.FnkitV1alpha1().FunctionBuilds(r.ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		b, err := builds.Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(&b.Status)
		_, err = builds.UpdateStatus(ctx, b, metav1.UpdateOptions{})
		return err
	})
	if err != nil && r.k.Log != nil {
		r.k.Log.Warn("recording a build's status", "build", r.ns+"/"+r.name, "error", err)
	}
}

// adopt makes the build's Function (one its push created) its owner.
func (r *kubeRecord) adopt(ctx context.Context) {
	builds := r.k.Client.FnkitV1alpha1().FunctionBuilds(r.ns)
	_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		b, err := builds.Get(ctx, r.name, metav1.GetOptions{})
		if err != nil || metav1.GetControllerOf(b) != nil {
			return err
		}
		f, err := r.k.Client.FnkitV1alpha1().Functions(r.ns).Get(ctx, r.function, metav1.GetOptions{})
		if err != nil {
			return nil // the push created none: the build stays, unowned
		}
		b.OwnerReferences = append(b.OwnerReferences, *kmeta.NewControllerRef(f))
		_, err = builds.Update(ctx, b, metav1.UpdateOptions{})
		return err
	})
}

// Cluster answers the builder's questions from the Kubernetes API: which Functions a
// repository builds, their secrets and sources, and which deliveries it has seen.
type Cluster struct {
	Kube      kubernetes.Interface
	Functions fnlisters.FunctionLister
	// RemoteURL is the built-in remote's URL of a repository path ("/git/NS/NAME.git").
	RemoteURL func(path string) string
	// Namespace keeps the record of deliveries (a ConfigMap), fn's own.
	Namespace string
}

// DeliveriesConfigMap records the webhook deliveries the builder has taken (the newest
// deliveriesKept).
const (
	DeliveriesConfigMap = "fn-builder-deliveries"
	deliveriesKept      = 1000
)

// NormalizeURL is the form repository URLs are compared in: no scheme, user, ".git" suffix or
// trailing slash; host in lower case. "https://github.com/acme/fns.git" and
// "http://github.com/acme/fns" are the same repository.
func NormalizeURL(raw string) string {
	s := strings.TrimSpace(raw)
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		s = strings.ToLower(u.Host) + u.Path
	} else if u != nil && u.Scheme == "file" {
		s = u.Path
	} else if at, rest, ok := strings.Cut(s, "@"); ok && !strings.Contains(at, "/") { // git@host:path
		host, p, _ := strings.Cut(rest, ":")
		s = strings.ToLower(host) + "/" + strings.TrimPrefix(p, "/")
	}
	s = strings.TrimRight(s, "/")
	return strings.TrimSuffix(s, ".git")
}

// Targets are the Functions built from repository url, each with its webhook secret.
func (c *Cluster) Targets(ctx context.Context, rawURL string) ([]Target, error) {
	want := NormalizeURL(rawURL)
	if want == "" {
		return nil, nil
	}
	fns, err := c.Functions.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var ts []Target
	for _, f := range fns {
		g := gitOf(f)
		if g == nil || NormalizeURL(g.URL) != want {
			continue
		}
		secret, err := c.webhookSecret(ctx, f)
		if err != nil {
			return nil, err
		}
		ts = append(ts, Target{Function: f.Namespace + "/" + f.Name, Ref: g.Ref, Dir: g.Path, Secret: secret})
	}
	return ts, nil
}

func gitOf(f *v1alpha1.Function) *v1alpha1.GitSource {
	if f.Spec.Source == nil {
		return nil
	}
	return f.Spec.Source.Git
}

// webhookSecret is f's own (its secretRef's webhook-secret) or its namespace's; none: nil,
// which verifies nothing.
func (c *Cluster) webhookSecret(ctx context.Context, f *v1alpha1.Function) ([]byte, error) {
	if g := gitOf(f); g != nil && g.SecretRef != nil {
		s, err := c.secret(ctx, f.Namespace, g.SecretRef.Name)
		if err != nil {
			return nil, err
		}
		if s != nil && len(s.Data[WebhookSecretKey]) > 0 {
			return s.Data[WebhookSecretKey], nil
		}
	}
	s, err := c.secret(ctx, f.Namespace, GitSecret)
	if err != nil || s == nil {
		return nil, err
	}
	return s.Data[WebhookSecretKey], nil
}

// secret is Secret ns/name, or nil if there is none.
func (c *Cluster) secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	s, err := c.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrs.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

// Authorize is Remote.Authorize: HTTP basic auth whose password is the namespace's token (any
// user name; it is recorded as who pushed).
func (c *Cluster) Authorize(r *http.Request, ns string) (string, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", errors.New("fn: credentials needed: the password is the namespace's git token (fn remote NAME sets it up)")
	}
	s, err := c.secret(r.Context(), ns, GitSecret)
	if err != nil {
		return "", fmt.Errorf("fn: reading namespace %s's git token: %w", ns, err)
	}
	if s == nil || len(s.Data[TokenKey]) == 0 {
		return "", fmt.Errorf("fn: namespace %s has no git token (Secret %s): fn remote NAME -n %s creates it", ns, GitSecret, ns)
	}
	if subtle.ConstantTimeCompare([]byte(pass), s.Data[TokenKey]) != 1 {
		return "", fmt.Errorf("fn: wrong token for namespace %s (fn remote NAME prints the remote with the right one)", ns)
	}
	if user == "" {
		user = "fn"
	}
	return user, nil
}

// SourceOf is Builder.SourceOf: what a push to the built-in remote builds. A Function built
// from another repository refuses the push: one repository drives a Function.
func (c *Cluster) SourceOf(ctx context.Context, repo Repo) (Source, error) {
	f, err := c.Functions.Functions(repo.Namespace).Get(repo.Name)
	if apierrs.IsNotFound(err) {
		return Source{Ref: "main", New: true}, nil
	}
	if err != nil {
		return Source{}, err
	}
	g := gitOf(f)
	if g == nil {
		return Source{Ref: "main", New: true}, nil // made by fn deploy: git drives it from now on
	}
	here := "/git/" + repo.Namespace + "/" + repo.Name + ".git"
	if c.RemoteURL != nil {
		here = c.RemoteURL(here)
	}
	if NormalizeURL(g.URL) != NormalizeURL(here) {
		return Source{}, fmt.Errorf("Function %s/%s is built from %s: push there (its webhook builds it), not to fn's remote", repo.Namespace, repo.Name, g.URL)
	}
	return Source{Ref: cmp.Or(g.Ref, "main"), Dir: g.Path}, nil
}

// AuthOf is Builder.AuthOf: the username and password of the Function's secretRef.
func (c *Cluster) AuthOf(ctx context.Context, t Target) (*Auth, error) {
	ns, name, _ := strings.Cut(t.Function, "/")
	f, err := c.Functions.Functions(ns).Get(name)
	if err != nil {
		return nil, err
	}
	g := gitOf(f)
	if g == nil {
		return nil, nil
	}
	return c.authFrom(ctx, ns, g.SecretRef)
}

// authFrom is the username and password of Secret ref of namespace ns (nil ref: none).
func (c *Cluster) authFrom(ctx context.Context, ns string, ref *corev1.LocalObjectReference) (*Auth, error) {
	if ref == nil {
		return nil, nil
	}
	s, err := c.secret(ctx, ns, ref.Name)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("fn: the repository's credentials are to be in Secret %s/%s, which does not exist", ns, ref.Name)
	}
	if len(s.Data[PasswordKey]) == 0 {
		return nil, nil // a secret for webhooks only
	}
	return &Auth{Username: cmp.Or(string(s.Data[UsernameKey]), "git"), Password: string(s.Data[PasswordKey])}, nil
}

func deliveryKey(h Host, id string) string {
	sum := sha256.Sum256([]byte(id))
	return string(h) + "." + hex.EncodeToString(sum[:16])
}

// Seen is Hooks.Seen, from the deliveries' ConfigMap.
func (c *Cluster) Seen(ctx context.Context, h Host, id string) (bool, error) {
	cm, err := c.Kube.CoreV1().ConfigMaps(c.Namespace).Get(ctx, DeliveriesConfigMap, metav1.GetOptions{})
	if apierrs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, ok := cm.Data[deliveryKey(h, id)]
	return ok, nil
}

// Record is Hooks.Record: the delivery joins the ConfigMap, which keeps the newest
// deliveriesKept.
func (c *Cluster) Record(ctx context.Context, h Host, id string) error {
	cms := c.Kube.CoreV1().ConfigMaps(c.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, DeliveriesConfigMap, metav1.GetOptions{})
		create := apierrs.IsNotFound(err)
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: DeliveriesConfigMap, Namespace: c.Namespace}}
		} else if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[deliveryKey(h, id)] = time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
		pruneDeliveries(cm.Data, deliveriesKept)
		if create {
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			if apierrs.IsAlreadyExists(err) {
				return apierrs.NewConflict(corev1.Resource("configmaps"), cm.Name, err)
			}
			return err
		}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}

// pruneDeliveries keeps the newest keep entries of data (its values are times in one fixed-width format, which sort as they read).
func pruneDeliveries(data map[string]string, keep int) {
	if len(data) <= keep {
		return
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return data[keys[i]] > data[keys[j]] })
	for _, k := range keys[keep:] {
		delete(data, k)
	}
}
