// Package install puts fn's own components on a cluster as ordinary workloads: it builds their
// images from fn's source with ko, renders config/ for the cluster (images by digest, the
// gateway's Service type, the domain), and applies, waits for, or removes the result.
package install

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sync/errgroup"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/ko/pkg/build"
	"github.com/google/ko/pkg/publish"
	"golang.org/x/mod/modfile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/config"
)

// Module is fn's module path: fn's images are built from a checkout of it.
const Module = "fnkit.dev/fn"

// Namespace is where fn's components run.
const Namespace = "fn-system"

// PartOf labels (app.kubernetes.io/part-of) every object fn install creates.
const PartOf = "fn"

// koPrefix marks an image to build from an import path, as ko does.
const koPrefix = "ko://"

// Options configure the rendering of fn's components.
type Options struct {
	// Source is the root of a checkout of fn's module, which the images are built from.
	Source string
	// Repo is the repository the images are pushed to (REGISTRY/PATH); each is Repo/NAME.
	Repo string
	// Insecure allows plain HTTP and unverified TLS to the registry (loopback registries
	// speak plain HTTP without it).
	Insecure bool
	// Platforms are the images' platforms: those of the cluster's nodes (see Platforms).
	Platforms []string
	// GatewayService is the type of the gateway's Service: LoadBalancer (the default),
	// NodePort or ClusterIP.
	GatewayService corev1.ServiceType
	// Domain is the domain of functions' host names at the gateway (default fn.local).
	Domain string
	// GatewayURL is where users reach the gateway, shown in Functions' status (optional).
	GatewayURL string
	// NATS is the URL of the cluster's NATS servers with JetStream (nats://HOST:PORT[,...]),
	// for asynchronous calls, schedules and triggers; without, the gateways run without an
	// event engine and answer those 503.
	NATS string
	// FunctionRepo is where fn-builder pushes functions' images (default Repo/fns).
	FunctionRepo string
	// BuilderURL is where clients reach fn-builder (default its Service's cluster address).
	BuilderURL string
	// BuilderBase is a base image holding Go and git for fn-builder; empty makes one from
	// this machine's toolchain and git (for this machine's platform only).
	BuilderBase string
	// CacheDir keeps the toolchain base's layer between installs.
	CacheDir string
	// Local runs fn-builder as the local platform does: see LocalBuilder.
	Local *LocalBuilder
	// Progress receives a line per image built and pushed.
	Progress io.Writer
}

// LocalBuilder is fn-builder on the local platform: on the host's network (it pushes to the
// registry on loopback and serves the git remote at Addr, as before), with its state in
// StateDir and Go's caches and module settings the host's (GoEnv: GOCACHE, GOMODCACHE,
// GOPROXY...), so builds are as warm as the host's; it runs as root, as the host's go does.
type LocalBuilder struct {
	Addr     string // host:port
	StateDir string
	GoEnv    map[string]string
}

// Manifests are fn's components as objects, images still as ko:// references, in the order
// they are applied (CRDs, the namespace, then config/'s files in order).
func Manifests(o Options) ([]*unstructured.Unstructured, error) {
	var files []string
	err := fs.WalkDir(config.Manifests, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// crd/ before the numbered files.
	sort.SliceStable(files, func(i, j int) bool {
		ci, cj := strings.HasPrefix(files[i], "crd/"), strings.HasPrefix(files[j], "crd/")
		if ci != cj {
			return ci
		}
		return files[i] < files[j]
	})
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := config.Manifests.ReadFile(f)
		if err != nil {
			return nil, err
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var m map[string]any
			if err := d.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("config/%s: %w", f, err)
			}
			if len(m) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			labels := u.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels["app.kubernetes.io/part-of"] = PartOf
			u.SetLabels(labels)
			objs = append(objs, u)
		}
	}
	if err := customize(objs, o); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool { return left(u, o) }), nil
}

