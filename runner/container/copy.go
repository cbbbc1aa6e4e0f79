package container

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/berth-registry/berth/runner/changes"
	"github.com/berth-registry/berth/runner/snapshot"
	"golang.org/x/sys/unix"
)

// docker cp, the container side. Every path inside the container is resolved with
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) from a descriptor of the container's root,
// so a symlink of the container (absolute, or "../../..") always lands inside it
// (CVE-2018-15664). Below the resolved directory, trees are read and written with *at
// syscalls relative to directory descriptors and without following any symlink
// (O_NOFOLLOW, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): a symlink swapped in while a copy runs
// makes the copy fail; it never redirects a read or a write.

// PathStat describes a path of a container (docker's container path stat).
type PathStat struct {
	// Name is the path's base name; Path the path inside the container it resolved to
	// (after the final symlink when followed).
	Name string
	Path string
	Size int64
	Mode fs.FileMode
	// Mtime is the modification time.
	Mtime time.Time
	// LinkTarget is the target of a symlink (as stored), "" otherwise.
	LinkTarget string
}

// IsDir reports whether the path is a directory.
func (s *PathStat) IsDir() bool { return s.Mode.IsDir() }

// ErrPathNotFound is returned when a path does not exist in the container.
var ErrPathNotFound = errors.New("no such file or directory in the container")

// resolved is a path of the container's tree as a parent directory descriptor and a name
// in it ("." for the root itself).
type resolved struct {
	parent int
	name   string
	path   string // clean, absolute, in the container
	st     unix.Stat_t
}

func (r *resolved) close() { unix.Close(r.parent) }

// resolveIn resolves p inside root. The final component is a symlink unless follow, in
// which case it is followed (inside root, up to 40 times). A missing path is
// ErrPathNotFound.
func resolveIn(root int, p string, follow bool) (*resolved, error) {
	cur := path.Clean("/" + p)
	for range 40 {
		dir, base := path.Split(cur)
		if base == "" { // the root
			fd, err := unix.Dup(root)
			if err != nil {
				return nil, err
			}
			r := &resolved{parent: fd, name: ".", path: "/"}
			if err := unix.Fstat(root, &r.st); err != nil {
				unix.Close(fd)
				return nil, err
			}
			return r, nil
		}
		pfd, err := openInRoot(root, cleanRel(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return nil, fmt.Errorf("%s: %w", cur, ErrPathNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cur, err)
		}
		r := &resolved{parent: pfd, name: base, path: cur}
		if err := unix.Fstatat(pfd, base, &r.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(pfd)
			if err == unix.ENOENT || err == unix.ENOTDIR {
				return nil, fmt.Errorf("%s: %w", cur, ErrPathNotFound)
			}
			return nil, fmt.Errorf("%s: %w", cur, err)
		}
		if !follow || r.st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return r, nil
		}
		target, err := readlinkat(pfd, base)
		unix.Close(pfd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cur, err)
		}
		if path.IsAbs(target) {
			cur = path.Clean(target)
		} else {
			cur = path.Clean(dir + target)
		}
	}
	return nil, fmt.Errorf("%s: %w", p, unix.ELOOP)
}

func statOf(r *resolved, link string) *PathStat {
	mode := fs.FileMode(r.st.Mode & 0o777)
	switch r.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	return &PathStat{Name: path.Base(r.path), Path: r.path, Size: r.st.Size, Mode: mode,
		Mtime: time.Unix(r.st.Mtim.Sec, r.st.Mtim.Nsec), LinkTarget: link}
}

// StatPath describes p in the container (the final symlink followed when follow).
func (m *Manager) StatPath(ctx context.Context, nameOrID, p string, follow bool) (*PathStat, error) {
	var out *PathStat
	err := m.withRoot(nameOrID, false, func(c *Container, root int) error {
		r, err := resolveIn(root, p, follow)
		if err != nil {
			return err
		}
		defer r.close()
		link := ""
		if r.st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if link, err = readlinkat(r.parent, r.name); err != nil {
				return err
			}
		}
		out = statOf(r, link)
		return nil
	})
	return out, err
}

