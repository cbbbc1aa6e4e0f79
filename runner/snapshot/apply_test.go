package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestApplyTypesModesTimes(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	dirTime := time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)
	fileTime := time.Date(2020, 6, 7, 8, 9, 10, 123456789, time.UTC)
	linkTime := time.Date(2018, 2, 3, 4, 5, 6, 0, time.UTC)
	data := mkTar(t,
		ent{name: "./", typ: tar.TypeDir, mode: 0o700}, // ignored, as Docker does
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o755, mtime: dirTime},
		ent{name: "etc/hosts", body: "127.0.0.1 localhost\n", mode: 0o644, mtime: fileTime},
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o755, mtime: dirTime},
		ent{name: "bin/su", body: "#!/bin/sh\n", mode: 0o4755},
		ent{name: "bin/wall", body: "w", mode: 0o2755},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777, mtime: dirTime},
		ent{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox", mtime: linkTime},
		ent{name: "bin/abs", typ: tar.TypeSymlink, link: "/etc/hosts"},
		ent{name: "bin/dangling", typ: tar.TypeSymlink, link: "../nowhere/x"},
		ent{name: "bin/busybox", body: "BB", mode: 0o755},
		ent{name: "bin/hosts2", typ: tar.TypeLink, link: "etc/hosts", mode: 0o644, mtime: fileTime},
		ent{name: "/bin/hosts3", typ: tar.TypeLink, link: "/etc/hosts", mode: 0o644, mtime: fileTime},
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620},
		ent{name: "deep/er/still/file", body: "implicit parents"},
		ent{name: "empty", body: ""},
		ent{name: "ro/", typ: tar.TypeDir, mode: 0o555, mtime: dirTime},
		ent{name: "ro/inside", body: "x", mode: 0o444},
		ent{name: "noperm/", typ: tar.TypeDir, mode: -1, mtime: dirTime},
		ent{name: "noperm/f", body: "y", mode: -1},
	)
	st := mustApply(t, dir, data, ApplyOptions{})
	if st.Files != 8 || st.Dirs != 5 || st.Symlinks != 3 || st.Hardlinks != 2 || st.Fifos != 1 {
		t.Errorf("stats = %+v", st)
	}
	if st.TarBytes != int64(len(data)) {
		t.Errorf("TarBytes = %d, want %d", st.TarBytes, len(data))
	}

	if got := readFile(t, filepath.Join(dir, "etc/hosts")); got != "127.0.0.1 localhost\n" {
		t.Errorf("etc/hosts = %q", got)
	}
	checkMode := func(p string, want uint32) {
		t.Helper()
		st := lstat(t, filepath.Join(dir, p))
		if st.Mode&0o7777 != want {
			t.Errorf("%s: mode %04o, want %04o", p, st.Mode&0o7777, want)
		}
	}
	checkMode("bin/su", 0o4755)
	checkMode("bin/wall", 0o2755)
	checkMode("tmp", 0o1777)
	checkMode("etc/hosts", 0o644)
	checkMode("run/fifo", 0o620)
	checkMode("deep/er", 0o755) // implicit parent
	checkMode("ro", 0o555)
	checkMode("ro/inside", 0o444)
	checkMode("noperm", 0o000)
	if s := lstat(t, filepath.Join(dir, "run/fifo")); s.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("run/fifo is not a fifo: %o", s.Mode)
	}
	for p, want := range map[string]string{"bin/sh": "busybox", "bin/abs": "/etc/hosts", "bin/dangling": "../nowhere/x"} {
		if got, err := os.Readlink(filepath.Join(dir, p)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", p, got, err, want)
		}
	}
	// Hardlinks share the inode.
	h1, h2, h3 := lstat(t, filepath.Join(dir, "etc/hosts")), lstat(t, filepath.Join(dir, "bin/hosts2")), lstat(t, filepath.Join(dir, "bin/hosts3"))
	if h1.Ino != h2.Ino || h1.Ino != h3.Ino || h1.Nlink != 3 {
		t.Errorf("hardlinks: inodes %d %d %d nlink %d", h1.Ino, h2.Ino, h3.Ino, h1.Nlink)
	}
	// Times: files, symlinks, and directories after their contents were written.
	checkTime := func(p string, want time.Time) {
		t.Helper()
		st := lstat(t, filepath.Join(dir, p))
		got := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC()
		if !got.Equal(want) {
			t.Errorf("%s: mtime %v, want %v", p, got, want)
		}
	}
	checkTime("etc/hosts", fileTime)
	checkTime("bin/sh", linkTime)
	checkTime("etc", dirTime)
	checkTime("bin", dirTime)
	checkTime("tmp", dirTime)
	checkTime("ro", dirTime)
	checkTime("noperm", dirTime)
	checkTime("bin/busybox", testTime)
	// Ownership: the tar says the test process' own ids (see mkTar).
	if s := lstat(t, filepath.Join(dir, "bin/su")); int(s.Uid) != os.Geteuid() || int(s.Gid) != os.Getegid() {
		t.Errorf("bin/su owned by %d:%d", s.Uid, s.Gid)
	}
	// The root entry "./" is ignored.
	if s := lstat(t, dir); s.Mode&0o777 != 0o755 {
		t.Errorf("snapshot root mode changed to %04o", s.Mode&0o777)
	}
}

