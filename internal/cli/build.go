package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fnkit.dev/fn/builder"
)

type buildOptions struct {
	name      string
	registry  string
	platforms []string
	baseImage string
	push      bool
	output    string
	insecure  bool
	sbom      bool
	out       outputFlag
}

func newBuildCommand(s IOStreams) *cobra.Command {
	o := &buildOptions{}
	c := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build a function into an OCI image and push it",
		Long: `Build the function in DIR (default: the current directory) into a digest-pinned OCI image with
ko, without Docker, and push it to the registry. Prints REGISTRY/NAME@sha256:DIGEST.

The registry comes from --registry, else FN_REGISTRY, else KO_DOCKER_REPO. Credentials come from
the docker config (~/.docker/config.json); loopback registries are spoken to over plain HTTP.`,
		Example: `  fn build ./hello --registry 127.0.0.1:5000/fns
  fn build . --platform linux/amd64,linux/arm64 --registry registry.example/team
  fn build . --push=false --output ./hello-oci`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.validate(c); err != nil {
				return err
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return o.run(c.Context(), s, dir)
		},
	}
	f := c.Flags()
	f.StringVar(&o.name, "name", "", "function name (default: the directory's name)")
	f.StringVar(&o.registry, "registry", "", "repository to push to, e.g. 127.0.0.1:5000/fns (default: $FN_REGISTRY, else $KO_DOCKER_REPO)")
	f.StringSliceVar(&o.platforms, "platform", []string{"linux/amd64"}, "platforms to build for; several give a multi-platform index")
	f.StringVar(&o.baseImage, "base-image", "", "base image to build on (default: fn's local base, CA certificates and time zones only)")
	f.BoolVar(&o.push, "push", true, "push the image to the registry")
	f.StringVarP(&o.output, "output", "o", "", "json for machine-readable output; or, with --push=false, a directory to write the image into as an OCI layout (./json for a directory named json)")
	f.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP and unverified TLS to the registry")
	f.BoolVar(&o.sbom, "sbom", false, "attach an SPDX software bill of materials")
	return c
}

func (o *buildOptions) validate(c *cobra.Command) error {
	// -o/--output is the output format (json) or, for a build that is not pushed, a layout directory.
	switch o.output {
	case "json":
		o.out.format, o.output = o.output, ""
	case "yaml":
		return &UsageError{fmt.Errorf("fn build prints one line or -o json; yaml is not offered")}
	}
	if o.registry == "" {
		o.registry = os.Getenv("FN_REGISTRY")
	}
	if o.registry == "" {
		o.registry = os.Getenv("KO_DOCKER_REPO")
	}
	if o.push && o.output != "" {
		return &UsageError{fmt.Errorf("--output %s writes an OCI layout instead of pushing: add --push=false (or -o json for JSON output)", o.output)}
	}
	if o.push && o.registry == "" {
		return &UsageError{fmt.Errorf("no registry to push to: pass --registry (e.g. 127.0.0.1:5000/fns), set FN_REGISTRY, or use --push=false")}
	}
	for _, p := range o.platforms {
		if !strings.Contains(p, "/") {
			return &UsageError{fmt.Errorf("--platform %q: want OS/ARCH, e.g. linux/amd64", p)}
		}
	}
	return nil
}

// buildResult is what fn build prints with -o json.
type buildResult struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Image     string   `json:"image,omitempty"`
	Digest    string   `json:"digest"`
	Layout    string   `json:"layout,omitempty"`
	Platforms []string `json:"platforms"`
	Size      int64    `json:"size"`
}

func (o *buildOptions) run(ctx context.Context, s IOStreams, dir string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cache, err := cacheDir()
	if err != nil {
		return err
	}
	fn, err := builder.Scaffold(dir, o.name, cache)
	if err != nil {
		return err
	}
	if o.push {
		if err := builder.CheckRegistry(ctx, o.registry, o.insecure); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.ErrOut, "Building %s (%s function %s) for %s...\n", fn.Name, fn.Signature.Kind, fn.Signature.Pos, strings.Join(o.platforms, ", "))
	start := time.Now()
	img, err := fn.BuildImage(ctx, builder.ImageOptions{
		Platforms: o.platforms, BaseImage: o.baseImage, Insecure: o.insecure, SBOM: o.sbom, Progress: s.ErrOut,
	})
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := img.Size()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Built %s in %s (%.2f MB compressed).\n", digest, time.Since(start).Round(time.Millisecond), float64(size)/1e6)
	res := buildResult{Name: fn.Name, Kind: string(fn.Signature.Kind), Digest: digest.String(), Platforms: o.platforms, Size: size}
	switch {
	case o.push:
		start = time.Now()
		fmt.Fprintf(s.ErrOut, "Pushing to %s...\n", o.registry)
		ref, err := img.Push(ctx, o.registry, o.insecure)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.ErrOut, "Pushed in %s.\n", time.Since(start).Round(time.Millisecond))
		res.Image = ref.String()
	case o.output != "":
		if _, err := img.WriteLayout(ctx, o.output); err != nil {
			return err
		}
		fmt.Fprintf(s.ErrOut, "Wrote OCI layout %s.\n", o.output)
		res.Layout = o.output
	}
	if o.out.structured() {
		return o.out.print(s.Out, res)
	}
	switch {
	case res.Image != "":
		fmt.Fprintln(s.Out, res.Image)
	case res.Layout != "":
		fmt.Fprintf(s.Out, "%s@%s\n", res.Layout, res.Digest)
	default:
		fmt.Fprintln(s.Out, res.Digest)
	}
	return nil
}
