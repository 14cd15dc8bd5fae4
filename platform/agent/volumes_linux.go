package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Volumes live in the pod's directory (volumes/<name>) and are bind-mounted into each
// container's root at their mount paths, in the pod's mount namespace. Supported: emptyDir,
// configMap, secret, downwardAPI, projected (service account tokens, ConfigMaps, Secrets,
// downward API) and hostPath. Files are written once, when the pod starts.

func (pd *pod) volumeDir(name string) string { return filepath.Join(pd.dir, "volumes", name) }

// volumeFile is a file of a volume.
type volumeFile struct {
	data []byte
	mode fs.FileMode
}

// prepareVolumes creates the pod's volumes.
func (pd *pod) prepareVolumes(ctx context.Context, obj *corev1.Pod) error {
	src := pd.envSource()
	for _, v := range obj.Spec.Volumes {
		dir := pd.volumeDir(v.Name)
		var files map[string]volumeFile
		var err error
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return err
			}
			if err := os.Chmod(dir, 0o777); err != nil { // as kubelets make them
				return err
			}
			continue
		case v.HostPath != nil:
			if err := prepareHostPath(v.HostPath); err != nil {
				return err
			}
			continue
		case v.ConfigMap != nil:
			files, err = pd.configMapFiles(src, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode)
		case v.Secret != nil:
			files, err = pd.secretFiles(src, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode)
		case v.DownwardAPI != nil:
			files, err = pd.downwardFiles(src, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
		case v.Projected != nil:
			files, err = pd.projectedFiles(ctx, src, obj, v.Projected)
		default:
			return &configError{fmt.Sprintf("volume %q: its type is not supported by fn's node agent", v.Name)}
		}
		if err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
		if err := writeVolume(dir, files, obj.Spec.SecurityContext); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func prepareHostPath(hp *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	fi, err := os.Stat(hp.Path)
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		if err != nil {
			return os.MkdirAll(hp.Path, 0o755)
		}
	case corev1.HostPathFileOrCreate:
		if err != nil {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	case corev1.HostPathDirectory:
		if err != nil || !fi.IsDir() {
			return &configError{fmt.Sprintf("hostPath %s is not a directory", hp.Path)}
		}
	case corev1.HostPathFile:
		if err != nil || !fi.Mode().IsRegular() {
			return &configError{fmt.Sprintf("hostPath %s is not a file", hp.Path)}
		}
	default:
		if err != nil {
			return &configError{fmt.Sprintf("hostPath %s: %v", hp.Path, err)}
		}
	}
	return nil
}

func fileMode(m *int32, def fs.FileMode) fs.FileMode {
	if m == nil {
		return def
	}
	return fs.FileMode(*m) & fs.ModePerm
}

// keyFiles maps a ConfigMap's or Secret's keys to files: every key, or the items asked for.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, mode fs.FileMode, optional bool, what string) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{v, mode}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, &configError{fmt.Sprintf("configmap references non-existent config key: %s (%s)", it.Key, what)}
		}
		files[it.Path] = volumeFile{v, fileMode(it.Mode, mode)}
	}
	return files, nil
}

func (pd *pod) configMapFiles(src *envSource, name string, items []corev1.KeyToPath, optional *bool, defMode *int32) (map[string]volumeFile, error) {
	cm, err := src.configMap(src.pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) && isOptional(optional) {
			return nil, nil
		}
		return nil, notFound("configmap", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, fileMode(defMode, 0o644), isOptional(optional), "ConfigMap "+name)
}

func (pd *pod) secretFiles(src *envSource, name string, items []corev1.KeyToPath, optional *bool, defMode *int32) (map[string]volumeFile, error) {
	sec, err := src.secret(src.pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) && isOptional(optional) {
			return nil, nil
		}
		return nil, notFound("secret", name, err)
	}
	return keyFiles(sec.Data, items, fileMode(defMode, 0o644), isOptional(optional), "Secret "+name)
}

