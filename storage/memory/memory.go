// Package memory is an in-memory storage.Driver, for tests and for running a
// throwaway registry. Its semantics follow the filesystem driver: files hold
// bytes and a modification time, directories exist while they have
// descendants, new files appear only on Commit, and appends are published on
// Commit or Close (Cancel drops them).
package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/berth-registry/berth/storage"
)

// DriverName is the name the driver reports.
const DriverName = "inmemory"

// Driver is a thread-safe in-memory tree of files.
type Driver struct {
	mu    sync.RWMutex
	files map[string]*file
	// dirs maps each existing directory to the set of full paths of its
	// direct children. "/" is always present.
	dirs map[string]map[string]struct{}
}

// file is immutable once stored: writers replace it, and appends build a new
// backing array, so readers can keep using the slice they got.
type file struct {
	data []byte
	mod  time.Time
}

var (
	_ storage.Driver        = (*Driver)(nil)
	_ storage.ContentPutter = (*Driver)(nil)
	_ storage.FileWriter    = (*writer)(nil)
)

// New returns an empty driver.
func New() *Driver {
	return &Driver{
		files: map[string]*file{},
		dirs:  map[string]map[string]struct{}{"/": {}},
	}
}

// Name returns "inmemory".
func (d *Driver) Name() string { return DriverName }

// fileOnly checks p and refuses the root, which is never a file.
func fileOnly(p string) error {
	if err := storage.CheckPath(p); err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("%w: %q is the root directory", storage.ErrInvalidPath, p)
	}
	return nil
}

// canPut reports why a file cannot be stored at p, if it cannot. Call with
// d.mu held.
func (d *Driver) canPut(p string) error {
	if _, ok := d.dirs[p]; ok {
		return fmt.Errorf("memory: %s is a directory", p)
	}
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if _, ok := d.files[dir]; ok {
			return fmt.Errorf("memory: %s is not a directory", dir)
		}
	}
	return nil
}

// put stores f at p, replacing any file there. Call with d.mu held for
// writing.
func (d *Driver) put(p string, f *file) error {
	if err := d.canPut(p); err != nil {
		return err
	}
	d.files[p] = f
	for child := p; child != "/"; {
		parent := path.Dir(child)
		kids, ok := d.dirs[parent]
		if !ok {
			kids = map[string]struct{}{}
			d.dirs[parent] = kids
		}
		if _, seen := kids[child]; seen {
			break // the rest of the chain exists already
		}
		kids[child] = struct{}{}
		child = parent
	}
	return nil
}

// unlink removes the file or empty directory entry p from its parent and
// prunes directories left without children. Call with d.mu held for writing.
func (d *Driver) unlink(p string) {
	for child := p; child != "/"; {
		parent := path.Dir(child)
		kids := d.dirs[parent]
		delete(kids, child)
		if len(kids) > 0 || parent == "/" {
			return
		}
		delete(d.dirs, parent)
		child = parent
	}
}

// Reader returns a reader of the file's content from offset. The reader also
// implements io.Seeker, with offsets from the start of the file.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := storage.CheckPath(p); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.RLock()
	f, ok := d.files[p]
	d.mu.RUnlock()
	if !ok {
		return nil, storage.NotFound(p)
	}
	if offset < 0 || offset > int64(len(f.data)) {
		return nil, fmt.Errorf("%w: %d (size %d): %s", storage.ErrInvalidOffset, offset, len(f.data), p)
	}
	r := &reader{Reader: bytes.NewReader(f.data)}
	_, _ = r.Seek(offset, io.SeekStart)
	return r, nil
}

type reader struct{ *bytes.Reader }

func (*reader) Close() error { return nil }

// Writer returns a writer for p; see storage.Driver. Its bytes are buffered
// until Commit (or, for an append writer, Close).
func (d *Driver) Writer(ctx context.Context, p string, append bool) (storage.FileWriter, error) {
	if err := fileOnly(p); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if append {
		f, ok := d.files[p]
		if !ok {
			if err := d.canPut(p); err != nil {
				return nil, fmt.Errorf("%w: %w", storage.ErrNotFound, err)
			}
			return &writer{d: d, path: p, append: true}, nil
		}
		return &writer{d: d, path: p, append: true, start: int64(len(f.data))}, nil
	}
	if err := d.canPut(p); err != nil {
		return nil, err
	}
	return &writer{d: d, path: p}, nil
}

