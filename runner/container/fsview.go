package container

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/berth-registry/berth/runner/changes"
	"github.com/berth-registry/berth/runner/snapshot"
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
	return withOverlay(c, false, func(root int) error {
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

// withOverlay mounts the container's overlay in a private mount namespace of a locked
// thread and calls f with a descriptor of its root. With write the container's upper and
// work directories are the overlay's (the caller holds the container's lock and the
// container is not running); without, the upper directory is the top lower layer of a
// read-only overlay (safe while the container runs).
func withOverlay(c *Container, write bool, f func(root int) error) error {
	r := c.Rootfs
	if len(r.Lower) == 0 {
		return fmt.Errorf("container %s has no overlay layers", c.ID)
	}
	lower, upper, work := r.Lower, r.Upper, r.Work
	if !write {
		lower = append([]string{r.Upper}, r.Lower...)
		upper, work = "", ""
	}
	return snapshot.WithOverlay(lower, upper, work, r.Path, func(path string) error {
		root, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the container's file system: %w", err)
		}
		defer unix.Close(root)
		return f(root)
	})
}

// withRoot calls f with a descriptor of the container's root: /proc/<pid>/root of a
// running (or paused) container, else its overlay in a private mount namespace (written
// through with write, under the container's lock so that it does not start meanwhile).
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
		return withOverlay(c, false, func(root int) error { return f(c, root) })
	}
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	defer e.unlock()
	if e.st.Status.Active() {
		return conflictf("container %s started meanwhile: try again", e.c.ID)
	}
	return withOverlay(e.c, true, func(root int) error { return f(e.c, root) })
}
