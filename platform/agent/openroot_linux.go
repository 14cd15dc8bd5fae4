package agent

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// openInRoot opens p inside root as a process whose root is root would: the kernel resolves
// every component, symbolic links (absolute ones from root) and ".." included, without ever
// leaving root (openat2's RESOLVE_IN_ROOT), and refuses /proc's magic links. What it returns
// is the file resolved at that moment, whatever the path points to later: mount through it
// (fdPath), not through a path checked before.
func openInRoot(root, p string, flags int) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR || err == unix.EAGAIN { // a rename raced the walk: walk again
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat2", Path: filepath.Join(root, rel), Err: err}
		}
		return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
	}
}

// fdPath is a path naming f's file itself, for mount(2): the calling thread's view of its
// descriptors (threads share them).
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/thread-self/fd/%d", f.Fd()) }
