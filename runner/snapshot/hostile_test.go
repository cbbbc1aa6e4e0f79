package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/runner/internal/testenv"
	"golang.org/x/sys/unix"
)

// Hostile layers. Each case must fail with an error naming the offending entry and leave
// everything outside the snapshot directory as it was: the sentinel directory "outside" next
// to it (holding a "secret" file), the base directory holding both, /etc/passwd, and a
// /tmp path that a careless unpacker would create.
func TestApplyHostile(t *testing.T) {
	tmpVictim := filepath.Join(os.TempDir(), fmt.Sprintf("berth-snapshot-victim-%d", os.Getpid()))
	os.Remove(tmpVictim)

	type tc struct {
		name    string
		ents    func(base, outside string) []ent
		raw     func(t *testing.T, base, outside string) []byte // instead of ents
		opts    ApplyOptions
		entry   string // the entry name the error must mention
		errIs   error  // default ErrUnsafeEntry
		errText string // extra text the error must contain
	}
	cases := []tc{
		{
			name:  "dotdot file",
			ents:  func(b, o string) []ent { return []ent{file("../outside/pwned", "x")} },
			entry: "../outside/pwned",
		},
		{
			name:  "dotdot deep",
			ents:  func(b, o string) []ent { return []ent{file("a/b/../../../outside/pwned", "x")} },
			entry: "a/b/../../../outside/pwned",
		},
		{
			name:  "dotdot to tmp",
			ents:  func(b, o string) []ent { return []ent{file("../../../../../../../../.."+tmpVictim, "x")} },
			entry: "../../../../../../../../.." + tmpVictim,
		},
		{
			name:  "rooted dotdot",
			ents:  func(b, o string) []ent { return []ent{file("/../outside/pwned", "x")} },
			entry: "/../outside/pwned",
		},
		{
			name:  "dotdot dir",
			ents:  func(b, o string) []ent { return []ent{dirEnt("../outside/newdir/")} },
			entry: "../outside/newdir/",
		},
		{
			name:  "dotdot symlink name",
			ents:  func(b, o string) []ent { return []ent{symlink("../outside/ln", "/etc")} },
			entry: "../outside/ln",
		},
		{
			name: "symlink to absolute outside then file through it",
			ents: func(b, o string) []ent {
				return []ent{symlink("a", o), file("a/pwned", "x")}
			},
			entry: "a/pwned", errText: "symlink",
		},
		{
			name: "symlink to /etc then passwd",
			ents: func(b, o string) []ent {
				return []ent{symlink("etc", "/etc"), file("etc/passwd", "root::0:0::/:/bin/sh\n")}
			},
			entry: "etc/passwd", errText: "symlink",
		},
		{
			name: "symlink to / then tmp path",
			ents: func(b, o string) []ent {
				return []ent{symlink("root", "/"), file("root"+tmpVictim, "x")}
			},
			entry: "root" + tmpVictim,
		},
		{
			name:  "symlink climbing out",
			ents:  func(b, o string) []ent { return []ent{symlink("a", "../../.."), file("a/tmp/pwned", "x")} },
			entry: "a", errText: "outside the layer root",
		},
		{
			name:  "symlink climbing out from a subdir",
			ents:  func(b, o string) []ent { return []ent{symlink("d/e/up", "../../../outside")} },
			entry: "d/e/up", errText: "outside the layer root",
		},
		{
			name: "symlink to dot then deeper",
			ents: func(b, o string) []ent {
				return []ent{symlink("loop", "."), file("loop/loop/x", "x")}
			},
			entry: "loop/loop/x",
		},
		{
			name: "symlink then dir through it",
			ents: func(b, o string) []ent {
				return []ent{symlink("a", o), dirEnt("a/newdir/")}
			},
			entry: "a/newdir/",
		},
		{
			name: "symlink in the middle of a path",
			ents: func(b, o string) []ent {
				return []ent{dirEnt("x/"), symlink("x/y", o), file("x/y/z/pwned", "x")}
			},
			entry: "x/y/z/pwned",
		},
		{
			name: "directory replaced by a symlink, then written through",
			ents: func(b, o string) []ent {
				return []ent{dirEnt("d/"), file("d/ok", "ok"), symlink("d", o), file("d/pwned", "x")}
			},
			entry: "d/pwned",
		},
		{
			name: "hardlink through symlink in entry path",
			ents: func(b, o string) []ent {
				return []ent{file("f", "f"), symlink("a", o), hardlink("a/pwned", "f")}
			},
			entry: "a/pwned",
		},
		{
			name:  "hardlink to outside with dotdot",
			ents:  func(b, o string) []ent { return []ent{hardlink("stolen", "../outside/secret")} },
			entry: "stolen", errText: "climbs out",
		},
		{
			name:  "hardlink to absolute host file",
			ents:  func(b, o string) []ent { return []ent{hardlink("passwd", "/etc/passwd")} },
			entry: "passwd", errText: "not in this layer",
		},
		{
			name:  "hardlink to absolute sentinel",
			ents:  func(b, o string) []ent { return []ent{hardlink("stolen", filepath.Join(o, "secret"))} },
			entry: "stolen", errText: "not in this layer",
		},
		{
			name: "hardlink target through a symlink",
			ents: func(b, o string) []ent {
				return []ent{symlink("a", o), hardlink("stolen", "a/secret")}
			},
			entry: "stolen", errText: "symlink",
		},
		{
			name:  "hardlink to the root",
			ents:  func(b, o string) []ent { return []ent{hardlink("r", "/")} },
			entry: "r",
		},
		{
			name:  "whiteout of dotdot",
			ents:  func(b, o string) []ent { return []ent{file(".wh...", "")} },
			entry: ".wh...",
		},
		{
			name:  "whiteout of dot",
			ents:  func(b, o string) []ent { return []ent{file("a/.wh..", "")} },
			entry: "a/.wh..",
		},
		{
			name:  "whiteout of nothing",
			ents:  func(b, o string) []ent { return []ent{file("a/.wh.", "")} },
			entry: "a/.wh.",
		},
		{
			name:  "whiteout in a dotdot dir",
			ents:  func(b, o string) []ent { return []ent{file("../outside/.wh.secret", "")} },
			entry: "../outside/.wh.secret",
		},
		{
			name: "whiteout through a symlink",
			ents: func(b, o string) []ent {
				return []ent{symlink("a", o), file("a/.wh.secret", "")}
			},
			entry: "a/.wh.secret",
		},
		{
			name: "opaque marker through a symlink",
			ents: func(b, o string) []ent {
				return []ent{symlink("a", o), file("a/.wh..wh..opq", "")}
			},
			entry: "a/.wh..wh..opq",
		},
		{
			name:  "aufs metadata entry",
			ents:  func(b, o string) []ent { return []ent{file(".wh..wh.plnk/123.456", "")} },
			entry: ".wh..wh.plnk/123.456",
		},
		{
			name:  "other .wh..wh. prefix",
			ents:  func(b, o string) []ent { return []ent{file("d/.wh..wh.aufs", "")} },
			entry: "d/.wh..wh.aufs",
		},
		{
			name:  "opaque look-alike",
			ents:  func(b, o string) []ent { return []ent{file("d/.wh..wh..opqX", "")} },
			entry: "d/.wh..wh..opqX",
		},
		{
			name:  "whiteout prefix on a directory component",
			ents:  func(b, o string) []ent { return []ent{file("d/.wh.x/y", "")} },
			entry: "d/.wh.x/y",
		},
		{
			name:  "char device when not allowed",
			ents:  func(b, o string) []ent { return []ent{{name: "dev/mem", typ: tar.TypeChar, major: 1, minor: 1}} },
			entry: "dev/mem", errText: "AllowDevices",
		},
		{
			name:  "block device when not allowed",
			ents:  func(b, o string) []ent { return []ent{{name: "dev/sda", typ: tar.TypeBlock, major: 8, minor: 0}} },
			entry: "dev/sda", errText: "AllowDevices",
		},
		{
			name:  "char 0/0 in the tar when devices are not allowed",
			ents:  func(b, o string) []ent { return []ent{{name: "x", typ: tar.TypeChar}} },
			entry: "x",
		},
		{
			name:  "unknown entry type",
			ents:  func(b, o string) []ent { return []ent{{name: "weird", typ: 'Z'}} },
			entry: "weird", errText: "unsupported entry type",
		},
		{
			name:  "GNU volume header type",
			ents:  func(b, o string) []ent { return []ent{{name: "vol", typ: 'V'}} },
			entry: "vol",
		},
		{
			name:  "name longer than PATH_MAX",
			ents:  func(b, o string) []ent { return []ent{file(strings.Repeat("abcdefg/", 600)+"f", "x")} },
			entry: "abcdefg/abcdefg", errText: "PATH_MAX",
		},
		{
			name:  "component longer than NAME_MAX",
			ents:  func(b, o string) []ent { return []ent{file("d/"+strings.Repeat("n", 300), "x")} },
			entry: "d/nnnn", errText: "NAME_MAX",
		},
		{
			name:  "symlink target longer than PATH_MAX",
			ents:  func(b, o string) []ent { return []ent{symlink("l", strings.Repeat("t/", 2100))} },
			entry: "l",
		},
		{
			name:  "hardlink target with a long component",
			ents:  func(b, o string) []ent { return []ent{hardlink("l", strings.Repeat("n", 300))} },
			entry: "l",
		},
		{
			name:  "negative uid",
			ents:  func(b, o string) []ent { return []ent{{name: "f", body: "x", uid: -5, gid: 7}} },
			raw:   nil,
			entry: "f",
		},
		{
			name:  "tar bomb: one huge file",
			ents:  func(b, o string) []ent { return []ent{file("big", strings.Repeat("x", 3<<20))} },
			opts:  ApplyOptions{MaxBytes: 1 << 20},
			entry: "big", errIs: ErrTooLarge,
		},
		{
			name: "tar bomb: many small files",
			ents: func(b, o string) []ent {
				var es []ent
				for i := range 3000 {
					es = append(es, file(fmt.Sprintf("f%04d", i), "x"))
				}
				return es
			},
			opts:  ApplyOptions{MaxBytes: 1 << 20},
			errIs: ErrTooLarge,
		},
		{
			name: "tar bomb: header claims more than the limit",
			raw: func(t *testing.T, b, o string) []byte {
				// Header only: the size check refuses it before any byte is read.
				var buf bytes.Buffer
				tw := tar.NewWriter(&buf)
				tw.WriteHeader(&tar.Header{Name: "claims", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644, Uid: os.Geteuid(), Gid: os.Getegid()})
				return buf.Bytes()
			},
			opts:  ApplyOptions{MaxBytes: 1 << 30},
			entry: "claims", errIs: ErrTooLarge,
		},
	}
	// "negative uid" cannot be written by archive/tar as such; build it with base-256.
	cases[slices.IndexFunc(cases, func(c tc) bool { return c.name == "negative uid" })].raw = func(t *testing.T, b, o string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644, Uid: -5, Gid: 7, Format: tar.FormatGNU})
		tw.Write([]byte("x"))
		tw.Close()
		return buf.Bytes()
	}

	var passwd unix.Stat_t
	unix.Lstat("/etc/passwd", &passwd)
	passwdData, _ := os.ReadFile("/etc/passwd")

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, dir, outside := newSnapDir(t)
			if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			beforeOutside := treeListing(t, outside)
			var data []byte
			if c.raw != nil {
				data = c.raw(t, base, outside)
			} else {
				data = mkTar(t, c.ents(base, outside)...)
			}
			_, err := applyTar(t, dir, data, c.opts)
			want := c.errIs
			if want == nil {
				want = ErrUnsafeEntry
			}
			if err == nil {
				t.Fatalf("Apply succeeded; want an error (%v)", want)
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, want) {
				t.Errorf("error does not wrap %v", want)
			}
			if c.entry != "" && !strings.Contains(err.Error(), c.entry) {
				t.Errorf("error does not name the entry %q", c.entry)
			}
			if c.errText != "" && !strings.Contains(err.Error(), c.errText) {
				t.Errorf("error does not say %q", c.errText)
			}
			// Nothing outside the snapshot changed.
			if after := treeListing(t, outside); !slices.Equal(beforeOutside, after) {
				t.Errorf("outside changed:\nbefore %v\nafter  %v", beforeOutside, after)
			}
			if got := readFile(t, filepath.Join(outside, "secret")); got != "secret" {
				t.Errorf("secret = %q", got)
			}
			if ents, _ := os.ReadDir(base); len(ents) != 2 {
				t.Errorf("base dir holds %d entries, want snap and outside", len(ents))
			}
			notExist(t, tmpVictim)
			notExist(t, filepath.Join(filepath.Dir(base), "pwned"))
			var p unix.Stat_t
			unix.Lstat("/etc/passwd", &p)
			if p.Nlink != passwd.Nlink || p.Ino != passwd.Ino {
				t.Errorf("/etc/passwd nlink %d -> %d", passwd.Nlink, p.Nlink)
			}
			if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwdData) {
				t.Errorf("/etc/passwd changed")
			}
		})
	}
}

