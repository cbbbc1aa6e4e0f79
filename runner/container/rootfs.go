package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/berth-registry/berth/runner/snapshot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// procMountWhitelist are the /proc files a mount may cover (lxcfs-style), as runc allows.
var procMountWhitelist = map[string]bool{
	"proc/cpuinfo": true, "proc/diskstats": true, "proc/meminfo": true, "proc/stat": true,
	"proc/swaps": true, "proc/uptime": true, "proc/loadavg": true, "proc/slabinfo": true,
	"proc/net/dev": true, "proc/sys/kernel/ns_last_pid": true,
}

// prepareRootfs builds the container's file system tree in the init's new mount namespace
// and enters it: private propagation, the rootfs (overlay or bind), the spec's mounts, /dev,
// then pivot_root (or MS_MOVE + chroot).
func prepareRootfs(cfg *initConfig) error {
	spec := cfg.Spec
	prop := uintptr(unix.MS_PRIVATE)
	shared := false
	if spec.Linux != nil {
		switch spec.Linux.RootfsPropagation {
		case "", "private", "rprivate":
		case "slave", "rslave":
			prop = unix.MS_SLAVE
		case "shared", "rshared":
			prop, shared = unix.MS_SLAVE, true
		default:
			return fmt.Errorf("unknown rootfs propagation %q", spec.Linux.RootfsPropagation)
		}
	}
	// First of all: nothing we mount may propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|prop, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	rootfs := cfg.Rootfs.Path
	if !path.IsAbs(rootfs) {
		return fmt.Errorf("rootfs %q is not an absolute path", rootfs)
	}
	if len(cfg.Rootfs.Lower) > 0 {
		if err := snapshot.MountOverlay(cfg.Rootfs.Lower, cfg.Rootfs.Upper, cfg.Rootfs.Work, rootfs); err != nil {
			return fmt.Errorf("mount rootfs: %w", err)
		}
	} else if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", rootfs, err)
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(root)

	hasDev := false
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if err := mountEntry(root, m, cfg); err != nil {
			return fmt.Errorf("error mounting %q to rootfs at %q: %w", m.Source, m.Destination, err)
		}
		if cleanRel(m.Destination) == "dev" {
			hasDev = true
		}
	}
	var devices []specs.LinuxDevice
	if spec.Linux != nil {
		devices = spec.Linux.Devices
	}
	if hasDev {
		if err := setupDev(root, devices); err != nil {
			return err
		}
	} else {
		for _, d := range devices {
			if err := makeDevice(root, cleanRel(d.Path), d); err != nil {
				return fmt.Errorf("device %s: %w", d.Path, err)
			}
		}
	}

	if cfg.NoPivotRoot {
		err = moveRoot(rootfs)
	} else if err = pivotRoot(rootfs); errors.Is(err, unix.EINVAL) {
		err = moveRoot(rootfs) // rootfs on ramfs/initramfs: pivot_root is impossible
	}
	if err != nil {
		return err
	}
	if shared {
		if err := unix.Mount("", "/", "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make / shared: %w", err)
		}
	}
	return nil
}

// mountEntry performs one mount of the spec, its target resolved inside root.
func mountEntry(root int, m *specs.Mount, cfg *initConfig) error {
	if !path.IsAbs(m.Destination) {
		return fmt.Errorf("mount destination %q is not absolute", m.Destination)
	}
	dest := cleanRel(m.Destination)
	if dest == "." {
		return errors.New("cannot mount over the container's root")
	}
	o, err := parseMountOptions(m.Options)
	if err != nil {
		return err
	}
	typ, source := m.Type, m.Source
	if typ == "bind" {
		o.bind = true
	}
	if typ == "sysfs" && !cfg.NewNetNS {
		// sysfs can only be mounted in a network namespace of our own: bind the host's.
		typ, source, o.bind, o.recursive, o.recursiveAttrs = "bind", "/sys", true, true, true
	}
	isDir := true
	if o.bind {
		st, err := os.Stat(source)
		if err != nil {
			return err
		}
		isDir = st.IsDir()
	}
	var target int
	if isDir {
		target, err = mkdirAllInRoot(root, dest, 0o755)
	} else {
		target, err = createFileInRoot(root, dest)
	}
	if err != nil {
		return fmt.Errorf("create mount target: %w", err)
	}
	defer unix.Close(target)
	if err := checkProcTarget(target, dest); err != nil {
		return err
	}
	if typ == "cgroup" {
		return mountCgroup(target, o, cfg.NewCgroupNS)
	}
	var mfd int
	if o.bind {
		mfd, err = bindTree(unix.AT_FDCWD, source, 0, o)
	} else {
		mfd, err = newFSMount(typ, source, o)
	}
	if err == errNoMountAPI {
		return classicMount(root, dest, source, typ, o, target)
	}
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	return attach(mfd, target, o)
}

