package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berth-registry/berth/runner/snapshot"
	"golang.org/x/sys/unix"
)

// CopyUp fills the volume v with the image's content at target (Docker's copy of an
// image's content into a new volume): files, directories, symlinks, device nodes and
// fifos with their owners, modes, times and extended attributes; hard links become
// separate files. The volume's own directory takes the owner and mode of the image's.
// Nothing is copied when v is not empty, or when target is not a directory in the image.
//
// lower are the image's layer directories, top first. One layer is read as it is; more
// are assembled into a read-only overlay mounted in a private mount namespace of a
// locked thread, so nothing is ever mounted on the host. target is resolved inside the
// image root (openat2 RESOLVE_IN_ROOT): symlinks of the untrusted image cannot leave it.
func (s *Store) CopyUp(ctx context.Context, v *Volume, lower []string, target string) error {
	if len(lower) == 0 {
		return nil
	}
	if ValidateName(v.Name) != nil {
		return fmt.Errorf("copy-up: %w", ErrInvalidName)
	}
	// Two containers created at once with one new volume: one copies, the other then
	// finds the volume filled. The lock is the volume directory's own (not the store's:
	// a long copy does not hold up the other volume commands).
	vd, err := os.Open(s.volDir(v.Name))
	if err != nil {
		return fmt.Errorf("copy-up: %w", err)
	}
	defer vd.Close()
	if err := flockCtx(ctx, int(vd.Fd())); err != nil {
		return fmt.Errorf("copy-up: lock volume %s: %w", v.Name, err)
	}
	dst := filepath.Join(s.volDir(v.Name), "_data")
	mnt, err := os.MkdirTemp(s.dir, ".copyup-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	return snapshot.WithReadOnlyOverlay(lower, mnt, func(root string) error {
		return copyFromRoot(ctx, root, target, dst)
	})
}

// copyFromRoot copies root/target (resolved inside root) into the directory dst.
func copyFromRoot(ctx context.Context, root, target, dst string) error {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy-up: open image root: %w", err)
	}
	defer unix.Close(rfd)
	rel := strings.TrimPrefix(path.Clean("/"+target), "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	var sfd int
	for {
		sfd, err = unix.Openat2(rfd, rel, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing in the image there
	}
	if err != nil {
		return fmt.Errorf("copy-up: open %s in the image: %w", target, err)
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy-up: %w", err)
	}
	defer unix.Close(dfd)
	names, err := readNames(dfd)
	if err != nil {
		return fmt.Errorf("copy-up: %w", err)
	}
	if len(names) > 0 {
		return nil // not a new volume: its content stays
	}
	if err := copyDir(ctx, sfd, dfd); err != nil {
		return fmt.Errorf("copy-up of %s: %w", target, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	if err := copyXattrs(sfd, dfd); err != nil {
		return err
	}
	if err := unix.Fchown(dfd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("copy-up: chown: %w", err)
	}
	return unix.Fchmod(dfd, st.Mode&0o7777)
}

// readNames lists the directory dirfd (its offset is not moved).
func readNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

// copyDir copies the entries of the directory src into the directory dst, never
// following a symlink on either side (dst's entries are all created here).
func copyDir(ctx context.Context, src, dst int) error {
	names, err := readNames(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyEntry(ctx, src, dst, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func copyEntry(ctx context.Context, src, dst int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	mode := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			return err
		}
		sfd, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(sfd)
		dfd, err := unix.Openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		if err := copyDir(ctx, sfd, dfd); err != nil {
			return err
		}
		if err := copyXattrs(sfd, dfd); err != nil {
			return err
		}
		if err := unix.Fchown(dfd, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := unix.Fchmod(dfd, mode); err != nil {
			return err
		}
	case unix.S_IFREG:
		sfd, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		sf := os.NewFile(uintptr(sfd), name)
		defer sf.Close()
		dfd, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		df := os.NewFile(uintptr(dfd), name)
		defer df.Close()
		if _, err := io.Copy(df, sf); err != nil {
			return err
		}
		if err := copyXattrs(sfd, dfd); err != nil {
			return err
		}
		if err := unix.Fchown(dfd, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := unix.Fchmod(dfd, mode); err != nil { // after chown, which clears set-id bits
			return err
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(src, name, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), dst, name); err != nil {
			return err
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			return nil // an overlay whiteout of a layer read as it is
		}
		if err := unix.Mknodat(dst, name, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(dst, name, mode, 0); err != nil {
			return err
		}
	default:
		return nil
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(dst, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies the extended attributes of the file src to dst, but overlay's own
// (trusted.overlay.*); a file system without xattrs is not an error.
func copyXattrs(src, dst int) error {
	sz, err := unix.Flistxattr(src, nil)
	if err != nil || sz == 0 {
		if err == unix.ENOTSUP || err == nil {
			return nil
		}
		return err
	}
	buf := make([]byte, sz)
	sz, err = unix.Flistxattr(src, buf)
	if err != nil {
		return err
	}
	for _, attr := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if attr == "" || strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		n, err := unix.Fgetxattr(src, attr, nil)
		if err != nil {
			continue
		}
		val := make([]byte, n)
		if n, err = unix.Fgetxattr(src, attr, val); err != nil {
			continue
		}
		if err := unix.Fsetxattr(dst, attr, val[:n], 0); err != nil && err != unix.ENOTSUP && err != unix.EPERM {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}
