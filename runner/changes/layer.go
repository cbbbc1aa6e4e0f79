package changes

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OCI whiteout names.
const (
	WhiteoutPrefix = ".wh."
	WhiteoutOpaque = ".wh..wh..opq"
)

// WriteLayer writes the changes of the upper directory over the lower directories (top
// layer first) to w as an uncompressed OCI layer tar (PAX format): new and changed files,
// directories, symlinks, devices and fifos with their mode, owner, modification time (to
// the second) and xattrs (except overlayfs' own trusted.overlay.*); files hardlinked
// together inside the upper directory as tar hardlinks; deletions as ".wh.NAME" entries and
// opaque directories with a ".wh..wh..opq" entry. Entries come in a fixed order (parents
// first, names sorted), so the same upper directory always gives the same bytes. Sockets
// are left out, as tar cannot carry them. Nothing is written when there is no change but
// the tar's end marker.
func WriteLayer(ctx context.Context, w io.Writer, upper string, lower []string, o *Options) error {
	d, err := Scan(ctx, upper, lower, o)
	if err != nil {
		return err
	}
	return d.WriteLayer(ctx, w)
}

// HasChanges reports whether the upper directory changes anything of the lower ones.
func HasChanges(ctx context.Context, upper string, lower []string, o *Options) (bool, error) {
	d, err := Scan(ctx, upper, lower, o)
	if err != nil {
		return false, err
	}
	return !d.Empty(), nil
}

// Diff is an upper directory scanned against its lower directories: its changes, which
// can be listed (Changes) and written as a layer (WriteLayer) without a second scan.
type Diff struct {
	upper string
	ents  []entry
}

// Scan reads the changes of the upper directory over the lower directories (top layer
// first).
func Scan(ctx context.Context, upper string, lower []string, o *Options) (*Diff, error) {
	ents, err := scan(ctx, upper, lower, o)
	if err != nil {
		return nil, err
	}
	return &Diff{upper: upper, ents: ents}, nil
}

// Empty reports whether there is no change.
func (d *Diff) Empty() bool { return len(d.ents) == 0 }

// WriteLayer writes the changes as an uncompressed OCI layer tar (see the function
// WriteLayer). File contents and metadata are read now, from the upper directory.
func (d *Diff) WriteLayer(ctx context.Context, w io.Writer) error {
	return writeEntries(ctx, w, d.upper, d.ents)
}