// left reports whether o leaves u out: fn's own event engine when the cluster's NATS is given,
// and its claim of a volume on the local platform (whose agents have no provisioner: the
// engine's store is the pod's own directory there).
func left(u *unstructured.Unstructured, o Options) bool {
	events := u.GetName() == "fn-events" || u.GetName() == "fn-events-data"
	switch {
	case o.NATS != "":
		return events
	case o.Local != nil:
		return u.GetKind() == "PersistentVolumeClaim" && u.GetName() == "fn-events-data"
	}
	return false
}

// customize applies o's settings to the objects.
func customize(objs []*unstructured.Unstructured, o Options) error {
	for _, u := range objs {
		switch {
		case u.GetKind() == "Service" && u.GetName() == "fn-gateway":
			t := o.GatewayService
			if t == "" {
				t = corev1.ServiceTypeLoadBalancer
			}
			switch t {
			case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort, corev1.ServiceTypeClusterIP:
			default:
				return fmt.Errorf("gateway Service type %q: want LoadBalancer, NodePort or ClusterIP", t)
			}
			if err := unstructured.SetNestedField(u.Object, string(t), "spec", "type"); err != nil {
				return err
			}
		case u.GetKind() == "Deployment" && u.GetName() == "fn-gateway":
			// Always through editDeployment: the same options must render the same object, edited
			// or not (server-side apply of a differently spelled object changes it).
			if err := editDeployment(u, func(d *appsv1.Deployment) error {
				if o.Domain != "" {
					setFlag(&d.Spec.Template.Spec.Containers[0], "--domain", o.Domain)
				}
				if o.NATS != "" {
					c := &d.Spec.Template.Spec.Containers[0]
					c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--events-service=") })
					setFlag(c, "--events", o.NATS)
				}
				return nil
			}); err != nil {
				return err
			}
		case u.GetKind() == "Deployment" && u.GetName() == "fn-events" && o.Local != nil:
			if err := editDeployment(u, func(d *appsv1.Deployment) error {
				for i := range d.Spec.Template.Spec.Volumes {
					if v := &d.Spec.Template.Spec.Volumes[i]; v.Name == "data" {
						v.VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
					}
				}
				return nil
			}); err != nil {
				return err
			}
		case u.GetKind() == "Deployment" && u.GetName() == "fn-builder":
			if err := editDeployment(u, func(d *appsv1.Deployment) error { return customizeBuilder(d, o) }); err != nil {
				return err
			}
		case u.GetKind() == "Deployment" && u.GetName() == "fn-controller":
			if err := editDeployment(u, func(d *appsv1.Deployment) error {
				c := &d.Spec.Template.Spec.Containers[0]
				if o.Domain != "" {
					setEnvVar(c, "FN_DOMAIN", o.Domain)
				}
				if o.GatewayURL != "" {
					setEnvVar(c, "FN_GATEWAY_URL", o.GatewayURL)
				}
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// editDeployment edits the Deployment u as a typed object.
func editDeployment(u *unstructured.Unstructured, edit func(*appsv1.Deployment) error) error {
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		return err
	}
	if err := edit(&d); err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&d)
	if err != nil {
		return err
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	u.Object = m
	return nil
}

// Render is Manifests with every ko:// image built from o.Source and pushed to o.Repo, and
// replaced by its digest.
func Render(ctx context.Context, o Options) ([]*unstructured.Unstructured, error) {
	objs, err := Manifests(o)
	if err != nil {
		return nil, err
	}
	if err := CheckSource(o.Source); err != nil {
		return nil, err
	}
	if o.Repo == "" {
		return nil, errors.New("no registry to push fn's images to: pass --registry REGISTRY/PATH")
	}
	refs := map[string][]map[string]any{}
	var paths []string
	for _, u := range objs {
		walkImages(u.Object, func(holder map[string]any) {
			ip := strings.TrimPrefix(holder["image"].(string), koPrefix)
			if _, ok := refs[ip]; !ok {
				paths = append(paths, ip)
			}
			refs[ip] = append(refs[ip], holder)
		})
	}
	if len(paths) == 0 {
		return objs, nil
	}
	images, err := buildImages(ctx, o, paths)
	if err != nil {
		return nil, err
	}
	for ip, holders := range refs {
		for _, h := range holders {
			h["image"] = images[ip]
		}
	}
	return objs, nil
}

// walkImages calls f with every map holding an "image" of the form ko://IMPORTPATH.
func walkImages(v any, f func(map[string]any)) {
	switch t := v.(type) {
	case map[string]any:
		if s, ok := t["image"].(string); ok && strings.HasPrefix(s, koPrefix) {
			f(t)
		}
		for _, c := range t {
			walkImages(c, f)
		}
	case []any:
		for _, c := range t {
			walkImages(c, f)
		}
	}
}

// CheckSource fails unless dir is the root of a checkout of fn's module.
func CheckSource(dir string) error {
	if dir == "" {
		return errors.New("fn's images are built from its source: run this in a checkout of fn, or pass --source DIR")
	}
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("--source %s: not a checkout of fn (%v)", dir, err)
	}
	if p := modfile.ModulePath(data); p != Module {
		return fmt.Errorf("--source %s: its module is %q, not fn's (%s)", dir, p, Module)
	}
	return nil
}

// FindSource is the root of the checkout of fn's module holding dir, or "".
func FindSource(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if CheckSource(d) == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// BuilderImport is fn-builder's import path: its image is based on one with Go and git.
const BuilderImport = Module + "/cmd/fn-builder"

// baseImages is ko's base image getter for fn's images: fn's local base, and for fn-builder
// o.BuilderBase or a base made from this machine's Go toolchain and git.
func baseImages(o Options, platforms []string) (build.GetBase, error) {
	local, err := builder.BaseImages(builder.ImageOptions{}, platforms)
	if err != nil {
		return nil, err
	}
	var tools build.GetBase
	switch {
	case o.BuilderBase != "":
		if tools, err = builder.BaseImages(builder.ImageOptions{BaseImage: o.BuilderBase, Insecure: o.Insecure}, platforms); err != nil {
			return nil, err
		}
	case len(platforms) != 1:
		return nil, fmt.Errorf("fn-builder's base with Go and git is made from this machine's, for one platform, and the cluster's nodes run %s: pass --builder-base with an image (index) for them all", strings.Join(platforms, ", "))
	default:
		base, err := builder.ToolchainBase(platforms[0], o.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("fn-builder's base: %w", err)
		}
		ref := name.MustParseReference(builder.ToolchainBaseName)
		tools = func(context.Context, string) (name.Reference, build.Result, error) { return ref, base, nil }
	}
	return func(ctx context.Context, ip string) (name.Reference, build.Result, error) {
		if strings.TrimPrefix(ip, koPrefix) == BuilderImport {
			return tools(ctx, ip)
		}
		return local(ctx, ip)
	}, nil
}

// buildImages builds and pushes the images of the import paths, returning their references
// by digest.
func buildImages(ctx context.Context, o Options, paths []string) (map[string]string, error) {
	platforms := o.Platforms
	if len(platforms) == 0 {
		platforms = []string{"linux/amd64"}
	}
	getBase, err := baseImages(o, platforms)
	if err != nil {
		return nil, err
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	defer builder.CaptureKoLog(progress, "  ")()
	b, err := build.NewGo(ctx, o.Source,
		build.WithBaseImages(getBase),
		build.WithPlatforms(platforms...),
		build.WithTrimpath(true),
		build.WithDisabledSBOM(),
		build.WithDefaultEnv([]string{"CGO_ENABLED=0", "GOWORK=off"}),
		build.WithDefaultLdflags([]string{"-s", "-w", "-X", "fnkit.dev/fn/builder.version=" + builder.Version()}),
	)
	if err != nil {
		return nil, fmt.Errorf("setting up the build of fn's images: %w", err)
	}
	pub, err := publish.NewDefault(o.Repo, publish.Insecure(o.Insecure),
		publish.WithNamer(func(base, ip string) string { return base + "/" + path.Base(ip) }))
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", o.Repo, err)
	}
	out := map[string]string{}
	slices.Sort(paths)
	// In parallel: a warm build is mostly linking, one core each.
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(goruntime.GOMAXPROCS(0), 1))
	for _, ip := range paths {
		g.Go(func() error {
			fmt.Fprintf(progress, "building %s for %s\n", path.Base(ip), strings.Join(platforms, ", "))
			res, err := b.Build(gctx, koPrefix+ip)
			if err != nil {
				return fmt.Errorf("building %s: %w", ip, err)
			}
			ref, err := pub.Publish(gctx, res, koPrefix+ip)
			if err != nil {
				return fmt.Errorf("pushing %s to %s: %w", path.Base(ip), o.Repo, err)
			}
			fmt.Fprintf(progress, "pushed %s\n", ref)
			mu.Lock()
			out[ip] = ref.String()
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// Marshal writes objects as one YAML stream.
func Marshal(objs []*unstructured.Unstructured) ([]byte, error) {
	var buf bytes.Buffer
	for i, u := range objs {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// customizeBuilder points fn-builder at its registry and URL, and makes it the local
// platform's with o.Local.
func customizeBuilder(d *appsv1.Deployment, o Options) error {
	spec := &d.Spec.Template.Spec
	c := &spec.Containers[0]
	repo := o.FunctionRepo
	if repo == "" && o.Repo != "" {
		repo = o.Repo + "/fns"
	}
	if repo != "" {
		setEnvVar(c, "FN_REGISTRY", repo)
	}
	url := o.BuilderURL
	if l := o.Local; l != nil {
		url = cmp.Or(url, "http://"+l.Addr)
		spec.HostNetwork = true
		spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
		root := int64(0)
		spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &root, RunAsGroup: &root, RunAsNonRoot: new(bool)}
		setFlag(c, "--addr", l.Addr)
		// It serves on loopback: so do its port and probes.
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			return fmt.Errorf("builder address %q: %w", l.Addr, err)
		}
		pn, _ := strconv.Atoi(port)
		for i := range c.Ports {
			if c.Ports[i].Name == "http" {
				c.Ports[i].ContainerPort = int32(pn)
			}
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && p.HTTPGet != nil {
				p.HTTPGet.Host = host
			}
		}
		setFlag(c, "--insecure", "true")
		dirOrCreate := corev1.HostPathDirectoryOrCreate
		hostPath := func(name, path string) corev1.Volume {
			return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &dirOrCreate}}}
		}
		for i, v := range spec.Volumes {
			if v.Name == "state" {
				spec.Volumes[i] = hostPath("state", l.StateDir)
			}
		}
		mounts := map[string]string{"GOCACHE": "/var/cache/go-build", "GOMODCACHE": "/var/cache/go-mod"}
		for _, k := range slices.Sorted(maps.Keys(l.GoEnv)) {
			v := l.GoEnv[k]
			if v == "" {
				continue
			}
			if at, ok := mounts[k]; ok {
				name := strings.ToLower(k)
				spec.Volumes = append(spec.Volumes, hostPath(name, v))
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: at})
				v = at
			}
			setEnvVar(c, k, v)
		}
	}
	if url != "" {
		setFlag(c, "--url", url)
	}
	return nil
}

func setEnvVar(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

func setFlag(c *corev1.Container, flag, value string) {
	for i, a := range c.Args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			c.Args[i] = flag + "=" + value
			return
		}
	}
	c.Args = append(c.Args, flag+"="+value)
}
