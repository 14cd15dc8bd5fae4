package install

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"fnkit.dev/fn/config"
)

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
	return nil
}

func deployment(t *testing.T, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestManifests(t *testing.T) {
	objs, err := Manifests(Options{})
	if err != nil {
		t.Fatal(err)
	}
	// CRDs first (one per file of config/crd), then the namespace: what the rest needs exists
	// before it.
	var kinds []string
	for _, u := range objs {
		kinds = append(kinds, u.GetKind())
		if u.GetLabels()["app.kubernetes.io/part-of"] != PartOf {
			t.Errorf("%s has no part-of label: fn uninstall and users could not tell it fn's", describe(u))
		}
		if ns := u.GetNamespace(); ns != "" && ns != Namespace {
			t.Errorf("%s is in namespace %s, not %s", describe(u), ns, Namespace)
		}
	}
	n := len(config.CRDs)
	if !slices.Equal(kinds[:n], slices.Repeat([]string{"CustomResourceDefinition"}, n)) || kinds[n] != "Namespace" {
		t.Errorf("order of kinds %v: want the %d CRDs, then the namespace", kinds[:n+1], n)
	}
	var images []string
	for _, u := range objs {
		walkImages(u.Object, func(m map[string]any) { images = append(images, m["image"].(string)) })
	}
	slices.Sort(images)
	want := []string{"ko://fnkit.dev/fn/cmd/fn-builder", "ko://fnkit.dev/fn/cmd/fn-controller", "ko://fnkit.dev/fn/cmd/fn-events", "ko://fnkit.dev/fn/cmd/fn-gateway"}
	if !slices.Equal(images, want) {
		t.Errorf("images %v, want %v", images, want)
	}
	// What an operator expects of each component.
	for _, name := range []string{"fn-controller", "fn-gateway", "fn-builder", "fn-events"} {
		d := deployment(t, find(t, objs, "Deployment", name))
		c := d.Spec.Template.Spec.Containers[0]
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s lacks a readiness or liveness probe", name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s has no resource requests", name)
		}
		psc, sc := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s does not run as a numeric non-root user", name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s's security context is not restricted: %+v", name, sc)
		}
	}
	if r := deployment(t, find(t, objs, "Deployment", "fn-gateway")).Spec.Replicas; r == nil || *r < 2 {
		t.Error("fewer than two gateways: losing one pod loses the entry")
	}
	if r := deployment(t, find(t, objs, "Deployment", "fn-controller")).Spec.Replicas; r == nil || *r < 2 {
		t.Error("one controller: nothing takes over while it is replaced")
	}
	pdb := find(t, objs, "PodDisruptionBudget", "fn-gateway")
	if v, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); fmt.Sprint(v) != "1" {
		t.Errorf("gateway PodDisruptionBudget minAvailable %v, want 1", v)
	}
	// fn's own event engine, on a volume of its own, which the gateways find by its Service.
	ev := deployment(t, find(t, objs, "Deployment", "fn-events")).Spec.Template.Spec
	find(t, objs, "PersistentVolumeClaim", "fn-events-data")
	find(t, objs, "NetworkPolicy", "fn-events")
	if len(ev.Volumes) != 1 || ev.Volumes[0].PersistentVolumeClaim == nil || ev.Volumes[0].PersistentVolumeClaim.ClaimName != "fn-events-data" {
		t.Errorf("fn-events volumes %+v: want its claim", ev.Volumes)
	}
	if gw := deployment(t, find(t, objs, "Deployment", "fn-gateway")).Spec.Template.Spec.Containers[0]; !slices.Contains(gw.Args, "--events-service=fn-system/fn-events") {
		t.Errorf("gateway args %v: want fn's engine (--events-service)", gw.Args)
	}
	if typ, _, _ := unstructured.NestedString(find(t, objs, "Service", "fn-gateway").Object, "spec", "type"); typ != "LoadBalancer" {
		t.Errorf("gateway Service type %q by default, want LoadBalancer", typ)
	}
}

