// Package filesystem is the storage.Driver for a local directory tree.
//
// The storage path "/a/b" is the file root/a/b. Every access goes through an
// os.Root opened on the root directory, so neither ".." nor symbolic links
// (absolute ones, or relative ones leading outside) can reach a file outside
// the root.
//
// New files are written to a temporary file in the target's directory, named
// with tempPrefix (".tmp~" followed by random hex); Commit (after an fsync
// with WithSync) renames it into place, so readers see either the old or the
// new content.
// Since "~" is not allowed in storage paths, no valid path can name a
// temporary file, and List (hence storage.Walk) never returns one, including
// those left behind by a crash. Directories are created on demand and are
// left in place when their last file is deleted, as distribution's filesystem
// driver does.
package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"syscall"
	"time"

	"github.com/berth-registry/berth/storage"
	"golang.org/x/sys/unix"
)

// DriverName is the name the driver reports and the config key it is
// configured under (storage.filesystem).
const DriverName = "filesystem"

// tempPrefix starts the name of every temporary file. The "~" makes it an
// invalid storage path component.
const tempPrefix = ".tmp~"

const (
	dirPerm  = 0o755
	filePerm = 0o644
)

// Driver stores files below a root directory. It is safe for concurrent use.
type Driver struct {
	dir  string
	root *os.Root
	// rootFD is an O_PATH descriptor of the root for openat2's fast,
	// single-syscall resolution; -1 when the kernel lacks openat2.
	rootFD int
	// sync makes every publication durable (fsync before rename).
	sync bool
}

// Option configures a Driver.
type Option func(*Driver)

// WithSync makes writes durable across power loss: files are fsynced before
// they are renamed into place, and large writes start writeback early so
// the final fsync is short (storage.filesystem.sync). Without it, writes are
// still atomic against process crashes (temporary file + rename) and data
// reaches disk with the kernel's writeback, as registry:2 and zot (whose
// `commit` option is off by default) do: on this project's test machine an
// fsync per blob halved push throughput.
func WithSync(sync bool) Option { return func(d *Driver) { d.sync = sync } }

var (
	_ storage.Driver        = (*Driver)(nil)
	_ storage.ContentPutter = (*Driver)(nil)
	_ storage.FileWriter    = (*fileWriter)(nil)
	_ io.ReaderFrom         = (*fileWriter)(nil)
)

// New returns a driver storing files below the directory root, which is
// created (with its parents) when missing.
func New(root string, opts ...Option) (*Driver, error) {
	if root == "" {
		return nil, errors.New("filesystem: empty root directory")
	}
	if err := os.MkdirAll(root, dirPerm); err != nil {
		return nil, fmt.Errorf("filesystem: create root: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("filesystem: open root: %w", err)
	}
	d := &Driver{dir: root, root: r, rootFD: -1}
	for _, o := range opts {
		o(d)
	}
	if fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		d.rootFD = fd
		if _, err := d.openBeneath(".", unix.O_PATH); errors.Is(err, unix.ENOSYS) {
			unix.Close(fd)
			d.rootFD = -1
		}
	}
	return d, nil
}

// openBeneath opens name (relative to the root) in one openat2 call that
// refuses to leave the root (RESOLVE_BENEATH: no "..", absolute or escaping
// symlinks, no magic links) — the same guarantee os.Root gives, without its
// walk of one openat per path component on the hot read path.
func (d *Driver) openBeneath(name string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(d.rootFD, name, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// Name returns "filesystem".
func (d *Driver) Name() string { return DriverName }

// RootDirectory returns the directory the driver was created with.
func (d *Driver) RootDirectory() string { return d.dir }

// Close releases the handle on the root directory. The driver must not be
// used afterwards.
func (d *Driver) Close() error {
	if d.rootFD >= 0 {
		unix.Close(d.rootFD)
		d.rootFD = -1
	}
	return d.root.Close()
}

// rel checks p and turns it into a name relative to the root.
func rel(p string) (string, error) {
	if err := storage.CheckPath(p); err != nil {
		return "", err
	}
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}

// relFile is rel for operations that need a file, not the root directory.
func relFile(p string) (string, error) {
	name, err := rel(p)
	if err != nil {
		return "", err
	}
	if name == "." {
		return "", fmt.Errorf("%w: %q is the root directory", storage.ErrInvalidPath, p)
	}
	return name, nil
}

// isNotFound reports whether err means that a path, or a directory on the
// way to it, does not exist.
func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notFound maps "does not exist" errors to storage.ErrNotFound and passes
// others through.
func notFound(err error, p string) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %s", storage.ErrNotFound, p)
	}
	return err
}

