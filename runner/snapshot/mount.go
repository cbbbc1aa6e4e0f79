package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMountData is the size of the page the kernel copies mount(2) options into: a longer
// option string is cut short without an error (see DESIGN.md, "Pitfalls").
var maxMountData = os.Getpagesize()

// ErrTooManyLayers is returned by MountOverlayClassic when the lowerdir list cannot fit in
// mount(2)'s one-page option string even with relative paths.
var ErrTooManyLayers = errors.New("overlay lowerdir list does not fit in one page")

// MountOverlay mounts an overlay filesystem at target with the lower directories lower (top
// layer first, as in lowerdir=), and, when upper is not empty, upper and work as upperdir and
// workdir (without upper the mount is read-only; overlayfs then needs at least two lower
// layers). With an upper layer, index=off is set whatever the kernel's default, as Docker's
// overlay2 does: snapshots are shared by many overlays, each with its own upper layer.
//
// It uses the new mount API (fsopen/fsconfig/fsmount/move_mount) with one "lowerdir+" per
// layer (Linux ≥ 6.8), which has no length limit, and falls back to MountOverlayClassic when
// the kernel lacks it.
func MountOverlay(lower []string, upper, work, target string) error {
	if err := checkOverlayArgs(lower, upper, work, target); err != nil {
		return err
	}
	err := mountOverlayFsopen(lower, upper, work, target)
	if errors.Is(err, errNoNewMountAPI) {
		return MountOverlayClassic(lower, upper, work, target)
	}
	return err
}

var errNoNewMountAPI = errors.New("new mount API with lowerdir+ not available")

func checkOverlayArgs(lower []string, upper, work, target string) error {
	if len(lower) == 0 {
		return errors.New("overlay: no lower directories")
	}
	if (upper == "") != (work == "") {
		return errors.New("overlay: upperdir and workdir go together")
	}
	if target == "" {
		return errors.New("overlay: no target")
	}
	return nil
}

