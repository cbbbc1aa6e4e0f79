package changes

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/internal/testenv"
	"golang.org/x/sys/unix"
)

func mkfile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// sameDirMeta gives dst the mode and times of src (a copied-up directory).
func sameDirMeta(t *testing.T, src, dst string) {
	t.Helper()
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

type layers struct{ bottom, top, upper string }

// newLayers makes two image layers and an upper directory with additions, changes,
// hardlinks, a symlink, a copied-up directory and a runtime mount point (no root needed).
func newLayers(t *testing.T) layers {
	dir := t.TempDir()
	l := layers{filepath.Join(dir, "l0"), filepath.Join(dir, "l1"), filepath.Join(dir, "upper")}
	mkfile(t, filepath.Join(l.bottom, "etc/passwd"), "root\n")
	mkfile(t, filepath.Join(l.bottom, "etc/motd"), "hi\n")
	mkfile(t, filepath.Join(l.bottom, "keep/k"), "k\n")
	mkfile(t, filepath.Join(l.top, "etc/group"), "root\n")
	mkdir(t, l.upper)
	mkdir(t, filepath.Join(l.upper, "etc"))
	mkfile(t, filepath.Join(l.upper, "etc/passwd"), "root\napp\n")
	mkfile(t, filepath.Join(l.upper, "etc/new"), "new\n")
	mkfile(t, filepath.Join(l.upper, "etc/hosts"), "") // a bind mount point: skipped
	mkfile(t, filepath.Join(l.upper, "newdir/f"), "data\n")
	if err := os.Link(filepath.Join(l.upper, "newdir/f"), filepath.Join(l.upper, "newdir/g")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(l.upper, "link")); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(l.upper, "keep")) // copied up, unchanged
	sameDirMeta(t, filepath.Join(l.bottom, "keep"), filepath.Join(l.upper, "keep"))
	sameDirMeta(t, filepath.Join(l.bottom, "etc"), filepath.Join(l.upper, "etc"))
	return l
}

var skipHosts = &Options{Skip: []string{"/etc/hosts", "/proc"}}

