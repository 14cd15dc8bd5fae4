package platform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrs "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"fnkit.dev/fn/platform/controlplane"
)

// metrics-server serves metrics.k8s.io (kubectl top, HorizontalPodAutoscalers on CPU) from the
// node agent's /metrics/resource. It is the real one (sigs.k8s.io/metrics-server, built from
// third_party/metrics-server by hack/metrics-server.sh and cached), run as a process of the
// platform on loopback; the API server reaches it through the aggregation layer by a Service of
// type ExternalName localhost (the aggregator dials https://localhost:PORT), since
// EndpointSlices refuse loopback addresses.

// metricsServerBin finds the metrics-server binary: $FN_METRICS_SERVER, else the output of the
// repository's hack/metrics-server.sh (which builds it the first time, ~5 minutes) when the
// working directory is in a clone.
func metricsServerBin(ctx context.Context, progress io.Writer) (string, error) {
	if b := os.Getenv("FN_METRICS_SERVER"); b != "" {
		return b, nil
	}
	script, err := controlplane.FindInRepo(filepath.Join("hack", "metrics-server.sh"))
	if err != nil {
		return "", fmt.Errorf("no metrics-server: set FN_METRICS_SERVER to its binary, or run fn up in a clone of fn's repository")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout, cmd.Stderr = &out, progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building metrics-server (%s): %w", script, err)
	}
	return strings.TrimSpace(out.String()), nil
}

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// registerMetricsAPI points metrics.k8s.io at a metrics-server on localhost:port.
func registerMetricsAPI(ctx context.Context, rc *rest.Config, kube kubernetes.Interface, port int) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: "kube-system", Labels: map[string]string{"app.kubernetes.io/part-of": "fn"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port), TargetPort: intstr.FromInt32(int32(port))}}},
	}
	if have, err := kube.CoreV1().Services("kube-system").Get(ctx, svc.Name, metav1.GetOptions{}); err == nil {
		svc.ResourceVersion = have.ResourceVersion
		if _, err := kube.CoreV1().Services("kube-system").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating Service kube-system/metrics-server: %w", err)
		}
	} else if _, err := kube.CoreV1().Services("kube-system").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Service kube-system/metrics-server: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	as := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1beta1.metrics.k8s.io", "labels": map[string]any{"app.kubernetes.io/part-of": "fn"}},
		"spec": map[string]any{
			"group": "metrics.k8s.io", "version": "v1beta1",
			"service":               map[string]any{"name": "metrics-server", "namespace": "kube-system", "port": int64(port)},
			"insecureSkipTLSVerify": true, // its certificate is self-signed, on loopback
			"groupPriorityMinimum":  int64(100), "versionPriority": int64(100),
		},
	}}
	apis := dyn.Resource(apiServiceGVR)
	have, err := apis.Get(ctx, as.GetName(), metav1.GetOptions{})
	switch {
	case apierrs.IsNotFound(err):
		_, err = apis.Create(ctx, as, metav1.CreateOptions{})
	case err == nil:
		as.SetResourceVersion(have.GetResourceVersion())
		_, err = apis.Update(ctx, as, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering APIService v1beta1.metrics.k8s.io: %w", err)
	}
	return nil
}

// runMetricsServer runs metrics-server against the platform's API server until ctx is done.
func runMetricsServer(ctx context.Context, bin, kubeconfig, certDir string, port int, log io.Writer) error {
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+kubeconfig, "--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port), "--cert-dir="+certDir,
		// The node agent's kubelet API has a self-signed certificate on 127.0.0.1, its Node's
		// only address, at the port its Node reports.
		"--kubelet-insecure-tls", "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
		// The shortest resolution it takes: figures within 10-20 s of a pod's start.
		"--metric-resolution=10s", "--kubelet-request-timeout=5s",
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done := make(chan error, 1)
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the forking thread: keep it until the child exits.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting metrics-server: %w", err)
	}
	select {
	case err := <-done:
		return fmt.Errorf("metrics-server exited: %v", err)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}
}
