package memory_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/memory"
	"github.com/berth-registry/berth/storage/storagetest"
)

func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver { return memory.New() })
}

// TestCloseAppendKeepsBytes checks the stronger promise memory makes: Close
// without Commit of an append writer keeps what it wrote.
func TestCloseAppendKeepsBytes(t *testing.T) {
	ctx := t.Context()
	d := memory.New()
	if err := storage.PutContent(ctx, d, "/f", []byte("base")); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, "/f", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("+kept")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := storage.GetContent(ctx, d, "/f")
	if err != nil || string(got) != "base+kept" {
		t.Fatalf("content %q, %v; want %q", got, err, "base+kept")
	}
}

// TestFileDirectoryConflicts checks that a path cannot be both a file and a
// directory, as on a filesystem.
func TestFileDirectoryConflicts(t *testing.T) {
	ctx := t.Context()
	d := memory.New()
	if err := storage.PutContent(ctx, d, "/a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := storage.PutContent(ctx, d, "/a/b/c", []byte("x")); err == nil {
		t.Fatal("PutContent below a file succeeded")
	}
	if err := storage.PutContent(ctx, d, "/a", []byte("x")); err == nil {
		t.Fatal("PutContent over a directory succeeded")
	}
	if _, err := d.Writer(ctx, "/a", false); err == nil {
		t.Fatal("Writer over a directory succeeded")
	}
	if err := storage.PutContent(ctx, d, "/other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.Move(ctx, "/other", "/a"); err == nil {
		t.Fatal("Move over a directory succeeded")
	}
	if err := d.Move(ctx, "/other", "/a/b/c"); err == nil {
		t.Fatal("Move below a file succeeded")
	}
	if got, err := storage.GetContent(ctx, d, "/other"); err != nil || string(got) != "x" {
		t.Fatalf("failed Move lost its source: %q, %v", got, err)
	}
}

// TestReadersSeeAStableSnapshot checks that appends never change the bytes an
// open reader returns.
func TestReadersSeeAStableSnapshot(t *testing.T) {
	ctx := t.Context()
	d := memory.New()
	if err := storage.PutContent(ctx, d, "/f", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Reader(ctx, "/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, s := range []string{"def", "ghi"} {
		w, err := d.Writer(ctx, "/f", true)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(s))
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	buf := make([]byte, 10)
	n, _ := rc.Read(buf)
	if string(buf[:n]) != "abc" {
		t.Fatalf("reader opened before appends read %q", buf[:n])
	}
}

// TestEmptyDirectoriesVanish checks that, as on an object store, directories
// exist only while they have descendants.
func TestEmptyDirectoriesVanish(t *testing.T) {
	ctx := t.Context()
	d := memory.New()
	for _, p := range []string{"/a/b/c/file", "/a/keep", "/m/src"} {
		if err := storage.PutContent(ctx, d, p, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Delete(ctx, "/a/b/c/file"); err != nil {
		t.Fatal(err)
	}
	if err := d.Move(ctx, "/m/src", "/n/dst"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a/b/c", "/a/b", "/m"} {
		if _, err := d.Stat(ctx, p); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%s) = %v, want ErrNotFound", p, err)
		}
	}
	kids, err := d.List(ctx, "/")
	if err != nil || strings.Join(kids, " ") != "/a /n" {
		t.Fatalf("List(/) = %q, %v", kids, err)
	}
	if err := d.Delete(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "/n"); err != nil {
		t.Fatal(err)
	}
	if kids, err := d.List(ctx, "/"); err != nil || len(kids) != 0 {
		t.Fatalf("List(/) of an emptied driver = %q, %v", kids, err)
	}
	if fi, err := d.Stat(ctx, "/"); err != nil || !fi.IsDir {
		t.Fatalf("Stat(/) of an emptied driver = %+v, %v", fi, err)
	}
}