func (pd *pod) downwardFiles(src *envSource, items []corev1.DownwardAPIVolumeFile, defMode *int32) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = src.fieldValue(it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			if len(src.pod.Spec.Containers) == 0 {
				continue
			}
			v, err = src.resourceValue(&src.pod.Spec.Containers[0], it.ResourceFieldRef)
		}
		if err != nil {
			return nil, err
		}
		files[it.Path] = volumeFile{[]byte(v), fileMode(it.Mode, fileMode(defMode, 0o644))}
	}
	return files, nil
}

func (pd *pod) projectedFiles(ctx context.Context, src *envSource, obj *corev1.Pod, v *corev1.ProjectedVolumeSource) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	add := func(fs map[string]volumeFile, err error) error {
		for k, f := range fs {
			files[k] = f
		}
		return err
	}
	for _, s := range v.Sources {
		var err error
		switch {
		case s.ServiceAccountToken != nil:
			err = add(pd.tokenFile(ctx, obj, s.ServiceAccountToken, fileMode(v.DefaultMode, 0o644)))
		case s.ConfigMap != nil:
			err = add(pd.configMapFiles(src, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, v.DefaultMode))
		case s.Secret != nil:
			err = add(pd.secretFiles(src, s.Secret.Name, s.Secret.Items, s.Secret.Optional, v.DefaultMode))
		case s.DownwardAPI != nil:
			err = add(pd.downwardFiles(src, s.DownwardAPI.Items, v.DefaultMode))
		default:
			err = &configError{"a projected volume source not supported by fn's node agent"}
		}
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// tokenFile requests a service account token bound to the pod.
func (pd *pod) tokenFile(ctx context.Context, obj *corev1.Pod, s *corev1.ServiceAccountTokenProjection, mode fs.FileMode) (map[string]volumeFile, error) {
	sa := obj.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: s.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: obj.Name, UID: obj.UID},
	}}
	if s.Audience != "" {
		req.Spec.Audiences = []string{s.Audience}
	}
	tr, err := pd.p.kube.CoreV1().ServiceAccounts(obj.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &configError{fmt.Sprintf("serviceaccount %q not found", sa)}
		}
		return nil, fmt.Errorf("requesting a token for service account %s: %w", sa, err)
	}
	return map[string]volumeFile{s.Path: {[]byte(tr.Status.Token), mode}}, nil
}