// Reader returns the *os.File itself, positioned at offset, so that callers
// can use it as an io.ReadSeeker and net/http can sendfile from it.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	name, err := rel(p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var f *os.File
	if d.rootFD >= 0 {
		fd, oerr := d.openBeneath(name, unix.O_RDONLY)
		if oerr != nil {
			return nil, notFound(&os.PathError{Op: "open", Path: name, Err: oerr}, p)
		}
		f = os.NewFile(uintptr(fd), path.Join(d.dir, name))
	} else if f, err = d.root.Open(name); err != nil {
		return nil, notFound(err, p)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, storage.NotFound(p)
	}
	if offset < 0 || offset > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("%w: %d (size %d): %s", storage.ErrInvalidOffset, offset, fi.Size(), p)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Writer returns a writer for p; see storage.Driver and the package comment.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (storage.FileWriter, error) {
	name, err := relFile(p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if append {
		created := false
		f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
		if isNotFound(err) {
			if err := d.root.MkdirAll(path.Dir(name), dirPerm); err != nil {
				return nil, notFound(err, p)
			}
			f, err = d.root.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, filePerm)
			created = err == nil
		}
		if err != nil {
			if isNotFound(err) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) {
				return nil, storage.NotFound(p)
			}
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return nil, storage.NotFound(p)
		}
		return &fileWriter{d: d, path: p, name: name, f: f, append: true, created: created, start: fi.Size(), size: fi.Size()}, nil
	}
	f, tmp, err := d.createTemp(name)
	if err != nil {
		return nil, err
	}
	return &fileWriter{d: d, path: p, name: name, f: f, tmp: tmp}, nil
}

// createTemp creates the parent directories of name and a new temporary file
// next to it.
func (d *Driver) createTemp(name string) (*os.File, string, error) {
	dir := path.Dir(name)
	if err := d.root.MkdirAll(dir, dirPerm); err != nil {
		return nil, "", err
	}
	var rnd [12]byte
	for range 3 {
		_, _ = rand.Read(rnd[:])
		tmp := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
		f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return f, tmp, nil
	}
	return nil, "", fmt.Errorf("filesystem: cannot create a temporary file in %s", dir)
}

// publish closes the temporary file f (fsyncing it first with WithSync) and
// renames it to name. On failure the temporary file is removed.
func (d *Driver) publish(f *os.File, tmp, name string) error {
	var err error
	if d.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.root.Rename(tmp, name)
	}
	if err != nil {
		_ = d.root.Remove(tmp)
	}
	return err
}

// PutContent stores content at p atomically: temporary file, (fsync,) rename.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	name, err := relFile(p)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, tmp, err := d.createTemp(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		_ = d.root.Remove(tmp)
		return err
	}
	return d.publish(f, tmp, name)
}

// Stat describes p. Directories have IsDir set and Size 0.
func (d *Driver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	name, err := rel(p)
	if err != nil {
		return storage.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.FileInfo{}, err
	}
	if d.rootFD >= 0 {
		fd, err := d.openBeneath(name, unix.O_PATH)
		if err != nil {
			return storage.FileInfo{}, notFound(&os.PathError{Op: "stat", Path: name, Err: err}, p)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			return storage.FileInfo{}, err
		}
		info := storage.FileInfo{Path: p, ModTime: time.Unix(st.Mtim.Unix()), IsDir: st.Mode&unix.S_IFMT == unix.S_IFDIR}
		if !info.IsDir {
			info.Size = st.Size
		}
		return info, nil
	}
	fi, err := d.root.Stat(name)
	if err != nil {
		return storage.FileInfo{}, notFound(err, p)
	}
	info := storage.FileInfo{Path: p, ModTime: fi.ModTime(), IsDir: fi.IsDir()}
	if !info.IsDir {
		info.Size = fi.Size()
	}
	return info, nil
}

