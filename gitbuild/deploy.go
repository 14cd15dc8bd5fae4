package gitbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/controller/client/clientset/versioned"
	"fnkit.dev/fn/manifest"
)

// FunctionDeployer is Builder.Deploy on the Function API: a build's image (by digest) and its
// commit's fn.yaml become the Function's spec, as fn deploy makes it from a directory, so the
// Function stays the one record of what runs and the reconciler rolls the change out. The
// Function's source is kept: what builds a Function is not the commit's to change. A Function
// that does not exist yet is created. The spec is validated before it is written.
type FunctionDeployer struct {
	Client versioned.Interface
}

// Deploy writes build into function ("NAMESPACE/NAME").
func (d FunctionDeployer) Deploy(ctx context.Context, function, commit string, build CommitBuild, out io.Writer) error {
	ns, name, ok := strings.Cut(function, "/")
	if !ok {
		return fmt.Errorf("function %q is not NAMESPACE/NAME", function)
	}
	m := build.Manifest
	if m == nil {
		m = &manifest.Manifest{}
	}
	fns := d.Client.FnkitV1alpha1().Functions(ns)
	var verb string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		f, err := fns.Get(ctx, name, metav1.GetOptions{})
		create := apierrs.IsNotFound(err)
		switch {
		case create:
			f = &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		case err != nil:
			return fmt.Errorf("reading Function %s: %w", function, err)
		}
		spec := m.Spec(build.Image.String())
		spec.Source = f.Spec.Source
		if fe := spec.Validate(ctx); fe != nil {
			return validationError{fmt.Errorf("fn.yaml of commit %s: %s", short(commit), strings.ReplaceAll(fe.Error(), "\n", ": "))}
		}
		f.Spec = spec
		if create {
			verb = "created"
			_, err = fns.Create(ctx, f, metav1.CreateOptions{})
		} else {
			verb = "updated"
			_, err = fns.Update(ctx, f, metav1.UpdateOptions{})
		}
		return err
	})
	var ve validationError
	if errors.As(err, &ve) {
		return ve.error
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fn: Function %s %s: it runs %s\n", function, verb, build.Image)
	return nil
}

type validationError struct{ error }

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
