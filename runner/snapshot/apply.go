package snapshot

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// ApplyOptions tunes Apply.
type ApplyOptions struct {
	// AllowDevices permits character and block device nodes in the layer. Docker allows them
	// when running as root; rootless unpacking must refuse them. Whiteouts (the 0/0 character
	// devices that Apply makes from ".wh." entries) are created either way.
	AllowDevices bool

	// MaxBytes, if positive, bounds the uncompressed tar stream (headers, file contents and
	// padding). A layer larger than that is refused before the entry that would cross it is
	// written: a bound on tar bombs.
	MaxBytes int64

	// IgnoreChownErrors turns EPERM/EINVAL from chown into a skipped step instead of an
	// error: for unpacking without CAP_CHOWN (rootless, without a user namespace mapping
	// every ID of the layer). As root, ownership is always applied as it is in the layer.
	IgnoreChownErrors bool

	// ExpectDiffID, if set, makes ApplyLayer fail with ErrDiffIDMismatch when the sha256 of
	// the uncompressed stream differs.
	ExpectDiffID digest.Digest
}

// ApplyStats counts what Apply did.
type ApplyStats struct {
	Entries    int64 // tar entries processed, whiteouts included
	Files      int64 // regular files written
	Dirs       int64 // directories created or merged
	Symlinks   int64
	Hardlinks  int64
	Devices    int64 // character and block devices (whiteouts excluded)
	Fifos      int64
	Whiteouts  int64 // ".wh.<name>" entries turned into 0/0 character devices
	Opaques    int64 // directories marked trusted.overlay.opaque=y
	Bytes      int64 // regular file content written
	TarBytes   int64 // size of the uncompressed stream read, end padding included
	XattrsSet  int64
	XattrsSkip int64 // xattrs the filesystem refused (security.*, or any when unsupported) or trusted.overlay.* from the layer
}

// Errors returned (wrapped) by Apply.
var (
	// ErrUnsafeEntry marks an entry refused for safety: a path escaping the root, a write
	// through a symlink, a hardlink to outside, a malformed whiteout, a disallowed device.
	ErrUnsafeEntry = errors.New("refused as unsafe")
	// ErrTooLarge is returned when the stream exceeds ApplyOptions.MaxBytes.
	ErrTooLarge = errors.New("layer exceeds the size limit")
	// ErrDiffIDMismatch is returned by ApplyLayer when ApplyOptions.ExpectDiffID differs.
	ErrDiffIDMismatch = errors.New("layer diff ID mismatch")
)

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"

	opaqueXattr = "trusted.overlay.opaque"

	pathMax = 4096 // PATH_MAX, bytes including the terminating NUL
	nameMax = 255  // NAME_MAX

	copyBufSize = 1 << 20
)

