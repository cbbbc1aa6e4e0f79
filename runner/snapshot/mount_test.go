package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-registry/berth/runner/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestOverlayData(t *testing.T) {
	got := overlayData([]string{"/a/1", "/b:c/2", `/d\e`}, "/u", "/w")
	want := `lowerdir=/a/1:/b\:c/2:/d\\e,upperdir=/u,workdir=/w,index=off`
	if got != want {
		t.Errorf("overlayData = %q, want %q", got, want)
	}
	if got := overlayData([]string{"/a", "/b"}, "", ""); got != "lowerdir=/a:/b" {
		t.Errorf("read-only overlayData = %q", got)
	}
}

func TestCommonDir(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"/s/1", "/s/2", "/s/10"}, "/s"},
		{[]string{"/x/s/1", "/x/t/2"}, "/x"},
		{[]string{"/a/b", "/c/d"}, "/"},
		{[]string{"/s/1"}, "/s"},
		{[]string{"rel/1"}, ""},
		{[]string{"/s/1", "rel"}, ""},
	} {
		if got := commonDir(c.in); got != c.want {
			t.Errorf("commonDir(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The classic mount refuses, before any mount(2), an option string that does not fit in a
// page even relative to the layers' common parent: it never lets the kernel cut it.
func TestMountOverlayClassicTooLong(t *testing.T) {
	var lower []string
	for i := range 200 {
		lower = append(lower, fmt.Sprintf("/nonexistent/store/%s-%03d", strings.Repeat("x", 40), i))
	}
	err := MountOverlayClassic(lower, "/nonexistent/u", "/nonexistent/w", "/nonexistent/target")
	if !errors.Is(err, ErrTooManyLayers) {
		t.Fatalf("err = %v, want ErrTooManyLayers", err)
	}
	if !strings.Contains(err.Error(), "200 layers") {
		t.Errorf("error does not say how many layers: %v", err)
	}
}

func TestMountOverlayArgs(t *testing.T) {
	for _, c := range []struct {
		lower               []string
		upper, work, target string
	}{
		{nil, "/u", "/w", "/t"},
		{[]string{"/l"}, "/u", "", "/t"},
		{[]string{"/l"}, "", "/w", "/t"},
		{[]string{"/l"}, "/u", "/w", ""},
	} {
		if err := MountOverlay(c.lower, c.upper, c.work, c.target); err == nil {
			t.Errorf("MountOverlay(%v, %q, %q, %q) succeeded", c.lower, c.upper, c.work, c.target)
		}
	}
	if err := MountOverlayClassic([]string{"/a,b"}, "/u", "/w", "/t"); err == nil || !strings.Contains(err.Error(), "comma") {
		t.Errorf("comma in a path: %v", err)
	}
}

// One layer is read as it is: no mount, f gets the layer itself on the caller's goroutine.
func TestWithReadOnlyOverlaySingleLayer(t *testing.T) {
	layer := t.TempDir()
	var got string
	err := WithReadOnlyOverlay([]string{layer}, "/nonexistent/target", func(root string) error {
		got = root
		return errors.New("from f")
	})
	if got != layer || err == nil || err.Error() != "from f" {
		t.Fatalf("root %q, err %v; want %q and f's error", got, err, layer)
	}
}

// More layers are merged (top first) in a private mount namespace: f sees the overlay at
// target, the host never does, and the mount is gone when the call returns.
func TestWithReadOnlyOverlayLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFailInCI(t, "needs root to mount an overlay")
	}
	top, bottom, target := t.TempDir(), t.TempDir(), t.TempDir()
	for _, f := range []struct{ dir, name, data string }{
		{bottom, "a", "bottom"}, {bottom, "b", "bottom"}, {top, "a", "top"},
	} {
		if err := os.WriteFile(filepath.Join(f.dir, f.name), []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil {
		t.Fatal(err)
	}
	hostDev := st.Dev
	var a, b []byte
	err := WithReadOnlyOverlay([]string{top, bottom}, target, func(root string) error {
		var err error
		if a, err = os.ReadFile(filepath.Join(root, "a")); err != nil {
			return err
		}
		if b, err = os.ReadFile(filepath.Join(root, "b")); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "c"), nil, 0o644); err == nil {
			return errors.New("the overlay is writable")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != "top" || string(b) != "bottom" {
		t.Errorf("a = %q, b = %q; want top, bottom", a, b)
	}
	if err := unix.Stat(target, &st); err != nil || st.Dev != hostDev {
		t.Errorf("target is still a mount point after the call (err %v)", err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("target shows %d entries after the call", len(ents))
	}
}
