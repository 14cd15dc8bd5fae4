package agent

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
)

var errTooManyLinks = errors.New("too many levels of symbolic links")

// resolveIn resolves p inside root the way a process chrooted into root would: symbolic links
// are followed, absolute ones from root, and ".." never leaves root. It returns the host path.
// Components that do not exist are allowed: the rest of p is appended as written (cleaned).
func resolveIn(root, p string) (string, error) {
	rest := strings.Split(path.Clean("/"+p), "/")
	cur := "/"
	links := 0
	missing := false
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		if missing {
			cur = next
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return "", err
			}
			missing = true
			cur = next
			continue
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", errTooManyLinks
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}

// within reports whether p is root or below it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
