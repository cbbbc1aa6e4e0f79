package container

import (
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are the device nodes every container gets in its /dev (runc's and Docker's
// default set).
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// setupDev fills the container's fresh /dev (a tmpfs mounted from the spec): the default
// devices, the spec's devices, and the usual symlinks.
func setupDev(root int, devices []specs.LinuxDevice) error {
	seen := map[string]bool{}
	for _, d := range append(append([]specs.LinuxDevice{}, devices...), defaultDevices...) {
		p := cleanRel(d.Path)
		if seen[p] {
			continue // a spec device overrides a default one
		}
		seen[p] = true
		if !strings.HasPrefix(p, "dev/") {
			return fmt.Errorf("device %s: not in /dev", d.Path)
		}
		if err := makeDevice(root, p, d); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
	}
	devfd, err := openInRoot(root, "dev", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	defer unix.Close(devfd)
	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
		{"pts/ptmx", "ptmx"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], devfd, l[1]); err != nil && err != unix.EEXIST {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// makeDevice creates the device node p (relative to root) with mknod, or, where mknod is
// not permitted, as a bind mount of the host's node.
func makeDevice(root int, p string, d specs.LinuxDevice) error {
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	dir, err := mkdirAllInRoot(root, path.Dir(p), 0o755)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	name := path.Base(p)
	err = unix.Mknodat(dir, name, typ|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	switch err {
	case nil:
		if err := unix.Fchmodat(dir, name, mode, 0); err != nil {
			return err
		}
	case unix.EEXIST:
		return nil
	case unix.EPERM:
		// No CAP_MKNOD here: bind the host's node onto an empty file.
		fd, err := createFileInRoot(root, p)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tree, err := bindTree(unix.AT_FDCWD, d.Path, 0, mountOptions{})
		if err != nil {
			return err
		}
		defer unix.Close(tree)
		return attach(tree, fd, mountOptions{})
	default:
		return fmt.Errorf("mknod: %w", err)
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if uid != -1 || gid != -1 {
		if err := unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}