func TestWalk(t *testing.T) {
	l := newLayers(t)
	got, err := Walk(context.Background(), l.upper, []string{l.top, l.bottom}, skipHosts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"C /etc", "A /etc/new", "C /etc/passwd", "A /link", "A /newdir", "A /newdir/f", "A /newdir/g"}
	if s := changeStrings(got); !reflect.DeepEqual(s, want) {
		t.Errorf("Walk:\n got %q\nwant %q", s, want)
	}
	// A mode change of a copied-up directory is a change.
	if err := os.Chmod(filepath.Join(l.upper, "keep"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err = Walk(context.Background(), l.upper, []string{l.top, l.bottom}, skipHosts)
	if err != nil {
		t.Fatal(err)
	}
	if s := changeStrings(got); !strings.Contains(strings.Join(s, ","), "C /keep,") {
		t.Errorf("chmod of /keep not seen: %q", s)
	}
	// No change at all.
	empty := filepath.Join(t.TempDir(), "u")
	mkdir(t, empty)
	if ok, err := HasChanges(context.Background(), empty, []string{l.top}, nil); err != nil || ok {
		t.Errorf("HasChanges of an empty upper = %v, %v", ok, err)
	}
}

func changeStrings(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

type tarEnt struct {
	hdr  *tar.Header
	body string
}

func readTar(t *testing.T, b []byte) []tarEnt {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEnt
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, tarEnt{h, string(body)})
	}
}

func TestWriteLayer(t *testing.T) {
	l := newLayers(t)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(l.upper, "etc/new"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(l.upper, "etc/new"), 0o4751); err != nil {
		t.Fatal(err)
	}
	xattrOK := unix.Lsetxattr(filepath.Join(l.upper, "etc/new"), "user.berth", []byte("v1"), 0) == nil
	var buf bytes.Buffer
	if err := WriteLayer(context.Background(), &buf, l.upper, []string{l.top, l.bottom}, skipHosts); err != nil {
		t.Fatal(err)
	}
	ents := readTar(t, buf.Bytes())
	var names []string
	byName := map[string]tarEnt{}
	for _, e := range ents {
		names = append(names, e.hdr.Name)
		byName[e.hdr.Name] = e
	}
	want := []string{"etc/", "etc/new", "etc/passwd", "link", "newdir/", "newdir/f", "newdir/g"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	n := byName["etc/new"]
	if n.body != "new\n" || n.hdr.Mode != 0o4751 || !n.hdr.ModTime.Equal(mtime) || n.hdr.Uid != os.Geteuid() {
		t.Errorf("etc/new: %+v %q", n.hdr, n.body)
	}
	if xattrOK && n.hdr.PAXRecords["SCHILY.xattr.user.berth"] != "v1" {
		t.Errorf("xattr lost: %v", n.hdr.PAXRecords)
	}
	if e := byName["link"]; e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "/" {
		t.Errorf("link: %+v", e.hdr)
	}
	if e := byName["newdir/g"]; e.hdr.Typeflag != tar.TypeLink || e.hdr.Linkname != "newdir/f" {
		t.Errorf("hardlink: %+v", e.hdr)
	}
	// Deterministic.
	var again bytes.Buffer
	if err := WriteLayer(context.Background(), &again, l.upper, []string{l.top, l.bottom}, skipHosts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two WriteLayer runs differ")
	}
}

// TestWhiteouts needs root: overlayfs whiteouts are 0/0 character devices and opaque
// directories carry a trusted.* xattr.
func TestWhiteouts(t *testing.T) {
	testenv.NeedRoot(t, "mknod 0/0, trusted.* xattrs")
	l := newLayers(t)
	mkfile(t, filepath.Join(l.bottom, "tmp/y"), "y")
	mkfile(t, filepath.Join(l.bottom, "data/a"), "a")
	mkfile(t, filepath.Join(l.top, "data/b"), "b")
	mkfile(t, filepath.Join(l.bottom, "gone/x"), "x")
	// A whiteout in a lower layer: /etc/motd is not in the image.
	if err := unix.Mknod(filepath.Join(l.top, "etc/motd"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(l.upper, "tmp"))
	sameDirMeta(t, filepath.Join(l.bottom, "tmp"), filepath.Join(l.upper, "tmp"))
	for _, p := range []string{"tmp/y", "gone", "etc/motd", "nothing"} {
		if err := unix.Mknod(filepath.Join(l.upper, p), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
	}
	mkfile(t, filepath.Join(l.upper, "data/c"), "c")
	sameDirMeta(t, filepath.Join(l.bottom, "data"), filepath.Join(l.upper, "data"))
	if err := unix.Setxattr(filepath.Join(l.upper, "data"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	lower := []string{l.top, l.bottom}
	got, err := Walk(context.Background(), l.upper, lower, skipHosts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"C /data", "D /data/a", "D /data/b", "A /data/c", "C /etc", "A /etc/new", "C /etc/passwd",
		"D /gone", "A /link", "A /newdir", "A /newdir/f", "A /newdir/g", "C /tmp", "D /tmp/y"}
	if s := changeStrings(got); !reflect.DeepEqual(s, want) {
		t.Errorf("Walk:\n got %q\nwant %q", s, want)
	}
	var buf bytes.Buffer
	if err := WriteLayer(context.Background(), &buf, l.upper, lower, skipHosts); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range readTar(t, buf.Bytes()) {
		names = append(names, e.hdr.Name)
		if strings.Contains(e.hdr.Name, ".wh.") && (e.hdr.Typeflag != tar.TypeReg || e.hdr.Size != 0) {
			t.Errorf("whiteout entry %+v", e.hdr)
		}
		for k := range e.hdr.PAXRecords {
			if strings.Contains(k, "trusted.overlay") {
				t.Errorf("%s carries %s", e.hdr.Name, k)
			}
		}
	}
	wantNames := []string{"data/", "data/.wh..wh..opq", "data/c", "etc/", "etc/new", "etc/passwd", ".wh.gone",
		"link", "newdir/", "newdir/f", "newdir/g", "tmp/", "tmp/.wh.y"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("entries\n got %q\nwant %q", names, wantNames)
	}
}

func TestSymlinkInUpperNotFollowed(t *testing.T) {
	// /etc in the upper directory is a symlink to a host directory: Walk must list the
	// link, never what is behind it.
	dir := t.TempDir()
	lower, upper, host := filepath.Join(dir, "l"), filepath.Join(dir, "u"), filepath.Join(dir, "host")
	mkfile(t, filepath.Join(lower, "etc/passwd"), "x")
	mkfile(t, filepath.Join(host, "secret"), "s")
	mkdir(t, upper)
	if err := os.Symlink(host, filepath.Join(upper, "etc")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteLayer(context.Background(), &buf, upper, []string{lower}, nil); err != nil {
		t.Fatal(err)
	}
	ents := readTar(t, buf.Bytes())
	if len(ents) != 1 || ents[0].hdr.Name != "etc" || ents[0].hdr.Typeflag != tar.TypeSymlink {
		t.Errorf("entries: %v", ents)
	}
}

// BenchmarkWriteLayer10k measures the layer of a container that wrote 10,000 files.
func BenchmarkWriteLayer10k(b *testing.B) {
	dir := b.TempDir()
	lower, upper := filepath.Join(dir, "l"), filepath.Join(dir, "u")
	os.MkdirAll(filepath.Join(lower, "data"), 0o755)
	os.MkdirAll(filepath.Join(upper, "data"), 0o755)
	for i := range 10000 {
		os.WriteFile(filepath.Join(upper, "data", fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("%d\n", i)), 0o644)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := WriteLayer(context.Background(), io.Discard, upper, []string{lower}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