func TestCustomize(t *testing.T) {
	objs, err := Manifests(Options{GatewayService: corev1.ServiceTypeNodePort, Domain: "fn.example", GatewayURL: "https://fn.example",
		Repo: "reg.example/fn", BuilderURL: "https://git.fn.example", NATS: "nats://nats.example:4222"})
	if err != nil {
		t.Fatal(err)
	}
	if typ, _, _ := unstructured.NestedString(find(t, objs, "Service", "fn-gateway").Object, "spec", "type"); typ != "NodePort" {
		t.Errorf("gateway Service type %q, want NodePort", typ)
	}
	gw := deployment(t, find(t, objs, "Deployment", "fn-gateway")).Spec.Template.Spec.Containers[0]
	if !slices.Contains(gw.Args, "--domain=fn.example") || slices.Contains(gw.Args, "--domain=fn.local") {
		t.Errorf("gateway args %v: want --domain=fn.example only", gw.Args)
	}
	if !slices.Contains(gw.Args, "--events=nats://nats.example:4222") || slices.ContainsFunc(gw.Args, func(a string) bool { return strings.HasPrefix(a, "--events-service") }) {
		t.Errorf("gateway args %v: want the NATS URL given (--events), not fn's engine", gw.Args)
	}
	for _, u := range objs {
		if strings.HasPrefix(u.GetName(), "fn-events") {
			t.Errorf("%s rendered, though a NATS of the cluster's is given", describe(u))
		}
	}
	env := func(c corev1.Container) map[string]string {
		m := map[string]string{}
		for _, e := range c.Env {
			m[e.Name] = e.Value
		}
		return m
	}
	ctl := env(deployment(t, find(t, objs, "Deployment", "fn-controller")).Spec.Template.Spec.Containers[0])
	if ctl["FN_DOMAIN"] != "fn.example" || ctl["FN_GATEWAY_URL"] != "https://fn.example" {
		t.Errorf("controller env %v: want FN_DOMAIN and FN_GATEWAY_URL set", ctl)
	}
	b := deployment(t, find(t, objs, "Deployment", "fn-builder")).Spec.Template.Spec
	if e := env(b.Containers[0]); e["FN_REGISTRY"] != "reg.example/fn/fns" {
		t.Errorf("builder FN_REGISTRY %q, want reg.example/fn/fns", e["FN_REGISTRY"])
	}
	if !slices.Contains(b.Containers[0].Args, "--url=https://git.fn.example") || b.HostNetwork {
		t.Errorf("builder args %v, host network %v: want its URL, not the host's network", b.Containers[0].Args, b.HostNetwork)
	}

	if _, err := Manifests(Options{GatewayService: "External"}); err == nil || !strings.Contains(err.Error(), "LoadBalancer, NodePort or ClusterIP") {
		t.Errorf("gateway Service type External: %v, want an error naming the types", err)
	}
}

func TestLocalBuilder(t *testing.T) {
	objs, err := Manifests(Options{Repo: "127.0.0.1:15000/fn", FunctionRepo: "127.0.0.1:15000/fns", Local: &LocalBuilder{
		Addr: "127.0.0.1:18089", StateDir: "/fn/builder",
		GoEnv: map[string]string{"GOCACHE": "/root/.cache/go-build", "GOMODCACHE": "/root/go/pkg/mod", "GOPROXY": "https://proxy.example", "GOFLAGS": ""},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := deployment(t, find(t, objs, "Deployment", "fn-builder")).Spec.Template.Spec
	c := spec.Containers[0]
	if !spec.HostNetwork {
		t.Error("the local builder is not on the host's network: it could not push to the registry on loopback")
	}
	for _, a := range []string{"--addr=127.0.0.1:18089", "--url=http://127.0.0.1:18089", "--insecure=true"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	if c.Ports[0].ContainerPort != 18089 || c.ReadinessProbe.HTTPGet.Host != "127.0.0.1" || c.LivenessProbe.HTTPGet.Host != "127.0.0.1" {
		t.Errorf("port %d, probe hosts %q %q: want the loopback address it serves on", c.Ports[0].ContainerPort, c.ReadinessProbe.HTTPGet.Host, c.LivenessProbe.HTTPGet.Host)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.HostPath != nil {
				mounts[v.HostPath.Path] = m.MountPath
			}
		}
	}
	if mounts["/fn/builder"] != "/var/lib/fn-builder" || mounts["/root/.cache/go-build"] == "" || mounts["/root/go/pkg/mod"] == "" {
		t.Errorf("host paths mounted %v: want the state and both Go caches", mounts)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["GOCACHE"] != mounts["/root/.cache/go-build"] || env["GOPROXY"] != "https://proxy.example" || env["FN_REGISTRY"] != "127.0.0.1:15000/fns" {
		t.Errorf("env %v", env)
	}
	if _, ok := env["GOFLAGS"]; ok {
		t.Error("an empty Go setting is passed on")
	}
	// The local platform's agents provision no volume: the engine keeps its store in the pod.
	ev := deployment(t, find(t, objs, "Deployment", "fn-events")).Spec.Template.Spec
	if len(ev.Volumes) != 1 || ev.Volumes[0].EmptyDir == nil {
		t.Errorf("fn-events volumes on the local platform %+v: want an emptyDir", ev.Volumes)
	}
	for _, u := range objs {
		if u.GetKind() == "PersistentVolumeClaim" {
			t.Errorf("%s rendered for the local platform", describe(u))
		}
	}
}

func TestSource(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module fnkit.dev/fn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := FindSource(sub); got != root {
		t.Errorf("FindSource(%s) = %q, want %q", sub, got, root)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckSource(other); err == nil || !strings.Contains(err.Error(), `"example.com/x"`) {
		t.Errorf("CheckSource of another module: %v", err)
	}
	if got := FindSource(other); got != "" {
		t.Errorf("FindSource outside fn = %q", got)
	}
	if err := CheckSource(""); err == nil || !strings.Contains(err.Error(), "--source") {
		t.Errorf("CheckSource(\"\"): %v, want a hint at --source", err)
	}
}

// Marshal writes a stream that reads back as the same objects.
func TestMarshal(t *testing.T) {
	objs, err := Manifests(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	if len(docs) != len(objs) {
		t.Fatalf("%d documents, want %d", len(docs), len(objs))
	}
	for i, d := range docs {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		if m["kind"] != objs[i].GetKind() {
			t.Errorf("document %d is a %v, want %s", i, m["kind"], objs[i].GetKind())
		}
	}
}