// ArchivePath writes a tar of p in the container to w (docker cp out): p itself (the
// final symlink followed when follow) named tarName, and for a directory everything below
// it as tarName/…, never following a symlink below p. tarName "." puts the directory's
// contents at the top.
func (m *Manager) ArchivePath(ctx context.Context, nameOrID, p string, follow bool, tarName string, w io.Writer) error {
	return m.withRoot(nameOrID, false, func(c *Container, root int) error {
		r, err := resolveIn(root, p, follow)
		if err != nil {
			return err
		}
		defer r.close()
		return writeTar(ctx, w, r.parent, r.name, tarName, &r.st)
	})
}

// WriteTree writes a tar of the entry name of the directory dirfd to w (see
// ArchivePath): the entry (not followed) as tarName, and a directory's tree below it.
func WriteTree(ctx context.Context, w io.Writer, dirfd int, name, tarName string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return writeTar(ctx, w, dirfd, name, tarName, &st)
}

func writeTar(ctx context.Context, w io.Writer, dirfd int, name, tarName string, st *unix.Stat_t) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	if err := newArchiver(ctx, tw).add(dirfd, name, tarName, st); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// archiver writes trees to a tar, through directory descriptors, following no symlink.
type archiver struct {
	ctx   context.Context
	tw    *tar.Writer
	tb    *changes.TarBuilder
	links map[[2]uint64]string
	n     int
}

func newArchiver(ctx context.Context, tw *tar.Writer) *archiver {
	return &archiver{ctx: ctx, tw: tw, tb: changes.NewTarBuilder(), links: map[[2]uint64]string{}}
}

// add writes the entry name of dirfd (stat st) as tarName ("" writes only what is below
// a directory, with names relative to it) and, for a directory, its tree.
func (a *archiver) add(dirfd int, name, tarName string, st *unix.Stat_t) error {
	if a.n++; a.n%256 == 0 {
		if err := a.ctx.Err(); err != nil {
			return err
		}
	}
	hdr, err := a.tb.Header(dirfd, name, st)
	if err != nil {
		return fmt.Errorf("%s: %w", tarName, err)
	}
	if hdr == nil {
		return nil // a socket
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if tarName != "" {
		hdr.Name = tarName
		if isDir && tarName != "." {
			hdr.Name += "/"
		}
		switch {
		case hdr.Typeflag == tar.TypeReg && st.Nlink > 1 && a.links[[2]uint64{st.Dev, st.Ino}] != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, a.links[[2]uint64{st.Dev, st.Ino}], 0
			err = a.tw.WriteHeader(hdr)
		case hdr.Typeflag == tar.TypeReg:
			err = a.tb.WriteFile(a.tw, dirfd, name, hdr)
			if errors.Is(err, changes.ErrChanged) {
				return nil // no longer a regular file: left out
			}
			if err == nil && st.Nlink > 1 {
				a.links[[2]uint64{st.Dev, st.Ino}] = tarName
			}
		default:
			err = a.tw.WriteHeader(hdr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tarName, err)
		}
	}
	if !isDir {
		return nil
	}
	cfd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", tarName, err)
	}
	defer unix.Close(cfd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(cfd, &sfs); err == nil && pseudoFS[int64(sfs.Type)] {
		return nil // /proc, /sys… of a running container: the directory only
	}
	names, err := readDirSorted(cfd)
	if err != nil {
		return fmt.Errorf("read %s: %w", tarName, err)
	}
	for _, n := range names {
		var cst unix.Stat_t
		if err := unix.Fstatat(cfd, n, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("%s: %w", joinName(tarName, n), err)
		}
		if err := a.add(cfd, n, joinName(tarName, n), &cst); err != nil {
			return err
		}
	}
	return nil
}

// pseudoFS are the kernel file systems whose contents a copy leaves out (a running
// container's /proc, /sys, cgroups…): their files are not data and some never end.
var pseudoFS = map[int64]bool{
	unix.PROC_SUPER_MAGIC: true, unix.SYSFS_MAGIC: true, unix.CGROUP_SUPER_MAGIC: true,
	unix.CGROUP2_SUPER_MAGIC: true, unix.DEVPTS_SUPER_MAGIC: true, 0x19800202: true, // mqueue
	unix.SECURITYFS_MAGIC: true, unix.DEBUGFS_MAGIC: true, unix.TRACEFS_MAGIC: true,
	unix.BPF_FS_MAGIC: true,
}

// readDirSorted reads the names of the open directory fd, sorted (fd stays open: the
// listing reads a duplicate of it).
func readDirSorted(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dup), "dir")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func joinName(dir, n string) string {
	switch dir {
	case "":
		return n
	case ".":
		return "./" + n
	}
	return dir + "/" + n
}

