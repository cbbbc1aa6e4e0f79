package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/runner/internal/testenv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestWithOverlay mounts a container's overlay privately (read-only for export and cp
// out, read-write for cp into a stopped container) and checks that the merged view is
// right and that nothing is mounted on the host.
func TestWithOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFailInCI(t, "needs root (overlay mounts, whiteout devices)")
	}
	dir := t.TempDir()
	r := Rootfs{Path: filepath.Join(dir, "rootfs"), Lower: []string{filepath.Join(dir, "l1"), filepath.Join(dir, "l0")},
		Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work")}
	for _, d := range []string{r.Path, r.Lower[0], r.Lower[1], r.Upper, r.Work} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(r.Lower[1], "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(r.Lower[1], "b"), []byte("b"), 0o644)
	os.WriteFile(filepath.Join(r.Lower[0], "top"), []byte("top"), 0o644)
	os.WriteFile(filepath.Join(r.Upper, "c"), []byte("c"), 0o644)
	if err := unix.Mknod(filepath.Join(r.Upper, "b"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: "test", Rootfs: r}
	var buf bytes.Buffer
	err := withOverlay(c, viewOptions{}, func(root int) error {
		var st unix.Stat_t
		if err := unix.Fstat(root, &st); err != nil {
			return err
		}
		tw := tar.NewWriter(&buf)
		if err := newArchiver(context.Background(), tw).add(root, ".", "", &st); err != nil {
			return err
		}
		return tw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "a,c,top" {
		t.Errorf("merged view: %s, want a,c,top", got)
	}
	// Read-write: a file written lands in the upper directory.
	err = withOverlay(c, viewOptions{write: true}, func(root int) error {
		fd, err := openInRoot(root, ".", unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		hdr := &tar.Header{Name: "new", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3}
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tw.WriteHeader(hdr)
		tw.Write([]byte("new"))
		tw.Close()
		return Extract(context.Background(), &tb, fd, ExtractOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(r.Upper, "new")); err != nil || string(b) != "new" {
		t.Errorf("upper/new: %q %v", b, err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), r.Path) {
		t.Errorf("the overlay is mounted on the host:\n%s", mi)
	}
}

// TestViewVolumes checks the view of a stopped container with its volumes and bind
// mounts: mounted at their destinations resolved inside the view (through a symlink of the
// image pointing outside it too), read-only ones read-only, mount points of a never-started
// container made without touching its upper directory, writes through to the volume,
// nothing for export, and nothing mounted on the host.
func TestViewVolumes(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFailInCI(t, "needs root (overlay and bind mounts)")
	}
	dir := t.TempDir()
	r := Rootfs{Path: filepath.Join(dir, "rootfs"), Lower: []string{filepath.Join(dir, "l0")},
		Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work")}
	vol, bind, outside := filepath.Join(dir, "vol", "_data"), filepath.Join(dir, "bind"), filepath.Join(dir, "outside")
	for _, d := range []string{r.Path, r.Lower[0], r.Upper, r.Work, vol, bind, outside, filepath.Join(dir, "esc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(r.Lower[0], "etc"), nil, 0o644) // not a directory: /etc mounts are skipped
	os.WriteFile(filepath.Join(vol, "f"), []byte("volume"), 0o644)
	os.WriteFile(filepath.Join(bind, "x"), []byte("bind"), 0o644)
	os.WriteFile(filepath.Join(filepath.Join(dir, "esc"), "f"), []byte("esc"), 0o644)
	// A symlink of the image that points outside the root, absolute and with "..".
	if err := os.Symlink("../../../../../.."+outside, filepath.Join(r.Lower[0], "out")); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(dir, "hosts"), Options: []string{"rbind", "rprivate"}},
		{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "rshared"}},
		{Destination: "/bind", Type: "bind", Source: bind, Options: []string{"rbind", "ro", "rprivate"}},
		{Destination: "/out/esc", Type: "bind", Source: filepath.Join(dir, "esc"), Options: []string{"rbind", "rprivate"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
	}}
	c := &Container{ID: "test", Rootfs: r, Spec: spec, Mounts: []MountPoint{
		{Type: "volume", Name: "v", Source: vol, Destination: "/data", RW: true},
		{Type: "bind", Source: bind, Destination: "/bind"},
		{Type: "bind", Source: filepath.Join(dir, "esc"), Destination: "/out/esc", RW: true},
		{Type: "tmpfs", Destination: "/tmp", RW: true},
	}}
	if got := c.volumeMounts(); len(got) != 3 || got[0].Destination != "/data" || slices.Contains(got[0].Options, "rshared") {
		t.Fatalf("volumeMounts: %+v", got)
	}
	read := func(root int, p string) string {
		t.Helper()
		fd, err := openInRoot(root, p, unix.O_RDONLY, 0)
		if err != nil {
			return "error: " + err.Error()
		}
		f := os.NewFile(uintptr(fd), p)
		defer f.Close()
		b, _ := io.ReadAll(f)
		return string(b)
	}

	// Read-only (cp out, never started): everything shows, nothing is written anywhere.
	err := withOverlay(c, viewOptions{volumes: true}, func(root int) error {
		for p, want := range map[string]string{"data/f": "volume", "bind/x": "bind", "out/esc/f": "esc"} {
			if got := read(root, p); got != want {
				t.Errorf("read view: %s = %q, want %q", p, got, want)
			}
		}
		fd, err := openInRoot(root, "data/new", unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err == nil {
			unix.Close(fd)
			t.Error("the read view is writable")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(r.Upper); len(ents) != 0 {
		t.Errorf("the read view wrote to the container's upper directory: %v", ents)
	}
	if _, err := os.Lstat(filepath.Join(outside, "esc")); err == nil {
		t.Error("a mount point was made outside the root, through the image's symlink")
	}

	// Read-write (cp in): writes land in the volume, a read-only bind refuses them.
	err = withOverlay(c, viewOptions{write: true, volumes: true}, func(root int) error {
		for _, d := range []string{"data", "bind"} {
			fd, err := openInRoot(root, d, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			werr := checkWritable(root, fd)
			if d == "bind" {
				if werr == nil || !strings.Contains(werr.Error(), "mounted volume is marked read-only") {
					t.Errorf("cp into a :ro bind: %v", werr)
				}
				unix.Close(fd)
				continue
			}
			if werr != nil {
				t.Errorf("cp into a volume: %v", werr)
			}
			var tb bytes.Buffer
			tw := tar.NewWriter(&tb)
			tw.WriteHeader(&tar.Header{Name: "g", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
			tw.Write([]byte("in"))
			tw.Close()
			err = Extract(context.Background(), &tb, fd, ExtractOptions{})
			unix.Close(fd)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "g")); err != nil || string(b) != "in" {
		t.Errorf("cp into the volume: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(r.Upper, "g")); err == nil {
		t.Error("cp into the volume wrote to the container's upper directory")
	}

	// Export's view: no volumes.
	err = withOverlay(c, viewOptions{}, func(root int) error {
		if got := read(root, "data/f"); !strings.HasPrefix(got, "error:") {
			t.Errorf("export's view has the volume's file: %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, mi := range []string{"/proc/self/mountinfo", "/proc/1/mountinfo"} {
		b, _ := os.ReadFile(mi)
		if strings.Contains(string(b), dir) {
			t.Errorf("%s shows a mount of the view:\n%s", mi, b)
		}
	}
}
