package container

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/runner/changes"
	"github.com/berth-registry/berth/runner/snapshot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The container's file system seen from outside (diff, commit, export, cp). The overlay
// is never mounted on the host: a running container's tree is reached through
// /proc/<pid>/root (its own view, volumes included), and otherwise the overlay is mounted
// in a private mount namespace of a locked OS thread that ends with the operation.

// Get returns a container's configuration and its (reconciled) state.
func (m *Manager) Get(nameOrID string) (*Container, *State, error) {
	return m.view(nameOrID)
}

// ChangeOptions are the options of runner/changes for the container: its mount points
// (the /etc files, volumes, /proc, /dev…) are not its changes.
func (c *Container) ChangeOptions() *changes.Options {
	o := &changes.Options{}
	if c.Spec != nil {
		for _, mnt := range c.Spec.Mounts {
			o.Skip = append(o.Skip, mnt.Destination)
		}
	}
	return o
}

// Changes lists the container's changes to its image (docker diff).
func (m *Manager) Changes(ctx context.Context, nameOrID string) ([]changes.Change, error) {
	c, _, err := m.view(nameOrID)
	if err != nil {
		return nil, err
	}
	d, err := c.Diff(ctx)
	if err != nil {
		return nil, err
	}
	return d.Changes(), nil
}

// Diff scans the container's changes to its image; Diff.WriteLayer then writes them as an
// uncompressed OCI layer tar (see runner/changes). Pause a running container first for a
// consistent layer.
func (c *Container) Diff(ctx context.Context) (*changes.Diff, error) {
	return changes.Scan(ctx, c.Rootfs.Upper, c.Rootfs.Lower, c.ChangeOptions())
}