func TestApplyXattrs(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	probe := filepath.Join(dir, ".probe")
	os.WriteFile(probe, nil, 0o644)
	if err := unix.Setxattr(probe, "user.probe", []byte("1"), 0); err != nil {
		testenv.SkipOrFailInCI(t, "filesystem of %s has no user xattrs: %v", dir, err)
	}
	os.Remove(probe)
	data := mkTar(t,
		ent{name: "d/", typ: tar.TypeDir, xattrs: map[string]string{"user.dir": "dv"}},
		ent{name: "d/f", body: "x", xattrs: map[string]string{"user.a": "1", "user.b": "two\x00bytes"}},
		// overlayfs' own xattrs never come from a layer.
		ent{name: "d/g", body: "x", xattrs: map[string]string{"trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc", "user.overlay.opaque": "y"}},
	)
	st := mustApply(t, dir, data, ApplyOptions{})
	get := func(p, k string) string {
		t.Helper()
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(filepath.Join(dir, p), k, buf)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(buf[:n])
	}
	if v := get("d", "user.dir"); v != "dv" {
		t.Errorf("d user.dir = %q", v)
	}
	if v := get("d/f", "user.a"); v != "1" {
		t.Errorf("user.a = %q", v)
	}
	if v := get("d/f", "user.b"); v != "two\x00bytes" {
		t.Errorf("user.b = %q", v)
	}
	if v := get("d/g", "user.overlay.opaque"); !strings.HasPrefix(v, "<") {
		t.Errorf("user.overlay.opaque was set from the layer: %q", v)
	}
	if st.XattrsSet != 3 || st.XattrsSkip != 3 {
		t.Errorf("xattrs set %d skipped %d, want 3 and 3", st.XattrsSet, st.XattrsSkip)
	}
}

