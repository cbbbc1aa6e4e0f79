// Package storage defines the small driver interface every storage backend of
// the registry implements, its sentinel errors and helpers built on top of it.
//
// Paths are absolute, slash-separated and rooted at the driver's root: "/" is
// the root, "/docker/registry/v2/blobs/..." a file below it. Components match
// [a-zA-Z0-9._-]+ (no "." or ".." components, no empty components); drivers
// reject anything else with ErrInvalidPath before touching their backend.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Drivers wrap them with %w so callers test with errors.Is.
var (
	// ErrNotFound means the path does not exist (or is a directory where a
	// file is required, or a file where a directory is required).
	ErrNotFound = errors.New("storage: path not found")
	// ErrInvalidPath means the path is not a valid storage path.
	ErrInvalidPath = errors.New("storage: invalid path")
	// ErrInvalidOffset means a read offset is negative or past the end of
	// the file.
	ErrInvalidOffset = errors.New("storage: invalid offset")
	// ErrClosed means a FileWriter was used after Close, Commit or Cancel.
	ErrClosed = errors.New("storage: writer already closed")
)

// FileInfo describes a file or directory.
type FileInfo struct {
	Path    string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// Driver is a hierarchical blob store: the only thing the registry needs from
// a filesystem, an object store or memory. Every I/O method takes ctx first.
type Driver interface {
	// Name identifies the driver ("filesystem", "s3", "inmemory").
	Name() string
	// Reader opens the file at path for reading from offset. An offset equal
	// to the size yields an empty reader; beyond it ErrInvalidOffset.
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
	// Writer returns a FileWriter for path. With append=false it starts a new
	// file that replaces any existing one atomically on Commit. With
	// append=true it continues the file at path, or starts it empty when it
	// does not exist yet (a directory there is ErrNotFound); Size starts at
	// the existing size. Appends are how upload sessions grow chunk by
	// chunk, so drivers make them cheap (S3 keeps each committed append as
	// its own part and joins them server-side on Move).
	Writer(ctx context.Context, path string, append bool) (FileWriter, error)
	// Stat describes path; directories exist when they have descendants.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// List returns the full paths of the direct children of the directory
	// at path, in no particular order. A missing directory is ErrNotFound.
	List(ctx context.Context, path string) ([]string, error)
	// Move moves the file at src to dst, replacing dst, atomically where
	// the backend allows. Missing src is ErrNotFound.
	Move(ctx context.Context, src, dst string) error
	// Delete removes the file or the whole tree at path.
	// Missing path is ErrNotFound. Writer, Move and Delete refuse the root
	// "/" itself with ErrInvalidPath.
	Delete(ctx context.Context, path string) error
}

// FileWriter writes one file. Its lifecycle: Write any number of times, then
// exactly one of Commit (make the bytes durable and visible at the path) or
// Cancel (drop what this writer wrote), then Close. After Commit, Cancel or
// Close, Write, Commit and Cancel fail with ErrClosed; Close may always be
// called and returns nil once the writer is finished.
//
// Close without Commit depends on how the writer was opened:
//   - a new file (append=false) never becomes visible: Close equals Cancel;
//   - an append writer (append=true) keeps the bytes written so far for a
//     later Writer(append=true) where the backend can (filesystem, memory)
//     and is otherwise equivalent to Cancel.
type FileWriter interface {
	io.Writer
	io.Closer
	// Size is the file's size so far, including bytes present before an append.
	Size() int64
	// Commit flushes and publishes the content.
	Commit(ctx context.Context) error
	// Cancel discards what this writer wrote.
	Cancel(ctx context.Context) error
}

// URLRedirector is an optional extension: drivers that can hand out a
// short-lived URL for reading a file implement it (S3 presigned URLs).
type URLRedirector interface {
	RedirectURL(ctx context.Context, method, path string) (string, error)
}

// FileStater is an optional extension for drivers where telling a missing
// file from a directory costs extra requests (S3): StatFile describes a file
// written whole (never appended to) in one request, and reports anything
// else, directories included, as ErrNotFound. Use the StatFile helper.
type FileStater interface {
	StatFile(ctx context.Context, path string) (FileInfo, error)
}

// StatFile describes a file that was written whole (links, blobs), through
// the driver's FileStater when it has one.
func StatFile(ctx context.Context, d Driver, path string) (FileInfo, error) {
	if fs, ok := d.(FileStater); ok {
		return fs.StatFile(ctx, path)
	}
	fi, err := d.Stat(ctx, path)
	if err == nil && fi.IsDir {
		return FileInfo{}, NotFound(path)
	}
	return fi, err
}

// ContentPutter is an optional extension for drivers that can store a small
// file in one call more cheaply than through a FileWriter.
type ContentPutter interface {
	PutContent(ctx context.Context, path string, content []byte) error
}

var componentRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// CheckPath validates a storage path (see the package comment) and returns
// it wrapped in ErrInvalidPath when it is not acceptable.
func CheckPath(p string) error {
	if p == "/" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("%w: %q", ErrInvalidPath, p)
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "." || c == ".." || !componentRE.MatchString(c) {
			return fmt.Errorf("%w: %q", ErrInvalidPath, p)
		}
	}
	return nil
}

// NotFound wraps ErrNotFound with the path.
func NotFound(p string) error { return fmt.Errorf("%w: %s", ErrNotFound, p) }

// GetContent reads a whole (small) file.
func GetContent(ctx context.Context, d Driver, path string) ([]byte, error) {
	rc, err := d.Reader(ctx, path, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// PutContent stores content at path atomically, through the driver's
// ContentPutter when it has one.
func PutContent(ctx context.Context, d Driver, path string, content []byte) error {
	if p, ok := d.(ContentPutter); ok {
		return p.PutContent(ctx, path, content)
	}
	w, err := d.Writer(ctx, path, false)
	if err != nil {
		return err
	}
	if _, err := w.Write(content); err != nil {
		_ = w.Cancel(ctx)
		_ = w.Close()
		return err
	}
	if err := w.Commit(ctx); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// Walk calls fn for every file below root (not directories), depth first, in
// lexical order of the paths. Entries removed while walking are skipped. An
// error from fn stops the walk and is returned as it is.
func Walk(ctx context.Context, d Driver, root string, fn func(FileInfo) error) error {
	children, err := d.List(ctx, root)
	if err != nil {
		return err
	}
	return walkChildren(ctx, d, children, fn)
}

func walkChildren(ctx context.Context, d Driver, children []string, fn func(FileInfo) error) error {
	slices.Sort(children)
	for _, c := range children {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Stat(ctx, c)
		if errors.Is(err, ErrNotFound) {
			continue // removed concurrently
		}
		if err != nil {
			return err
		}
		if fi.IsDir {
			sub, err := d.List(ctx, c)
			if errors.Is(err, ErrNotFound) {
				continue // removed concurrently
			}
			if err != nil {
				return err
			}
			// Errors from fn below must not be mistaken for a vanished
			// directory, so they are returned unfiltered.
			if err := walkChildren(ctx, d, sub, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}