// OwnerMode says who owns what Extract creates.
type OwnerMode int

// Owner modes.
const (
	// OwnerCaller leaves new entries to the calling user (cp to the host).
	OwnerCaller OwnerMode = iota
	// OwnerRoot gives them to 0:0 (cp into a container, Docker's default).
	OwnerRoot
	// OwnerArchive gives them the tar's uid and gid (cp -a).
	OwnerArchive
)

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// Owner says who owns the new entries. With OwnerCaller the setuid and setgid bits of
	// files are dropped (as cp(1) does when it does not keep owners): a container cannot
	// make a setuid file of the caller.
	Owner OwnerMode
	// NoDevices skips character and block devices (a copy to the host: a device node of
	// the container's choosing could open a host device to anyone); Skipped is called for
	// each.
	NoDevices bool
	Skipped   func(name string)
}

// ExtractToDir extracts the tar r into the directory dir of the container (docker cp
// in), dir resolved inside the container's root (its symlinks followed inside it).
func (m *Manager) ExtractToDir(ctx context.Context, nameOrID, dir string, r io.Reader, o ExtractOptions) error {
	return m.withRoot(nameOrID, true, func(c *Container, root int) error {
		fd, err := openInRoot(root, cleanRel(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == unix.ENOENT {
			return fmt.Errorf("%s: %w", dir, ErrPathNotFound)
		}
		if err == unix.ENOTDIR {
			return fmt.Errorf("extraction point %q is not a directory", dir)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		defer unix.Close(fd)
		if err := checkWritable(root, fd); err != nil {
			return err
		}
		return Extract(ctx, r, fd, o)
	})
}

// checkWritable refuses an extraction into the directory fd when its mount is read-only,
// with Docker's messages: a read-only volume or bind mount, or a read-only root.
func checkWritable(root, fd int) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return err
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		return nil
	}
	var rst, dst unix.Statx_t
	if unix.Statx(root, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &rst) == nil &&
		unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &dst) == nil &&
		rst.Mnt_id != dst.Mnt_id {
		return errors.New("mounted volume is marked read-only")
	}
	return errors.New("container rootfs is marked read-only")
}

// Extract extracts the tar r below the directory destfd. Entries are created with *at
// syscalls relative to directory descriptors opened beneath destfd without following
// any symlink: a symlink on the way (one of the tar's, or one swapped in meanwhile) makes
// the entry fail, never redirects it. Refused: absolute names, names with ".." that leave
// destfd, hardlinks to outside. An existing entry is replaced unless both are directories
// (merged), as Docker does. Modes, times and xattrs are applied; owners per o.Owner.
func Extract(ctx context.Context, r io.Reader, destfd int, o ExtractOptions) error {
	x := &extractor{ctx: ctx, dest: destfd, o: o, buf: make([]byte, 256<<10)}
	tr := tar.NewReader(bufio.NewReaderSize(r, 256<<10))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
	}
	return x.finish()
}

type dirTimes struct {
	rel string
	ts  [2]unix.Timespec
}

type extractor struct {
	ctx  context.Context
	dest int
	o    ExtractOptions
	buf  []byte
	dirs []dirTimes
}

