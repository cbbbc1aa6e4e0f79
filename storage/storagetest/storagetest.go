// Package storagetest is the conformance suite every storage.Driver runs, with
// a single test function:
//
//	func TestDriver(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Driver { return memory.New() })
//	}
//
// The suite assumes nothing about the backend (no local filesystem), keeps its
// data small (a few MiB in the largest case) and works below paths of its own
// under the driver's root, so it can run against a real object store.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/berth-registry/berth/storage"
)

// Run runs the conformance suite as sub-tests of t. newDriver is called once
// per sub-test and must return a driver over an empty root (a fresh temporary
// directory, an unused bucket prefix, ...); it should register any cleanup
// with t.Cleanup.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d storage.Driver)
	}{
		{"WriteCommitRead", testWriteCommitRead},
		{"ReaderOffsets", testReaderOffsets},
		{"EmptyFile", testEmptyFile},
		{"UncommittedInvisible", testUncommittedInvisible},
		{"ReplaceOnCommit", testReplaceOnCommit},
		{"AppendResume", testAppendResume},
		{"AppendMissing", testAppendMissing},
		{"CancelNew", testCancelNew},
		{"CancelAppend", testCancelAppend},
		{"CloseAppendWithoutCommit", testCloseAppendWithoutCommit},
		{"UseAfterFinish", testUseAfterFinish},
		{"LargeFile", testLargeFile},
		{"Move", testMove},
		{"Delete", testDelete},
		{"List", testList},
		{"Stat", testStat},
		{"InvalidPaths", testInvalidPaths},
		{"NotFound", testNotFound},
		{"ConcurrentDifferentFiles", testConcurrentDifferentFiles},
		{"ConcurrentSamePath", testConcurrentSamePath},
		{"PutContent", testPutContent},
		{"Walk", testWalk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t)
			if d == nil {
				t.Fatal("newDriver returned nil")
			}
			tc.fn(t, d)
		})
	}
}

// ---- helpers ----

// pattern returns n deterministic pseudo-random bytes for seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func put(t *testing.T, d storage.Driver, p string, content []byte) {
	t.Helper()
	if err := storage.PutContent(t.Context(), d, p, content); err != nil {
		t.Fatalf("PutContent(%s): %v", p, err)
	}
}

func get(t *testing.T, d storage.Driver, p string) []byte {
	t.Helper()
	b, err := storage.GetContent(t.Context(), d, p)
	if err != nil {
		t.Fatalf("GetContent(%s): %v", p, err)
	}
	return b
}

func wantContent(t *testing.T, d storage.Driver, p string, want []byte) {
	t.Helper()
	got := get(t, d, p)
	if !bytes.Equal(got, want) {
		t.Fatalf("content of %s: %s", p, diff(got, want))
	}
}

// diff describes how got differs from want without printing megabytes.
func diff(got, want []byte) string {
	if len(got) < 64 && len(want) < 64 {
		return fmt.Sprintf("got %q, want %q", got, want)
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func wantNotFound(t *testing.T, d storage.Driver, p string) {
	t.Helper()
	_, err := d.Stat(t.Context(), p)
	wantErr(t, "Stat("+p+")", err, storage.ErrNotFound)
}

func newWriter(t *testing.T, d storage.Driver, p string, appendMode bool) storage.FileWriter {
	t.Helper()
	w, err := d.Writer(t.Context(), p, appendMode)
	if err != nil {
		t.Fatalf("Writer(%s, %v): %v", p, appendMode, err)
	}
	return w
}

func write(t *testing.T, w storage.FileWriter, b []byte) {
	t.Helper()
	n, err := w.Write(b)
	if err != nil || n != len(b) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(b), n, err)
	}
}

func commitClose(t *testing.T, w storage.FileWriter) {
	t.Helper()
	if err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Commit: %v", err)
	}
}

func wantSize(t *testing.T, w storage.FileWriter, want int64) {
	t.Helper()
	if got := w.Size(); got != want {
		t.Fatalf("Size() = %d, want %d", got, want)
	}
}

func list(t *testing.T, d storage.Driver, p string) []string {
	t.Helper()
	got, err := d.List(t.Context(), p)
	if err != nil {
		t.Fatalf("List(%s): %v", p, err)
	}
	slices.Sort(got)
	return got
}