// checkProcTarget refuses a mount target inside a mounted procfs (a mount over
// /proc/self/attr/... or /proc/sys/... could defeat security settings), except runc's
// lxcfs whitelist.
func checkProcTarget(fd int, dest string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	if st.Type == unix.PROC_SUPER_MAGIC && !procMountWhitelist[dest] {
		return fmt.Errorf("mount destination /%s is inside /proc: not allowed", dest)
	}
	return nil
}

// pivotRoot makes rootfs the root with runc's pivot_root(".", ".") trick: the old root ends
// up stacked under the new one and is detached at once (after being made a slave, so the
// unmount does not propagate anywhere).
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// moveRoot enters rootfs with MS_MOVE + chroot, when pivot_root is impossible. It first
// detaches every host mount outside the rootfs so that no chroot escape finds them.
func moveRoot(rootfs string) error {
	infos, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	sort.Slice(infos, func(i, j int) bool { return len(infos[i].mountpoint) > len(infos[j].mountpoint) })
	for _, mi := range infos {
		mp := mi.mountpoint
		if mp == "/" || mp == rootfs || strings.HasPrefix(mp, rootfs+"/") || strings.HasPrefix(rootfs, mp+"/") {
			continue
		}
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

// readonlyPath makes p (inside root) read-only with a recursive read-only bind of itself.
func readonlyPath(root int, p string) error {
	fd, err := openInRoot(root, cleanRel(p), unix.O_PATH, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("readonly path %s: %w", p, err)
	}
	defer unix.Close(fd)
	o := mountOptions{bind: true, recursive: true, recursiveAttrs: true, attrSet: unix.MOUNT_ATTR_RDONLY}
	tree, err := bindTree(fd, "", unix.AT_EMPTY_PATH, o)
	if err == errNoMountAPI {
		o.classicFlags = unix.MS_RDONLY
		return classicMount(root, cleanRel(p), procFdPath(fd), "", o, fd)
	}
	if err != nil {
		return fmt.Errorf("readonly path %s: %w", p, err)
	}
	defer unix.Close(tree)
	if err := attach(tree, fd, mountOptions{}); err != nil {
		return fmt.Errorf("readonly path %s: %w", p, err)
	}
	return nil
}

// maskPath hides p (inside root): /dev/null over a file, an empty read-only tmpfs over a
// directory.
func maskPath(root int, p string) error {
	fd, err := openInRoot(root, cleanRel(p), unix.O_PATH, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("masked path %s: %w", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	var mfd int
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mfd, err = newFSMount("tmpfs", "tmpfs", mountOptions{attrSet: unix.MOUNT_ATTR_RDONLY, data: []string{"size=0", "mode=755"}})
	} else {
		mfd, err = bindTree(unix.AT_FDCWD, "/dev/null", 0, mountOptions{})
	}
	if err == errNoMountAPI {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mount("tmpfs", procFdPath(fd), "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", procFdPath(fd), "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masked path %s: %w", p, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("masked path %s: %w", p, err)
	}
	defer unix.Close(mfd)
	if err := attach(mfd, fd, mountOptions{}); err != nil {
		return fmt.Errorf("masked path %s: %w", p, err)
	}
	return nil
}

// readonlyRoot remounts the container's root read-only (spec.Root.Readonly).
func readonlyRoot() error {
	err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err == unix.ENOSYS {
		var st unix.Statfs_t
		if err := unix.Statfs("/", &st); err != nil {
			return err
		}
		flags := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
		err = unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|flags, "")
	}
	if err != nil {
		return fmt.Errorf("make rootfs read-only: %w", err)
	}
	return nil
}

// writeSysctl sets a sysctl of the container (its /proc/sys, so network sysctls land in
// its network namespace).
func writeSysctl(root int, key, value string) error {
	p := strings.ReplaceAll(key, ".", "/")
	if strings.Contains(key, "/") || strings.Contains(p, "..") || key == "" {
		return fmt.Errorf("invalid sysctl %q", key)
	}
	fd, err := openInRoot(root, "proc/sys/"+p, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
