package filesystem_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/filesystem"
	"github.com/berth-registry/berth/storage/storagetest"
)

func newDriver(t testing.TB) (*filesystem.Driver, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dir
}

func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		d, _ := newDriver(t)
		return d
	})
}

// TestDriverSync runs the suite with durable writes (storage.filesystem.sync).
func TestDriverSync(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		d, err := filesystem.New(t.TempDir(), filesystem.WithSync(true))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

func TestNewCreatesRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "root")
	d, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if err := storage.PutContent(t.Context(), d, "/docker/registry/v2/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "docker", "registry", "v2", "x")); err != nil || string(b) != "x" {
		t.Fatalf("file not at root/docker/registry/v2/x: %q, %v", b, err)
	}
}

// TestReaderIsFile checks that Reader hands out the *os.File itself, seeked
// to the offset, so that net/http can sendfile from it.
func TestReaderIsFile(t *testing.T) {
	ctx := t.Context()
	d, _ := newDriver(t)
	if err := storage.PutContent(ctx, d, "/f", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Reader(ctx, "/f", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, ok := rc.(*os.File)
	if !ok {
		t.Fatalf("Reader returned %T, want *os.File", rc)
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 4 {
		t.Fatalf("reader at %d, want 4", pos)
	}
	b, _ := io.ReadAll(f)
	if string(b) != "456789" {
		t.Fatalf("read %q", b)
	}
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestTempFiles checks that new files are written next to their target under
// a hidden name, that no temporary file survives Commit, Cancel or Close, and
// that those left by a crash are neither listed nor walked.
func TestTempFiles(t *testing.T) {
	ctx := t.Context()
	d, dir := newDriver(t)
	w, err := d.Writer(ctx, "/a/b/file", false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	tmps := tempFiles(t, dir)
	if len(tmps) != 1 || filepath.Dir(tmps[0]) != filepath.Join(dir, "a", "b") {
		t.Fatalf("temporary files while writing: %q", tmps)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, finish := range []func(storage.FileWriter) error{
		func(w storage.FileWriter) error { return w.Cancel(ctx) },
		func(w storage.FileWriter) error { return w.Close() },
	} {
		w, err := d.Writer(ctx, "/a/b/other", false)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("data"))
		if err := finish(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := storage.PutContent(ctx, d, "/a/b/put", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if tmps := tempFiles(t, dir); len(tmps) != 0 {
		t.Fatalf("temporary files left behind: %q", tmps)
	}

	// A crash leaves a temporary file behind.
	if err := os.WriteFile(filepath.Join(dir, "a", "b", ".tmp~0123abcd"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp~root"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	kids, err := d.List(ctx, "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(kids, " ") != "/a/b/file /a/b/put" {
		t.Fatalf("List = %q", kids)
	}
	var walked []string
	if err := storage.Walk(ctx, d, "/", func(fi storage.FileInfo) error {
		walked = append(walked, fi.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(walked, " ") != "/a/b/file /a/b/put" {
		t.Fatalf("Walk = %q", walked)
	}
}

// TestCloseAppendKeepsBytes checks that Close without Commit of an append
// writer keeps what it wrote, for a later resume.
func TestCloseAppendKeepsBytes(t *testing.T) {
	ctx := t.Context()
	d, _ := newDriver(t)
	if err := storage.PutContent(ctx, d, "/f", []byte("base")); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, "/f", true)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("+kept"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := storage.GetContent(ctx, d, "/f")
	if err != nil || string(got) != "base+kept" {
		t.Fatalf("content %q, %v; want %q", got, err, "base+kept")
	}
}

// TestReadFrom checks that io.Copy into a writer goes through ReadFrom and
// counts the bytes.
func TestReadFrom(t *testing.T) {
	ctx := t.Context()
	d, dir := newDriver(t)
	src := filepath.Join(t.TempDir(), "src")
	content := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := d.Writer(ctx, "/copied", false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("head"))
	n, err := io.Copy(w, f)
	if err != nil || n != int64(len(content)) {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if w.Size() != int64(len(content))+4 {
		t.Fatalf("Size = %d", w.Size())
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, _ := os.ReadFile(filepath.Join(dir, "copied"))
	if !bytes.Equal(got, append([]byte("head"), content...)) {
		t.Fatalf("copied file differs (%d bytes)", len(got))
	}
}

// TestSymlinkEscape checks that symbolic links inside the root can never be
// used to read, write, list, move or delete anything outside it.
func TestSymlinkEscape(t *testing.T) {
	ctx := t.Context()
	d, dir := newDriver(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "x")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An absolute link, a relative link climbing out, and a link to a file.
	if err := os.Symlink(outside, filepath.Join(dir, "docker")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, outside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(dir, "relative")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "filelink")); err != nil {
		t.Fatal(err)
	}
	if err := storage.PutContent(ctx, d, "/inside", []byte("inside")); err != nil {
		t.Fatal(err)
	}

	for _, link := range []string{"/docker", "/relative"} {
		p := link + "/x"
		if rc, err := d.Reader(ctx, p, 0); err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("Reader(%s) succeeded and read %q", p, b)
		}
		if _, err := d.Stat(ctx, p); err == nil {
			t.Errorf("Stat(%s) succeeded", p)
		}
		if _, err := d.List(ctx, link); err == nil {
			t.Errorf("List(%s) succeeded", link)
		}
		if w, err := d.Writer(ctx, p, true); err == nil {
			w.Write([]byte("appended"))
			w.Commit(ctx)
			w.Close()
			t.Errorf("Writer(%s, append) succeeded", p)
		}
		if w, err := d.Writer(ctx, link+"/new", false); err == nil {
			w.Write([]byte("new"))
			if err := w.Commit(ctx); err == nil {
				t.Errorf("Writer(%s/new) committed", link)
			}
			w.Close()
		}
		if err := storage.PutContent(ctx, d, link+"/put", []byte("put")); err == nil {
			t.Errorf("PutContent(%s/put) succeeded", link)
		}
		if err := d.Move(ctx, "/inside", link+"/moved"); err == nil {
			t.Errorf("Move(/inside, %s/moved) succeeded", link)
		}
		if err := d.Move(ctx, p, "/stolen"); err == nil {
			t.Errorf("Move(%s, /stolen) succeeded", p)
		}
		if err := d.Delete(ctx, p); err == nil {
			t.Errorf("Delete(%s) succeeded", p)
		}
	}
	if rc, err := d.Reader(ctx, "/filelink", 0); err == nil {
		rc.Close()
		t.Error("Reader(/filelink) succeeded")
	}
	if w, err := d.Writer(ctx, "/filelink", true); err == nil {
		w.Close()
		t.Error("Writer(/filelink, append) succeeded")
	}

	// Deleting the links removes the links, not what they point to.
	for _, link := range []string{"/docker", "/relative", "/filelink"} {
		if err := d.Delete(ctx, link); err != nil {
			t.Errorf("Delete(%s): %v", link, err)
		}
	}

	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "x" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("outside directory now holds %q", names)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Fatalf("outside file changed: %q, %v", b, err)
	}
	if b, err := storage.GetContent(ctx, d, "/inside"); err != nil || string(b) != "inside" {
		t.Fatalf("/inside: %q, %v", b, err)
	}
	if _, err := d.Stat(ctx, "/stolen"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(/stolen): %v", err)
	}
}

// BenchmarkWriter streams 64 MiB blobs through Writer and Commit, as the
// registry's push path does.
func BenchmarkWriter(b *testing.B) {
	d, _ := newDriver(b)
	ctx := b.Context()
	chunk := bytes.Repeat([]byte{0x5a}, 1<<20)
	b.SetBytes(64 << 20)
	for b.Loop() {
		w, err := d.Writer(ctx, "/blobs/data", false)
		if err != nil {
			b.Fatal(err)
		}
		for range 64 {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}
