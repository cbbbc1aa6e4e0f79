package container

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Every path inside the container is resolved with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS) from a descriptor of the rootfs: symlinks (absolute or with "..")
// cannot leave it and /proc/<pid>/fd-style magic links are refused. Mounts are attached to
// the resolved descriptor with the new mount API (open_tree/fsopen + fsmount +
// mount_setattr + move_mount with MOVE_MOUNT_T_EMPTY_PATH): attributes such as read-only are
// set on the detached mount before it becomes visible, and no path is ever resolved twice.

const resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// cleanRel cleans an in-container path to a relative one ("." for the root).
func cleanRel(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}

// openInRoot opens p below the directory root as if root were "/".
func openInRoot(root int, p string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveInRoot}
	var err error
	for range 32 {
		var fd int
		fd, err = unix.Openat2(root, p, &how)
		if err == unix.EINTR || err == unix.EAGAIN { // EAGAIN: a concurrent rename, retry
			continue
		}
		return fd, err
	}
	return -1, err
}

// mkdirAllInRoot opens the directory p inside root (O_PATH), creating the missing
// directories with mode. A dangling symlink on the way is followed inside the root, as the
// kernel would, and its target is created.
func mkdirAllInRoot(root int, p string, mode uint32) (int, error) {
	p = cleanRel(p)
restart:
	for range 40 {
		fd, err := openInRoot(root, p, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != unix.ENOENT {
			return fd, err
		}
		comps := strings.Split(p, "/")
		parent, err := openInRoot(root, ".", unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return -1, err
		}
		prefix := ""
		for i := 0; i < len(comps); i++ {
			c := comps[i]
			sub := c
			if prefix != "" {
				sub = prefix + "/" + c
			}
			fd, err := openInRoot(root, sub, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err == nil {
				unix.Close(parent)
				parent, prefix = fd, sub
				continue
			}
			if err != unix.ENOENT {
				unix.Close(parent)
				return -1, fmt.Errorf("%s: %w", sub, err)
			}
			err = unix.Mkdirat(parent, c, mode)
			if err == nil {
				i-- // open it on the next round
				continue
			}
			if err != unix.EEXIST {
				unix.Close(parent)
				return -1, fmt.Errorf("mkdir %s: %w", sub, err)
			}
			// It exists but does not resolve: a dangling symlink. Go on with its target,
			// joined without cleaning so that ".." is resolved by the kernel after the
			// symlinks of the prefix, and inside the root.
			target, lerr := readlinkat(parent, c)
			unix.Close(parent)
			if lerr != nil {
				return -1, fmt.Errorf("mkdir %s: %w", sub, err)
			}
			rest := strings.Join(comps[i+1:], "/")
			np := target
			if !strings.HasPrefix(target, "/") && prefix != "" {
				np = prefix + "/" + target
			}
			if rest != "" {
				np += "/" + rest
			}
			p = strings.TrimLeft(np, "/")
			if p == "" {
				p = "."
			}
			continue restart
		}
		unix.Close(parent)
	}
	return -1, fmt.Errorf("%s: %w", p, unix.ELOOP)
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// createFileInRoot opens the file p inside root (O_PATH), creating it (and its directories)
// when missing.
func createFileInRoot(root int, p string) (int, error) {
	p = cleanRel(p)
	fd, err := openInRoot(root, p, unix.O_PATH, 0)
	if err != unix.ENOENT {
		return fd, err
	}
	dfd, err := mkdirAllInRoot(root, path.Dir(p), 0o755)
	if err != nil {
		return -1, err
	}
	unix.Close(dfd)
	// O_CREAT follows a dangling final symlink, still inside the root.
	fd, err = openInRoot(root, p, unix.O_CREAT|unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0o644)
	if err != nil {
		return -1, fmt.Errorf("create %s: %w", p, err)
	}
	unix.Close(fd)
	return openInRoot(root, p, unix.O_PATH, 0)
}

// mountOptions is a parsed mount(8)-style option list.
type mountOptions struct {
	bind, recursive bool
	// attrSet/attrClr are MOUNT_ATTR_* of the new mount; recAttr* apply to its submounts
	// too ("rro", "rnosuid", ... and "ro" on a recursive bind, as Docker ≥ 25 does).
	attrSet, attrClr uint64
	recursiveAttrs   bool
	// propagation is MS_PRIVATE, MS_SLAVE, MS_SHARED or MS_UNBINDABLE (0: unchanged).
	propagation    uint64
	recursiveProp  bool
	sbFlags        []string // superblock flags for fsconfig: sync, dirsync, mand, lazytime
	data           []string // file system options: "mode=755", "newinstance", ...
	classicFlags   uintptr  // MS_* equivalent, for the mount(2) fallback
	classicPropRec bool
}

var attrOptions = map[string]struct {
	set, clr uint64
	ms       uintptr
	clearMS  bool
}{
	"ro":          {set: unix.MOUNT_ATTR_RDONLY, ms: unix.MS_RDONLY},
	"rw":          {clr: unix.MOUNT_ATTR_RDONLY, ms: unix.MS_RDONLY, clearMS: true},
	"nosuid":      {set: unix.MOUNT_ATTR_NOSUID, ms: unix.MS_NOSUID},
	"suid":        {clr: unix.MOUNT_ATTR_NOSUID, ms: unix.MS_NOSUID, clearMS: true},
	"nodev":       {set: unix.MOUNT_ATTR_NODEV, ms: unix.MS_NODEV},
	"dev":         {clr: unix.MOUNT_ATTR_NODEV, ms: unix.MS_NODEV, clearMS: true},
	"noexec":      {set: unix.MOUNT_ATTR_NOEXEC, ms: unix.MS_NOEXEC},
	"exec":        {clr: unix.MOUNT_ATTR_NOEXEC, ms: unix.MS_NOEXEC, clearMS: true},
	"nodiratime":  {set: unix.MOUNT_ATTR_NODIRATIME, ms: unix.MS_NODIRATIME},
	"diratime":    {clr: unix.MOUNT_ATTR_NODIRATIME, ms: unix.MS_NODIRATIME, clearMS: true},
	"noatime":     {set: unix.MOUNT_ATTR_NOATIME, clr: unix.MOUNT_ATTR__ATIME, ms: unix.MS_NOATIME},
	"relatime":    {set: unix.MOUNT_ATTR_RELATIME, clr: unix.MOUNT_ATTR__ATIME, ms: unix.MS_RELATIME},
	"strictatime": {set: unix.MOUNT_ATTR_STRICTATIME, clr: unix.MOUNT_ATTR__ATIME, ms: unix.MS_STRICTATIME},
	// Clearing a single atime mode is not expressible with mount_setattr (the atime field
	// is set as a whole): these only clear the mount(2) flag of the fallback.
	"atime":         {ms: unix.MS_NOATIME, clearMS: true},
	"norelatime":    {ms: unix.MS_RELATIME, clearMS: true},
	"nostrictatime": {ms: unix.MS_STRICTATIME, clearMS: true},
}

var propagationOptions = map[string]uint64{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE,
}

var sbFlagOptions = map[string]uintptr{
	"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "mand": unix.MS_MANDLOCK,
	"lazytime": unix.MS_LAZYTIME, "silent": unix.MS_SILENT,
}

// parseMountOptions parses a runtime-spec mount's options the way runc does.
func parseMountOptions(opts []string) (mountOptions, error) {
	var o mountOptions
	for _, opt := range opts {
		switch opt {
		case "", "defaults", "async", "nomand", "tmpcopyup", "notmpcopyup", "remount":
			continue
		case "bind":
			o.bind = true
			continue
		case "rbind":
			o.bind, o.recursive = true, true
			continue
		}
		if a, ok := attrOptions[opt]; ok {
			o.attrSet = o.attrSet&^a.clr | a.set
			o.attrClr = o.attrClr&^a.set | a.clr
			if a.clearMS {
				o.classicFlags &^= a.ms
			} else {
				o.classicFlags |= a.ms
			}
			continue
		}
		if len(opt) > 1 && opt[0] == 'r' {
			if a, ok := attrOptions[opt[1:]]; ok { // rro, rnosuid, ... (recursive)
				o.attrSet = o.attrSet&^a.clr | a.set
				o.attrClr = o.attrClr&^a.set | a.clr
				o.recursiveAttrs = true
				if !a.clearMS {
					o.classicFlags |= a.ms
				}
				continue
			}
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = p
			o.recursiveProp = opt[0] == 'r'
			continue
		}
		if f, ok := sbFlagOptions[opt]; ok {
			o.sbFlags = append(o.sbFlags, opt)
			o.classicFlags |= f
			continue
		}
		o.data = append(o.data, opt)
	}
	if o.bind && o.recursive {
		o.recursiveAttrs = true
	}
	return o, nil
}

// errNoMountAPI: the kernel lacks open_tree/fsopen/mount_setattr (Linux < 5.12).
var errNoMountAPI = errors.New("new mount API not available")

func isNoMountAPI(err error) bool { return err == unix.ENOSYS }

// bindTree clones the mount tree at source (recursively with rec) as a detached mount and
// gives it the attributes of o.
func bindTree(dirfd int, source string, flags uint, o mountOptions) (int, error) {
	otFlags := uint(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC) | flags
	if o.recursive {
		otFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(dirfd, source, otFlags)
	if err != nil {
		if isNoMountAPI(err) {
			return -1, errNoMountAPI
		}
		return -1, fmt.Errorf("open_tree %s: %w", source, err)
	}
	if o.attrSet != 0 || o.attrClr != 0 {
		var f uint = unix.AT_EMPTY_PATH
		if o.recursiveAttrs {
			f |= unix.AT_RECURSIVE
		}
		attr := unix.MountAttr{Attr_set: o.attrSet, Attr_clr: o.attrClr}
		if err := unix.MountSetattr(tree, "", f, &attr); err != nil {
			unix.Close(tree)
			return -1, fmt.Errorf("mount_setattr %s: %w", source, err)
		}
	}
	return tree, nil
}

// newFSMount creates a detached mount of a new fstype file system.
func newFSMount(fstype, source string, o mountOptions) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		if isNoMountAPI(err) {
			return -1, errNoMountAPI
		}
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	if source != "" {
		if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
			return -1, fmt.Errorf("%s: source=%s: %w%s", fstype, source, err, fsLog(fsfd))
		}
	}
	for _, d := range append(append([]string{}, o.sbFlags...), o.data...) {
		k, v, hasValue := strings.Cut(d, "=")
		if hasValue {
			err = unix.FsconfigSetString(fsfd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fsfd, k)
		}
		if err != nil {
			return -1, fmt.Errorf("%s: option %q: %w%s", fstype, d, err, fsLog(fsfd))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("%s: create: %w%s", fstype, err, fsLog(fsfd))
	}
	attrs := int(o.attrSet)
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, fmt.Errorf("%s: fsmount: %w%s", fstype, err, fsLog(fsfd))
	}
	return mfd, nil
}

// fsLog returns the messages the kernel attached to an fs context.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 512)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// attach moves the detached mount mfd onto the file or directory target (a descriptor),
// then applies the propagation of o to it.
func attach(mfd, target int, o mountOptions) error {
	if err := unix.MoveMount(mfd, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	if o.propagation != 0 {
		var f uint = unix.AT_EMPTY_PATH
		if o.recursiveProp {
			f |= unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(mfd, "", f, &unix.MountAttr{Propagation: o.propagation}); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	return nil
}

// procFdPath is the magic link to one of our descriptors, for mount(2) (fallback only).
func procFdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// classicMount is the mount(2) fallback for kernels without the new mount API: it mounts
// onto the magic link of the resolved target descriptor (never a string-joined path) and
// then remounts a bind mount with its flags, through a descriptor of the new mount.
func classicMount(root int, dest, source, fstype string, o mountOptions, target int) error {
	flags := o.classicFlags
	if o.bind {
		flags = unix.MS_BIND
		if o.recursive {
			flags |= unix.MS_REC
		}
	}
	if err := unix.Mount(source, procFdPath(target), fstype, flags, strings.Join(o.data, ",")); err != nil {
		return fmt.Errorf("mount %s on %s: %w", source, dest, err)
	}
	if o.bind && o.classicFlags&^unix.MS_REC != 0 {
		fd, err := openInRoot(root, dest, unix.O_PATH, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Mount("", procFdPath(fd), "", unix.MS_BIND|unix.MS_REMOUNT|o.classicFlags, ""); err != nil {
			return fmt.Errorf("remount %s: %w", dest, err)
		}
	}
	if o.propagation != 0 {
		fd, err := openInRoot(root, dest, unix.O_PATH, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		p := uintptr(o.propagation)
		if o.recursiveProp {
			p |= unix.MS_REC
		}
		if err := unix.Mount("", procFdPath(fd), "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", dest, err)
		}
	}
	return nil
}
