package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeRootfs makes a rootfs in a temporary directory: each key is a path relative to it;
// a value starting with "->" makes a symbolic link to the rest, "|fifo" a FIFO, anything
// else a regular file with that content.
func fakeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), p)
		case content == "|fifo":
			err = syscall.Mkfifo(p, 0o644)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment line is no entry: its uid does not parse
   app:x:1000:1000:App User:/home/app:/bin/sh   
web:x:33:33::/var/www:/bin/false
broken:x:notanumber:1::/:/bin/sh
dup:x:2000:2000::/first:/bin/sh
dup:x:2001:2001::/second:/bin/sh
`

const testGroup = `root:x:0:root
daemon:x:1:
wheel:x:10:root,app
app:x:1000:
audio:x:29:app,web
www-data:x:33:
video:x:44:web
staff:x:50:
`

func userRootfs(t *testing.T) string {
	return fakeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
}

func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestLookupUser(t *testing.T) {
	root := openRoot(t, userRootfs(t))
	for _, c := range []struct {
		spec     string
		groupAdd []string
		uid, gid uint32
		gids     []uint32
		home     string
		err      string
	}{
		{spec: "", uid: 0, gid: 0, gids: []uint32{0, 0, 10}, home: "/root"},
		{spec: "root", uid: 0, gid: 0, gids: []uint32{0, 10}, home: "/root"},
		{spec: "app", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, home: "/home/app"},
		{spec: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, home: "/home/app"},
		{spec: "web", uid: 33, gid: 33, gids: []uint32{33, 29, 44}, home: "/var/www"},
		{spec: "dup", uid: 2000, gid: 2000, gids: []uint32{2000}, home: "/first"},
		{spec: "4242", uid: 4242, gid: 0, gids: []uint32{0}, home: "/"},
		{spec: "4242:4343", uid: 4242, gid: 4343, gids: []uint32{4343}, home: "/"},
		{spec: "app:staff", uid: 1000, gid: 50, gids: []uint32{50}, home: "/home/app"},
		{spec: "app:44", uid: 1000, gid: 44, gids: []uint32{44}, home: "/home/app"},
		{spec: "1000:1000", uid: 1000, gid: 1000, gids: []uint32{1000}, home: "/home/app"},
		{spec: "0:wheel", uid: 0, gid: 10, gids: []uint32{10}, home: "/root"},
		{spec: "app", groupAdd: []string{"video", "777", "wheel"}, uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29, 44, 777}, home: "/home/app"},
		{spec: "nobody", err: "unable to find user nobody: no matching entries in passwd file"},
		{spec: "broken", err: "unable to find user broken: no matching entries in passwd file"},
		{spec: "app:nogroup", err: "unable to find group nogroup: no matching entries in group file"},
		{spec: "app", groupAdd: []string{"nogroup"}, err: "Unable to find group nogroup: no matching entries in group file"},
		{spec: "-1", err: ErrRange.Error()},
		{spec: "1:4294967296", err: ErrRange.Error()},
		{spec: "99999999999", err: ErrRange.Error()},
	} {
		u, err := LookupUser(root, c.spec, c.groupAdd)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: err = %v, want %s", c.spec, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		want := &ExecUser{UID: c.uid, GID: c.gid, AdditionalGids: dedupGids(c.gids), Home: c.home}
		if u.UID != want.UID || u.GID != want.GID || u.Home != want.Home || !slices.Equal(u.AdditionalGids, want.AdditionalGids) {
			t.Errorf("%q: got %+v, want %+v", c.spec, u, want)
		}
	}
	if _, err := LookupUser(root, "nobody", nil); !errors.Is(err, ErrNoPasswdEntries) {
		t.Errorf("err = %v, want ErrNoPasswdEntries", err)
	}
}

func TestLookupUserWithoutFiles(t *testing.T) {
	for name, root := range map[string]*os.Root{"nil root": nil, "empty rootfs": openRoot(t, fakeRootfs(t, nil))} {
		u, err := LookupUser(root, "123:456", nil)
		if err != nil || u.UID != 123 || u.GID != 456 || u.Home != "/" || !slices.Equal(u.AdditionalGids, []uint32{456}) {
			t.Errorf("%s: %+v %v", name, u, err)
		}
		u, err = LookupUser(root, "", nil)
		if err != nil || u.UID != 0 || u.GID != 0 || u.Home != "/" {
			t.Errorf("%s: %+v %v", name, u, err)
		}
		if _, err := LookupUser(root, "app", nil); err == nil || err.Error() != "unable to find user app: no matching entries in passwd file" {
			t.Errorf("%s: err = %v", name, err)
		}
		if _, err := LookupUser(root, "1:grp", nil); err == nil || err.Error() != "unable to find group grp: no matching entries in group file" {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestGenerateUser(t *testing.T) {
	root := userRootfs(t)
	img := image(nil, sl("sh"))
	img.Config.User = "web"
	s, _, err := Generate(img, root, "abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 33 || u.GID != 33 || !slices.Equal(u.AdditionalGids, []uint32{33, 29, 44}) {
		t.Fatalf("image USER web: %+v", u)
	}
	s, _, err = Generate(img, root, "abc", &Options{User: "app:audio"})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 1000 || u.GID != 29 || !slices.Equal(u.AdditionalGids, []uint32{29}) {
		t.Fatalf("-u app:audio: %+v", u)
	}
	if !slices.Contains(s.Process.Env, "HOME=/home/app") {
		t.Fatalf("env %q", s.Process.Env)
	}
	_, _, err = Generate(img, root, "abc", &Options{User: "ghost"})
	if err == nil || err.Error() != "unable to find user ghost: no matching entries in passwd file" {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := Generate(img, filepath.Join(root, "missing"), "abc", nil); err == nil {
		t.Fatal("a rootfs that does not exist was accepted")
	}
}

// hostSecret writes a file outside the rootfs, standing for the host's /etc/shadow, and
// returns its absolute path.
func hostSecret(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(p, []byte("hostuser:x:4000:4000::/host:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostileRootfs(t *testing.T) {
	secret := hostSecret(t)
	inRoot := "inroot:x:3000:3000::/in-rootfs:/bin/sh\n"
	for _, c := range []struct {
		name  string
		files map[string]string
		// wantInRoot: "inroot" resolves (the rootfs's own file was read); else no
		// passwd file at all (user not found), or an error containing err.
		wantInRoot bool
		err        string
	}{
		{name: "absolute link to the host file", files: map[string]string{"etc/passwd": "->" + secret}},
		{name: "absolute link to /etc/shadow, present in the rootfs", files: map[string]string{"etc/passwd": "->/etc/shadow", "etc/shadow": inRoot}, wantInRoot: true},
		{name: "absolute link to /etc/shadow, absent from the rootfs", files: map[string]string{"etc/passwd": "->/etc/shadow"}},
		{name: "relative link climbing out", files: map[string]string{"etc/passwd": "->../../../../../../../../.." + secret}},
		{name: "relative link climbing to a rootfs file", files: map[string]string{"etc/passwd": "->../../../../../etc/shadow", "etc/shadow": inRoot}, wantInRoot: true},
		{name: "/etc is a link to /", files: map[string]string{"etc": "->/", "passwd": inRoot}, wantInRoot: true},
		{name: "/etc is a link to ../..", files: map[string]string{"etc": "->../..", "passwd": inRoot}, wantInRoot: true},
		{name: "/etc links to the host dir of the secret", files: map[string]string{"etc": "->" + filepath.Dir(secret)}},
		{name: "/proc/self/fd trick", files: map[string]string{"etc/passwd": "->/proc/self/fd/0"}},
		{name: "/proc/self/root trick", files: map[string]string{"etc/passwd": "->/proc/self/root" + secret}},
		{name: "/proc/1/root trick", files: map[string]string{"etc": "->/proc/1/root/etc"}},
		{name: "proc dir in rootfs with fd links", files: map[string]string{"etc/passwd": "->/proc/self/fd/3", "proc/self/fd/3": "->/etc/real", "etc/real": inRoot}, wantInRoot: true},
		{name: "link loop", files: map[string]string{"etc/passwd": "->/etc/passwd"}, err: "too many levels of symbolic links"},
		{name: "two-link loop", files: map[string]string{"etc/passwd": "->a", "etc/a": "->passwd"}, err: "too many levels of symbolic links"},
		{name: "FIFO", files: map[string]string{"etc/passwd": "|fifo"}, err: "not a regular file"},
		{name: "link to a FIFO", files: map[string]string{"etc/passwd": "->/x", "x": "|fifo"}, err: "not a regular file"},
		{name: "link to a host device", files: map[string]string{"etc/passwd": "->/dev/zero"}},
		{name: "directory", files: map[string]string{"etc/passwd/x": "y"}, err: "not a regular file"},
		{name: "etc is a file", files: map[string]string{"etc": "root:x:0:0::/:/bin/sh\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := openRoot(t, fakeRootfs(t, c.files))
			done := make(chan struct{})
			var hostErr, inErr error
			var u *ExecUser
			go func() {
				defer close(done)
				_, hostErr = LookupUser(root, "hostuser", nil)
				u, inErr = LookupUser(root, "inroot", nil)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("LookupUser hangs")
			}
			if c.err != "" {
				if hostErr == nil || !strings.Contains(hostErr.Error(), c.err) {
					t.Fatalf("err = %v, want %q", hostErr, c.err)
				}
				return
			}
			if hostErr == nil || !errors.Is(hostErr, ErrNoPasswdEntries) {
				t.Fatalf("the host's user resolved or an unexpected error: %v", hostErr)
			}
			if c.wantInRoot {
				if inErr != nil || u.UID != 3000 || u.Home != "/in-rootfs" {
					t.Fatalf("in-rootfs user: %+v %v", u, inErr)
				}
			} else if !errors.Is(inErr, ErrNoPasswdEntries) {
				t.Fatalf("in-rootfs user: %+v %v", u, inErr)
			}
			// Numeric users work whatever the files are.
			if u, err := LookupUser(root, "5:6", nil); err != nil || u.UID != 5 || u.GID != 6 {
				t.Fatalf("numeric: %+v %v", u, err)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	root := openRoot(t, fakeRootfs(t, map[string]string{
		"a/b/file":      "x",
		"abs":           "->/a/b",
		"rel":           "->a/b",
		"up":            "->../../../a",
		"a/b/back":      "->../../rel/file",
		"chain1":        "->chain2",
		"chain2":        "->/abs/file",
		"dangling":      "->/does/not/exist",
		"a/b/parentdot": "->..",
	}))
	for in, want := range map[string]string{
		"/":                  ".",
		"":                   ".",
		"/..":                ".",
		"/../../a/b/file":    "a/b/file",
		"/abs/file":          "a/b/file",
		"rel/file":           "a/b/file",
		"/up/b/file":         "a/b/file",
		"/a/b/back":          "a/b/file",
		"/chain1":            "a/b/file",
		"/dangling":          "does/not/exist",
		"/dangling/../x":     "does/not/x",
		"/missing/../a/b":    "a/b",
		"/a/b/parentdot/b":   "a/b",
		"/abs/../../../etc":  "etc",
		"/a/./b//file/":      "a/b/file",
		"/a/b/file/../other": "a/b/other",
	} {
		got, err := ResolvePath(root, in)
		if err != nil || got != want {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ResolvePath(root, "a\x00b"); err == nil {
		t.Error("NUL accepted")
	}
}
