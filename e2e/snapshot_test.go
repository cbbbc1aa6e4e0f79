//go:build e2e

package e2e

// Root-only tests of runner/snapshot: whiteouts and opaque directories (mknod, trusted.*
// xattrs), ownership, devices, an overlay of 130 layers mounted with the new mount API and
// with classic mount(2), and a multi-layer image unpacked by snapshot.Apply + overlayfs
// compared with the same layers applied by GNU tar one after another with the whiteouts
// processed by hand. Self-contained: no registry, no Docker; helpers are prefixed "sn".

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-registry/berth/runner/snapshot"
)

// snEnt is one tar entry.
type snEnt struct {
	name   string
	typ    byte // 0: regular file
	body   string
	link   string
	mode   int64 // 0: default for the type
	uid    int
	gid    int
	mtime  time.Time
	xattrs map[string]string
	major  int64
	minor  int64
}

var snTime = time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)

func snTar(t testing.TB, ents ...snEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = map[byte]int64{tar.TypeDir: 0o755, tar.TypeSymlink: 0o777}[typ]
			if mode == 0 {
				mode = 0o644
			}
		}
		mt := e.mtime
		if mt.IsZero() {
			mt = snTime
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Uid: e.uid, Gid: e.gid, ModTime: mt,
			Linkname: e.link, Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func snDir(name string, mode int64) snEnt { return snEnt{name: name, typ: tar.TypeDir, mode: mode} }
func snFile(name, body string) snEnt      { return snEnt{name: name, body: body} }
func snWhiteout(name string) snEnt        { return snEnt{name: name} }

func snApply(t testing.TB, dir string, data []byte, opts snapshot.ApplyOptions) snapshot.ApplyStats {
	t.Helper()
	st, err := snapshot.Apply(context.Background(), dir, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

func snXattr(t testing.TB, path, name string) (string, error) {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func snIsWhiteout(t testing.TB, p string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func snIsOpaque(t testing.TB, p string) bool {
	t.Helper()
	v, err := snXattr(t, p, "trusted.overlay.opaque")
	return err == nil && v == "y"
}

func TestSnapshotWhiteoutsAndOpaque(t *testing.T) {
	dir := t.TempDir()
	data := snTar(t,
		snWhiteout(".wh.gone"),
		snDir("a/", 0o755),
		snFile("a/keep", "k"),
		snEnt{name: "a/.wh.old", uid: 1000, gid: 1001},
		snDir("opq/", 0o755),
		snWhiteout("opq/.wh..wh..opq"),
		snFile("opq/new", "n"),
		snWhiteout("later/.wh..wh..opq"), // marker before its directory's own entry
		snDir("later/", 0o750),
		snWhiteout(".wh.wd"), // whiteout, then a directory of the same name: opaque
		snDir("wd/", 0o755),
		snFile("wd/inside", "i"),
		snDir("dw/", 0o755), // a directory, then a whiteout of it: stays, opaque
		snWhiteout(".wh.dw"),
		snFile("fw", "file"), // a file, then a whiteout of it: the file stays
		snWhiteout(".wh.fw"),
		snWhiteout("root-opq/.wh..wh..opq"), // implicit directory
		snWhiteout(".wh.wfd"),               // whiteout, file, then directory: still opaque
		snFile("wfd", "briefly a file"),
		snDir("wfd/", 0o755),
	)
	// AllowDevices false: whiteouts are created all the same.
	st := snApply(t, dir, data, snapshot.ApplyOptions{AllowDevices: false})
	if st.Whiteouts != 6 || st.Opaques != 6 {
		t.Errorf("stats: %d whiteouts, %d opaques; want 6 and 6 (%+v)", st.Whiteouts, st.Opaques, st)
	}
	for _, p := range []string{"gone", "a/old"} {
		if !snIsWhiteout(t, filepath.Join(dir, p)) {
			t.Errorf("%s is not a 0/0 character device", p)
		}
	}
	var wst unix.Stat_t
	unix.Lstat(filepath.Join(dir, "a/old"), &wst)
	if wst.Uid != 1000 || wst.Gid != 1001 {
		t.Errorf("whiteout a/old owned by %d:%d, want the entry's 1000:1001 (as Docker)", wst.Uid, wst.Gid)
	}
	for _, p := range []string{"opq", "later", "wd", "dw", "root-opq", "wfd"} {
		if !snIsOpaque(t, filepath.Join(dir, p)) {
			t.Errorf("%s is not marked trusted.overlay.opaque=y", p)
		}
		if _, err := snXattr(t, filepath.Join(dir, p), "user.overlay.opaque"); !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s: user.overlay.opaque present or unexpected error: %v", p, err)
		}
	}
	for _, p := range []string{"a", "wd/inside"} {
		if snIsOpaque(t, filepath.Join(dir, p)) {
			t.Errorf("%s is opaque", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "fw")); string(b) != "file" {
		t.Errorf("fw = %q: a whiteout must not remove an entry of its own layer", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "wd")); err != nil || !fi.IsDir() {
		t.Errorf("wd: %v", err)
	}
	// The whiteout markers themselves are never written.
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasPrefix(filepath.Base(p), ".wh.") {
			t.Errorf("marker written: %s", p)
		}
		return nil
	})
}

func TestSnapshotOwnershipDevicesXattrs(t *testing.T) {
	dir := t.TempDir()
	// cap_net_raw=ep as a VFS_CAP_REVISION_2 security.capability value.
	capNetRaw := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	mtime := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	data := snTar(t,
		snDir("dev/", 0o755),
		snEnt{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666, mtime: mtime},
		snEnt{name: "dev/loop0", typ: tar.TypeBlock, major: 7, minor: 0, mode: 0o660, gid: 6, xattrs: map[string]string{"trusted.dev": "d"}},
		snEnt{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600, uid: 7, gid: 7},
		snEnt{name: "home/", typ: tar.TypeDir, mode: 0o755},
		snEnt{name: "home/user/", typ: tar.TypeDir, mode: 0o2770, uid: 1000, gid: 1000},
		snEnt{name: "home/user/file", body: "x", uid: 1000, gid: 1000, mode: 0o600},
		snEnt{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		snEnt{name: "bin/suid", body: "#!", uid: 1234, gid: 5678, mode: 0o6755},
		snEnt{name: "bin/ping", body: "ping", mode: 0o755, xattrs: map[string]string{"security.capability": capNetRaw, "trusted.t": "tv", "user.u": "uv"}},
		snEnt{name: "bin/link", typ: tar.TypeSymlink, link: "suid", uid: 1234, gid: 4321, xattrs: map[string]string{"trusted.sym": "s"}},
		snEnt{name: "bin/hard", typ: tar.TypeLink, link: "bin/suid", uid: 1234, gid: 5678, mode: 0o6755},
	)
	snApply(t, dir, data, snapshot.ApplyOptions{AllowDevices: true})
	type want struct {
		typ      uint32
		mode     uint32
		uid, gid uint32
		rdev     uint64
	}
	for p, w := range map[string]want{
		"dev/null":       {unix.S_IFCHR, 0o666, 0, 0, unix.Mkdev(1, 3)},
		"dev/loop0":      {unix.S_IFBLK, 0o660, 0, 6, unix.Mkdev(7, 0)},
		"dev/fifo":       {unix.S_IFIFO, 0o600, 7, 7, 0},
		"home/user":      {unix.S_IFDIR, 0o2770, 1000, 1000, 0},
		"home/user/file": {unix.S_IFREG, 0o600, 1000, 1000, 0},
		"bin/suid":       {unix.S_IFREG, 0o6755, 1234, 5678, 0}, // chown before chmod keeps setuid
		"bin/link":       {unix.S_IFLNK, 0o777, 1234, 4321, 0},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		got := want{st.Mode & unix.S_IFMT, st.Mode & 0o7777, st.Uid, st.Gid, st.Rdev}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", p, got, w)
		}
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(dir, "dev/null"), &st)
	if st.Mtim.Sec != mtime.Unix() {
		t.Errorf("dev/null mtime %d", st.Mtim.Sec)
	}
	for p, xs := range map[string]map[string]string{
		"bin/ping":  {"security.capability": capNetRaw, "trusted.t": "tv", "user.u": "uv"},
		"bin/link":  {"trusted.sym": "s"},
		"dev/loop0": {"trusted.dev": "d"},
	} {
		for k, v := range xs {
			if got, err := snXattr(t, filepath.Join(dir, p), k); err != nil || got != v {
				t.Errorf("%s %s = %q, %v; want %q", p, k, got, err, v)
			}
		}
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(dir, "bin/suid"), &a)
	unix.Lstat(filepath.Join(dir, "bin/hard"), &b)
	if a.Ino != b.Ino || a.Mode&0o7777 != 0o6755 {
		t.Errorf("hardlink: inodes %d %d, mode %o", a.Ino, b.Ino, a.Mode&0o7777)
	}

	// The same devices are refused in rootless mode, leaving nothing outside.
	base := t.TempDir()
	d2 := filepath.Join(base, "snap")
	os.Mkdir(d2, 0o755)
	_, err := snapshot.Apply(context.Background(), d2, bytes.NewReader(data), snapshot.ApplyOptions{AllowDevices: false})
	if !errors.Is(err, snapshot.ErrUnsafeEntry) || !strings.Contains(err.Error(), "dev/null") {
		t.Errorf("AllowDevices=false: %v", err)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 1 {
		t.Errorf("%d entries next to the snapshot", len(ents))
	}
}

// 130 layers, each adding one file (and overwriting "top"), mounted as one overlay: with the
// new mount API (one lowerdir+ per layer) and with classic mount(2) (whose option string
// would exceed a page with these absolute paths: it must mount relative to the store).
func TestSnapshotOverlay130Layers(t *testing.T) {
	const n = 130
	root := t.TempDir()
	s, err := snapshot.OpenStore(filepath.Join(root, "snapshots-with-a-deliberately-long-directory-name"), snapshot.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var diffIDs []digest.Digest
	for i := range n {
		layer := snTar(t,
			snDir("files/", 0o755),
			snFile(fmt.Sprintf("files/f%03d", i), fmt.Sprint(i)),
			snFile("top", fmt.Sprint(i)),
		)
		diffIDs = append(diffIDs, digest.FromBytes(layer))
		chain := snapshot.ChainID(diffIDs)
		dir, commit, abort, err := s.Prepare(context.Background(), chain)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := snapshot.ApplyLayer(context.Background(), dir, bytes.NewReader(layer), snapshot.ApplyOptions{ExpectDiffID: diffIDs[i]})
		if err != nil || got != diffIDs[i] {
			abort()
			t.Fatalf("layer %d: %v", i, err)
		}
		if err := commit(); err != nil {
			t.Fatal(err)
		}
	}
	chains := snapshot.ChainIDs(diffIDs)
	lower, err := s.LowerPaths(chains)
	if err != nil {
		t.Fatal(err)
	}
	lowerdir, _ := s.LowerDirs(chains)
	if len(lowerdir) <= 4096 {
		t.Fatalf("test setup: lowerdir string is only %d bytes; it must exceed a page", len(lowerdir))
	}
	t.Logf("%d layers, lowerdir string %d bytes", n, len(lowerdir))

	check := func(t *testing.T, target string, writable bool) {
		ents, err := os.ReadDir(filepath.Join(target, "files"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != n {
			t.Errorf("%d files visible, want %d", len(ents), n)
		}
		for i := range n {
			b, err := os.ReadFile(filepath.Join(target, "files", fmt.Sprintf("f%03d", i)))
			if err != nil || string(b) != fmt.Sprint(i) {
				t.Errorf("files/f%03d: %q %v", i, b, err)
				break
			}
		}
		if b, _ := os.ReadFile(filepath.Join(target, "top")); string(b) != fmt.Sprint(n-1) {
			t.Errorf("top = %q, want %d (top layer first)", b, n-1)
		}
		if writable {
			if err := os.WriteFile(filepath.Join(target, "new"), []byte("w"), 0o644); err != nil {
				t.Errorf("write to the overlay: %v", err)
			}
		}
	}
	for _, m := range []struct {
		name  string
		mount func(lower []string, upper, work, target string) error
	}{
		{"fsopen", snapshot.MountOverlay},
		{"classic", snapshot.MountOverlayClassic},
	} {
		t.Run(m.name, func(t *testing.T) {
			c := filepath.Join(root, "c-"+m.name)
			upper, work, target := filepath.Join(c, "upper"), filepath.Join(c, "work"), filepath.Join(c, "merged")
			for _, d := range []string{upper, work, target} {
				os.MkdirAll(d, 0o755)
			}
			if err := m.mount(lower, upper, work, target); err != nil {
				t.Fatal(err)
			}
			mounted := true
			defer func() {
				if mounted {
					snapshot.Unmount(target)
				}
			}()
			check(t, target, true)
			if err := snapshot.Unmount(target); err != nil {
				t.Fatal(err)
			}
			mounted = false
			if ents, _ := os.ReadDir(target); len(ents) != 0 {
				t.Errorf("target not empty after Unmount")
			}
			if b, err := os.ReadFile(filepath.Join(upper, "new")); err != nil || string(b) != "w" {
				t.Errorf("upper/new: %q %v", b, err)
			}
			// Read-only (no upperdir).
			if err := m.mount(lower, "", "", target); err != nil {
				t.Fatal(err)
			}
			check(t, target, false)
			if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644); err == nil {
				t.Error("read-only overlay is writable")
			}
			if err := snapshot.Unmount(target); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The classic path's mount(2) runs on a helper thread (for its working directory): from
	// a caller in a private mount namespace it must land there, never on the host.
	t.Run("classic in a private namespace", func(t *testing.T) {
		target := filepath.Join(root, "c-private")
		os.MkdirAll(target, 0o755)
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread and its namespace end here
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				errc <- err
				return
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				errc <- err
				return
			}
			if err := snapshot.MountOverlayClassic(lower, "", "", target); err != nil {
				errc <- err
				return
			}
			ents, err := os.ReadDir(filepath.Join(target, "files"))
			if err == nil && len(ents) != n {
				err = fmt.Errorf("%d files visible in the private namespace, want %d", len(ents), n)
			}
			errc <- err
		}()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		mi, err := os.ReadFile("/proc/1/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(mi), " "+target+" ") {
			snapshot.Unmount(target)
			t.Fatalf("the overlay was mounted on the host at %s", target)
		}
		if ents, _ := os.ReadDir(target); len(ents) != 0 {
			t.Errorf("the host sees %d entries under %s", len(ents), target)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Apply + overlayfs against GNU tar + whiteouts by hand

func snCompareLayers(t *testing.T) [][]byte {
	capNetRaw := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	t1 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	t2 := time.Date(2021, 2, 2, 0, 0, 0, 0, time.UTC)
	t3 := time.Date(2022, 3, 3, 0, 0, 0, 0, time.UTC)
	d := func(name string, mode int64, mt time.Time) snEnt {
		return snEnt{name: name, typ: tar.TypeDir, mode: mode, mtime: mt}
	}
	f := func(name, body string, mode int64, mt time.Time) snEnt {
		return snEnt{name: name, body: body, mode: mode, mtime: mt}
	}
	l1 := snTar(t,
		d("bin/", 0o755, t1),
		f("bin/busybox", "busybox v1", 0o755, t1),
		snEnt{name: "bin/ls", typ: tar.TypeLink, link: "bin/busybox", mode: 0o755, mtime: t1},
		snEnt{name: "bin/su", body: "su", mode: 0o4755, mtime: t1},
		snEnt{name: "bin/ping", body: "ping", mode: 0o755, mtime: t1, xattrs: map[string]string{"security.capability": capNetRaw}},
		d("etc/", 0o755, t1),
		snEnt{name: "etc/passwd", body: "root:x:0:0\n", mode: 0o644, mtime: t1, xattrs: map[string]string{"user.comment": "accounts"}},
		f("etc/group", "root:x:0:\n", 0o644, t1),
		snEnt{name: "etc/shadow", body: "root:*:1\n", mode: 0o640, gid: 42, mtime: t1},
		d("usr/", 0o755, t1), d("usr/lib/", 0o755, t1),
		f("usr/lib/libfoo.so.1", "ELF foo", 0o644, t1),
		snEnt{name: "usr/lib/libfoo.so", typ: tar.TypeSymlink, link: "libfoo.so.1", mtime: t1},
		d("var/", 0o755, t1), d("var/cache/", 0o755, t1), d("var/cache/apt/", 0o755, t1),
		f("var/cache/apt/a.bin", "a", 0o644, t1),
		f("var/cache/apt/b.bin", "b", 0o644, t1),
		d("var/cache/apt/sub/", 0o700, t1),
		f("var/cache/apt/sub/c", "c", 0o600, t1),
		f("var/thing", "a file that becomes a directory", 0o644, t1),
		d("opt/", 0o755, t1), d("opt/old/", 0o755, t1),
		f("opt/old/x", "x", 0o644, t1),
		d("opt/old/sub/", 0o755, t1),
		f("opt/old/sub/z", "z", 0o644, t1),
		d("opt/keepdir/", 0o755, t1),
		f("opt/keepdir/in", "in", 0o644, t1),
		d("home/", 0o755, t1),
		snEnt{name: "home/user/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000, mtime: t1},
		snEnt{name: "home/user/.profile", body: "PS1=$", mode: 0o644, uid: 1000, gid: 1000, mtime: t1},
		snEnt{name: "tmp/", typ: tar.TypeDir, mode: 0o1777, mtime: t1},
		d("dev/", 0o755, t1),
		snEnt{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666, mtime: t1},
		snEnt{name: "dev/initctl", typ: tar.TypeFifo, mode: 0o600, mtime: t1},
	)
	l2 := snTar(t,
		d("bin/", 0o755, t2),
		f("bin/busybox", "busybox v2", 0o755, t2),
		snEnt{name: "bin/sh.hard", typ: tar.TypeLink, link: "bin/busybox", mode: 0o755, mtime: t2},
		d("etc/", 0o755, t2),
		snWhiteout("etc/.wh.group"),
		snEnt{name: "etc/passwd", body: "root:x:0:0\nuser:x:1000:1000\n", mode: 0o600, mtime: t2, xattrs: map[string]string{"user.comment": "accounts v2"}},
		d("usr/", 0o755, t1), d("usr/lib/", 0o755, t2),
		snWhiteout("usr/lib/.wh.libfoo.so"),
		d("usr/bin/", 0o755, t2),
		snEnt{name: "usr/bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox", mtime: t2},
		d("var/", 0o755, t1), d("var/cache/", 0o755, t2),
		d("var/cache/apt/", 0o750, t2),
		snWhiteout("var/cache/apt/.wh..wh..opq"),
		f("var/cache/apt/new.bin", "new", 0o644, t2),
	)
	l3 := snTar(t,
		d("opt/", 0o755, t3),
		snWhiteout("opt/.wh.old"), // remove the directory, then re-create it in this layer
		d("opt/old/", 0o711, t3),
		f("opt/old/fresh", "fresh", 0o644, t3),
		f("opt/keepdir", "the directory became a file", 0o644, t3),
		d("var/", 0o755, t3),
		d("var/thing/", 0o755, t3),
		f("var/thing/inside", "inside", 0o644, t3),
		d("home/", 0o755, t1),
		snEnt{name: "home/user/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000, mtime: t3},
		snWhiteout("home/user/.wh..profile"),
		snEnt{name: "home/user/.bashrc", body: "alias ll='ls -l'", mode: 0o644, uid: 1000, gid: 1000, mtime: t3},
		d("etc/", 0o755, t3),
		f("etc/group", "root:x:0:\nuser:x:1000:\n", 0o644, t3), // back after its whiteout in layer 2
	)
	return [][]byte{l1, l2, l3}
}

func TestSnapshotMatchesGNUTar(t *testing.T) {
	gnutar := need(t, "tar")
	layers := snCompareLayers(t)
	work := t.TempDir()

	// Berth: each layer into its own snapshot, then an overlay of them.
	s, err := snapshot.OpenStore(filepath.Join(work, "snapshots"), snapshot.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var diffIDs []digest.Digest
	for i, l := range layers {
		rc, err := snapshot.Decompress(bytes.NewReader(l), "application/vnd.oci.image.layer.v1.tar")
		if err != nil {
			t.Fatal(err)
		}
		diffIDs = append(diffIDs, digest.FromBytes(l))
		dir, commit, abort, err := s.Prepare(context.Background(), snapshot.ChainID(diffIDs))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := snapshot.ApplyLayer(context.Background(), dir, rc, snapshot.ApplyOptions{AllowDevices: true, ExpectDiffID: diffIDs[i]}); err != nil {
			abort()
			t.Fatalf("layer %d: %v", i+1, err)
		}
		rc.Close()
		if err := commit(); err != nil {
			t.Fatal(err)
		}
	}
	lower, err := s.LowerPaths(snapshot.ChainIDs(diffIDs))
	if err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(work, "merged")
	os.Mkdir(merged, 0o755)
	if err := snapshot.MountOverlay(lower, "", "", merged); err != nil {
		t.Fatal(err)
	}
	defer snapshot.Unmount(merged)

	// Reference: GNU tar, one layer after another, whiteouts applied by hand first.
	ref := filepath.Join(work, "ref")
	os.Mkdir(ref, 0o755)
	for i, l := range layers {
		snRefApplyWhiteouts(t, ref, l)
		p := filepath.Join(work, fmt.Sprintf("layer%d.tar", i+1))
		os.WriteFile(p, l, 0o644)
		run(t, gnutar, "-x", "-p", "-f", p, "-C", ref, "--numeric-owner", "--same-owner",
			"--xattrs", "--xattrs-include=*", "--exclude=.wh.*")
	}

	got, want := snManifest(t, merged), snManifest(t, ref)
	if len(want) < 30 {
		t.Fatalf("reference tree has only %d entries", len(want))
	}
	for _, p := range snSortedUnion(got, want) {
		if got[p] != want[p] {
			t.Errorf("%s:\n  berth:   %s\n  gnu tar: %s", p, orMissing(got[p]), orMissing(want[p]))
		}
	}
	if !t.Failed() {
		t.Logf("%d entries identical", len(want))
	}
	// A few facts checked directly as well.
	for p, body := range map[string]string{"bin/ls": "busybox v1", "bin/busybox": "busybox v2", "opt/old/fresh": "fresh", "var/cache/apt/new.bin": "new", "etc/group": "root:x:0:\nuser:x:1000:\n"} {
		if b, err := os.ReadFile(filepath.Join(merged, p)); err != nil || string(b) != body {
			t.Errorf("merged %s = %q, %v", p, b, err)
		}
	}
	for _, p := range []string{"opt/old/x", "opt/old/sub", "var/cache/apt/a.bin", "var/cache/apt/sub", "usr/lib/libfoo.so", "home/user/.profile", "opt/keepdir/in"} {
		if _, err := os.Lstat(filepath.Join(merged, p)); err == nil {
			t.Errorf("merged %s still visible (%v)", p, err)
		}
	}
}

func orMissing(s string) string {
	if s == "" {
		return "(missing)"
	}
	return s
}

// snRefApplyWhiteouts removes from ref what a layer's whiteouts hide, and what its entries
// replace (a non-directory over a directory), before GNU tar extracts the layer.
func snRefApplyWhiteouts(t *testing.T, ref string, layer []byte) {
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		dir, base := filepath.Split(name)
		switch {
		case base == ".wh..wh..opq":
			ents, _ := os.ReadDir(filepath.Join(ref, dir))
			for _, e := range ents {
				os.RemoveAll(filepath.Join(ref, dir, e.Name()))
			}
		case strings.HasPrefix(base, ".wh."):
			os.RemoveAll(filepath.Join(ref, dir, strings.TrimPrefix(base, ".wh.")))
		default:
			fi, err := os.Lstat(filepath.Join(ref, name))
			if err == nil && fi.IsDir() != (h.Typeflag == tar.TypeDir) {
				os.RemoveAll(filepath.Join(ref, name))
			}
		}
	}
}

// snManifest describes every entry of a tree: type, mode, owner, size, content hash, link
// target, device number, xattrs (overlay's own excluded), mtime, and which other path shares
// its inode.
func snManifest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[[2]uint64]string{}
	var paths []string
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("type=%o mode=%04o uid=%d gid=%d", st.Mode&unix.S_IFMT>>12, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" size=%d sha=%s", len(b), hex.EncodeToString(sum[:6]))
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := inodes[key]; ok {
				desc += " hardlink-of=" + first
			} else {
				inodes[key] = rel
			}
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			desc += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		buf := make([]byte, 4096)
		n, _ := unix.Llistxattr(p, buf)
		var names []string
		for _, x := range strings.Split(string(buf[:n]), "\x00") {
			if x != "" && !strings.HasPrefix(x, "trusted.overlay.") && !strings.HasPrefix(x, "security.selinux") {
				names = append(names, x)
			}
		}
		sort.Strings(names)
		for _, x := range names {
			v, _ := snXattr(t, p, x)
			desc += fmt.Sprintf(" %s=%x", x, v)
		}
		out[rel] = desc
	}
	return out
}

func snSortedUnion(a, b map[string]string) []string {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Hostile layers as root: devices allowed, and still nothing is written outside.
func TestSnapshotHostileAsRoot(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	os.Mkdir(victim, 0o755)
	for name, data := range map[string][]byte{
		"symlink to outside then device": snTar(t, snEnt{name: "a", typ: tar.TypeSymlink, link: victim}, snEnt{name: "a/null", typ: tar.TypeChar, major: 1, minor: 3}),
		"symlink then whiteout":          snTar(t, snEnt{name: "a", typ: tar.TypeSymlink, link: victim}, snWhiteout("a/.wh.x")),
		"symlink then opaque":            snTar(t, snEnt{name: "a", typ: tar.TypeSymlink, link: victim}, snWhiteout("a/.wh..wh..opq")),
		"dotdot device":                  snTar(t, snEnt{name: "../victim/null", typ: tar.TypeChar, major: 1, minor: 3}),
		// Not refused: a directory entry replaces the symlink (later wins), nothing is
		// chowned through it.
		"symlink then directory":           snTar(t, snEnt{name: "a", typ: tar.TypeSymlink, link: victim}, snEnt{name: "a/", typ: tar.TypeDir, uid: 1234}),
		"trusted.overlay xattr from layer": snTar(t, snEnt{name: "d/", typ: tar.TypeDir, xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}}),
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(base, "snap-"+strings.ReplaceAll(name, " ", "-"))
			os.Mkdir(dir, 0o755)
			_, err := snapshot.Apply(context.Background(), dir, bytes.NewReader(data), snapshot.ApplyOptions{AllowDevices: true})
			if name == "symlink then directory" {
				if err != nil {
					t.Fatal(err)
				}
				var st unix.Stat_t
				if unix.Lstat(filepath.Join(dir, "a"), &st); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 1234 {
					t.Errorf("a: mode %o uid %d, want a directory owned by 1234", st.Mode, st.Uid)
				}
			}
			if name == "trusted.overlay xattr from layer" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := snXattr(t, filepath.Join(dir, "d"), "trusted.overlay.redirect"); !errors.Is(err, unix.ENODATA) {
					t.Errorf("trusted.overlay.redirect taken from the layer: %v", err)
				}
				return
			}
			if name != "symlink then directory" && !errors.Is(err, snapshot.ErrUnsafeEntry) {
				t.Errorf("err = %v, want ErrUnsafeEntry", err)
			}
			var st unix.Stat_t
			unix.Lstat(victim, &st)
			if ents, _ := os.ReadDir(victim); len(ents) != 0 || st.Uid != 0 {
				t.Errorf("victim dir changed: %d entries, uid %d", len(ents), st.Uid)
			}
			if _, err := snXattr(t, victim, "trusted.overlay.opaque"); !errors.Is(err, unix.ENODATA) {
				t.Errorf("victim marked opaque")
			}
		})
	}
}
