package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// tokenKey is the key of the token fn makes in a namespace's access Secret; other keys may hold
// more tokens (one being rotated in, say).
const tokenKey = "token"

type tokenOptions struct {
	rotate  bool
	out     outputFlag
	cluster clusterFlags
	connect func(*clusterFlags) (*cluster, error)
}

func newTokenCommand(fa *Factory) *cobra.Command {
	s := fa.IOStreams
	o := &tokenOptions{connect: fa.Connect}
	c := &cobra.Command{
		Use:   "token",
		Short: "Print the token that invokes the namespace's private functions",
		Long: `Print the namespace's access token: a private function (access: private) answers only
requests that carry it as Authorization: Bearer TOKEN. The token is the value ` + tokenKey + ` of the
namespace's Secret ` + v1alpha1.AccessSecretName + `, made when first asked for; every value of 16 bytes or more
in that Secret is a token. Whoever may read the Secret may invoke the namespace's private
functions. --rotate replaces the token: the old one stops working within seconds.`,
		Example: `  curl -H "Authorization: Bearer $(fn token)" http://localhost:18080/f/default/hello/
  fn token --rotate -n team-a`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.out.validate(); err != nil {
				return err
			}
			cl, err := o.connect(&o.cluster)
			if err != nil {
				return err
			}
			tok, made, err := accessToken(ctxOf(c), cl, o.rotate)
			if err != nil {
				return err
			}
			if made {
				fmt.Fprintf(s.ErrOut, "made the access token of namespace %s (Secret %s)\n", cl.namespace, v1alpha1.AccessSecretName)
			}
			if o.out.structured() {
				return o.out.print(s.Out, map[string]string{"namespace": cl.namespace, "secret": v1alpha1.AccessSecretName, "token": tok})
			}
			_, err = fmt.Fprintln(s.Out, tok)
			return err
		},
	}
	c.Flags().BoolVar(&o.rotate, "rotate", false, "replace the token with a new one")
	o.out.add(c)
	o.out.yaml = true
	o.cluster.add(c)
	o.cluster.complete(c, fa, false)
	return c
}

// accessToken returns the token of cl's namespace, making the Secret or its token if there is
// none (or a new one with rotate); made says whether it did.
func accessToken(ctx context.Context, cl *cluster, rotate bool) (token string, made bool, err error) {
	secrets := cl.kube.CoreV1().Secrets(cl.namespace)
	s, err := secrets.Get(ctx, v1alpha1.AccessSecretName, metav1.GetOptions{})
	exists := err == nil
	switch {
	case apierrs.IsNotFound(err):
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.AccessSecretName, Namespace: cl.namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "fn"}}, Type: corev1.SecretTypeOpaque}
	case err != nil:
		return "", false, fmt.Errorf("reading Secret %s in namespace %s: %w", v1alpha1.AccessSecretName, cl.namespace, err)
	case !rotate && len(s.Data[tokenKey]) >= 16:
		return string(s.Data[tokenKey]), false, nil
	}
	token = randomHex() // as fn remote's git token
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[tokenKey] = []byte(token)
	if !exists {
		_, err = secrets.Create(ctx, s, metav1.CreateOptions{})
	} else {
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return "", false, fmt.Errorf("writing Secret %s in namespace %s: %w", v1alpha1.AccessSecretName, cl.namespace, err)
	}
	return token, true, nil
}
