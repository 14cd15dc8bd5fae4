package agent

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
)

// machines maps Go architectures to ELF machines.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "ppc64": elf.EM_PPC64, "s390x": elf.EM_S390,
	"loong64": elf.EM_LOONGARCH, "mips64le": elf.EM_MIPS, "mips64": elf.EM_MIPS,
}

// findExecutable resolves argv0 inside root as execvp in a chroot would: a name with a slash is
// a path (relative to workdir), a bare name is looked up in pathEnv. It returns the path inside
// root.
func findExecutable(root, argv0, workdir, pathEnv string) (string, error) {
	if argv0 == "" {
		return "", &cannotRunError{"no command: the image has no entrypoint and the container sets no command"}
	}
	if strings.Contains(argv0, "/") {
		if !path.IsAbs(argv0) {
			argv0 = path.Join("/", workdir, argv0)
		}
		return argv0, nil
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join("/", dir, argv0)
		if !path.IsAbs(dir) {
			p = path.Join("/", workdir, dir, argv0)
		}
		host, err := resolveIn(root, p)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(host); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &cannotRunError{fmt.Sprintf("executable %q not found in the image's PATH (%s)", argv0, pathEnv)}
}

// checkRunnable checks that the file at p (inside root) can run as a process here: an ELF
// binary for this machine whose dynamic loader (if any) the image holds, or a script whose
// interpreter the image holds and can run.
func checkRunnable(root, p string) error { return checkRunnableDepth(root, p, 0) }

func checkRunnableDepth(root, p string, depth int) error {
	if depth > 4 {
		return &cannotRunError{fmt.Sprintf("%s: too many levels of script interpreters", p)}
	}
	host, err := resolveIn(root, p)
	if err != nil {
		return &cannotRunError{fmt.Sprintf("%s: %v", p, err)}
	}
	fi, err := os.Stat(host)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &cannotRunError{fmt.Sprintf("%s: no such file in the image", p)}
	case err != nil:
		return &cannotRunError{fmt.Sprintf("%s: %v", p, err)}
	case !fi.Mode().IsRegular():
		return &cannotRunError{fmt.Sprintf("%s: not a regular file", p)}
	case fi.Mode()&0o111 == 0:
		return &cannotRunError{fmt.Sprintf("%s: not executable (mode %s)", p, fi.Mode().Perm())}
	}
	f, err := os.Open(host)
	if err != nil {
		return &cannotRunError{fmt.Sprintf("%s: %v", p, err)}
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return checkELF(root, p, f)
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return &cannotRunError{fmt.Sprintf("%s: a script with an empty #! line", p)}
		}
		if err := checkRunnableDepth(root, fields[0], depth+1); err != nil {
			return &cannotRunError{fmt.Sprintf("%s is a script for %s, which cannot run: %v", p, fields[0], err)}
		}
		return nil
	}
	return &cannotRunError{fmt.Sprintf("%s: exec format error (neither an ELF binary nor a #! script)", p)}
}

func checkELF(root, p string, r io.ReaderAt) error {
	ef, err := elf.NewFile(r)
	if err != nil {
		return &cannotRunError{fmt.Sprintf("%s: malformed ELF binary: %v", p, err)}
	}
	if want, ok := machines[runtime.GOARCH]; ok && ef.Machine != want {
		return &cannotRunError{fmt.Sprintf("%s is a binary for %s, this node runs %s (%s)", p, machineName(ef.Machine), runtime.GOARCH, want)}
	}
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(prog.Open())
		if err != nil {
			return &cannotRunError{fmt.Sprintf("%s: reading its interpreter: %v", p, err)}
		}
		interp := string(bytes.TrimRight(b, "\x00"))
		host, err := resolveIn(root, interp)
		if err == nil {
			if fi, serr := os.Stat(host); serr == nil && fi.Mode().IsRegular() {
				return nil
			}
		}
		return &cannotRunError{fmt.Sprintf("%s is dynamically linked and its loader %s is missing in the image", p, interp)}
	}
	return nil
}

func machineName(m elf.Machine) string {
	for arch, mm := range machines {
		if mm == m && arch != "386" && arch != "ppc64" && arch != "mips64" {
			return arch
		}
	}
	return strings.TrimPrefix(m.String(), "EM_")
}