func wantList(t *testing.T, d storage.Driver, p string, want ...string) {
	t.Helper()
	got := list(t, d, p)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List(%s) = %q, want %q", p, got, want)
	}
}

// ---- cases ----

func testWriteCommitRead(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	w := newWriter(t, d, "/wcr/a/b/file", false)
	wantSize(t, w, 0)
	write(t, w, []byte("hello, "))
	write(t, w, []byte("world"))
	wantSize(t, w, 12)
	commitClose(t, w)
	wantContent(t, d, "/wcr/a/b/file", []byte("hello, world"))
	fi, err := d.Stat(ctx, "/wcr/a/b/file")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != 12 || fi.IsDir || fi.Path != "/wcr/a/b/file" {
		t.Fatalf("Stat = %+v", fi)
	}
}

func testReaderOffsets(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	content := pattern(1, 1000)
	put(t, d, "/off/file", content)
	for _, off := range []int64{0, 1, 500, 999, 1000} {
		rc, err := d.Reader(ctx, "/off/file", off)
		if err != nil {
			t.Fatalf("Reader(offset %d): %v", off, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read at offset %d: %v", off, err)
		}
		if !bytes.Equal(got, content[off:]) {
			t.Fatalf("read at offset %d: %s", off, diff(got, content[off:]))
		}
	}
	for _, off := range []int64{1001, 1 << 40, -1} {
		rc, err := d.Reader(ctx, "/off/file", off)
		if err == nil {
			rc.Close()
		}
		wantErr(t, fmt.Sprintf("Reader(offset %d)", off), err, storage.ErrInvalidOffset)
	}
}

func testEmptyFile(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	w := newWriter(t, d, "/empty/w", false)
	commitClose(t, w)
	put(t, d, "/empty/p", nil)
	for _, p := range []string{"/empty/w", "/empty/p"} {
		fi, err := d.Stat(ctx, p)
		if err != nil {
			t.Fatalf("Stat(%s): %v", p, err)
		}
		if fi.Size != 0 || fi.IsDir {
			t.Fatalf("Stat(%s) = %+v, want an empty file", p, fi)
		}
		wantContent(t, d, p, []byte{})
		// Appending to an empty file works too.
		w := newWriter(t, d, p, true)
		wantSize(t, w, 0)
		write(t, w, []byte("x"))
		commitClose(t, w)
		wantContent(t, d, p, []byte("x"))
	}
}

func testUncommittedInvisible(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	const p = "/invisible/dir/file"
	w := newWriter(t, d, p, false)
	write(t, w, []byte("pending"))
	wantNotFound(t, d, p)
	_, err := d.Reader(ctx, p, 0)
	wantErr(t, "Reader of an uncommitted file", err, storage.ErrNotFound)
	// The parent may exist or not (filesystems create it for the temporary
	// file), but it must not list the file nor anything else.
	if kids, err := d.List(ctx, "/invisible/dir"); err == nil && len(kids) != 0 {
		t.Fatalf("List of the parent of an uncommitted file = %q", kids)
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("List of the parent of an uncommitted file: %v", err)
	}
	commitClose(t, w)
	wantContent(t, d, p, []byte("pending"))
	wantList(t, d, "/invisible/dir", p)

	// Close without Commit never publishes a new file.
	w = newWriter(t, d, "/invisible/closed", false)
	write(t, w, []byte("abandoned"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close without Commit: %v", err)
	}
	wantNotFound(t, d, "/invisible/closed")
}

func testReplaceOnCommit(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	const p = "/replace/file"
	put(t, d, p, []byte("old"))
	w := newWriter(t, d, p, false)
	wantSize(t, w, 0)
	write(t, w, []byte("new content"))
	wantContent(t, d, p, []byte("old"))
	fi, err := d.Stat(ctx, p)
	if err != nil || fi.Size != 3 {
		t.Fatalf("Stat before Commit = %+v, %v; want the old size 3", fi, err)
	}
	commitClose(t, w)
	wantContent(t, d, p, []byte("new content"))

	// Replacing with shorter content leaves nothing of the old one.
	w = newWriter(t, d, p, false)
	write(t, w, []byte("x"))
	commitClose(t, w)
	wantContent(t, d, p, []byte("x"))
}

func testAppendResume(t *testing.T, d storage.Driver) {
	const p = "/append/upload/data"
	chunks := [][]byte{pattern(10, 1000), pattern(11, 3333), pattern(12, 1), pattern(13, 70000)}
	var all []byte
	for i, c := range chunks {
		w := newWriter(t, d, p, i > 0)
		wantSize(t, w, int64(len(all)))
		// Write each chunk in two pieces to exercise several writes per writer.
		write(t, w, c[:len(c)/2])
		write(t, w, c[len(c)/2:])
		all = append(all, c...)
		wantSize(t, w, int64(len(all)))
		commitClose(t, w)
		fi, err := d.Stat(t.Context(), p)
		if err != nil || fi.Size != int64(len(all)) {
			t.Fatalf("after chunk %d: Stat = %+v, %v; want size %d", i, fi, err, len(all))
		}
	}
	wantContent(t, d, p, all)
}

func testAppendMissing(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	// Appending to a missing file starts it; cancelled, it leaves nothing.
	w, err := d.Writer(ctx, "/appendmissing/file", true)
	if err != nil {
		t.Fatalf("Writer(append) of a missing file: %v", err)
	}
	if w.Size() != 0 {
		t.Fatalf("Size of a new append writer = %d", w.Size())
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	wantNotFound(t, d, "/appendmissing/file")
	w, err = d.Writer(ctx, "/appendmissing/file", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Size() != 3 {
		t.Fatalf("Size after Commit = %d, want 3", w.Size())
	}
	w.Close()
	wantContent(t, d, "/appendmissing/file", []byte("abc"))

	// A directory is not a file to append to.
	put(t, d, "/appendmissing/dir/file", []byte("x"))
	_, err = d.Writer(ctx, "/appendmissing/dir", true)
	wantErr(t, "Writer(append) of a directory", err, storage.ErrNotFound)
}

func testCancelNew(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	w := newWriter(t, d, "/cancel/new", false)
	write(t, w, pattern(20, 5000))
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Cancel: %v", err)
	}
	wantNotFound(t, d, "/cancel/new")
	if kids, err := d.List(ctx, "/cancel"); err == nil && len(kids) != 0 {
		t.Fatalf("List after Cancel = %q, want nothing", kids)
	}

	// Cancelling a replacement keeps the old file.
	put(t, d, "/cancel/existing", []byte("keep me"))
	w = newWriter(t, d, "/cancel/existing", false)
	write(t, w, []byte("discard me"))
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	w.Close()
	wantContent(t, d, "/cancel/existing", []byte("keep me"))
}

func testCancelAppend(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	const p = "/cancelappend/file"
	put(t, d, p, []byte("base"))
	w := newWriter(t, d, p, true)
	write(t, w, []byte("+first"))
	commitClose(t, w)

	w = newWriter(t, d, p, true)
	wantSize(t, w, 10)
	write(t, w, pattern(21, 100000))
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Cancel: %v", err)
	}
	wantContent(t, d, p, []byte("base+first"))

	// The file can still be appended to afterwards.
	w = newWriter(t, d, p, true)
	wantSize(t, w, 10)
	write(t, w, []byte("+second"))
	commitClose(t, w)
	wantContent(t, d, p, []byte("base+first+second"))
}

// testCloseAppendWithoutCommit checks the part of the Close-without-Commit
// contract every backend shares: the file holds either its previous content
// or that plus everything written, nothing in between, and stays appendable.
func testCloseAppendWithoutCommit(t *testing.T, d storage.Driver) {
	const p = "/closeappend/file"
	put(t, d, p, []byte("base"))
	w := newWriter(t, d, p, true)
	write(t, w, []byte("+closed"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close without Commit: %v", err)
	}
	got := get(t, d, p)
	if string(got) != "base" && string(got) != "base+closed" {
		t.Fatalf("after Close without Commit: content %q", got)
	}
	w = newWriter(t, d, p, true)
	wantSize(t, w, int64(len(got)))
	write(t, w, []byte("+more"))
	commitClose(t, w)
	wantContent(t, d, p, append(got, "+more"...))
}

func testUseAfterFinish(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	finishers := []struct {
		name   string
		finish func(w storage.FileWriter) error
	}{
		{"Commit", func(w storage.FileWriter) error { return w.Commit(ctx) }},
		{"Cancel", func(w storage.FileWriter) error { return w.Cancel(ctx) }},
		{"Close", func(w storage.FileWriter) error { return w.Close() }},
	}
	for _, appendMode := range []bool{false, true} {
		for _, f := range finishers {
			p := fmt.Sprintf("/finished/%s-%v", f.name, appendMode)
			if appendMode {
				put(t, d, p, []byte("base"))
			}
			w := newWriter(t, d, p, appendMode)
			write(t, w, []byte("data"))
			if err := f.finish(w); err != nil {
				t.Fatalf("%s (append=%v): %v", f.name, appendMode, err)
			}
			what := fmt.Sprintf("after %s (append=%v): ", f.name, appendMode)
			_, err := w.Write([]byte("more"))
			wantErr(t, what+"Write", err, storage.ErrClosed)
			wantErr(t, what+"Commit", w.Commit(ctx), storage.ErrClosed)
			wantErr(t, what+"Cancel", w.Cancel(ctx), storage.ErrClosed)
			if err := w.Close(); err != nil {
				t.Fatalf("%sClose: %v", what, err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("%ssecond Close: %v", what, err)
			}
			if f.name == "Commit" {
				want := "data"
				if appendMode {
					want = "basedata"
				}
				wantContent(t, d, p, []byte(want))
			}
		}
	}
}

func testLargeFile(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	const p = "/large/blob/data"
	content := pattern(30, 5<<20+12345)
	// Odd chunk sizes, cycling, so that writes straddle any internal block
	// or part boundary of the backend.
	sizes := []int{1, 4093, 65537, 1<<20 + 3, 7, 333333, 2<<20 - 1}
	split := 3<<20 + 17 // the first writer stops here, an append writer goes on
	w := newWriter(t, d, p, false)
	off, i := 0, 0
	for off < len(content) {
		if off == split {
			commitClose(t, w)
			w = newWriter(t, d, p, true)
			wantSize(t, w, int64(split))
		}
		n := min(sizes[i%len(sizes)], len(content)-off)
		if off < split {
			n = min(n, split-off)
		}
		write(t, w, content[off:off+n])
		off += n
		i++
	}
	wantSize(t, w, int64(len(content)))
	commitClose(t, w)

	fi, err := d.Stat(ctx, p)
	if err != nil || fi.Size != int64(len(content)) {
		t.Fatalf("Stat = %+v, %v; want size %d", fi, err, len(content))
	}
	wantContent(t, d, p, content)
	rc, err := d.Reader(ctx, p, 3000001)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content[3000001:]) {
		t.Fatalf("read at offset 3000001: %s", diff(got, content[3000001:]))
	}
}

func testMove(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "/move/src", []byte("source"))
	put(t, d, "/move/dst", []byte("destination, longer"))
	if err := d.Move(ctx, "/move/src", "/move/dst"); err != nil {
		t.Fatalf("Move onto an existing file: %v", err)
	}
	wantNotFound(t, d, "/move/src")
	wantContent(t, d, "/move/dst", []byte("source"))
	wantList(t, d, "/move", "/move/dst")

	// Into directories that do not exist yet.
	if err := d.Move(ctx, "/move/dst", "/move/x/y/z/moved"); err != nil {
		t.Fatalf("Move into new directories: %v", err)
	}
	wantNotFound(t, d, "/move/dst")
	wantContent(t, d, "/move/x/y/z/moved", []byte("source"))

	err := d.Move(ctx, "/move/missing", "/move/other")
	wantErr(t, "Move of a missing file", err, storage.ErrNotFound)
	wantNotFound(t, d, "/move/other")
	err = d.Move(ctx, "/nosuchdir/missing", "/move/other")
	wantErr(t, "Move from a missing directory", err, storage.ErrNotFound)
}

func testDelete(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	files := []string{
		"/del/file",
		"/del/tree/a",
		"/del/tree/sub/b",
		"/del/tree/sub/deeper/c",
		"/del/tree-sibling/d", // shares the prefix "/del/tree"
		"/del/treefile",       // likewise
		"/del/other/e",
	}
	for _, f := range files {
		put(t, d, f, []byte(f))
	}

	if err := d.Delete(ctx, "/del/file"); err != nil {
		t.Fatalf("Delete of a file: %v", err)
	}
	wantNotFound(t, d, "/del/file")

	if err := d.Delete(ctx, "/del/tree"); err != nil {
		t.Fatalf("Delete of a tree: %v", err)
	}
	for _, p := range []string{"/del/tree", "/del/tree/a", "/del/tree/sub", "/del/tree/sub/b", "/del/tree/sub/deeper/c"} {
		wantNotFound(t, d, p)
	}
	_, err := d.List(ctx, "/del/tree")
	wantErr(t, "List of a deleted tree", err, storage.ErrNotFound)
	for _, f := range files[4:] {
		wantContent(t, d, f, []byte(f))
	}
	wantList(t, d, "/del", "/del/other", "/del/tree-sibling", "/del/treefile")

	wantErr(t, "Delete of a missing path", d.Delete(ctx, "/del/missing"), storage.ErrNotFound)
	wantErr(t, "Delete of a deleted tree", d.Delete(ctx, "/del/tree"), storage.ErrNotFound)
	wantErr(t, "Delete below a file", d.Delete(ctx, "/del/treefile/x"), storage.ErrNotFound)
	wantErr(t, "Delete of the root", d.Delete(ctx, "/"), storage.ErrInvalidPath)
	wantContent(t, d, "/del/other/e", []byte("/del/other/e"))
}

func testList(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	for _, f := range []string{"/lst/a", "/lst/b/c", "/lst/b/d", "/lst/bb/x", "/lst/e/f/g", "/lst/e/f/h"} {
		put(t, d, f, []byte("x"))
	}
	wantList(t, d, "/lst", "/lst/a", "/lst/b", "/lst/bb", "/lst/e")
	wantList(t, d, "/lst/b", "/lst/b/c", "/lst/b/d")
	wantList(t, d, "/lst/e", "/lst/e/f")
	wantList(t, d, "/lst/e/f", "/lst/e/f/g", "/lst/e/f/h")

	root := list(t, d, "/")
	if !slices.Contains(root, "/lst") {
		t.Fatalf("List(/) = %q, want it to contain /lst", root)
	}
	for _, p := range root {
		if storage.CheckPath(p) != nil {
			t.Fatalf("List(/) returned the invalid path %q", p)
		}
	}

	_, err := d.List(ctx, "/lst/missing")
	wantErr(t, "List of a missing directory", err, storage.ErrNotFound)
	_, err = d.List(ctx, "/lst/a")
	wantErr(t, "List of a file", err, storage.ErrNotFound)
	_, err = d.List(ctx, "/lst/a/below")
	wantErr(t, "List below a file", err, storage.ErrNotFound)
}

func testStat(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "/st/dir/file", pattern(40, 4321))
	fi, err := d.Stat(ctx, "/st/dir/file")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Path != "/st/dir/file" || fi.Size != 4321 || fi.IsDir || fi.ModTime.IsZero() {
		t.Fatalf("Stat of a file = %+v", fi)
	}
	for _, p := range []string{"/st/dir", "/st", "/"} {
		fi, err := d.Stat(ctx, p)
		if err != nil {
			t.Fatalf("Stat(%s): %v", p, err)
		}
		if !fi.IsDir || fi.Path != p {
			t.Fatalf("Stat of directory %s = %+v", p, fi)
		}
	}
	_, err = d.Reader(ctx, "/st/dir", 0)
	wantErr(t, "Reader of a directory", err, storage.ErrNotFound)
	wantNotFound(t, d, "/st/di") // a prefix of a name is not a path
	wantNotFound(t, d, "/st/dir/file/below")
}

var invalidPaths = []string{
	"", "a", "a/b", "/a/", "/a//b", "//", "/..", "/.", "/../x", "/a/../b",
	"/a/./b", "/a/..", "/a b", "/a\\b", "/a\x00b", "/a/b/", "/é", "/a:b", "/a~b",
}

func testInvalidPaths(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "/valid/file", []byte("x"))
	for _, p := range invalidPaths {
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, storage.ErrInvalidPath) {
				t.Errorf("%s(%q): got error %v, want ErrInvalidPath", what, p, err)
			}
		}
		rc, err := d.Reader(ctx, p, 0)
		if err == nil {
			rc.Close()
		}
		check("Reader", err)
		for _, appendMode := range []bool{false, true} {
			w, err := d.Writer(ctx, p, appendMode)
			if err == nil {
				_ = w.Cancel(ctx)
				_ = w.Close()
			}
			check(fmt.Sprintf("Writer(append=%v)", appendMode), err)
		}
		_, err = d.Stat(ctx, p)
		check("Stat", err)
		_, err = d.List(ctx, p)
		check("List", err)
		check("Move from", d.Move(ctx, p, "/valid/dst"))
		check("Move to", d.Move(ctx, "/valid/file", p))
		check("Delete", d.Delete(ctx, p))
		check("PutContent", storage.PutContent(ctx, d, p, []byte("x")))
	}
	// The root is a directory: it cannot be written, moved or deleted.
	_, err := d.Writer(ctx, "/", false)
	wantErr(t, "Writer(/)", err, storage.ErrInvalidPath)
	wantErr(t, "Move(/, ...)", d.Move(ctx, "/", "/valid/dst"), storage.ErrInvalidPath)
	wantErr(t, "Move(..., /)", d.Move(ctx, "/valid/file", "/"), storage.ErrInvalidPath)
	wantErr(t, "PutContent(/)", storage.PutContent(ctx, d, "/", nil), storage.ErrInvalidPath)

	// Nothing was touched.
	wantContent(t, d, "/valid/file", []byte("x"))
	wantNotFound(t, d, "/valid/dst")
	wantList(t, d, "/valid", "/valid/file")
}