func TestApplyRepeatedEntries(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	data := mkTar(t,
		file("a", "first"),
		file("a", "second"), // later file replaces
		dirEnt("d/"),
		file("d/keep", "k"),
		ent{name: "d/", typ: tar.TypeDir, mode: 0o700}, // dir over dir: merge, new mode
		file("f2d", "file"),
		dirEnt("f2d/"), // dir replaces file
		file("f2d/in", "in"),
		dirEnt("d2f/"),
		file("d2f/gone", "g"),
		file("d2f", "now a file"), // file replaces dir (and its contents)
		symlink("s", "a"),
		file("s", "not a link"), // file replaces symlink, nothing written through it
		file("orig", "shared"),
		hardlink("hl", "orig"),
		file("orig", "replaced"), // replacing one name leaves the other link alone
		hardlink("hl", "orig"),   // repeated hardlink: now to the new orig
		hardlink("hl", "orig"),   // same again: nothing to do
		symlink("l2", "x"),
		symlink("l2", "y"),
	)
	mustApply(t, dir, data, ApplyOptions{})
	for p, want := range map[string]string{
		"a": "second", "d/keep": "k", "f2d/in": "in", "d2f": "now a file", "s": "not a link",
		"orig": "replaced", "hl": "replaced",
	} {
		if got := readFile(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if st := lstat(t, filepath.Join(dir, "d")); st.Mode&0o777 != 0o700 {
		t.Errorf("d mode %o, want 0700 (merged)", st.Mode&0o777)
	}
	if st := lstat(t, filepath.Join(dir, "s")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("s is not a regular file")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "l2")); l != "y" {
		t.Errorf("l2 -> %q", l)
	}
	if a, b := lstat(t, filepath.Join(dir, "orig")), lstat(t, filepath.Join(dir, "hl")); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hl and orig: inodes %d %d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
}

func TestApplyDirMtimeAfterContents(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	data := mkTar(t,
		ent{name: "a/", typ: tar.TypeDir, mtime: old},
		ent{name: "a/b/", typ: tar.TypeDir, mtime: old},
		file("a/b/c", "c"),
		file("a/x", "x"),
		ent{name: "a/b/.wh.gone", typ: tar.TypeReg}, // a whiteout made later still leaves the time
	)
	// The whiteout needs mknod 0/0, allowed without privilege since Linux 5.8; skip that
	// part where it is not.
	if _, err := applyTar(t, dir, data, ApplyOptions{}); err != nil {
		if !errors.Is(err, unix.EPERM) {
			t.Fatal(err)
		}
		RemoveSnapshotDir(dir)
		os.Mkdir(dir, 0o755)
		mustApply(t, dir, mkTar(t, ent{name: "a/", typ: tar.TypeDir, mtime: old}, ent{name: "a/b/", typ: tar.TypeDir, mtime: old}, file("a/b/c", "c"), file("a/x", "x")), ApplyOptions{})
	}
	for _, p := range []string{"a", "a/b"} {
		st := lstat(t, filepath.Join(dir, p))
		if got := time.Unix(st.Mtim.Sec, st.Mtim.Nsec); !got.Equal(old) {
			t.Errorf("%s mtime %v, want %v", p, got.UTC(), old)
		}
	}
}

func TestApplyAbsoluteAndDotDotInside(t *testing.T) {
	base, dir, outside := newSnapDir(t)
	victim := filepath.Join(outside, "abs-victim")
	data := mkTar(t,
		file(victim, "landed inside"),     // absolute: cleaned to relative, as Docker does
		file("x/../y", "y"),               // ".." that stays inside is resolved lexically
		file("/./z/./w", "w"),             // "." components
		file("////many/slashes", "slash"), // leading slashes
	)
	mustApply(t, dir, data, ApplyOptions{})
	notExist(t, victim)
	if got := readFile(t, filepath.Join(dir, victim)); got != "landed inside" {
		t.Errorf("absolute entry = %q", got)
	}
	for p, want := range map[string]string{"y": "y", "z/w": "w", "many/slashes": "slash"} {
		if got := readFile(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s = %q", p, got)
		}
	}
	notExist(t, filepath.Join(dir, "x"))
	if l := treeListing(t, outside); len(l) != 1 {
		t.Errorf("outside changed: %v", l)
	}
	_ = base
}

func TestApplyLargeFileAndPadding(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8 MB: several 1 MiB chunks
	data := mkTar(t, ent{name: "big", body: string(big)})
	data = append(data, make([]byte, 10240)...) // record padding after the end marker
	st := mustApply(t, dir, data, ApplyOptions{})
	if got := readFile(t, filepath.Join(dir, "big")); got != string(big) {
		t.Errorf("big file differs (len %d)", len(got))
	}
	if st.Bytes != int64(len(big)) || st.TarBytes != int64(len(data)) {
		t.Errorf("Bytes %d TarBytes %d", st.Bytes, st.TarBytes)
	}
}

func TestApplyTruncated(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	data := mkTar(t, file("a", strings.Repeat("x", 10000)))
	_, err := applyTar(t, dir, data[:3000], ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("truncated layer: err = %v", err)
	}
}

func TestApplyCancel(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, dir, bytes.NewReader(mkTar(t, file("a", "a"))), ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyNotADirectory(t *testing.T) {
	base := t.TempDir()
	os.WriteFile(filepath.Join(base, "f"), nil, 0o644)
	os.Symlink(base, filepath.Join(base, "link"))
	for _, d := range []string{filepath.Join(base, "f"), filepath.Join(base, "link"), filepath.Join(base, "missing")} {
		if _, err := applyTar(t, d, mkTar(t, file("a", "a")), ApplyOptions{}); err == nil {
			t.Errorf("Apply into %s succeeded", d)
		}
	}
	notExist(t, filepath.Join(base, "a"))
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a": "a", "./a": "a", "/a": "a", "a/": "a", "a//b": "a/b", "a/./b/": "a/b",
		"a/../b": "b", "a/b/..": "a", ".": "", "./": "", "/": "",
	} {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "..", "../a", "a/../../b", "/../a", "./../a", "a\x00b",
		strings.Repeat("a/", 2048), strings.Repeat("n", 256),
	} {
		if got, err := cleanName(in); !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("cleanName(%.40q) = %q, %v; want an unsafe-entry error", in, got, err)
		}
	}
}

func TestClimbsOut(t *testing.T) {
	for _, c := range []struct {
		dir, target string
		out         bool
	}{
		{"", "a", false}, {"", "..", true}, {"", "../a", true}, {"a", "..", false},
		{"a", "../..", true}, {"a/b", "../../c", false}, {"a/b", "../../../c", true},
		{"a", "x/../../..", true}, {"a", "./../b", false},
	} {
		if got := climbsOut(c.dir, c.target); got != c.out {
			t.Errorf("climbsOut(%q, %q) = %v", c.dir, c.target, got)
		}
	}
}

// A hardlink that replaces the directory holding its own target: the target goes with the
// directory, so the link fails cleanly (and no stale descriptor is used).
func TestApplyHardlinkReplacingItsTargetsDir(t *testing.T) {
	_, dir, _ := newSnapDir(t)
	_, err := applyTar(t, dir, mkTar(t, dirEnt("d/"), file("d/f", "f"), hardlink("d", "d/f")), ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "not in this layer") {
		t.Fatalf("err = %v", err)
	}
	// Same with the target's directory cached and a sibling replaced.
	_, dir2, _ := newSnapDir(t)
	mustApply(t, dir2, mkTar(t, dirEnt("d/"), file("d/f", "f"), dirEnt("e/"), file("e/x", "x"), hardlink("e", "d/f")), ApplyOptions{})
	if got := readFile(t, filepath.Join(dir2, "e")); got != "f" {
		t.Errorf("e = %q", got)
	}
}