func mountOverlayFsopen(lower []string, upper, work, target string) (err error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if err == unix.ENOSYS || err == unix.EPERM && !isRoot() {
			return fmt.Errorf("%w: fsopen: %v", errNoNewMountAPI, err)
		}
		return fmt.Errorf("overlay: fsopen: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fmt.Errorf("overlay: fsconfig %s=%q: %w%s", key, value, err, fsLog(fsfd))
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil {
		return err
	}
	for i, l := range lower {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			if i == 0 && err == unix.EINVAL {
				msg := fsLog(fsfd)
				if strings.Contains(msg, "lowerdir+") || msg == "" {
					// Kernel before 6.8: unknown parameter.
					return fmt.Errorf("%w:%s", errNoNewMountAPI, msg)
				}
				return fmt.Errorf("overlay: fsconfig lowerdir+=%q: %w%s", l, err, msg)
			}
			return fmt.Errorf("overlay: fsconfig lowerdir+=%q (layer %d of %d): %w%s", l, i+1, len(lower), err, fsLog(fsfd))
		}
	}
	if upper != "" {
		if err := set("upperdir", upper); err != nil {
			return err
		}
		if err := set("workdir", work); err != nil {
			return err
		}
		if err := set("index", "off"); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("overlay: create (%d layers): %w%s", len(lower), err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("overlay: fsmount: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("overlay: move_mount to %s: %w", target, err)
	}
	return nil
}

// fsLog drains the messages the kernel attached to an fs context ("e overlayfs: ...").
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
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

func isRoot() bool { return os.Geteuid() == 0 }

// MountOverlayClassic mounts the overlay with mount(2) and a "lowerdir=a:b:…" option string.
// That string must fit in one page, or the kernel silently drops the layers past it; this
// function never lets that happen: when the absolute paths are too long it mounts from the
// lower directories' common parent with relative paths (as Docker's overlay2 does, from a
// thread with its own working directory), and if even that does not fit it returns
// ErrTooManyLayers.
func MountOverlayClassic(lower []string, upper, work, target string) error {
	if err := checkOverlayArgs(lower, upper, work, target); err != nil {
		return err
	}
	for _, p := range append(append([]string{}, lower...), upper, work) {
		if strings.ContainsAny(p, ",") {
			return fmt.Errorf("overlay: path %q contains a comma, which mount(2) options cannot carry", p)
		}
	}
	data := overlayData(lower, upper, work)
	if len(data) < maxMountData {
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			return fmt.Errorf("overlay: mount %d layers at %s: %w", len(lower), target, err)
		}
		return nil
	}
	dir := commonDir(lower)
	if dir == "" {
		return fmt.Errorf("%w: %d layers, %d bytes of options, no common parent", ErrTooManyLayers, len(lower), len(data))
	}
	rel := make([]string, len(lower))
	for i, l := range lower {
		r, err := filepath.Rel(dir, l)
		if err != nil {
			return err
		}
		rel[i] = r
	}
	absUpper, absWork := upper, work
	if upper != "" {
		var err error
		if absUpper, err = filepath.Abs(upper); err != nil {
			return err
		}
		if absWork, err = filepath.Abs(work); err != nil {
			return err
		}
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	data = overlayData(rel, absUpper, absWork)
	if len(data) >= maxMountData {
		return fmt.Errorf("%w: %d layers need %d bytes of options even relative to %s (limit %d); use MountOverlay (Linux ≥ 6.8)",
			ErrTooManyLayers, len(lower), len(data), dir, maxMountData-1)
	}
	return mountFromDir(dir, absTarget, data)
}

func overlayData(lower []string, upper, work string) string {
	esc := make([]string, len(lower))
	for i, l := range lower {
		// ":" separates layers; a literal one is escaped with a backslash.
		esc[i] = strings.NewReplacer(`\`, `\\`, ":", `\:`).Replace(l)
	}
	data := "lowerdir=" + strings.Join(esc, ":")
	if upper != "" {
		data += ",upperdir=" + upper + ",workdir=" + work + ",index=off"
	}
	return data
}

// commonDir returns the longest common parent directory of absolute paths.
func commonDir(paths []string) string {
	if len(paths) == 0 || !filepath.IsAbs(paths[0]) {
		return ""
	}
	common := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		if !filepath.IsAbs(p) {
			return ""
		}
		p = filepath.Clean(p)
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// mountFromDir calls mount(2) with relative lowerdir paths from a thread whose working
// directory is dir: the thread leaves the process' shared fs_struct (unshare CLONE_FS) so the
// chdir is its own, and it is locked and never unlocked, so Go discards it afterwards. The
// new thread first joins the caller thread's mount namespace: a caller on a locked thread in
// a private mount namespace (a container's init, WithOverlay) must get the mount there, not
// in the namespace the new thread started in.
func mountFromDir(dir, target, data string) error {
	nsfd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("overlay: open the mount namespace: %w", err)
	}
	defer unix.Close(nsfd)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with this goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("overlay: unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Setns(nsfd, unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("overlay: join the caller's mount namespace: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("overlay: chdir %s: %w", dir, err)
			return
		}
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			errc <- fmt.Errorf("overlay: mount at %s (relative to %s): %w", target, dir, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// Unmount unmounts an overlay (or anything) mounted at target.
func Unmount(target string) error {
	for {
		err := unix.Unmount(target, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		return nil
	}
}

// WithOverlay mounts an overlay of lower (top first), writable through upper and work when
// upper is not empty (see MountOverlay), at target in a private mount namespace of a
// locked OS thread, and calls f on that thread with target. Nothing is ever mounted on the
// host. The overlay is unmounted when f returns, although the namespace goes with the
// thread: a locked goroutine that ran on the main thread parks that thread instead of
// ending it. f must do its path-based work itself: other goroutines run on threads that do
// not see the mount (descriptors opened by f work anywhere).
func WithOverlay(lower []string, upper, work, target string, f func(root string) error) error {
	return InPrivateMountNS(func() error {
		if err := MountOverlay(lower, upper, work, target); err != nil {
			return err
		}
		err := f(target)
		unix.Unmount(target, unix.MNT_DETACH)
		return err
	})
}

// InPrivateMountNS calls f on a locked OS thread in a mount namespace of its own, with
// private propagation: what f mounts is never seen on the host, and goes with the
// namespace when the thread ends. f must unmount what it mounts all the same: a locked
// goroutine that ends on the process's main thread parks that thread instead of ending it.
func InPrivateMountNS(f func() error) error {
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread and its private mount namespace end with this goroutine.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			runtime.UnlockOSThread() // still in the host's namespace: the thread can be reused
			res <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			res <- fmt.Errorf("make / private: %w", err)
			return
		}
		res <- f()
	}()
	return <-res
}

// WithReadOnlyOverlay calls f with the root of a read-only view of the layers lower (top
// first): the layer itself when there is only one (f then runs on the caller's goroutine),
// else their overlay mounted at target as WithOverlay does.
func WithReadOnlyOverlay(lower []string, target string, f func(root string) error) error {
	if len(lower) == 1 {
		return f(lower[0])
	}
	return WithOverlay(lower, "", "", target, f)
}
