package agent

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// elfHeader is the start of an ELF executable for machine, as far as the agent reads it.
func elfHeader(machine elf.Machine) []byte { return elfWithInterp(machine, "") }

// elfWithInterp is an ELF executable's headers, with a PT_INTERP program header naming interp
// when not empty.
func elfWithInterp(machine elf.Machine, interp string) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1 // 64-bit, little endian, version 1
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64) // header size
	if interp == "" {
		return h
	}
	binary.LittleEndian.PutUint64(h[32:], 64) // e_phoff
	binary.LittleEndian.PutUint16(h[54:], 56) // e_phentsize
	binary.LittleEndian.PutUint16(h[56:], 1)  // e_phnum
	ph := make([]byte, 56)
	binary.LittleEndian.PutUint32(ph[0:], uint32(elf.PT_INTERP))
	binary.LittleEndian.PutUint64(ph[8:], 120)                    // p_offset
	binary.LittleEndian.PutUint64(ph[32:], uint64(len(interp)+1)) // p_filesz
	binary.LittleEndian.PutUint64(ph[40:], uint64(len(interp)+1)) // p_memsz
	return append(append(h, ph...), append([]byte(interp), 0)...)
}

func TestCheckRunnable(t *testing.T) {
	native, ok := machines[runtime.GOARCH]
	if !ok {
		t.Skipf("no ELF machine known for %s", runtime.GOARCH)
	}
	foreign := elf.EM_AARCH64
	if native == foreign {
		foreign = elf.EM_X86_64
	}
	root := t.TempDir()
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"ko-app/static":  {elfHeader(native), 0o755},
		"ko-app/dynamic": {elfWithInterp(native, "/lib/ld.so"), 0o755},
		"ko-app/nold":    {elfWithInterp(native, "/lib/missing.so"), 0o755},
		"lib/ld.so":      {elfHeader(native), 0o755},
		"ko-app/foreign": {elfHeader(foreign), 0o755},
		"ko-app/noexec":  {elfHeader(native), 0o644},
		"ko-app/garbage": {[]byte("hello"), 0o755},
		"bin/script":     {[]byte("#!/ko-app/static -x\necho\n"), 0o755},
		"bin/shscript":   {[]byte("#!/bin/sh\necho\n"), 0o755},
		"bin/chain":      {[]byte("#!/bin/script\n"), 0o755},
	}
	for p, f := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/ko-app/static", filepath.Join(root, "bin/link")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/ko-app/static":  "",
		"/ko-app/dynamic": "",
		"/bin/script":     "",
		"/bin/chain":      "",
		"/bin/link":       "",
		"/ko-app/nold":    "loader /lib/missing.so is missing",
		"/ko-app/foreign": "is a binary for",
		"/ko-app/noexec":  "not executable",
		"/ko-app/garbage": "exec format error",
		"/bin/shscript":   "/bin/sh: no such file in the image",
		"/ko-app":         "not a regular file",
		"/ko-app/missing": "no such file in the image",
	} {
		err := checkRunnable(root, p)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", p, err)
			}
			continue
		}
		var cr *cannotRunError
		if !errors.As(err, &cr) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a CannotRun error with %q", p, err, want)
		}
	}

	for _, c := range []struct{ argv0, workdir, path, want string }{
		{"static", "/", "/usr/bin:/ko-app", "/ko-app/static"},
		{"script", "/", "/bin", "/bin/script"},
		{"static", "/", "ko-app", "/ko-app/static"}, // relative PATH entries are relative to the working directory
		{"/x/y", "/", "/bin", "/x/y"},
		{"./static", "/ko-app", "/bin", "/ko-app/static"},
	} {
		got, err := findExecutable(root, c.argv0, c.workdir, c.path)
		if err != nil || got != c.want {
			t.Errorf("findExecutable(%q, %q, %q) = %q, %v; want %q", c.argv0, c.workdir, c.path, got, err, c.want)
		}
	}
	for _, argv0 := range []string{"", "noexec", "nothere"} {
		var cr *cannotRunError
		if _, err := findExecutable(root, argv0, "/", "/ko-app:/bin"); !errors.As(err, &cr) {
			t.Errorf("findExecutable(%q): %v, want a CannotRun error", argv0, err)
		}
	}
}