// ApplyLayer applies an uncompressed layer tar like Apply and returns its DiffID: the sha256
// of the whole uncompressed stream, computed while it is applied (no second pass, no
// temporary file). The stream is read to its end, padding after the tar end marker included.
// The caller compares the DiffID with the image config's rootfs.diff_ids (or sets
// opts.ExpectDiffID) before committing the snapshot.
func ApplyLayer(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (digest.Digest, ApplyStats, error) {
	// The hash runs in parallel with unpacking where that helps: in the read-ahead goroutine
	// (Decompress' own for zstd, or one started here for an uncompressed stream). Inflating
	// gzip costs more than unpacking, so there the hash runs on the unpacking side instead.
	h := sha256.New()
	var stats ApplyStats
	var err error
	ra, ok := r.(*readAhead)
	switch {
	case ok && ra.heavy:
		stats, err = apply(ctx, dir, ra, opts, h)
	case ok && ra.hashWith(h):
		stats, err = apply(ctx, dir, ra, opts, nil)
	default:
		ra = newReadAhead(r, nil)
		ra.hashWith(h)
		defer ra.Close()
		stats, err = apply(ctx, dir, ra, opts, nil)
	}
	if err != nil {
		return "", stats, err
	}
	d := digest.NewDigest(digest.SHA256, h)
	if opts.ExpectDiffID != "" && d != opts.ExpectDiffID {
		return d, stats, fmt.Errorf("%w: layer has %s, expected %s", ErrDiffIDMismatch, d, opts.ExpectDiffID)
	}
	return d, stats, nil
}

// Apply streams a layer tar (already decompressed) into dir, an empty directory that is to
// become one overlayfs lower layer, converting OCI whiteouts to overlayfs ones:
// ".wh.<name>" becomes a 0/0 character device <name>, ".wh..wh..opq" the xattr
// trusted.overlay.opaque=y on its directory.
//
// Regular files, directories, symlinks, hardlinks (within the layer), devices, fifos,
// ownership (uid/gid as they are), modes including setuid/setgid/sticky, modification times
// (directories' after their contents) and xattrs (PAX SCHILY.xattr.*) are kept. Entries may
// come in any order and repeat: a later entry replaces an earlier one, except that a
// directory over a directory merges (Docker's rules). The root entry "./" is ignored, as
// Docker does.
//
// Every name is resolved beneath dir with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS) and the *at syscalls on directory descriptors, never by joining
// strings. Refused, with an error naming the entry (wrapping ErrUnsafeEntry): ".." escaping
// the root (a leading "/" is dropped, as Docker does), writing through a symlink, a symlink
// whose relative target climbs above the root (Docker refuses these too), a hardlink to
// outside the layer or through a symlink, whiteouts of "", "." or "..", ".wh..wh." entries
// other than the opaque marker, ".wh." directory components, devices unless
// opts.AllowDevices, unknown entry types, names longer than PATH_MAX or with a component
// longer than NAME_MAX. On error dir is left half-written (never anything outside it): the
// caller removes it.
//
// Nothing is fsynced: durability, when wanted, is one syncfs(2) by the caller (see
// StoreOptions.Sync), not one fsync per file.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (ApplyStats, error) {
	return apply(ctx, dir, r, opts, nil)
}

func apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions, h hash.Hash) (ApplyStats, error) {
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return ApplyStats{}, fmt.Errorf("open snapshot dir: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	a := newApplier(ctx, rootfd, opts)
	defer a.close()

	cr := &countingReader{r: r, max: opts.MaxBytes, h: h}
	br := bufio.NewReaderSize(cr, 256<<10)
	tr := tar.NewReader(br)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return a.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			a.stats.TarBytes = cr.n
			if a.stats.Entries == 0 {
				return a.stats, fmt.Errorf("read layer tar: %w", err)
			}
			return a.stats, fmt.Errorf("read layer tar after entry %s (%d entries): %w", shortName(last), a.stats.Entries, err)
		}
		last = hdr.Name
		a.stats.Entries++
		if err := a.entry(hdr, tr); err != nil {
			a.stats.TarBytes = cr.n
			return a.stats, fmt.Errorf("layer entry %s: %w", shortName(hdr.Name), err)
		}
	}
	// Read the stream to its end: the DiffID covers the padding after the end marker, and
	// the decompressor checks its trailer (gzip CRC) only there.
	if _, err := io.CopyBuffer(io.Discard, br, make([]byte, 64<<10)); err != nil {
		a.stats.TarBytes = cr.n
		return a.stats, fmt.Errorf("read layer tar after its end marker: %w", err)
	}
	a.stats.TarBytes = cr.n
	if err := a.finish(); err != nil {
		return a.stats, err
	}
	return a.stats, nil
}

// countingReader counts (and optionally hashes) what passes and enforces MaxBytes.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
	h   hash.Hash
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.max > 0 {
		if c.n >= c.max {
			// Allow reading up to max; one byte more is the error.
			var one [1]byte
			n, err := c.r.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("%w: more than %d bytes uncompressed", ErrTooLarge, c.max)
			}
			return 0, err
		}
		if rem := c.max - c.n; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil && n > 0 {
		c.h.Write(p[:n])
	}
	return n, err
}

