package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileRoot makes a directory standing for a container's root with symlinks that point
// out of it, and a host directory with a file of the same name next to it.
func hostileRoot(t *testing.T) (root string, rootfd int, host string) {
	t.Helper()
	dir := t.TempDir()
	root, host = filepath.Join(dir, "rootfs"), filepath.Join(dir, "host")
	for _, d := range []string{filepath.Join(root, "etc"), filepath.Join(host, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/secret"), []byte("container\n"), 0o600)
	os.WriteFile(filepath.Join(host, "etc/secret"), []byte("host\n"), 0o600)
	for name, target := range map[string]string{
		"evil": "/", "up": "../../../../../../", "abs": "/etc/secret", "loop": "loop",
		"hostdir": host, "etc/rel": "../../../etc/secret",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return root, fd, host
}

func readResolved(t *testing.T, r *resolved) string {
	t.Helper()
	fd, err := unix.Openat(r.parent, r.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", r.path, err)
	}
	f := os.NewFile(uintptr(fd), r.path)
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}

func TestResolveInStaysInRoot(t *testing.T) {
	_, rootfd, _ := hostileRoot(t)
	for _, c := range []struct {
		p      string
		follow bool
		path   string
	}{
		{"/evil/etc/secret", false, "/evil/etc/secret"},
		{"/up/etc/secret", false, "/up/etc/secret"},
		{"evil/../../../etc/secret", false, "/etc/secret"},
		{"/abs", true, "/etc/secret"},
		{"/etc/rel", true, "/etc/secret"},
		{"/evil/abs", true, "/etc/secret"},
	} {
		r, err := resolveIn(rootfd, c.p, c.follow)
		if err != nil {
			t.Errorf("%s: %v", c.p, err)
			continue
		}
		if got := readResolved(t, r); got != "container\n" {
			t.Errorf("%s read %q, want the container's file", c.p, got)
		}
		if r.path != c.path {
			t.Errorf("%s resolved to %s, want %s", c.p, r.path, c.path)
		}
		r.close()
	}
	// Not followed: the link itself.
	r, err := resolveIn(rootfd, "/abs", false)
	if err != nil || r.st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("/abs without follow: %v", err)
	} else {
		r.close()
	}
	if _, err := resolveIn(rootfd, "/loop", true); err == nil {
		t.Error("a symlink loop resolved")
	}
	// An absolute host path stored in a container symlink is a container path.
	if _, err := resolveIn(rootfd, "/hostdir/etc/secret", true); err == nil {
		t.Error("/hostdir (a symlink to a host path) resolved on the host")
	}
	if _, err := resolveIn(rootfd, "/nosuch/x", false); err == nil || !strings.Contains(err.Error(), ErrPathNotFound.Error()) {
		t.Errorf("missing path: %v", err)
	}
}

func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return b.Bytes()
}

func TestExtractRefusesEscapes(t *testing.T) {
	root, _, host := hostileRoot(t)
	dest, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dest)
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}
	}
	for name, stream := range map[string][]byte{
		"dotdot":         tarOf(t, reg("../x")),
		"dotdot inside":  tarOf(t, reg("etc/../../x")),
		"absolute":       tarOf(t, reg("/x")),
		"through evil":   tarOf(t, reg("evil/tmp/x")),
		"through host":   tarOf(t, reg("hostdir/etc/secret")),
		"hardlink out":   tarOf(t, &tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../host/etc/secret"}),
		"hardlink via":   tarOf(t, &tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "hostdir/etc/secret"}),
		"new link, then": tarOf(t, &tar.Header{Name: "l2", Typeflag: tar.TypeSymlink, Linkname: host, Mode: 0o777}, reg("l2/etc/secret")),
	} {
		if err := Extract(context.Background(), bytes.NewReader(stream), dest, ExtractOptions{}); err == nil {
			t.Errorf("%s: extracted", name)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(host, "etc/secret")); string(b) != "host\n" {
		t.Fatalf("the host file changed: %q", b)
	}
	// A file over an existing symlink replaces the link; the link's target stays.
	if err := Extract(context.Background(), bytes.NewReader(tarOf(t, reg("hostdir"))), dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "hostdir")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("hostdir: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "etc/secret")); string(b) != "host\n" {
		t.Fatalf("the host file changed: %q", b)
	}
	// A normal tree: directories made as needed, modes and hardlinks kept.
	ok := tarOf(t, &tar.Header{Name: "new/", Typeflag: tar.TypeDir, Mode: 0o750},
		&tar.Header{Name: "new/a", Typeflag: tar.TypeReg, Mode: 0o640, Size: 3},
		&tar.Header{Name: "new/b", Typeflag: tar.TypeLink, Linkname: "new/a"},
		&tar.Header{Name: "deep/er/c", Typeflag: tar.TypeReg, Mode: 0o600, Size: 1})
	if err := Extract(context.Background(), bytes.NewReader(ok), dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.Stat(filepath.Join(root, "new/a"))
	fb, _ := os.Stat(filepath.Join(root, "new/b"))
	fd, _ := os.Stat(filepath.Join(root, "new"))
	if fa == nil || fb == nil || !os.SameFile(fa, fb) || fa.Mode().Perm() != 0o640 || fd.Mode().Perm() != 0o750 {
		t.Errorf("tree: %v %v %v", fa, fb, fd)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "deep/er/c")); string(b) != "x" {
		t.Errorf("deep/er/c: %q", b)
	}
	// To the host: no device nodes, no setuid bits of the container's choosing.
	var skipped []string
	host2 := tarOf(t, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
		&tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 1})
	if err := Extract(context.Background(), bytes.NewReader(host2), dest,
		ExtractOptions{Owner: OwnerCaller, NoDevices: true, Skipped: func(n string) { skipped = append(skipped, n) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "null")); err == nil || len(skipped) != 1 || skipped[0] != "null" {
		t.Errorf("device node: %v, skipped %q", err, skipped)
	}
	if fi, err := os.Stat(filepath.Join(root, "suid")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("suid: %v %v", fi, err)
	}
}

func TestWriteTreeDoesNotFollow(t *testing.T) {
	root, _, _ := hostileRoot(t)
	pfd, err := unix.Open(filepath.Dir(root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	var b bytes.Buffer
	if err := WriteTree(context.Background(), &b, pfd, "rootfs", "copy"); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&b)
	names := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = h
	}
	if h := names["copy/hostdir"]; h == nil || h.Typeflag != tar.TypeSymlink {
		t.Errorf("copy/hostdir: %+v", h)
	}
	if h := names["copy/evil"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/" {
		t.Errorf("copy/evil: %+v", h)
	}
	for n := range names {
		if strings.HasPrefix(n, "copy/hostdir/") || strings.HasPrefix(n, "copy/evil/") {
			t.Errorf("followed a symlink: %s", n)
		}
	}
	if names["copy/"] == nil || names["copy/etc/secret"] == nil {
		t.Errorf("entries: %v", names)
	}
}