// cleanEntryName validates a tar entry name (or hardlink target) and cleans it.
func cleanEntryName(n string) (string, error) {
	if n == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(n, "/") {
		return "", errors.New("absolute path in archive: refused")
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("path leaves the destination: refused")
	}
	return c, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == 0 { // old tars' regular files (TypeRegA)
		hdr.Typeflag = tar.TypeReg
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	rel, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil // the destination itself: left as it is
	}
	if x.o.NoDevices && (hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) {
		if x.o.Skipped != nil {
			x.o.Skipped(rel)
		}
		return nil
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	pfd, err := x.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	isDir := hdr.Typeflag == tar.TypeDir
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if isDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return x.meta(pfd, base, rel, hdr)
		}
		if err := snapshot.RemoveAllAt(pfd, base); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
	} else if err != unix.ENOENT {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return err
		}
		return x.meta(pfd, base, rel, hdr)
	case tar.TypeReg:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		err = x.copyData(fd, r, hdr.Size)
		unix.Close(fd)
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		lrel, err := cleanEntryName(hdr.Linkname)
		if err != nil || lrel == "." {
			return fmt.Errorf("hardlink to %q: refused", hdr.Linkname)
		}
		ldir, lbase := path.Split(lrel)
		lfd, err := x.openDir(strings.TrimSuffix(ldir, "/"))
		if err != nil {
			return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
		}
		err = unix.Linkat(lfd, lbase, pfd, base, 0)
		unix.Close(lfd)
		if err != nil {
			return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
		}
		return nil // the link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			kind = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			kind = unix.S_IFBLK
		}
		if err := unix.Mknodat(pfd, base, kind|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
	}
	return x.meta(pfd, base, rel, hdr)
}

// meta applies owner, mode, xattrs and times to the new entry base of pfd (a directory's
// times at the end, after its contents).
func (x *extractor) meta(pfd int, base, rel string, hdr *tar.Header) error {
	switch x.o.Owner {
	case OwnerRoot:
		if err := unix.Fchownat(pfd, base, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	case OwnerArchive:
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			// Best effort, as Docker's untar: a file system without xattrs is no error.
			_ = unix.Lsetxattr(procFdPath(pfd)+"/"+base, name, []byte(v), 0)
		}
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if !hdr.AccessTime.IsZero() {
		ts[0] = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	}
	// chmod (after chown, which clears setuid bits) on a descriptor opened without
	// following: fchmodat would follow a symlink swapped in meanwhile.
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return errors.New("replaced by a symlink meanwhile")
	}
	mode := uint32(hdr.Mode & 0o7777)
	if x.o.Owner == OwnerCaller && hdr.Typeflag != tar.TypeDir {
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, procFdPath(fd), mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirs = append(x.dirs, dirTimes{rel, ts})
		return nil
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFdPath(fd), ts[:], 0)
}

func (x *extractor) copyData(fd int, r io.Reader, size int64) error {
	for size > 0 {
		chunk := x.buf
		if int64(len(chunk)) > size {
			chunk = chunk[:size]
		}
		n, err := io.ReadFull(r, chunk)
		if n > 0 {
			if err := snapshot.WriteAll(fd, chunk[:n]); err != nil {
				return err
			}
			size -= int64(n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// openDir opens rel beneath the destination without following symlinks.
func (x *extractor) openDir(rel string) (int, error) {
	if rel == "" || rel == "." {
		return unix.Openat(x.dest, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	fd, err := changes.OpenBeneath(x.dest, rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ELOOP || err == unix.EXDEV || err == unix.ENOTDIR {
		return -1, fmt.Errorf("%s: not a directory, or a symbolic link (never followed)", rel)
	}
	return fd, err
}

// mkdirAll opens the directory rel beneath the destination, making the missing ones
// (mode 0755), following no symlink.
func (x *extractor) mkdirAll(rel string) (int, error) {
	fd, err := x.openDir(rel)
	if err != unix.ENOENT {
		return fd, err
	}
	cur, err := x.openDir("")
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(cur, c, 0o755); err != nil && err != unix.EEXIST {
			unix.Close(cur)
			return -1, err
		}
		next, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return -1, fmt.Errorf("%s: not a directory, or a symbolic link (never followed)", rel)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

func (x *extractor) finish() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		fd, err := x.openDir(d.rel)
		if err != nil {
			continue // removed by a later entry
		}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, procFdPath(fd), d.ts[:], 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("set times of %s: %w", d.rel, err)
		}
	}
	return nil
}