func writeEntries(ctx context.Context, w io.Writer, upper string, ents []entry) error {
	root, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open upper directory: %w", &os.PathError{Op: "open", Path: upper, Err: err})
	}
	defer unix.Close(root)
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	tb := NewTarBuilder()
	dirs := dirCache{root: root, cur: -1}
	defer dirs.close()
	links := map[[2]uint64]string{}
	for i := range ents {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e := &ents[i]
		dir, base := path.Split(e.rel)
		dir = strings.TrimSuffix(dir, "/")
		pfd, err := dirs.open(dir)
		if err != nil {
			return fmt.Errorf("open /%s: %w", dir, err)
		}
		if e.whiteout {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: join(dir, WhiteoutPrefix+base), Mode: 0o600,
				Uid: int(e.st.Uid), Gid: int(e.st.Gid), ModTime: mtime(&e.st), Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr, err := tb.Header(pfd, base, &e.st)
		if err != nil {
			return fmt.Errorf("/%s: %w", e.rel, err)
		}
		if hdr == nil {
			continue // a socket
		}
		hdr.Name = e.rel
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		key := [2]uint64{e.st.Dev, e.st.Ino}
		if hdr.Typeflag == tar.TypeReg && e.st.Nlink > 1 {
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				continue
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := tb.WriteFile(tw, pfd, base, hdr); err != nil {
				if errors.Is(err, ErrChanged) || errors.Is(err, unix.ENOENT) {
					continue // replaced or removed meanwhile (a running container)
				}
				return fmt.Errorf("/%s: %w", e.rel, err)
			}
			if e.st.Nlink > 1 {
				links[key] = e.rel // the later links of the file point here
			}
		} else if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if e.opaque {
			wh := &tar.Header{Typeflag: tar.TypeReg, Name: e.rel + "/" + WhiteoutOpaque, Mode: hdr.Mode & 0o777,
				Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX}
			if err := tw.WriteHeader(wh); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// dirCache keeps the descriptor of the last directory entries were read from.
type dirCache struct {
	root int
	cur  int
	rel  string
}

func (d *dirCache) open(rel string) (int, error) {
	if rel == "" {
		return d.root, nil
	}
	if d.cur >= 0 && d.rel == rel {
		return d.cur, nil
	}
	fd, err := OpenBeneath(d.root, rel, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	d.close()
	d.cur, d.rel = fd, rel
	return fd, nil
}

func (d *dirCache) close() {
	if d.cur >= 0 {
		unix.Close(d.cur)
		d.cur = -1
	}
}

// OpenBeneath opens rel beneath the directory dirfd with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): no symlink on the way is followed, ".."
// cannot leave dirfd.
func OpenBeneath(dirfd int, rel string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

func mtime(st *unix.Stat_t) time.Time {
	return time.Unix(st.Mtim.Sec, 0)
}

// TarBuilder makes tar entries of files reached by directory descriptors, reusing its
// buffers. It is not safe for concurrent use.
type TarBuilder struct {
	buf   []byte
	names []byte
	link  []byte
	val   []byte
}

// NewTarBuilder returns a TarBuilder.
func NewTarBuilder() *TarBuilder {
	return &TarBuilder{buf: make([]byte, 256<<10), names: make([]byte, 1024), link: make([]byte, unix.PathMax), val: make([]byte, 4096)}
}

// Header describes the entry name of the directory dirfd (stat st, not followed) as a PAX
// tar header: type, mode (with setuid/setgid/sticky), owner, modification time (to the
// second), size, symlink target, device numbers and xattrs (but trusted.overlay.*). Name
// is left for the caller. It returns nil for a socket.
func (b *TarBuilder) Header(dirfd int, name string, st *unix.Stat_t) (*tar.Header, error) {
	hdr := &tar.Header{
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime(st),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		n, err := unix.Readlinkat(dirfd, name, b.link)
		if err != nil {
			return nil, fmt.Errorf("readlink: %w", err)
		}
		hdr.Linkname = string(b.link[:n])
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, nil
	}
	if err := b.xattrs(dirfd, name, hdr); err != nil {
		return nil, err
	}
	return hdr, nil
}

// xattrs adds the entry's extended attributes as SCHILY.xattr records.
func (b *TarBuilder) xattrs(dirfd int, name string, hdr *tar.Header) error {
	p := "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
	n, err := unix.Llistxattr(p, b.names)
	if err == unix.ERANGE {
		sz, err2 := unix.Llistxattr(p, nil)
		if err2 != nil {
			return fmt.Errorf("list xattrs: %w", err2)
		}
		b.names = make([]byte, sz*2)
		n, err = unix.Llistxattr(p, b.names)
	}
	if err == unix.ENOTSUP || err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, k := range strings.Split(string(b.names[:n]), "\x00") {
		if k == "" || strings.HasPrefix(k, overlayPrefix) {
			continue
		}
		v, err := b.getxattr(p, k)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", k, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	return nil
}

func (b *TarBuilder) getxattr(p, k string) (string, error) {
	for {
		n, err := unix.Lgetxattr(p, k, b.val)
		if err == unix.ERANGE {
			sz, err := unix.Lgetxattr(p, k, nil)
			if err != nil {
				return "", err
			}
			b.val = make([]byte, sz*2)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(b.val[:n]), nil
	}
}

// WriteFile writes hdr and the content of the regular file name of the directory dirfd
// (opened without following a symlink). Exactly hdr.Size bytes are written: a file that
// shrank meanwhile is padded with zeros, one that grew is cut.
func (b *TarBuilder) WriteFile(tw *tar.Writer, dirfd int, name string, hdr *tar.Header) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP {
			return ErrChanged
		}
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ErrChanged
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	left := hdr.Size
	for left > 0 {
		chunk := b.buf
		if int64(len(chunk)) > left {
			chunk = chunk[:left]
		}
		n, err := unix.Read(fd, chunk)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 { // shrank: pad
			clear(chunk)
			n = len(chunk)
		}
		if _, err := tw.Write(chunk[:n]); err != nil {
			return err
		}
		left -= int64(n)
	}
	return nil
}