// PutContent stores a copy of content at p.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := fileOnly(p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f := &file{data: bytes.Clone(content), mod: time.Now()}
	if f.data == nil {
		f.data = []byte{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.put(p, f)
}

// Stat describes p. Directories have IsDir set, Size 0 and no ModTime.
func (d *Driver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	if err := storage.CheckPath(p); err != nil {
		return storage.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.FileInfo{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if f, ok := d.files[p]; ok {
		return storage.FileInfo{Path: p, Size: int64(len(f.data)), ModTime: f.mod}, nil
	}
	if _, ok := d.dirs[p]; ok {
		return storage.FileInfo{Path: p, IsDir: true}, nil
	}
	return storage.FileInfo{}, storage.NotFound(p)
}

// List returns the sorted full paths of the children of directory p.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := storage.CheckPath(p); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.RLock()
	kids, ok := d.dirs[p]
	out := make([]string, 0, len(kids))
	for k := range kids {
		out = append(out, k)
	}
	d.mu.RUnlock()
	if !ok {
		return nil, storage.NotFound(p)
	}
	slices.Sort(out)
	return out, nil
}

// Move moves the file at src to dst, replacing dst. Directories cannot be
// moved: a directory at src is ErrNotFound, like any path that is not a file.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := fileOnly(src); err != nil {
		return err
	}
	if err := fileOnly(dst); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[src]
	if !ok {
		return storage.NotFound(src)
	}
	if src == dst {
		return nil
	}
	if err := d.canPut(dst); err != nil {
		return err
	}
	delete(d.files, src)
	d.unlink(src)
	return d.put(dst, f)
}

// Delete removes the file or the whole tree at p.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := fileOnly(p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.files[p]; ok {
		delete(d.files, p)
		d.unlink(p)
		return nil
	}
	if _, ok := d.dirs[p]; !ok {
		return storage.NotFound(p)
	}
	d.removeTree(p)
	d.unlink(p)
	return nil
}

// removeTree forgets every file and directory below dir, and dir itself.
func (d *Driver) removeTree(dir string) {
	for k := range d.dirs[dir] {
		if _, ok := d.files[k]; ok {
			delete(d.files, k)
		} else {
			d.removeTree(k)
		}
	}
	delete(d.dirs, dir)
}

// writer buffers what it is given and publishes it on Commit.
type writer struct {
	d      *Driver
	path   string
	append bool
	start  int64 // size of the file when an append writer was opened
	buf    []byte
	done   bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, storage.ErrClosed
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *writer) Size() int64 { return w.start + int64(len(w.buf)) }

func (w *writer) Commit(ctx context.Context) error {
	if w.done {
		return storage.ErrClosed
	}
	w.done = true
	if err := ctx.Err(); err != nil {
		w.buf = nil
		return err
	}
	return w.publish()
}

func (w *writer) publish() error {
	buf := w.buf
	w.buf = nil
	w.start += int64(len(buf)) // Size stays right after Commit
	d := w.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !w.append {
		if buf == nil {
			buf = []byte{}
		}
		return d.put(w.path, &file{data: buf, mod: time.Now()})
	}
	f, ok := d.files[w.path]
	if !ok {
		if buf == nil {
			buf = []byte{}
		}
		return d.put(w.path, &file{data: buf, mod: time.Now()})
	}
	if len(buf) == 0 {
		return nil
	}
	// The full slice expression forces a new backing array, leaving the
	// bytes that readers hold untouched.
	data := append(f.data[:len(f.data):len(f.data)], buf...)
	d.files[w.path] = &file{data: data, mod: time.Now()}
	return nil
}

func (w *writer) Cancel(ctx context.Context) error {
	if w.done {
		return storage.ErrClosed
	}
	w.done = true
	w.buf = nil
	return nil
}

func (w *writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	if !w.append {
		w.buf = nil
		return nil
	}
	return w.publish()
}
