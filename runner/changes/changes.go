// Package changes reads the changes a container made to its image: the upper directory of
// its overlay compared with the image's layers (the overlay's lower directories).
//
// Walk lists them with the semantics of `docker diff` (A added, C changed, D deleted);
// WriteLayer writes them as an uncompressed OCI layer tar (deletions as ".wh." whiteouts,
// opaque directories as ".wh..wh..opq"), the layer `commit` adds to the image.
//
// overlayfs keeps a deletion in the upper directory as a 0/0 character device and a
// directory that hides the lower layers' one (removed, then made again) with the xattr
// trusted.overlay.opaque="y". Lower directories are snapshot directories with the same
// conventions, top layer first. Every directory is walked through file descriptors
// (openat with O_NOFOLLOW, fstatat without following): a symlink in the upper directory,
// which the container controls, is never followed on the host.
package changes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind is the kind of a change, with Docker's values (ChangeModify 0, ChangeAdd 1,
// ChangeDelete 2).
type Kind int

// Kinds of changes.
const (
	Modified Kind = iota
	Added
	Deleted
)

// String is the letter `docker diff` prints: "C", "A" or "D".
func (k Kind) String() string {
	switch k {
	case Added:
		return "A"
	case Deleted:
		return "D"
	}
	return "C"
}

// Change is one changed path of the container, absolute ("/etc/passwd").
type Change struct {
	Path string `json:"Path"`
	Kind Kind   `json:"Kind"`
}

// String is the line `docker diff` prints ("A /etc/x").
func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// Options tune Walk and WriteLayer.
type Options struct {
	// Skip are in-container paths ("/etc/hosts") that are left out with everything below
	// them: the mount points of the container (bind-mounted /etc files, volumes, /proc…),
	// which the runtime may have created in the upper directory and whose content is not
	// the container's.
	Skip []string
}

const (
	opaqueXattr   = "trusted.overlay.opaque"
	redirectXattr = "trusted.overlay.redirect"
	overlayPrefix = "trusted.overlay."
)

// entry is one path of the upper directory that belongs to the diff, in tar order
// (parents first, names sorted).
type entry struct {
	rel      string // relative to the root, no leading "/"
	kind     Kind
	st       unix.Stat_t
	whiteout bool     // a deletion marker (st is the device's)
	opaque   bool     // a directory that hides the lower layers' contents
	hidden   []string // names of an opaque directory's lower entries (Walk's D)
}

// scanner walks an upper directory against its lower directories.
type scanner struct {
	ctx  context.Context
	skip map[string]bool
	out  []entry
}

// scan lists the entries of the diff of upper over lower (top layer first).
func scan(ctx context.Context, upper string, lower []string, o *Options) ([]entry, error) {
	s := &scanner{ctx: ctx, skip: map[string]bool{}}
	if o != nil {
		for _, p := range o.Skip {
			c := strings.TrimPrefix(path.Clean("/"+p), "/")
			if c != "" {
				s.skip[c] = true
			}
		}
	}
	root, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open upper directory: %w", &os.PathError{Op: "open", Path: upper, Err: err})
	}
	defer unix.Close(root)
	var lowers []int
	defer func() {
		for _, fd := range lowers {
			unix.Close(fd)
		}
	}()
	for _, l := range lower {
		fd, err := unix.Open(l, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, fmt.Errorf("open lower directory: %w", &os.PathError{Op: "open", Path: l, Err: err})
		}
		lowers = append(lowers, fd)
	}
	if _, err := s.dir(root, "", lowers); err != nil {
		return nil, err
	}
	return s.out, nil
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// readNames returns the names in the directory fd, sorted.
func readNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// getxattr reads a small xattr of the open file fd ("" when it is not set).
func getxattr(fd int, name string) (string, error) {
	var buf [256]byte
	n, err := unix.Fgetxattr(fd, name, buf[:])
	if err == unix.ENODATA || err == unix.ENOTSUP {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// lookup finds name in the lower directories dirs (top first): its stat in the highest
// layer that has it, unless that is a whiteout.
func lookup(dirs []int, name string) (unix.Stat_t, bool, error) {
	var st unix.Stat_t
	for _, fd := range dirs {
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return st, false, fmt.Errorf("lower layer: stat %s: %w", name, err)
		}
		if isWhiteout(&st) {
			return st, false, nil
		}
		return st, true, nil
	}
	return st, false, nil
}

// lowerDirs opens the directory name in each of the lower directories dirs where the
// merged view sees it: down to a whiteout, a non-directory or an opaque directory.
func lowerDirs(dirs []int, name string) ([]int, error) {
	var out []int
	for _, fd := range dirs {
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("lower layer: stat %s: %w", name, err)
		}
		if !isDir(&st) {
			break
		}
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("lower layer: open %s: %w", name, err)
		}
		out = append(out, cfd)
		if v, err := getxattr(cfd, opaqueXattr); err != nil {
			closeAll(out)
			return nil, err
		} else if v == "y" {
			break
		}
	}
	return out, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// dir scans the upper directory fd (at rel) whose merged lower view is lowers. It reports
