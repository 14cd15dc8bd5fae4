// Package diskspace keeps the local platform from filling its disk: what is free under a path,
// and the reserve that writes (pushes, deploys) leave free, so that etcd and the registry never
// meet a full disk of the platform's own making.
package diskspace

import (
	"fmt"
	"syscall"
)

// Reserve is what the platform keeps free on each filesystem of its state: room for etcd's
// write-ahead log (64 MB segments) and a few images' worth of layers.
const Reserve int64 = 256 << 20

// Free is the space an unprivileged writer may still use on the filesystem holding path.
func Free(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// LowError says that a filesystem of the platform has less free than the reserve.
type LowError struct {
	Path          string
	Free, Reserve int64
}

func (e *LowError) Error() string {
	return fmt.Sprintf("the disk of %s has %s free, under the %s the local platform keeps free (for etcd and the registry): free space on it, then try again",
		e.Path, Bytes(e.Free), Bytes(e.Reserve))
}

// Check returns a *LowError for the first of paths (each on the filesystem it is on; a path
// that does not exist is passed over) with less than reserve free.
func Check(reserve int64, paths ...string) error {
	for _, p := range paths {
		free, err := Free(p)
		if err != nil {
			continue
		}
		if free < reserve {
			return &LowError{Path: p, Free: free, Reserve: reserve}
		}
	}
	return nil
}

// Bytes is n in the largest binary unit that keeps it at 1 or more: "300 MiB", "1.5 GiB".
func Bytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f, i = f/1024, i+1
	}
	if i == 0 || f >= 10 {
		return fmt.Sprintf("%.0f %s", f, units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
