package snapshot

import (
	"errors"
	"fmt"
	"strings"
	"testing"
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