// whether anything below it changed.
func (s *scanner) dir(fd int, rel string, lowers []int) (bool, error) {
	if err := s.ctx.Err(); err != nil {
		return false, err
	}
	names, err := readNames(fd)
	if err != nil {
		return false, fmt.Errorf("read upper directory /%s: %w", rel, err)
	}
	changed := false
	for _, name := range names {
		child := join(rel, name)
		if s.skip[child] {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // gone meanwhile (a running container)
			}
			return false, fmt.Errorf("stat /%s: %w", child, err)
		}
		lst, below, err := lookup(lowers, name)
		if err != nil {
			return false, err
		}
		if isWhiteout(&st) {
			if below {
				s.out = append(s.out, entry{rel: child, kind: Deleted, st: st, whiteout: true})
				changed = true
			}
			continue
		}
		if !isDir(&st) {
			k := Added
			if below {
				k = Modified
			}
			s.out = append(s.out, entry{rel: child, kind: k, st: st})
			changed = true
			continue
		}
		sub, err := s.subdir(fd, name, child, st, lst, below, lowers)
		if err != nil {
			return false, err
		}
		changed = changed || sub
	}
	return changed, nil
}

// subdir scans the upper directory name (a child of fd).
func (s *scanner) subdir(fd int, name, child string, st, lst unix.Stat_t, below bool, lowers []int) (bool, error) {
	cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ELOOP || err == unix.ENOTDIR {
			return false, nil // replaced meanwhile (a running container)
		}
		return false, fmt.Errorf("open /%s: %w", child, err)
	}
	defer unix.Close(cfd)
	if v, err := getxattr(cfd, redirectXattr); err != nil {
		return false, err
	} else if v != "" {
		return false, fmt.Errorf("/%s: overlayfs redirect_dir entries are not supported", child)
	}
	op, err := getxattr(cfd, opaqueXattr)
	if err != nil {
		return false, err
	}
	opaque := op == "y"
	var below2 []int
	if below && isDir(&lst) {
		if below2, err = lowerDirs(lowers, name); err != nil {
			return false, err
		}
	}
	defer closeAll(below2)
	recurse := below2
	if opaque {
		recurse = nil
	}
	e := entry{rel: child, kind: Added, st: st, opaque: opaque && below}
	if below {
		e.kind = Modified
	}
	idx := len(s.out)
	s.out = append(s.out, e)
	sub, err := s.dir(cfd, child, recurse)
	if err != nil {
		return false, err
	}
	own := !below || !isDir(&lst) || (opaque && len(below2) > 0) ||
		st.Mode != lst.Mode || st.Uid != lst.Uid || st.Gid != lst.Gid
	if !own && !sub {
		s.out = s.out[:idx] // only copied up: not a change
		return false, nil
	}
	if opaque && len(below2) > 0 {
		hidden, err := visibleNames(below2)
		if err != nil {
			return false, err
		}
		upperNames, err := readNames(cfd)
		if err != nil {
			return false, err
		}
		for _, n := range hidden {
			if !slices.Contains(upperNames, n) {
				s.out[idx].hidden = append(s.out[idx].hidden, n)
			}
		}
	}
	return true, nil
}

// visibleNames lists the names the merged view of the lower directories dirs shows.
func visibleNames(dirs []int) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, fd := range dirs {
		names, err := readNames(fd)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			if _, ok, err := lookup(dirs, n); err != nil {
				return nil, err
			} else if ok {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Walk lists the changes of the upper directory over the lower directories (top layer
// first), sorted by path, as `docker diff` reports them: a path that is new is A, one that
// replaces something of the image is C, a deletion is D, and a directory of the image with
// a change below it (or a new mode or owner) is C. A directory that was removed and made
// again (opaque) is C with a D for each image entry it no longer shows. Directories that
// were only copied up (their modification time aside, nothing changed) are not listed.
func Walk(ctx context.Context, upper string, lower []string, o *Options) ([]Change, error) {
	d, err := Scan(ctx, upper, lower, o)
	if err != nil {
		return nil, err
	}
	return d.Changes(), nil
}

// Changes lists the changes as Walk does, sorted by path.
func (d *Diff) Changes() []Change {
	out := make([]Change, 0, len(d.ents))
	for _, e := range d.ents {
		out = append(out, Change{Path: "/" + e.rel, Kind: e.kind})
		for _, h := range e.hidden {
			out = append(out, Change{Path: "/" + e.rel + "/" + h, Kind: Deleted})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ErrChanged is returned by TarBuilder.WriteFile for a file that is no longer a regular
// file (a running container replaced it); nothing was written.
var ErrChanged = errors.New("changed while being read")