// Export writes the container's root file system (the image's layers with the container's
// changes, without volumes and bind mounts: docker export) to w as a tar.
func (m *Manager) Export(ctx context.Context, nameOrID string, w io.Writer) error {
	c, _, err := m.view(nameOrID)
	if err != nil {
		return err
	}
	return withOverlay(c, viewOptions{}, func(root int) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		tw := tar.NewWriter(bw)
		a := newArchiver(ctx, tw)
		var st unix.Stat_t
		if err := unix.Fstat(root, &st); err != nil {
			return err
		}
		if err := a.add(root, ".", "", &st); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// viewOptions say what a private view of a container's file system (withOverlay) holds.
type viewOptions struct {
	// write makes the view write through to the container's upper and work directories
	// (the caller holds the container's lock and the container is not running); without
	// it the view is read-only and the container's upper directory is only read.
	write bool
	// volumes mounts the container's volumes and bind mounts at their destinations, as
	// the container sees them (docker cp of a stopped container); export leaves them out.
	volumes bool
}

// withOverlay mounts the container's overlay in a private mount namespace of a locked
// thread and calls f with a descriptor of its root (see viewOptions). Nothing is mounted
// on the host: the mounts go with the namespace.
func withOverlay(c *Container, o viewOptions, f func(root int) error) error {
	r := c.Rootfs
	if len(r.Lower) == 0 {
		return fmt.Errorf("container %s has no overlay layers", c.ID)
	}
	lower, upper, work := r.Lower, r.Upper, r.Work
	if !o.write {
		lower = append([]string{r.Upper}, r.Lower...)
		upper, work = "", ""
	}
	var mounts []specs.Mount
	if o.volumes {
		mounts = c.volumeMounts()
	}
	if len(mounts) == 0 {
		return snapshot.WithOverlay(lower, upper, work, r.Path, func(path string) error {
			root, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open the container's file system: %w", err)
			}
			defer unix.Close(root)
			return f(root)
		})
	}
	return snapshot.InPrivateMountNS(func() error {
		target := r.Path
		if !o.write {
			// The mount points of the volumes may be missing (a container never started):
			// they are made in a scratch upper directory on a tmpfs of this namespace,
			// never in the container's own, which a run may be using meanwhile.
			if err := unix.Mount("berth-view", r.Path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size=8m"); err != nil {
				return fmt.Errorf("mount a scratch tmpfs on %s: %w", r.Path, err)
			}
			defer unix.Unmount(r.Path, unix.MNT_DETACH)
			for _, d := range []string{"upper", "work", "root"} {
				if err := os.Mkdir(filepath.Join(r.Path, d), 0o700); err != nil {
					return err
				}
			}
			upper, work, target = filepath.Join(r.Path, "upper"), filepath.Join(r.Path, "work"), filepath.Join(r.Path, "root")
		}
		if err := snapshot.MountOverlay(lower, upper, work, target); err != nil {
			return err
		}
		defer unix.Unmount(target, unix.MNT_DETACH)
		root, err := unix.Open(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the container's file system: %w", err)
		}
		defer unix.Close(root)
		for i := range mounts {
			// The container init's own code: the target resolved (and made when
			// missing) inside the view's root, symlinks included.
			if err := mountEntry(root, &mounts[i], &initConfig{}); err != nil {
				return fmt.Errorf("mount %s at %s of the container: %w", mounts[i].Source, mounts[i].Destination, err)
			}
		}
		if !o.write {
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
			if err := unix.MountSetattr(root, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil && err != unix.ENOSYS {
				return fmt.Errorf("make the view read-only: %w", err)
			}
		}
		return f(root)
	})
}

// volumeMounts are the container's spec mounts of its volumes and bind mounts (those of
// inspect's Mounts), in the spec's order, for a view of the stopped container: its
// /etc files, tmpfs and kernel file systems are left out, and so is any propagation
// (the view is private).
func (c *Container) volumeMounts() []specs.Mount {
	if c.Spec == nil {
		return nil
	}
	user := map[[2]string]bool{}
	for _, mp := range c.Mounts {
		if mp.Type == "bind" || mp.Type == "volume" {
			user[[2]string{cleanRel(mp.Destination), mp.Source}] = true
		}
	}
	var out []specs.Mount
	for _, m := range c.Spec.Mounts {
		dest := cleanRel(m.Destination)
		if m.Type != "bind" || !user[[2]string{dest, m.Source}] || !path.IsAbs(m.Destination) || viewSkips(dest) {
			continue
		}
		v := m
		v.Options = nil
		for _, opt := range m.Options {
			if _, ok := propagationOptions[opt]; !ok {
				v.Options = append(v.Options, opt)
			}
		}
		out = append(out, v)
	}
	return out
}

// viewSkips reports whether a view of a stopped container leaves out a mount at dest (a
// clean relative path): the files Berth writes for the container and the kernel's file
// systems, which a stopped container does not have.
func viewSkips(dest string) bool {
	switch dest {
	case ".", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/shm":
		return true
	}
	for _, k := range []string{"proc", "sys", "dev/pts", "dev/mqueue"} {
		if dest == k || strings.HasPrefix(dest, k+"/") {
			return true
		}
	}
	return false
}

// withRoot calls f with a descriptor of the container's root: /proc/<pid>/root of a
// running (or paused) container, else its overlay in a private mount namespace (written
// through with write, under the container's lock so that it does not start meanwhile),
// with the container's volumes and bind mounts in both cases, as docker cp sees them.
func (m *Manager) withRoot(nameOrID string, write bool, f func(c *Container, root int) error) error {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return err
	}
	if st.Status.Active() && st.Pid > 0 {
		root, err := unix.Open("/proc/"+strconv.Itoa(st.Pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil && alive(st.Pid, st.StartTime) {
			defer unix.Close(root)
			return f(c, root)
		}
		if err == nil {
			unix.Close(root)
		}
		// The run ended meanwhile: fall through to the overlay.
	}
	if !write {
		return withOverlay(c, viewOptions{volumes: true}, func(root int) error { return f(c, root) })
	}
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	defer e.unlock()
	if e.st.Status.Active() {
		return conflictf("container %s started meanwhile: try again", e.c.ID)
	}
	return withOverlay(e.c, viewOptions{write: true, volumes: true}, func(root int) error { return f(e.c, root) })
}