func testNotFound(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "/nf/file", []byte("x"))
	for _, p := range []string{"/nf/missing", "/missing/deeper/path", "/nf/file/below"} {
		rc, err := d.Reader(ctx, p, 0)
		if err == nil {
			rc.Close()
		}
		wantErr(t, "Reader("+p+")", err, storage.ErrNotFound)
		_, err = d.Stat(ctx, p)
		wantErr(t, "Stat("+p+")", err, storage.ErrNotFound)
		_, err = d.List(ctx, p)
		wantErr(t, "List("+p+")", err, storage.ErrNotFound)
		wantErr(t, "Move("+p+")", d.Move(ctx, p, "/nf/dst"), storage.ErrNotFound)
		wantErr(t, "Delete("+p+")", d.Delete(ctx, p), storage.ErrNotFound)
	}
	wantNotFound(t, d, "/nf/dst")
}

func testConcurrentDifferentFiles(t *testing.T, d storage.Driver) {
	const n = 8
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := fmt.Sprintf("/conc/diff/%d", i)
			content := pattern(uint64(100+i), 200000+i)
			w, err := d.Writer(ctx, p, false)
			if err != nil {
				t.Errorf("Writer(%s): %v", p, err)
				return
			}
			for off := 0; off < len(content); off += 32768 {
				if _, err := w.Write(content[off:min(off+32768, len(content))]); err != nil {
					t.Errorf("Write(%s): %v", p, err)
					w.Close()
					return
				}
			}
			if err := w.Commit(ctx); err != nil {
				t.Errorf("Commit(%s): %v", p, err)
			}
			w.Close()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("/conc/diff/%d", i)
		wantContent(t, d, want[i], pattern(uint64(100+i), 200000+i))
	}
	wantList(t, d, "/conc/diff", want...)
}

