package gitbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

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
// that does not exist yet is created; the trigger's Source, if any, becomes the Function's
// (a push to the built-in remote of a Function fn deploy made moves it to git). The spec is validated before it
// is written. With Rollout set, Deploy then waits up to Rollout for the Function to run the
// image on every replica it wants, so that a push is accepted only once its code answers.
type FunctionDeployer struct {
	Client  versioned.Interface
	Rollout time.Duration
}

// Deploy writes build into t's Function.
func (d FunctionDeployer) Deploy(ctx context.Context, t Trigger, build CommitBuild, out io.Writer) error {
	function, commit := t.Function, t.Commit
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
	var generation int64
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
		if t.Source != nil {
			spec.Source = &v1alpha1.Source{Git: t.Source.DeepCopy()}
		}
		if fe := spec.Validate(ctx); fe != nil {
			return validationError{fmt.Errorf("fn.yaml of commit %s: %s", short(commit), strings.ReplaceAll(fe.Error(), "\n", ": "))}
		}
		f.Spec = spec
		var got *v1alpha1.Function
		if create {
			verb = "created"
			got, err = fns.Create(ctx, f, metav1.CreateOptions{})
		} else {
			verb = "updated"
			got, err = fns.Update(ctx, f, metav1.UpdateOptions{})
		}
		if err == nil {
			generation = got.Generation
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
	fmt.Fprintf(out, "fn: Function %s %s with %s\n", function, verb, build.Image)
	if d.Rollout <= 0 {
		return nil
	}
	return d.waitRollout(ctx, ns, name, generation, build.Image.String(), out)
}

// waitRollout waits until Function ns/name has reconciled generation and runs image on every
// replica it wants (none, at zero).
func (d FunctionDeployer) waitRollout(ctx context.Context, ns, name string, generation int64, image string, out io.Writer) error {
	fmt.Fprintf(out, "fn: rolling out\n")
	ctx, cancel := context.WithTimeout(ctx, d.Rollout)
	defer cancel()
	var last string
	for {
		f, err := d.Client.FnkitV1alpha1().Functions(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			done, why := RolledOut(f, generation, image)
			if done {
				fmt.Fprintf(out, "fn: %s/%s runs it at %s\n", ns, name, f.Status.URL)
				return nil
			}
			last = why
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Function did not roll out within %s: %s", d.Rollout, last)
		case <-time.After(50 * time.Millisecond): // one Get of one object: a pusher waits on it
		}
	}
}

// RolledOut reports whether f has reconciled generation, runs image on all the replicas it
// wants, and is Ready; if not, why not.
func RolledOut(f *v1alpha1.Function, generation int64, image string) (bool, string) {
	if f.Status.ObservedGeneration < generation || f.Status.Image != image {
		return false, "the controller has not taken the new spec yet"
	}
	c := f.Status.GetCondition(v1alpha1.FunctionConditionDeploymentReady)
	if c == nil || !c.IsTrue() {
		if c != nil && c.Message != "" {
			return false, c.Message
		}
		return false, "the Deployment is not ready"
	}
	if !f.Status.IsReady() {
		if c := f.Status.GetCondition(v1alpha1.FunctionConditionReady); c != nil && c.Message != "" {
			return false, c.Message
		}
		return false, "the Function is not Ready"
	}
	return true, ""
}

type validationError struct{ error }

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