// dirHandle is an open directory of the snapshot, with the group a new entry in it gets.
type dirHandle struct {
	fd     int
	newGid int // gid given to new entries (the directory's own gid when it is setgid)
}

type pendingDir struct {
	atime, mtime time.Time
	mode         uint32
	chmod        bool // mode could not be applied yet (no owner rwx while unpacking)
}

type applier struct {
	ctx  context.Context
	opts ApplyOptions
	root *dirHandle
	euid int
	egid int

	// Parent directory cache: tar streams list a directory's entries together, so most
	// entries reuse the descriptor of the previous one's parent.
	dirs map[string]*dirHandle

	pending   map[string]*pendingDir // directories whose times (and maybe mode) are set at the end
	whiteouts map[string]bool        // whiteout devices made by this layer
	buf       []byte
	stats     ApplyStats
}

const dirCacheMax = 256

func newApplier(ctx context.Context, rootfd int, opts ApplyOptions) *applier {
	a := &applier{
		ctx:       ctx,
		opts:      opts,
		euid:      os.Geteuid(),
		egid:      os.Getegid(),
		dirs:      make(map[string]*dirHandle),
		pending:   make(map[string]*pendingDir),
		whiteouts: make(map[string]bool),
		buf:       make([]byte, copyBufSize),
	}
	a.root = &dirHandle{fd: rootfd, newGid: a.gidFor(rootfd)}
	return a
}

func (a *applier) close() {
	a.dropDirs()
	unix.Close(a.root.fd)
}

func (a *applier) dropDirs() {
	for k, d := range a.dirs {
		unix.Close(d.fd)
		delete(a.dirs, k)
	}
}

// gidFor returns the gid a new entry in the directory fd gets.
func (a *applier) gidFor(fd int) int {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISGID != 0 {
		return int(st.Gid)
	}
	return a.egid
}

// unsafeErr builds an error wrapping ErrUnsafeEntry.
func unsafeErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafeEntry, fmt.Sprintf(format, args...))
}

// cleanName turns a tar path into a clean relative path: a leading "/" is dropped (Docker
// does the same), "." and ".." are resolved lexically, and a ".." that climbs above the root
// is refused. "" means the root itself.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", unsafeErr("empty name")
	}
	if len(name) >= pathMax {
		return "", unsafeErr("path is %d bytes long (PATH_MAX is %d)", len(name), pathMax)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", unsafeErr("path contains a NUL byte")
	}
	rel := strings.TrimLeft(name, "/")
	parts := make([]string, 0, 8)
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", unsafeErr("path climbs out of the layer root with \"..\"")
			}
			parts = parts[:len(parts)-1]
		default:
			if len(c) > nameMax {
				return "", unsafeErr("path component of %d bytes (NAME_MAX is %d)", len(c), nameMax)
			}
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/"), nil
}

// shortName quotes a name for an error message, shortening pathologically long ones.
func shortName(n string) string {
	const max = 160
	if len(n) <= max {
		return fmt.Sprintf("%q", n)
	}
	return fmt.Sprintf("%q… (%d bytes)", n[:max], len(n))
}

