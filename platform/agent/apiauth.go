package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The kubelet API (logs, exec, port forwarding, metrics) takes only authenticated, authorized
// requests, as a kubelet's does with webhook authentication and authorization:
//   - who: a client certificate of the cluster's CA (the API server presents one; its common
//     name is the user, its organizations the groups), else a bearer token the API server's
//     TokenReview accepts; anything else is 401;
//   - may they: a SubjectAccessReview of the verb (from the method) on the node's subresource
//     (from the path: /stats stats, /metrics metrics, /logs log, /spec spec, else proxy, which
//     exec, attach, port forwarding and container logs are); a refusal is 403.
// Decisions are kept for authzTTL, so a log stream or a metrics scrape costs no review each.

// authzTTL is how long an authorization decision is reused (a kubelet's default: 5 minutes
// allowed, 30 s denied; one short time for both keeps revocations quick).
const authzTTL = 30 * time.Second

// apiAuth wraps the kubelet API's handler.
type apiAuth struct {
	kube kubernetes.Interface
	node string
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]authzEntry
}

type authzEntry struct {
	allowed bool
	reason  string
	at      time.Time
}

// identity is who a request comes from.
type identity struct {
	user   string
	groups []string
	uid    string
	extra  map[string]authorizationv1.ExtraValue
}

func (a *apiAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := a.authenticate(r)
		if !ok {
			http.Error(w, "Unauthorized: a client certificate of the cluster's CA or a bearer token is required", http.StatusUnauthorized)
			return
		}
		verb, sub := requestAttributes(r)
		allowed, reason, err := a.authorize(r.Context(), id, verb, sub)
		if err != nil {
			http.Error(w, fmt.Sprintf("authorizing %s: %v", id.user, err), http.StatusInternalServerError)
			return
		}
		if !allowed {
			msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", id.user, verb, sub)
			if reason != "" {
				msg += ": " + reason
			}
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate finds who sent r: its verified client certificate, else its bearer token.
func (a *apiAuth) authenticate(r *http.Request) (identity, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return certIdentity(r.TLS.VerifiedChains[0][0]), true
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return identity{}, false
	}
	tr, err := a.kube.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: strings.TrimSpace(token)},
	}, metav1.CreateOptions{})
	if err != nil || !tr.Status.Authenticated {
		return identity{}, false
	}
	u := tr.Status.User
	id := identity{user: u.Username, groups: u.Groups, uid: u.UID}
	if len(u.Extra) > 0 {
		id.extra = map[string]authorizationv1.ExtraValue{}
		for k, v := range u.Extra {
			id.extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	return id, true
}

func certIdentity(c *x509.Certificate) identity {
	return identity{user: c.Subject.CommonName, groups: append([]string(nil), c.Subject.Organization...)}
}

// requestAttributes maps a request to the verb and node subresource a kubelet checks.
func requestAttributes(r *http.Request) (verb, subresource string) {
	switch r.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = "get"
	}
	p := r.URL.Path
	for _, m := range []struct{ prefix, sub string }{
		{"/stats", "stats"}, {"/metrics", "metrics"}, {"/logs", "log"}, {"/spec", "spec"},
	} {
		if p == m.prefix || strings.HasPrefix(p, m.prefix+"/") {
			return verb, m.sub
		}
	}
	return verb, "proxy"
}

// authorize asks the API server whether id may verb the node's subresource, reusing a
// decision younger than authzTTL.
func (a *apiAuth) authorize(ctx context.Context, id identity, verb, sub string) (bool, string, error) {
	key := strings.Join([]string{id.user, id.uid, strings.Join(id.groups, ","), verb, sub}, "\x00")
	now := a.now()
	a.mu.Lock()
	if e, ok := a.cache[key]; ok && now.Sub(e.at) < authzTTL {
		a.mu.Unlock()
		return e.allowed, e.reason, nil
	}
	a.mu.Unlock()
	sar, err := a.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: id.user, Groups: id.groups, UID: id.uid, Extra: id.extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "nodes", Subresource: sub, Name: a.node},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil || len(a.cache) > 1000 { // bounded: identities are few
		a.cache = map[string]authzEntry{}
	}
	a.cache[key] = authzEntry{allowed: sar.Status.Allowed, reason: sar.Status.Reason, at: now}
	return sar.Status.Allowed, sar.Status.Reason, nil
}

// clusterCAs is the pool of the CA the API server's client certificates are signed by: the one
// the agent trusts the API server with (the local platform has one CA for both).
func clusterCAs(cfg *rest.Config) (*x509.CertPool, error) {
	data := cfg.TLSClientConfig.CAData
	if len(data) == 0 && cfg.TLSClientConfig.CAFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return nil, fmt.Errorf("the cluster's CA: %w", err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no cluster CA in the agent's kubeconfig: it could not authenticate the API server's requests")
	}
	return pool, nil
}
