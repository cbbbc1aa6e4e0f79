package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ent is one tar entry for tests.
type ent struct {
	name     string
	typ      byte // tar.Type*; 0 means regular file
	body     string
	link     string
	mode     int64
	uid, gid int // -1: the test process' own
	mtime    time.Time
	atime    time.Time
	xattrs   map[string]string
	major    int64
	minor    int64
	size     int64 // for headers whose size differs from body (tar bombs)
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func file(name, body string) ent { return ent{name: name, body: body} }
func dirEnt(name string) ent     { return ent{name: name, typ: tar.TypeDir} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, link: target}
}

// mkTar builds an uncompressed tar in memory. Owners default to the test process' own, so
// that unit tests pass without root.
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := tarHeader(e)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg && e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarHeader(e ent) *tar.Header {
	typ := e.typ
	if typ == 0 {
		typ = tar.TypeReg
	}
	mode := e.mode // 0: a default for the type; negative: 0
	if mode < 0 {
		mode = 0
	} else if mode == 0 {
		switch typ {
		case tar.TypeDir:
			mode = 0o755
		case tar.TypeSymlink:
			mode = 0o777
		default:
			mode = 0o644
		}
	}
	uid, gid := e.uid, e.gid
	if uid == 0 && gid == 0 {
		uid, gid = os.Geteuid(), os.Getegid()
	}
	if uid < 0 {
		uid = os.Geteuid()
	}
	if gid < 0 {
		gid = os.Getegid()
	}
	mt := e.mtime
	if mt.IsZero() {
		mt = testTime
	}
	h := &tar.Header{
		Name: e.name, Typeflag: typ, Mode: mode, Uid: uid, Gid: gid,
		ModTime: mt, AccessTime: e.atime, Linkname: e.link,
		Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX,
	}
	if typ == tar.TypeReg {
		h.Size = int64(len(e.body))
		if e.size != 0 {
			h.Size = e.size
		}
	}
	if len(e.xattrs) > 0 {
		h.PAXRecords = map[string]string{}
		for k, v := range e.xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return h
}

// newSnapDir returns (base, dir, outside): dir is an empty snapshot directory and outside a
// sentinel directory next to it that must stay untouched.
func newSnapDir(t testing.TB) (base, dir, outside string) {
	t.Helper()
	base = t.TempDir()
	dir = filepath.Join(base, "snap")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Read-only directories made by a non-root unpack would defeat t.TempDir's cleanup.
	t.Cleanup(func() { RemoveSnapshotDir(dir) })
	return base, dir, outside
}

func applyTar(t testing.TB, dir string, data []byte, opts ApplyOptions) (ApplyStats, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(data), opts)
}

func mustApply(t testing.TB, dir string, data []byte, opts ApplyOptions) ApplyStats {
	t.Helper()
	st, err := applyTar(t, dir, data, opts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

// treeListing describes every entry under root (relative path -> type and details), for
// comparing "nothing changed here".
func treeListing(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := rel + " " + info.Mode().String()
		if !info.IsDir() {
			desc += " size=" + itoa(info.Size())
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			desc += " nlink=" + itoa(int64(st.Nlink))
		}
		out = append(out, desc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func notExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (or: %v), it must not", p, err)
	}
}