func testConcurrentSamePath(t *testing.T, d storage.Driver) {
	const n = 8
	const size = 300000
	const p = "/conc/same/file"
	ctx := t.Context()
	contents := make([][]byte, n)
	for i := range contents {
		contents[i] = pattern(uint64(200+i), size)
	}
	put(t, d, p, []byte("original"))

	// All writers are open at once and write their chunks in lock step, then
	// all commit at once.
	opened, wrote := &sync.WaitGroup{}, &sync.WaitGroup{}
	opened.Add(n)
	wrote.Add(n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w, err := d.Writer(ctx, p, false)
			opened.Done()
			if err != nil {
				wrote.Done()
				t.Errorf("Writer: %v", err)
				return
			}
			defer w.Close()
			opened.Wait()
			ok := true
			for off := 0; off < size; off += 50000 {
				if _, err := w.Write(contents[i][off:min(off+50000, size)]); err != nil {
					t.Errorf("Write: %v", err)
					ok = false
					break
				}
			}
			wrote.Done()
			wrote.Wait()
			if ok {
				if err := w.Commit(ctx); err != nil {
					t.Errorf("Commit: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	got := get(t, d, p)
	for _, c := range contents {
		if bytes.Equal(got, c) {
			wantList(t, d, "/conc/same", p)
			return
		}
	}
	t.Fatalf("after concurrent replacements the file (%d bytes) is none of the writers' contents", len(got))
}

func testPutContent(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	const p = "/put/deep/dir/file"
	put(t, d, p, []byte("first"))
	wantContent(t, d, p, []byte("first"))
	content := pattern(50, 100000)
	put(t, d, p, content)
	wantContent(t, d, p, content)
	fi, err := d.Stat(ctx, p)
	if err != nil || fi.Size != int64(len(content)) {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	// The driver must not keep the caller's slice.
	buf := []byte("mutable")
	put(t, d, "/put/copy", buf)
	copy(buf, "MUTATED")
	wantContent(t, d, "/put/copy", []byte("mutable"))

	// The path as seen through a FileWriter and through PutContent is the
	// same file.
	w := newWriter(t, d, "/put/copy", true)
	write(t, w, []byte("+appended"))
	commitClose(t, w)
	wantContent(t, d, "/put/copy", []byte("mutable+appended"))
}

func testWalk(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	files := map[string]int{
		"/walk/a":         1,
		"/walk/b/c":       2,
		"/walk/b/d/e":     3,
		"/walk/b/d/f":     0,
		"/walk/g/h/i/j/k": 5,
		"/walkother/x":    6,
	}
	for p, n := range files {
		put(t, d, p, pattern(uint64(n), n))
	}
	collect := func(root string) map[string]int64 {
		t.Helper()
		got := map[string]int64{}
		err := storage.Walk(ctx, d, root, func(fi storage.FileInfo) error {
			if fi.IsDir {
				t.Errorf("Walk called fn for directory %s", fi.Path)
			}
			if _, dup := got[fi.Path]; dup {
				t.Errorf("Walk visited %s twice", fi.Path)
			}
			got[fi.Path] = fi.Size
			return nil
		})
		if err != nil {
			t.Fatalf("Walk(%s): %v", root, err)
		}
		return got
	}
	got := collect("/walk")
	if len(got) != 5 {
		t.Fatalf("Walk(/walk) found %v, want the 5 files below /walk", got)
	}
	for p, n := range files {
		if p == "/walkother/x" {
			continue
		}
		if size, ok := got[p]; !ok || size != int64(n) {
			t.Fatalf("Walk(/walk): %s has size %d (found %v), want %d", p, size, ok, n)
		}
	}
	all := collect("/")
	for p := range files {
		if _, ok := all[p]; !ok {
			t.Fatalf("Walk(/) did not find %s", p)
		}
	}
	if sub := collect("/walk/b/d"); len(sub) != 2 {
		t.Fatalf("Walk(/walk/b/d) = %v", sub)
	}

	// An error from fn stops the walk and comes back unchanged, even when it
	// wraps ErrNotFound.
	stop := fmt.Errorf("stop: %w", storage.ErrNotFound)
	calls := 0
	err := storage.Walk(ctx, d, "/walk", func(storage.FileInfo) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("Walk with a failing fn: err %v after %d calls, want %v after 1", err, calls, stop)
	}
	err = storage.Walk(ctx, d, "/walk/missing", func(storage.FileInfo) error { return nil })
	wantErr(t, "Walk of a missing directory", err, storage.ErrNotFound)
}