// List returns the full paths of the entries of directory p, sorted. Entries
// whose names are not valid storage path components, temporary files among
// them, are left out. A missing directory or a file is ErrNotFound.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	name, err := rel(p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, notFound(err, p)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, storage.NotFound(p)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		c := prefix + n
		if storage.CheckPath(c) != nil {
			continue // a temporary file or a name we never write
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// Move renames src to dst, creating dst's parent directories; an existing
// dst file is replaced atomically.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	from, err := relFile(src)
	if err != nil {
		return err
	}
	to, err := relFile(dst)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.sync {
		if err := d.syncFile(from); err != nil {
			return notFound(err, src)
		}
	} else if _, err := d.root.Lstat(from); err != nil {
		return notFound(err, src)
	}
	if err := d.root.MkdirAll(path.Dir(to), dirPerm); err != nil {
		return err
	}
	if err := d.root.Rename(from, to); err != nil {
		if isNotFound(err) {
			// src vanished, or dst's directory was removed concurrently.
			if _, serr := d.root.Lstat(from); isNotFound(serr) {
				return storage.NotFound(src)
			}
		}
		return err
	}
	return nil
}

// syncFile makes the bytes of a file (appended without fsync) durable before
// Move publishes it under another name.
func (d *Driver) syncFile(name string) error {
	f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		return err // a directory moves without a sync
	}
	return f.Sync()
}

// Delete removes the file or directory tree at p. Parent directories are
// left in place even when they become empty.
func (d *Driver) Delete(ctx context.Context, p string) error {
	name, err := relFile(p)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := d.root.Lstat(name); err != nil {
		return notFound(err, p)
	}
	return d.root.RemoveAll(name)
}

// fileWriter writes straight to an *os.File: the temporary file of a new
// file, or the file itself opened O_APPEND.
type fileWriter struct {
	d       *Driver
	path    string   // storage path
	name    string   // root-relative target (new files only)
	tmp     string   // root-relative temporary file (new files only)
	f       *os.File // nil once finished
	append  bool
	created bool  // the append writer created the file (Cancel removes it)
	start   int64 // size before this writer (append only)
	size    int64
	flushed int64 // bytes of this writer handed to writeback so far
	err     error // first write error
}

// writebackChunk is how much written data a writer lets pile up before it
// asks the kernel to start writing it out. Starting writeback while the
// client is still sending keeps the disk busy in parallel with the network,
// so the fsync at the end (Commit or Move) finds little left to do.
const writebackChunk = 8 << 20

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, storage.ErrClosed
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	if err != nil && w.err == nil {
		w.err = err
	}
	if w.d.sync && w.size-w.start-w.flushed >= writebackChunk {
		off := w.start + w.flushed
		span := w.size - off
		// Asynchronous: it only starts writeback of the range.
		_ = unix.SyncFileRange(int(w.f.Fd()), off, span, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed += span
	}
	return n, err
}

// ReadFrom lets io.Copy hand the source to (*os.File).ReadFrom, which uses
// copy_file_range or splice where the source allows.
func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.f == nil {
		return 0, storage.ErrClosed
	}
	n, err := w.f.ReadFrom(r)
	w.size += n
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *fileWriter) Size() int64 { return w.size }

func (w *fileWriter) Commit(ctx context.Context) error {
	if w.f == nil {
		return storage.ErrClosed
	}
	if w.err != nil {
		_ = w.cancel()
		return fmt.Errorf("filesystem: commit %s after a failed write: %w", w.path, w.err)
	}
	if err := ctx.Err(); err != nil {
		_ = w.cancel()
		return err
	}
	f := w.f
	w.f = nil
	if w.append {
		// No fsync per append: an upload grows chunk by chunk and only
		// matters once it is complete, and Move syncs the file before it
		// becomes visible anywhere else. Syncing every chunk stalls the
		// client on each PATCH.
		return f.Close()
	}
	if err := w.d.publish(f, w.tmp, w.name); err != nil {
		return notFound(err, w.path)
	}
	return nil
}

func (w *fileWriter) Cancel(ctx context.Context) error {
	if w.f == nil {
		return storage.ErrClosed
	}
	return w.cancel()
}

func (w *fileWriter) cancel() error {
	f := w.f
	w.f = nil
	if w.append {
		if w.created {
			f.Close()
			if err := w.d.root.Remove(w.name); err != nil && !isNotFound(err) {
				return err
			}
			return nil
		}
		err := f.Truncate(w.start)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	f.Close()
	if err := w.d.root.Remove(w.tmp); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func (w *fileWriter) Close() error {
	if w.f == nil {
		return nil
	}
	if !w.append {
		return w.cancel()
	}
	f := w.f
	w.f = nil
	return f.Close()
}