// splitPath splits a clean relative path into its directory ("" for the root) and base.
func splitPath(p string) (string, string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// parent returns a handle on directory p (clean, relative; "" is the root), creating missing
// components (mode 0755, as Docker does for parents not listed in the layer).
func (a *applier) parent(p string) (*dirHandle, error) {
	if p == "" {
		return a.root, nil
	}
	if d, ok := a.dirs[p]; ok {
		return d, nil
	}
	fd, err := openDirBeneath(a.root.fd, p)
	if err == unix.ENOENT {
		// Walk from the deepest existing ancestor, creating the rest.
		fd, err = walkBeneath(a.root.fd, p, true)
	}
	if err != nil {
		return nil, a.parentErr(p, err)
	}
	d := &dirHandle{fd: fd, newGid: a.gidFor(fd)}
	a.cacheDir(p, d)
	return d, nil
}

func (a *applier) cacheDir(p string, d *dirHandle) {
	if old, ok := a.dirs[p]; ok {
		unix.Close(old.fd)
	}
	if len(a.dirs) >= dirCacheMax {
		a.dropDirs()
	}
	a.dirs[p] = d
}

func (a *applier) parentErr(p string, err error) error {
	if err == unix.ENOTDIR || err == unix.ELOOP {
		if comp, isLink, ok := blockingComponent(a.root.fd, p); ok {
			if isLink {
				return unsafeErr("path goes through %q, a symlink", comp)
			}
			return fmt.Errorf("parent %q is not a directory: %w", comp, unix.ENOTDIR)
		}
	}
	switch err {
	case unix.ELOOP:
		return unsafeErr("parent directory %q is, or goes through, a symlink", p)
	case unix.EXDEV:
		return unsafeErr("parent directory %q escapes the layer root", p)
	case unix.ENOTDIR:
		return fmt.Errorf("parent %q is not a directory: %w", p, err)
	}
	return fmt.Errorf("open parent directory %q: %w", p, err)
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return nil // "./": Docker ignores it too
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			return nil
		}
		return unsafeErr("entry of type %q names the layer root", hdr.Typeflag)
	}
	dir, base := splitPath(name)
	if strings.Contains(dir+"/", "/"+whiteoutPrefix) || strings.HasPrefix(dir, whiteoutPrefix) {
		return unsafeErr("directory component with the reserved whiteout prefix %q", whiteoutPrefix)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base, hdr)
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return a.regular(name, dir, base, hdr, tr)
	case tar.TypeDir:
		return a.directory(name, dir, base, hdr)
	case tar.TypeSymlink:
		return a.symlink(name, dir, base, hdr)
	case tar.TypeLink:
		return a.hardlink(name, dir, base, hdr)
	case tar.TypeChar, tar.TypeBlock:
		if !a.opts.AllowDevices {
			return unsafeErr("device node (%d:%d) not allowed here (AllowDevices is off)", hdr.Devmajor, hdr.Devminor)
		}
		return a.special(name, dir, base, hdr)
	case tar.TypeFifo:
		return a.special(name, dir, base, hdr)
	case tar.TypeXGlobalHeader:
		return nil // PAX global header: ignored, as Docker does
	default:
		return unsafeErr("unsupported entry type %q", string(rune(hdr.Typeflag)))
	}
}

// ---------------------------------------------------------------------------------------------
// whiteouts

func (a *applier) whiteout(dir, base string, hdr *tar.Header) error {
	if base == whiteoutOpaque {
		d, err := a.parent(dir)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(d.fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %q opaque: set %s: %w", dirOrRoot(dir), opaqueXattr, err)
		}
		a.stats.Opaques++
		return nil
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return unsafeErr("unsupported whiteout metadata entry %q (only %q is allowed)", base, whiteoutOpaque)
	}
	target := base[len(whiteoutPrefix):]
	switch target {
	case "", ".", "..":
		return unsafeErr("whiteout of %q", target)
	}
	if strings.Contains(target, "/") { // cannot happen after splitPath; kept as a guard
		return unsafeErr("whiteout name %q contains a slash", target)
	}
	d, err := a.parent(dir)
	if err != nil {
		return err
	}
	full := joinRel(dir, target)
	// Remembered whatever happens to the name later in this layer: a directory made there
	// must hide the lower layers' one (opaque).
	a.whiteouts[full] = true
	err = unix.Mknodat(d.fd, target, unix.S_IFCHR, 0)
	if err == unix.EEXIST {
		// Whiteouts only hide lower layers: an entry of this layer with the same name stays.
		// A directory of this layer must still hide the lower one's contents: opaque.
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("whiteout %q: %w", full, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := a.markOpaqueAt(d.fd, target); err != nil {
				return err
			}
		}
		a.stats.Whiteouts++
		return nil
	}
	if err != nil {
		return fmt.Errorf("create whiteout device for %q: %w", full, err)
	}
	a.stats.Whiteouts++
	// Docker gives the whiteout the entry's owner.
	return a.chownAt(d, target, hdr)
}

