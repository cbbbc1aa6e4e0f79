package cgroups

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func fakeStatfs(magic int64, err error) Option {
	return func(o *options) {
		o.statfs = func(path string, st *unix.Statfs_t) error {
			if err != nil {
				return err
			}
			st.Type = magic
			return nil
		}
	}
}

func TestNewDetectsVersion(t *testing.T) {
	k1 := newFakeV1(t)
	m, err := New("berth/ctr1", append(k1.opts(), WithRoot(k1.root), fakeStatfs(unix.TMPFS_MAGIC, nil))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*v1); !ok {
		t.Errorf("tmpfs root (v1 or hybrid): got %T", m)
	}
	if len(m.Paths()) != 8 {
		t.Errorf("v1 Paths() = %v", m.Paths())
	}

	k2 := newFakeV2(t)
	m, err = New("berth/ctr1", append(k2.opts(), WithRoot(k2.root), fakeStatfs(unix.CGROUP2_SUPER_MAGIC, nil))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*v2); !ok {
		t.Errorf("cgroup2 root: got %T", m)
	}
	must(t, m.Create(&Resources{Memory: 200 * mb, MemorySwap: 300 * mb}))
	if k2.read("berth/ctr1/memory.swap.max") != "104857600" {
		t.Error("v2 manager from New did not apply the limits")
	}

	if v2, err := IsV2(WithRoot(k2.root), fakeStatfs(unix.CGROUP2_SUPER_MAGIC, nil)); err != nil || !v2 {
		t.Errorf("IsV2 = %v, %v", v2, err)
	}
	if _, err := New("berth/x", fakeStatfs(0, errors.New("boom"))); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("statfs error: %v", err)
	}
	// A v1 root without any controller.
	if _, err := New("berth/x", append(k1.opts(), WithRoot(t.TempDir()), fakeStatfs(unix.TMPFS_MAGIC, nil))...); err == nil {
		t.Error("empty v1 root accepted")
	}
}

func TestBadPaths(t *testing.T) {
	k := newFakeV1(t)
	for _, p := range []string{"", "/", "..", "berth/../../etc", "../berth", "a\x00b"} {
		if _, err := New(p, append(k.opts(), WithRoot(k.root), fakeStatfs(unix.TMPFS_MAGIC, nil))...); err == nil {
			t.Errorf("New(%q) accepted", p)
		}
		if err := NewV1(k.root, p, k.opts()...).Create(nil); err == nil {
			t.Errorf("NewV1(%q).Create accepted", p)
		}
		if err := NewV2(k.root, p, k.opts()...).Create(nil); err == nil {
			t.Errorf("NewV2(%q).Create accepted", p)
		}
	}
	// A leading slash and doubled separators are fine.
	m := NewV1(k.root, "/berth//ctr1/", k.opts()...)
	if got := m.Paths()["memory"]; !strings.HasSuffix(got, "/memory/berth/ctr1") {
		t.Errorf("Paths()[memory] = %s", got)
	}
}