// writeVolume (re)writes a volume's files.
func writeVolume(dir string, files map[string]volumeFile, psc *corev1.PodSecurityContext) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	gid := -1
	if psc != nil && psc.FSGroup != nil {
		gid = int(*psc.FSGroup)
	}
	for name, f := range files {
		clean := path.Clean(name)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return &configError{fmt.Sprintf("invalid file path %q", name)}
		}
		p := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			return err
		}
		if gid >= 0 {
			if err := os.Chown(p, -1, gid); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// volumeReadOnly reports whether a volume is always mounted read-only (as kubelets do for
// ConfigMaps, Secrets, downward API and projected volumes).
func volumeReadOnly(v *corev1.Volume) bool {
	return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
}

// mountRoot mounts, in the pod's mount namespace, what a container's root needs: itself
// read-only if asked, /proc, /dev nodes, /etc/hosts, /etc/hostname, /etc/resolv.conf and the
// container's volumes.
func (pd *pod) mountRoot(root string, spec corev1.Container, readOnly bool) error {
	type mount struct {
		src         string // a host path, or with subPath a volume's directory
		subPath     string // inside src
		dst, inRoot string // the mount point: the host path resolved, and as the container names it
		ro, dir     bool
		srcF, dstF  *os.File
	}
	var mounts []mount
	defer func() {
		for _, m := range mounts {
			if m.srcF != nil {
				m.srcF.Close()
			}
			if m.dstF != nil {
				m.dstF.Close()
			}
		}
	}()
	add := func(src, subPath, inRoot string, ro bool) error {
		fi, err := os.Stat(filepath.Join(src, subPath))
		if err != nil {
			return err
		}
		dst, err := resolveIn(root, inRoot)
		if err != nil {
			return fmt.Errorf("mount path %s: %w", inRoot, err)
		}
		if !within(root, dst) {
			return fmt.Errorf("mount path %s leaves the container's root", inRoot)
		}
		mounts = append(mounts, mount{src: src, subPath: subPath, dst: dst, inRoot: inRoot, ro: ro, dir: fi.IsDir()})
		return nil
	}
	for _, d := range devices {
		if err := add("/dev/"+d, "", "/dev/"+d, false); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		if err := add(filepath.Join(pd.dir, "etc", f), "", "/etc/"+f, false); err != nil {
			return err
		}
	}
	pd.mu.Lock()
	volumes := pd.obj.Spec.Volumes
	pd.mu.Unlock()
	for _, vm := range spec.VolumeMounts {
		var v *corev1.Volume
		for i := range volumes {
			if volumes[i].Name == vm.Name {
				v = &volumes[i]
			}
		}
		if v == nil {
			return &configError{fmt.Sprintf("volume mount %s: no volume %q in the pod", vm.MountPath, vm.Name)}
		}
		src := pd.volumeDir(vm.Name)
		if v.HostPath != nil {
			src = v.HostPath.Path
		}
		subPath := ""
		if vm.SubPath != "" {
			sub, err := resolveIn(src, vm.SubPath)
			if err != nil || !within(src, sub) {
				return &configError{fmt.Sprintf("volume mount %s: invalid subPath %q", vm.MountPath, vm.SubPath)}
			}
			if _, err := os.Stat(sub); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(sub, 0o755); err != nil {
					return err
				}
			}
			subPath = vm.SubPath
		}
		if err := add(src, subPath, vm.MountPath, vm.ReadOnly || volumeReadOnly(v)); err != nil {
			return fmt.Errorf("volume mount %s: %w", vm.MountPath, err)
		}
	}
	for i := range mounts {
		m := &mounts[i]
		if err := mountpointInRoot(root, m.inRoot, m.dir); err != nil {
			return fmt.Errorf("creating mount point %s: %w", m.inRoot, err)
		}
	}
	if err := mkdirInRoot(root, "/proc", 0o555); err != nil {
		return fmt.Errorf("creating mount point /proc: %w", err)
	}
	pd.mu.Lock()
	sb := pd.sb
	pd.mu.Unlock()
	if sb == nil {
		return errSandboxClosed
	}
	return sb.do(func() error {
		if readOnly {
			if err := bindMount(root, root, true); err != nil {
				return err
			}
		}
		for i := range mounts {
			m := &mounts[i]
			// Mounted by descriptor (opened here, in the pod's mount namespace, where the
			// mount goes): the mount point as the kernel resolves it inside the root now, and a
			// subPath as it resolves inside its volume, which other containers of the pod may
			// be changing (a link swapped in after the checks above mounts nothing of the host).
			var err error
			if m.dstF, err = openInRoot(root, m.inRoot, unix.O_PATH); err != nil {
				return fmt.Errorf("mount path %s: %w", m.inRoot, err)
			}
			if m.subPath != "" {
				if m.srcF, err = openInRoot(m.src, m.subPath, unix.O_PATH); err != nil {
					return &configError{fmt.Sprintf("volume mount %s: subPath %q: %v", m.inRoot, m.subPath, err)}
				}
			}
			src := m.src
			if m.srcF != nil {
				src = fdPath(m.srcF)
			}
			if err := unix.Mount(src, fdPath(m.dstF), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("mounting %s on %s: %w", filepath.Join(m.src, m.subPath), m.inRoot, err)
			}
			if !m.ro {
				continue
			}
			// The descriptor names the mount point beneath the new mount: the new one is
			// what the path resolves to now.
			top, err := openInRoot(root, m.inRoot, unix.O_PATH)
			if err != nil {
				return fmt.Errorf("mount path %s: %w", m.inRoot, err)
			}
			err = unix.Mount("", fdPath(top), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
			top.Close()
			if err != nil {
				return fmt.Errorf("making %s read-only: %w", m.inRoot, err)
			}
		}
		// The container's /proc is mounted by its first process, inside its PID namespace
		// (containerinit): a proc mounted here would show the host's processes.
		return nil
	})
}
