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

// mkdirInRoot creates directory p inside root and its missing parents, each made in its
// parent as openInRoot resolves it: a link met on the way resolves inside root, so nothing is
// created outside it, whatever the root's contents do meanwhile.
func mkdirInRoot(root, p string, perm uint32) error {
	cur := "/"
	for _, c := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if c == "" {
			continue
		}
		parent, err := openInRoot(root, cur, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(int(parent.Fd()), c, perm)
		parent.Close()
		if err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdirat", Path: filepath.Join(root, cur, c), Err: err}
		}
		cur = path.Join(cur, c)
	}
	return nil
}

// mountpointInRoot makes sure p exists inside root, as a directory or an empty file (what a
// bind mount of a directory or a file needs), created as mkdirInRoot creates. A link to a
// missing target is followed as a chrooted process would create through it (resolveIn), and
// what is created is then created by descriptor: inside root, whatever changes meanwhile.
func mountpointInRoot(root, p string, dir bool) error {
	res, err := resolveIn(root, p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(root, res)
	if err != nil || !within(root, res) {
		return fmt.Errorf("%s leaves the root", p)
	}
	p = "/" + rel
	if dir {
		return mkdirInRoot(root, p, 0o755)
	}
	if err := mkdirInRoot(root, path.Dir(path.Clean("/"+p)), 0o755); err != nil {
		return err
	}
	parent, err := openInRoot(root, path.Dir(path.Clean("/"+p)), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer parent.Close()
	// O_NOFOLLOW: a link in the file's place is not followed (openat alone would, out of root).
	fd, err := unix.Openat(int(parent.Fd()), path.Base(path.Clean("/"+p)), unix.O_CREAT|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err == unix.ELOOP {
		return nil // a link: openInRoot resolves it inside root when it is mounted on
	}
	if err != nil {
		return &os.PathError{Op: "openat", Path: filepath.Join(root, p), Err: err}
	}
	return unix.Close(fd)
}

// fdPath is a path naming f's file itself, for mount(2): the calling thread's view of its
// descriptors (threads share them).
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/thread-self/fd/%d", f.Fd()) }