// Neutralised rather than refused: these are legal (Docker accepts them) and must stay
// inside the snapshot.
func TestApplyNeutralised(t *testing.T) {
	_, dir, outside := newSnapDir(t)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
	data := mkTar(t,
		file(filepath.Join(outside, "abs"), "inside"),    // absolute path: made relative
		symlink("etc-link", "/etc"),                      // absolute symlink: kept as it is
		symlink("passwd-link", "/etc/passwd"),            //
		hardlink("hl-to-symlink", "passwd-link"),         // hardlink to a symlink: links the symlink
		symlink("sec", filepath.Join(outside, "secret")), //
		file("sec", "replaced the link, not its target"), // replaces the symlink itself
		symlink("d/up", ".."),                            // relative, stays inside
	)
	mustApply(t, dir, data, ApplyOptions{})
	if got := readFile(t, filepath.Join(outside, "secret")); got != "secret" {
		t.Errorf("secret = %q", got)
	}
	notExist(t, filepath.Join(outside, "abs"))
	if got := readFile(t, filepath.Join(dir, outside, "abs")); got != "inside" {
		t.Errorf("abs = %q", got)
	}
	if st := lstat(t, filepath.Join(dir, "hl-to-symlink")); st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("hardlink to a symlink is not the symlink: mode %o", st.Mode)
	}
	if got := readFile(t, filepath.Join(dir, "sec")); got != "replaced the link, not its target" {
		t.Errorf("sec = %q", got)
	}
}

