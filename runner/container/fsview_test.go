package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWithOverlay mounts a container's overlay privately (read-only for export and cp
// out, read-write for cp into a stopped container) and checks that the merged view is
// right and that nothing is mounted on the host.
func TestWithOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFailInCI(t, "needs root (overlay mounts, whiteout devices)")
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
	err := withOverlay(c, false, func(root int) error {
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
	err = withOverlay(c, true, func(root int) error {
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
