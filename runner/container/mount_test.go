package container

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	o, err := parseMountOptions([]string{"nosuid", "strictatime", "mode=755", "size=65536k"})
	if err != nil {
		t.Fatal(err)
	}
	if o.bind || o.attrSet != unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_STRICTATIME || o.attrClr&unix.MOUNT_ATTR__ATIME != unix.MOUNT_ATTR__ATIME ||
		!reflect.DeepEqual(o.data, []string{"mode=755", "size=65536k"}) {
		t.Errorf("tmpfs options: %+v", o)
	}
	if o.classicFlags != unix.MS_NOSUID|unix.MS_STRICTATIME {
		t.Errorf("classic flags %#x", o.classicFlags)
	}

	o, _ = parseMountOptions([]string{"rbind", "ro", "rprivate"})
	if !o.bind || !o.recursive || !o.recursiveAttrs || o.attrSet != unix.MOUNT_ATTR_RDONLY ||
		o.propagation != unix.MS_PRIVATE || !o.recursiveProp || len(o.data) != 0 {
		t.Errorf("rbind,ro,rprivate: %+v", o)
	}
	o, _ = parseMountOptions([]string{"bind", "ro", "rw", "nodev", "slave"})
	if o.recursive || o.recursiveAttrs || o.attrSet != unix.MOUNT_ATTR_NODEV || o.attrClr != unix.MOUNT_ATTR_RDONLY ||
		o.propagation != unix.MS_SLAVE || o.recursiveProp {
		t.Errorf("bind,ro,rw,nodev,slave: %+v", o)
	}
	o, _ = parseMountOptions([]string{"bind", "rro", "rnosuid"})
	if !o.recursiveAttrs || o.attrSet != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID {
		t.Errorf("rro: %+v", o)
	}
	o, _ = parseMountOptions([]string{"newinstance", "ptmxmode=0666", "sync", "defaults", "tmpcopyup"})
	if !reflect.DeepEqual(o.data, []string{"newinstance", "ptmxmode=0666"}) || !reflect.DeepEqual(o.sbFlags, []string{"sync"}) {
		t.Errorf("devpts: %+v", o)
	}
}

func TestCleanRel(t *testing.T) {
	for in, want := range map[string]string{
		"/": ".", "": ".", "/a/b/": "a/b", "../../etc": "etc", "/a/../../b": "b", "a//b/./c": "a/b/c",
	} {
		if got := cleanRel(in); got != want {
			t.Errorf("cleanRel(%q) = %q, want %q", in, got, want)
		}
	}
}

// fdPath is where a descriptor points on the host.
func fdPath(t *testing.T, fd int) string {
	t.Helper()
	p, err := os.Readlink(procFdPath(fd))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveInRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(outside, 0o755)
	os.Symlink("/etc", filepath.Join(root, "abs"))                       // absolute: the rootfs' /etc
	os.Symlink("../../../../../../etc", filepath.Join(root, "rel"))      // climbing: clamped at the root
	os.Symlink(outside, filepath.Join(root, "host"))                     // absolute host path: inside the root
	os.Symlink("/nowhere/deep", filepath.Join(root, "dangling"))         // dangling, absolute
	os.Symlink("../made-by-link", filepath.Join(root, "etc", "dangrel")) // dangling, relative
	os.Symlink("/etc/newfile", filepath.Join(root, "danglingfile"))      // dangling file
	os.Symlink("/proc/self/fd/0", filepath.Join(root, "magic"))          // not a magic link inside the root
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)

	for _, tc := range []struct{ in, want string }{
		{"/abs/sub", "etc/sub"},
		{"/rel/sub2", "etc/sub2"},
		{"/host/x", strings.TrimPrefix(outside, "/") + "/x"},
		{"/dangling/more", "nowhere/deep/more"},
		{"/etc/dangrel/x", "made-by-link/x"},
		{"/../../a/b/../c", "a/c"},
	} {
		fd, err := mkdirAllInRoot(rfd, tc.in, 0o755)
		if err != nil {
			t.Errorf("mkdirAllInRoot(%q): %v", tc.in, err)
			continue
		}
		if got := fdPath(t, fd); got != filepath.Join(root, tc.want) {
			t.Errorf("mkdirAllInRoot(%q) → %s, want %s", tc.in, got, filepath.Join(root, tc.want))
		}
		unix.Close(fd)
	}
	fd, err := createFileInRoot(rfd, "/danglingfile")
	if err != nil {
		t.Fatal(err)
	}
	if got := fdPath(t, fd); got != filepath.Join(root, "etc/newfile") {
		t.Errorf("createFileInRoot → %s", got)
	}
	unix.Close(fd)
	if fd, err := createFileInRoot(rfd, "/new/dir/file"); err != nil {
		t.Error(err)
	} else {
		unix.Close(fd)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("something was created outside the root: %v", ents)
	}
	if _, err := os.Lstat("/nowhere"); err == nil {
		t.Error("/nowhere created on the host")
	}
	// /proc/self/fd/0 inside the root is root/proc/..., which does not exist: no escape to
	// the real /proc either way.
	if fd, err := openInRoot(rfd, "magic", unix.O_PATH, 0); err == nil {
		t.Errorf("magic resolved to %s", fdPath(t, fd))
		unix.Close(fd)
	}
	// A real magic link is refused.
	pr, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pr)
	if _, err := openInRoot(pr, "self/cwd", unix.O_PATH, 0); err != unix.ELOOP {
		t.Errorf("/proc/self/cwd through openInRoot: %v, want ELOOP", err)
	}
}