// The same guarantees hold on kernels without openat2(2), where paths are walked one
// component at a time with openat(O_NOFOLLOW|O_DIRECTORY).
func TestApplyWithoutOpenat2(t *testing.T) {
	if noOpenat2.Load() {
		testenv.SkipOrFailInCI(t, "openat2 is unavailable here: every test already uses the fallback")
	}
	noOpenat2.Store(true)
	defer noOpenat2.Store(false)
	t.Run("hostile", TestApplyHostile)
	t.Run("types", TestApplyTypesModesTimes)
	t.Run("repeated", TestApplyRepeatedEntries)
	t.Run("neutralised", TestApplyNeutralised)
}

// Xattrs on symlinks and device nodes without setxattrat(2) (Linux < 6.13) go through an
// O_PATH descriptor. trusted.* needs root; user.* is not allowed on symlinks.
func TestApplyXattrOnSymlinkWithoutSetxattrat(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFailInCI(t, "needs root for trusted.* xattrs (covered by e2e/snapshot_test.go)")
	}
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprint("fallback=", fallback), func(t *testing.T) {
			old := noSetxattrat.Load()
			noSetxattrat.Store(fallback)
			defer noSetxattrat.Store(old)
			_, dir, _ := newSnapDir(t)
			mustApply(t, dir, mkTar(t,
				ent{name: "l", typ: tar.TypeSymlink, link: "/nowhere", xattrs: map[string]string{"trusted.k": "v"}},
				ent{name: "p", typ: tar.TypeFifo, xattrs: map[string]string{"trusted.k": "w"}},
			), ApplyOptions{})
			for p, want := range map[string]string{"l": "v", "p": "w"} {
				buf := make([]byte, 16)
				n, err := unix.Lgetxattr(filepath.Join(dir, p), "trusted.k", buf)
				if err != nil || string(buf[:n]) != want {
					t.Errorf("%s trusted.k = %q, %v", p, buf[:n], err)
				}
			}
		})
	}
}
