package snapshot

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Low-level, fd-relative file operations. Every path handed to the kernel here is either a
// single name component relative to a directory fd that was itself resolved beneath the
// snapshot root, or a multi-component path resolved with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from the root fd. Nothing is
// ever resolved from a joined absolute path string.

// resolveFlags: stay beneath the root, never follow any symlink (the layer is untrusted and a
// symlinked parent directory is refused rather than followed), no /proc magic links, no mount
// crossings.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// noOpenat2 is set once openat2 turned out to be missing (ENOSYS, kernel < 5.6, or a seccomp
// filter that refuses it). Then paths are walked one component at a time with
// openat(O_NOFOLLOW|O_DIRECTORY), which gives the same guarantees.
var noOpenat2 atomic.Bool

// openDirBeneath opens the directory rel (a clean, relative, "/"-separated path; "" or "." is
// the root itself) beneath rootfd without following any symlink.
func openDirBeneath(rootfd int, rel string) (int, error) {
	if rel == "" || rel == "." {
		return dupCloexec(rootfd)
	}
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(rootfd, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: resolveFlags,
		})
		for err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a concurrent rename elsewhere on the system made the kernel give up
			// a lockless lookup; retrying is what the man page asks for.
			fd, err = unix.Openat2(rootfd, rel, &unix.OpenHow{
				Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
				Resolve: resolveFlags,
			})
		}
		if err != unix.ENOSYS && err != unix.EPERM || err == nil {
			return fd, err
		}
		// ENOSYS, or EPERM from a seccomp filter: fall back for good.
		noOpenat2.Store(true)
	}
	return walkBeneath(rootfd, rel, false)
}

// walkBeneath opens rel component by component, each with O_NOFOLLOW|O_DIRECTORY relative to
// the previous one. With create, missing components are made (mode 0755).
func walkBeneath(rootfd int, rel string, create bool) (int, error) {
	cur, err := dupCloexec(rootfd)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			unix.Close(cur)
			return -1, unix.EXDEV
		}
		next, err := openDirAt(cur, c)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(cur, c, 0o755); err == nil || err == unix.EEXIST {
				next, err = openDirAt(cur, c)
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// openDirAt opens the single component name in dirfd as a directory, refusing symlinks.
func openDirAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
}

// futimens sets the times of an open file (utimensat with a NULL path).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// utimensat sets the times of name in dirfd without following a symlink.
func utimensat(dirfd int, name string, ts *[2]unix.Timespec) error {
	return unix.UtimesNanoAt(dirfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// noSetxattrat is set once setxattrat(2) (Linux 6.13) turned out to be missing.
var noSetxattrat atomic.Bool

// xattrArgs is struct xattr_args of setxattrat(2).
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// lsetxattrAt sets an xattr on name in dirfd without following a symlink, for entries that
// cannot be opened (symlinks, device nodes, fifos). It uses setxattrat(2) where the kernel has
// it, and otherwise an O_PATH descriptor of the entry itself reached through
// /proc/self/fd/N (a descriptor we opened, so nothing in the layer is resolved by name).
func lsetxattrAt(dirfd int, name, attr string, value []byte) error {
	if !noSetxattrat.Load() {
		pname, err := unix.BytePtrFromString(name)
		if err != nil {
			return err
		}
		pattr, err := unix.BytePtrFromString(attr)
		if err != nil {
			return err
		}
		args := xattrArgs{size: uint32(len(value))}
		if len(value) > 0 {
			args.value = uint64(uintptr(unsafe.Pointer(&value[0])))
		}
		_, _, e := unix.Syscall6(unix.SYS_SETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(pname)),
			unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(pattr)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
		if e != unix.ENOSYS {
			if e != 0 {
				return e
			}
			return nil
		}
		noSetxattrat.Store(true)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// setxattr (not lsetxattr): the magic link must be followed to reach the O_PATH file.
	return unix.Setxattr("/proc/self/fd/"+strconv.Itoa(fd), attr, value, 0)
}

// RemoveAllAt removes name in dirfd and, if it is a directory, everything below it, through
// descriptors and without following symlinks. Directories without write permission
// (possible when unpacking as non-root) are made writable first. A missing name is not an
// error.
func RemoveAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		// EPERM: unlink(2) of a directory on Linux.
		return err
	}
	fd, oerr := openDirAt(dirfd, name)
	if oerr == unix.EACCES {
		if unix.Fchmodat(dirfd, name, 0o700, 0) == nil {
			fd, oerr = openDirAt(dirfd, name)
		}
	}
	if oerr != nil {
		if oerr == unix.ENOTDIR || oerr == unix.ELOOP {
			return err // not a directory after all: report the unlink error
		}
		if oerr == unix.ENOENT {
			return nil
		}
		return oerr
	}
	if rerr := removeContents(fd); rerr != nil {
		unix.Close(fd)
		return rerr
	}
	unix.Close(fd)
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// removeContents empties the directory open at fd.
func removeContents(fd int) error {
	chmodded := false
	for {
		names, err := readDirNames(fd)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		for _, n := range names {
			err := RemoveAllAt(fd, n)
			if err == unix.EACCES && !chmodded {
				chmodded = true
				if unix.Fchmod(fd, 0o700) == nil {
					err = RemoveAllAt(fd, n)
				}
			}
			if err != nil {
				return fmt.Errorf("remove %s: %w", n, err)
			}
		}
	}
}

// readDirNames lists a directory open at fd (without "." and ".."), from its beginning.
func readDirNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// blockingComponent finds why rel cannot be opened as a directory beneath rootfd: the first
// component that is a symlink (isLink) or not a directory. ok is false when every component
// is a directory (or missing).
func blockingComponent(rootfd int, rel string) (prefix string, isLink, ok bool) {
	cur, err := dupCloexec(rootfd)
	if err != nil {
		return "", false, false
	}
	defer func() { unix.Close(cur) }()
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		var st unix.Stat_t
		if err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "", false, false
		}
		prefix = strings.Join(parts[:i+1], "/")
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			return prefix, true, true
		case unix.S_IFDIR:
		default:
			return prefix, false, true
		}
		next, err := openDirAt(cur, c)
		if err != nil {
			return "", false, false
		}
		unix.Close(cur)
		cur = next
	}
	return "", false, false
}