func TestMountinfo(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(f, []byte(strings.Join([]string{
		`22 27 0:21 / /proc rw,relatime - proc proc rw`,
		`32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu`,
		`33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct`,
		`40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd`,
		`41 31 0:38 /docker /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate`,
		`50 27 0:40 / /mnt/with\040space rw - tmpfs tmpfs rw`,
	}, "\n")+"\n"), 0o644)
	infos, err := readMountinfo(f)
	if err != nil || len(infos) != 6 {
		t.Fatalf("%d entries, %v", len(infos), err)
	}
	if infos[5].mountpoint != "/mnt/with space" || infos[1].fstype != "cgroup" || infos[4].root != "/docker" {
		t.Errorf("parsed %+v", infos)
	}
	own := map[string]string{"cpu,cpuacct": "/berth/c1", "name=systemd": "/user.slice", "": "/docker/x", "cpu": "/other"}
	for i, want := range []string{"", "/sys/fs/cgroup/cpu/other", "/sys/fs/cgroup/cpu,cpuacct/berth/c1", "/sys/fs/cgroup/systemd/user.slice", "/sys/fs/cgroup/unified/x"} {
		if i == 0 {
			continue
		}
		p, _, ok := hierarchyOf(infos[i], own)
		if !ok {
			t.Errorf("%s: no hierarchy", infos[i].mountpoint)
			continue
		}
		if d, _ := hostDir(infos[i], p); d != want {
			t.Errorf("%s: %s, want %s", infos[i].mountpoint, d, want)
		}
	}
	if _, ok := hostDir(infos[4], "/elsewhere"); ok {
		t.Error("a cgroup outside the mount's root was found")
	}
}

func TestNamespaces(t *testing.T) {
	spec := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/netns/a"},
		{Type: specs.UTSNamespace}, {Type: specs.IPCNamespace, Path: "/proc/1/ns/ipc"},
	}}}
	flags, joins, err := namespaces(spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if flags != unix.CLONE_NEWNS|unix.CLONE_NEWPID|unix.CLONE_NEWUTS || len(joins) != 2 || joins[0].flag != unix.CLONE_NEWNET {
		t.Errorf("flags %#x joins %+v", flags, joins)
	}
	_, joins, _ = namespaces(spec, "/run/netns/b")
	if len(joins) != 2 || joins[1].path != "/run/netns/b" {
		t.Errorf("NetNS override: %+v", joins)
	}
	for _, bad := range [][]specs.LinuxNamespace{
		{{Type: specs.PIDNamespace}},
		{{Type: specs.MountNamespace}, {Type: specs.UserNamespace}},
		{{Type: specs.MountNamespace, Path: "/proc/1/ns/mnt"}},
		{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.PIDNamespace}},
	} {
		if _, _, err := namespaces(&specs.Spec{Linux: &specs.Linux{Namespaces: bad}}, ""); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