func (a *applier) markOpaqueAt(dirfd int, name string) error {
	fd, err := openDirAt(dirfd, name)
	if err != nil {
		return fmt.Errorf("open %q to mark it opaque: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("mark %q opaque: set %s: %w", name, opaqueXattr, err)
	}
	a.stats.Opaques++
	return nil
}

func dirOrRoot(d string) string {
	if d == "" {
		return "."
	}
	return d
}

func joinRel(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// ---------------------------------------------------------------------------------------------
// replacing existing entries

// makeRoom handles EEXIST when creating name in d: a later entry replaces an earlier one,
// so what is there is removed (recursively for a directory).
func (a *applier) makeRoom(d *dirHandle, full, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		a.forgetDirs(full)
		if err := RemoveAllAt(d.fd, name); err != nil {
			return fmt.Errorf("replace directory %q: %w", full, err)
		}
		return nil
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("replace %q: %w", full, err)
	}
	return nil
}

// forgetDirs drops cached descriptors and pending metadata at or below the directory p,
// which is about to be removed.
func (a *applier) forgetDirs(p string) {
	prefix := p + "/"
	for k, d := range a.dirs {
		if k == p || strings.HasPrefix(k, prefix) {
			unix.Close(d.fd)
			delete(a.dirs, k)
		}
	}
	for k := range a.pending {
		if k == p || strings.HasPrefix(k, prefix) {
			delete(a.pending, k)
		}
	}
	for k := range a.whiteouts {
		if strings.HasPrefix(k, prefix) {
			delete(a.whiteouts, k)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// entry types

func (a *applier) regular(full, dir, base string, hdr *tar.Header, tr *tar.Reader) error {
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	if a.opts.MaxBytes > 0 && a.stats.Bytes+hdr.Size > a.opts.MaxBytes {
		return fmt.Errorf("%w: file of %d bytes after %d bytes written (limit %d)", ErrTooLarge, hdr.Size, a.stats.Bytes, a.opts.MaxBytes)
	}
	d, err := a.parent(dir)
	if err != nil {
		return err
	}
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(d.fd, base, flags, 0o600)
	if err == unix.EEXIST {
		if err = a.makeRoom(d, full, base); err != nil {
			return err
		}
		fd, err = unix.Openat(d.fd, base, flags, 0o600)
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	werr := a.copyData(fd, tr, hdr.Size)
	if werr == nil {
		werr = a.setMeta(fd, d, base, hdr, true)
	}
	cerr := unix.Close(fd)
	if werr != nil {
		return werr
	}
	if cerr != nil {
		return fmt.Errorf("close: %w", cerr)
	}
	a.stats.Files++
	return nil
}

func (a *applier) copyData(fd int, tr *tar.Reader, size int64) error {
	remaining := size
	for remaining > 0 {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		chunk := a.buf
		if int64(len(chunk)) > remaining {
			chunk = chunk[:remaining]
		}
		n, err := io.ReadFull(tr, chunk)
		if n > 0 {
			if werr := WriteAll(fd, chunk[:n]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			remaining -= int64(n)
			a.stats.Bytes += int64(n)
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return fmt.Errorf("read file contents: %w", io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("read file contents: %w", err)
		}
	}
	return nil
}

// WriteAll writes all of b to the file descriptor fd (retrying short writes and EINTR).
func WriteAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (a *applier) directory(full, dir, base string, hdr *tar.Header) error {
	d, err := a.parent(dir)
	if err != nil {
		return err
	}
	err = unix.Mkdirat(d.fd, base, 0o700)
	created := err == nil
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err = unix.Fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat existing: %w", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err = a.makeRoom(d, full, base); err != nil {
				return err
			}
			err = unix.Mkdirat(d.fd, base, 0o700)
			created = err == nil
		} else {
			err = nil // directory over directory: merge
		}
	}
	// A whiteout of this layer, then a directory of the same name: "remove the lower one,
	// add this one", so the directory must not show the lower one's contents.
	opaque := created && a.whiteouts[full]
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := openDirAt(d.fd, base)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	if err := a.setMeta(fd, d, base, hdr, false); err != nil {
		unix.Close(fd)
		return err
	}
	if opaque {
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("mark opaque after whiteout: %w", err)
		}
		a.stats.Opaques++
	}
	mode := tarMode(hdr)
	a.cacheDir(full, &dirHandle{fd: fd, newGid: a.gidFor(fd)})
	a.pending[full] = &pendingDir{
		atime: accessTime(hdr), mtime: modTime(hdr), mode: mode,
		chmod: mode&0o700 != 0o700,
	}
	a.stats.Dirs++
	return nil
}

func (a *applier) symlink(full, dir, base string, hdr *tar.Header) error {
	target := hdr.Linkname
	if target == "" {
		return unsafeErr("symlink with an empty target")
	}
	if len(target) >= pathMax || strings.IndexByte(target, 0) >= 0 {
		return unsafeErr("symlink target too long or with a NUL byte")
	}
	if !path.IsAbs(target) && climbsOut(dir, target) {
		// Same rule as Docker: a relative target above the root is a breakout attempt.
		return unsafeErr("symlink %q -> %q points outside the layer root", full, target)
	}
	d, err := a.parent(dir)
	if err != nil {
		return err
	}
	err = unix.Symlinkat(target, d.fd, base)
	if err == unix.EEXIST {
		if err = a.makeRoom(d, full, base); err != nil {
			return err
		}
		err = unix.Symlinkat(target, d.fd, base)
	}
	if err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	if err := a.chownAt(d, base, hdr); err != nil {
		return err
	}
	if err := a.xattrsAt(d.fd, base, hdr); err != nil {
		return err
	}
	ts := timespecs(hdr)
	if err := utimensat(d.fd, base, &ts); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	a.stats.Symlinks++
	return nil
}

// climbsOut reports whether the relative symlink target, resolved lexically from directory
// dir (relative to the root), goes above the root.
func climbsOut(dir, target string) bool {
	depth := 0
	if dir != "" {
		depth = strings.Count(dir, "/") + 1
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func (a *applier) hardlink(full, dir, base string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return unsafeErr("hardlink with an empty target")
	}
	tname, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", shortName(hdr.Linkname), err)
	}
	if tname == "" {
		return unsafeErr("hardlink %q to the layer root", full)
	}
	tdir, tbase := splitPath(tname)
	d, err := a.parent(dir)
	if err != nil {
		return err
	}
	tdfd := d.fd
	switch {
	case tdir == dir:
	case tdir == "":
		tdfd = a.root.fd
	default:
		// Our own descriptor, not a cached one: making room for the link below may remove
		// (and uncache) a directory. The target's parents are not created: it must already
		// exist in this layer.
		fd, err := openDirBeneath(a.root.fd, tdir)
		if err != nil {
			if err == unix.ENOENT {
				return unsafeErr("hardlink %q -> %q: target is not in this layer", full, hdr.Linkname)
			}
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, a.parentErr(tdir, err))
		}
		defer unix.Close(fd)
		tdfd = fd
	}
	err = unix.Linkat(tdfd, tbase, d.fd, base, 0)
	if err == unix.EEXIST {
		var st1, st2 unix.Stat_t
		if unix.Fstatat(tdfd, tbase, &st1, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			unix.Fstatat(d.fd, base, &st2, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			st1.Dev == st2.Dev && st1.Ino == st2.Ino {
			err = nil // already that file (a repeated entry, or a link to itself)
		} else {
			if err = a.makeRoom(d, full, base); err != nil {
				return err
			}
			err = unix.Linkat(tdfd, tbase, d.fd, base, 0)
		}
	}
	switch err {
	case nil:
	case unix.ENOENT:
		return unsafeErr("hardlink %q -> %q: target is not in this layer", full, hdr.Linkname)
	case unix.EPERM:
		return fmt.Errorf("hardlink %q -> %q: target is a directory or not linkable: %w", full, hdr.Linkname, err)
	default:
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
	a.stats.Hardlinks++
	// Docker applies the link entry's owner, mode and times to the (shared) inode unless the
	// target is a symlink.
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat hardlink: %w", err)
	}
	if err := checkIDs(hdr); err != nil {
		return err
	}
	// Unconditionally: the inode is the target's, whose owner may differ from the default.
	if err := unix.Fchownat(d.fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !a.chownIgnorable(err) {
		return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	if err := unix.Fchmodat(d.fd, base, tarMode(hdr), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := a.xattrsAt(d.fd, base, hdr); err != nil {
		return err
	}
	ts := timespecs(hdr)
	if err := utimensat(d.fd, base, &ts); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// special creates devices and fifos.
func (a *applier) special(full, dir, base string, hdr *tar.Header) error {
	var mode uint32
	dev := 0
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	case tar.TypeBlock:
		mode = unix.S_IFBLK
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	case tar.TypeFifo:
		mode = unix.S_IFIFO
	}
	if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 0xfffff || hdr.Devminor > 0xfffff {
		return unsafeErr("device numbers %d:%d out of range", hdr.Devmajor, hdr.Devminor)
	}
	d, err := a.parent(dir)
	if err != nil {
		return err
	}
	err = unix.Mknodat(d.fd, base, mode|0o600, dev)
	if err == unix.EEXIST {
		if err = a.makeRoom(d, full, base); err != nil {
			return err
		}
		err = unix.Mknodat(d.fd, base, mode|0o600, dev)
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := a.chownAt(d, base, hdr); err != nil {
		return err
	}
	// base was just created by us in a directory nobody else writes to: no symlink to follow.
	if err := unix.Fchmodat(d.fd, base, tarMode(hdr), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := a.xattrsAt(d.fd, base, hdr); err != nil {
		return err
	}
	ts := timespecs(hdr)
	if err := utimensat(d.fd, base, &ts); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	if hdr.Typeflag == tar.TypeFifo {
		a.stats.Fifos++
	} else {
		a.stats.Devices++
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// metadata

func tarMode(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o7777 // the tar bits for setuid/setgid/sticky are Linux's
}

// boundTime keeps a time in the range Docker uses (unix epoch when outside).
func boundTime(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) || t.After(time.Unix(0, 1<<63-1)) {
		return time.Unix(0, 0)
	}
	return t
}

func modTime(hdr *tar.Header) time.Time { return boundTime(hdr.ModTime) }

func accessTime(hdr *tar.Header) time.Time {
	at := hdr.AccessTime
	if at.Before(hdr.ModTime) {
		at = hdr.ModTime
	}
	return boundTime(at)
}

func toTimespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func timespecs(hdr *tar.Header) [2]unix.Timespec {
	return [2]unix.Timespec{toTimespec(accessTime(hdr)), toTimespec(modTime(hdr))}
}

func checkIDs(hdr *tar.Header) error {
	if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid >= 1<<32-1 || hdr.Gid >= 1<<32-1 {
		return unsafeErr("uid/gid %d/%d out of range", hdr.Uid, hdr.Gid)
	}
	return nil
}

// setMeta applies owner, mode, xattrs and (for files) times to an open file or directory.
// Directories get their times, and a mode without owner rwx, at the end (finish).
func (a *applier) setMeta(fd int, parent *dirHandle, base string, hdr *tar.Header, isFile bool) error {
	if err := checkIDs(hdr); err != nil {
		return err
	}
	// chown first: it clears setuid/setgid, which chmod then sets.
	if hdr.Uid != a.euid || hdr.Gid != parent.newGid || !isFile {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil && !a.chownIgnorable(err) {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	mode := tarMode(hdr)
	if isFile || mode&0o700 == 0o700 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("chmod %04o: %w", mode, err)
		}
	}
	if err := a.xattrs(fd, hdr); err != nil {
		return err
	}
	if isFile {
		ts := timespecs(hdr)
		if err := futimens(fd, &ts); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
	}
	return nil
}

func (a *applier) chownIgnorable(err error) bool {
	return a.opts.IgnoreChownErrors && (err == unix.EPERM || err == unix.EINVAL)
}

func (a *applier) chownAt(d *dirHandle, name string, hdr *tar.Header) error {
	if err := checkIDs(hdr); err != nil {
		return err
	}
	if hdr.Uid == a.euid && hdr.Gid == d.newGid {
		return nil
	}
	if err := unix.Fchownat(d.fd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !a.chownIgnorable(err) {
		return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	return nil
}

const paxXattrPrefix = "SCHILY.xattr."

// xattrKeys lists the entry's xattrs in a stable order.
func xattrKeys(hdr *tar.Header) []string {
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) && len(k) > len(paxXattrPrefix) {
			keys = append(keys, k[len(paxXattrPrefix):])
		}
	}
	if len(keys) > 1 {
		sort.Strings(keys)
	}
	return keys
}

func (a *applier) xattrs(fd int, hdr *tar.Header) error {
	if len(hdr.PAXRecords) == 0 {
		return nil
	}
	for _, k := range xattrKeys(hdr) {
		if a.skipXattr(k) {
			continue
		}
		err := unix.Fsetxattr(fd, k, []byte(hdr.PAXRecords[paxXattrPrefix+k]), 0)
		if err := a.xattrResult(k, err); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) xattrsAt(dirfd int, name string, hdr *tar.Header) error {
	if len(hdr.PAXRecords) == 0 {
		return nil
	}
	for _, k := range xattrKeys(hdr) {
		if a.skipXattr(k) {
			continue
		}
		err := lsetxattrAt(dirfd, name, k, []byte(hdr.PAXRecords[paxXattrPrefix+k]))
		if err := a.xattrResult(k, err); err != nil {
			return err
		}
	}
	return nil
}

// skipXattr drops overlayfs' own xattrs from the layer: they are made only by whiteout
// conversion, never taken from untrusted input (trusted.overlay.redirect and friends would
// change how the overlay resolves names).
func (a *applier) skipXattr(k string) bool {
	if strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.") {
		a.stats.XattrsSkip++
		return true
	}
	return false
}

// xattrResult decides which refusals are skipped: security.* when the filesystem refuses it,
// any xattr on a filesystem without xattr support, and trusted.* when not root (it needs
// CAP_SYS_ADMIN).
func (a *applier) xattrResult(k string, err error) error {
	if err == nil {
		a.stats.XattrsSet++
		return nil
	}
	skip := err == unix.EOPNOTSUPP ||
		(strings.HasPrefix(k, "security.") && (err == unix.EPERM || err == unix.EACCES || err == unix.EINVAL)) ||
		(strings.HasPrefix(k, "trusted.") && err == unix.EPERM && a.euid != 0)
	if skip {
		a.stats.XattrsSkip++
		return nil
	}
	return fmt.Errorf("set xattr %s: %w", k, err)
}

// finish sets the directories' times (and their modes without owner rwx), deepest first, now
// that nothing more is created in them.
func (a *applier) finish() error {
	a.dropDirs()
	paths := make([]string, 0, len(a.pending))
	for p := range a.pending {
		paths = append(paths, p)
	}
	// Deepest first, so that a directory made non-traversable comes after its children.
	slices.SortFunc(paths, func(x, y string) int {
		if c := strings.Count(y, "/") - strings.Count(x, "/"); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	for _, p := range paths {
		pd := a.pending[p]
		fd, err := openDirBeneath(a.root.fd, p)
		if err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
				continue // replaced by a later entry
			}
			return fmt.Errorf("layer entry %q: reopen directory: %w", p, err)
		}
		if pd.chmod {
			if err := unix.Fchmod(fd, pd.mode); err != nil {
				unix.Close(fd)
				return fmt.Errorf("layer entry %q: chmod %04o: %w", p, pd.mode, err)
			}
		}
		ts := [2]unix.Timespec{toTimespec(pd.atime), toTimespec(pd.mtime)}
		err = futimens(fd, &ts)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("layer entry %q: set times: %w", p, err)
		}
	}
	return nil
}
