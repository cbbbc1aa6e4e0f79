package container

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	root, mountpoint, fstype, source, superOpts string
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readMountinfo(file string) ([]mountInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+3 >= len(fields) {
			continue
		}
		out = append(out, mountInfo{
			root:       unescapeMountinfo(fields[3]),
			mountpoint: unescapeMountinfo(fields[4]),
			fstype:     fields[sep+1],
			source:     unescapeMountinfo(fields[sep+2]),
			superOpts:  fields[sep+3],
		})
	}
	return out, sc.Err()
}

// readCgroupFile parses /proc/<pid>/cgroup: controller list ("cpu,cpuacct",
// "name=systemd", "" for the unified hierarchy) → path.
func readCgroupFile(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out, nil
}

// hierarchyOf finds the cgroup path (from readCgroupFile) of the process in the hierarchy
// mounted by mi, and the controllers of a v1 hierarchy.
func hierarchyOf(mi mountInfo, own map[string]string) (cgPath string, controllers []string, ok bool) {
	if mi.fstype == "cgroup" {
		for _, opt := range strings.Split(mi.superOpts, ",") {
			if opt == "rw" || opt == "ro" || strings.Contains(opt, "=") && !strings.HasPrefix(opt, "name=") ||
				opt == "clone_children" || opt == "xattr" || opt == "noprefix" || opt == "cpuset_v2_mode" ||
				opt == "favordynmods" {
				continue
			}
			controllers = append(controllers, opt)
		}
	}
	for k, p := range own {
		if mi.fstype == "cgroup2" && k == "" || mi.fstype == "cgroup" && k != "" && sameSet(strings.Split(k, ","), controllers) {
			return p, controllers, true
		}
	}
	return "", controllers, false
}

// hostDir is the directory of cgroup path cgPath under the mount mi, if the mount shows it.
func hostDir(mi mountInfo, cgPath string) (string, bool) {
	rel := cgPath
	if mi.root != "/" {
		r, ok := strings.CutPrefix(cgPath, mi.root)
		if !ok || r != "" && r[0] != '/' {
			return "", false
		}
		rel = r
	}
	return path.Join(mi.mountpoint, rel), true
}

// selfCgroupDirs returns the directories of the calling process' cgroups, one per mounted
// hierarchy.
func selfCgroupDirs() ([]string, error) {
	infos, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	own, err := readCgroupFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var dirs []string
	seen := map[string]bool{}
	for _, mi := range infos {
		if mi.fstype != "cgroup" && mi.fstype != "cgroup2" {
			continue
		}
		p, controllers, ok := hierarchyOf(mi, own)
		key := mi.fstype + ":" + strings.Join(controllers, ",")
		if !ok || seen[key] {
			continue
		}
		if d, ok := hostDir(mi, p); ok {
			seen[key] = true
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// mountCgroup mounts the container's view of the cgroup file systems at the target
// directory descriptor (a "cgroup" mount of the spec, Docker's /sys/fs/cgroup): on a
// cgroup v2 host the container's own cgroup (or a new cgroup2 mount with a cgroup
// namespace); on v1 or hybrid hosts a tmpfs with one sub-directory per hierarchy holding the
// container's cgroup of that hierarchy, with symlinks for co-mounted controllers — as runc
// does. It must run before pivot_root (it reads the host's mount table).
func mountCgroup(target int, o mountOptions, newCgroupNS bool) error {
	infos, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	own, err := readCgroupFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	var hier []mountInfo
	for _, mi := range infos {
		if (mi.fstype == "cgroup" || mi.fstype == "cgroup2") && strings.HasPrefix(mi.mountpoint, "/sys/fs/cgroup") {
			hier = append(hier, mi)
		}
	}
	attrs := mountOptions{attrSet: o.attrSet, attrClr: o.attrClr}
	for _, mi := range hier {
		if mi.mountpoint == "/sys/fs/cgroup" && mi.fstype == "cgroup2" { // v2 only
			return mountHierarchy(target, mi, own, attrs, newCgroupNS)
		}
	}
	tm, err := newFSMount("tmpfs", "tmpfs", mountOptions{
		data:    []string{"mode=755"},
		attrSet: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC,
	})
	if err != nil {
		return err
	}
	defer unix.Close(tm)
	if err := attach(tm, target, mountOptions{}); err != nil {
		return err
	}
	for _, mi := range hier {
		name := path.Base(mi.mountpoint)
		if path.Dir(mi.mountpoint) != "/sys/fs/cgroup" || name == "." || name == ".." {
			continue
		}
		if err := unix.Mkdirat(tm, name, 0o755); err != nil && err != unix.EEXIST {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
		sub, err := unix.Openat(tm, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
		err = mountHierarchy(sub, mi, own, attrs, newCgroupNS)
		unix.Close(sub)
		if err != nil {
			return err
		}
		if strings.Contains(name, ",") {
			for _, c := range strings.Split(name, ",") {
				if err := unix.Symlinkat(name, tm, c); err != nil && err != unix.EEXIST {
					return fmt.Errorf("cgroup symlink %s: %w", c, err)
				}
			}
		}
	}
	if o.attrSet&unix.MOUNT_ATTR_RDONLY != 0 {
		if err := unix.MountSetattr(tm, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("cgroup tmpfs read-only: %w", err)
		}
	}
	return nil
}

// mountHierarchy mounts, at target, the container's cgroup of one hierarchy: a bind of the
// host directory, or a fresh mount inside a cgroup namespace.
func mountHierarchy(target int, mi mountInfo, own map[string]string, o mountOptions, newNS bool) error {
	cgPath, controllers, ok := hierarchyOf(mi, own)
	if !ok {
		return nil // a hierarchy this process is not in
	}
	if newNS {
		fo := o
		fo.data = controllers
		mfd, err := newFSMount(mi.fstype, "cgroup", fo)
		if err != nil {
			return err
		}
		defer unix.Close(mfd)
		return attach(mfd, target, mountOptions{})
	}
	src, ok := hostDir(mi, cgPath)
	if !ok {
		return nil
	}
	tree, err := bindTree(unix.AT_FDCWD, src, 0, o)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	return attach(tree, target, mountOptions{})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
