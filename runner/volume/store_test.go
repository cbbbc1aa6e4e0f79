package volume

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/internal/testenv"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"ab", "data", "my_vol.1-x", "A9", strings.Repeat("f", 64), "a.."} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", ".", "..", "../x", "a/b", "/abs", "-x", "_x", ".x", "a b", "a\x00b", "a:b", "x/.."} {
		err := ValidateName(bad)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// fakeContainer makes the directory of a container ID under the state root.
func fakeContainer(t *testing.T, root, id string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "containers", id), 0o700); err != nil {
		t.Fatal(err)
	}
}

func names(vs []*Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func TestStoreCreateGetRemove(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	v, err := s.Create(ctx, "data", CreateOptions{Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != filepath.Join(root, "volumes", "data", "_data") || v.Driver != "local" || v.Labels["a"] != "b" || v.Anonymous {
		t.Errorf("created %+v", v)
	}
	if st, err := os.Stat(v.Mountpoint); err != nil || !st.IsDir() {
		t.Fatalf("data dir: %v", err)
	}
	// Creating it again returns the existing volume (Docker's create is idempotent).
	os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644)
	v2, err := s.Create(ctx, "data", CreateOptions{})
	if err != nil || !v2.CreatedAt.Equal(v.CreatedAt) || v2.Labels["a"] != "b" {
		t.Errorf("second create: %+v %v", v2, err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "f")); err != nil {
		t.Errorf("second create lost data: %v", err)
	}
	anon, err := s.Create(ctx, "", CreateOptions{Anonymous: true})
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(anon.Name) {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
	if _, ok := anon.Labels[AnonymousLabel]; !ok || !anon.Anonymous {
		t.Errorf("anonymous volume labels: %v", anon.Labels)
	}
	if _, err := s.Create(ctx, "x", CreateOptions{Driver: "nfs"}); err == nil || !strings.Contains(err.Error(), `plugin "nfs" not found`) {
		t.Errorf("driver nfs: %v", err)
	}
	for _, bad := range []string{"../evil", "a/b", ".."} {
		if _, err := s.Create(ctx, bad, CreateOptions{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("create %q: %v", bad, err)
		}
		if _, err := s.Get(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("get %q: %v", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "evil")); !os.IsNotExist(err) {
		t.Errorf("a bad name escaped the store: %v", err)
	}
	vols, err := s.List(ctx)
	want := []string{anon.Name, "data"} // List sorts by name; the random name may sort either way
	slices.Sort(want)
	if err != nil || !slices.Equal(names(vols), want) {
		t.Errorf("list: %v %v", names(vols), err)
	}
	if err := s.Remove(ctx, "data", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "data")); !os.IsNotExist(err) {
		t.Errorf("removed volume left %v", err)
	}
	if _, err := s.Get(ctx, "data"); !errors.Is(err, ErrNotFound) || err.Error() != "get data: no such volume" {
		t.Errorf("get removed: %v", err)
	}
	if err := s.Remove(ctx, "data", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove missing: %v", err)
	}
	if err := s.Remove(ctx, "data", true); err != nil {
		t.Errorf("remove -f missing: %v", err)
	}
}

func TestStoreInUse(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	id := strings.Repeat("a", 64)
	res, err := s.Reserve(ctx, []Request{{Name: "named"}, {Name: ""}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created[0] || !res.Created[1] || !res.Volumes[1].Anonymous {
		t.Errorf("reservation %+v", res)
	}
	// A pending reference of a live process keeps the volumes in use.
	if err := s.Remove(ctx, "named", false); !errors.Is(err, ErrInUse) {
		t.Errorf("remove of a reserved volume: %v", err)
	}
	rep, err := s.Prune(ctx, true, nil)
	if err != nil || len(rep.VolumesDeleted) != 0 {
		t.Errorf("prune of reserved volumes: %+v %v", rep, err)
	}
	fakeContainer(t, root, id)
	if err := s.Commit(ctx, res.Names(), res.Token, id); err != nil {
		t.Fatal(err)
	}
	err = s.Remove(ctx, "named", true)
	if !errors.Is(err, ErrInUse) || err.Error() != "remove named: volume is in use - ["+id+"]" {
		t.Errorf("remove -f of a volume in use: %v", err)
	}
	// Another container shares the anonymous volume (--volumes-from).
	other := strings.Repeat("b", 64)
	fakeContainer(t, root, other)
	res2, err := s.Reserve(ctx, []Request{{Name: res.Volumes[1].Name, MustExist: true}})
	if err != nil {
		t.Fatal(err)
	}
	s.Commit(ctx, res2.Names(), res2.Token, other)
	if _, err := s.Reserve(ctx, []Request{{Name: "missing", MustExist: true}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("MustExist of a missing volume: %v", err)
	}
	// rm -v of the first container: its anonymous volume is still the other's.
	if err := s.Release(ctx, res.Names(), id, true); err != nil {
		t.Fatal(err)
	}
	vols, _ := s.List(ctx)
	if !slices.Equal(names(vols), []string{res.Volumes[1].Name, "named"}) {
		t.Errorf("after the first release: %v", names(vols))
	}
	// The other container is gone without its hook (a crash): its reference is stale.
	os.RemoveAll(filepath.Join(root, "containers", other))
	v, err := s.Get(ctx, res.Volumes[1].Name)
	if err != nil || len(v.Refs) != 0 {
		t.Errorf("stale reference kept: %+v %v", v, err)
	}
	// Prune without all: anonymous unused only.
	rep, err = s.Prune(ctx, false, nil)
	if err != nil || !slices.Equal(rep.VolumesDeleted, []string{res.Volumes[1].Name}) {
		t.Errorf("prune: %+v %v", rep, err)
	}
	rep, err = s.Prune(ctx, false, Filter{"all": {"true"}})
	if err != nil || !slices.Equal(rep.VolumesDeleted, []string{"named"}) {
		t.Errorf("prune all=true: %+v %v", rep, err)
	}
}

func TestStoreReleaseRemovesAnonymous(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	id := strings.Repeat("c", 64)
	fakeContainer(t, root, id)
	res, err := s.Reserve(ctx, []Request{{Name: "keep"}, {}})
	if err != nil {
		t.Fatal(err)
	}
	s.Commit(ctx, res.Names(), res.Token, id)
	// rm without -v: the references go, the volumes stay.
	if err := s.Release(ctx, res.Names(), id, false); err != nil {
		t.Fatal(err)
	}
	vols, _ := s.List(ctx)
	if len(vols) != 2 || len(vols[0].Refs)+len(vols[1].Refs) != 0 {
		t.Errorf("after release: %+v", vols)
	}
	// Release again with removal (idempotent; the hook may run twice): anonymous go.
	s.Release(ctx, res.Names(), id, true)
	s.Release(ctx, res.Names(), id, true)
	vols, _ = s.List(ctx)
	if !slices.Equal(names(vols), []string{"keep"}) {
		t.Errorf("after release -v: %v", names(vols))
	}
}

func TestStalePending(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	res, err := s.Reserve(ctx, []Request{{Name: "vol"}})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Volumes[0]
	v.Refs[res.Token] = Ref{Since: time.Now().Add(-2 * pendingTTL), Pid: os.Getpid()}
	if err := s.save(v); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "vol", false); err != nil {
		t.Errorf("remove with an expired pending reference: %v", err)
	}
}

func TestFilter(t *testing.T) {
	v := &Volume{Name: "web-data", Driver: "local", Labels: map[string]string{"env": "prod", "x": ""}}
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{"name": {"web"}}, true},
		{Filter{"name": {"db"}}, false},
		{Filter{"name": {"db", "data"}}, true},
		{Filter{"label": {"env"}}, true},
		{Filter{"label": {"env=prod"}}, true},
		{Filter{"label": {"env=dev"}}, false},
		{Filter{"label!": {"env=dev"}}, true},
		{Filter{"dangling": {"true"}}, true},
		{Filter{"dangling": {"false"}}, false},
		{Filter{"driver": {"local"}, "label": {"x"}}, true},
	} {
		if got := tc.f.Match(v); got != tc.want {
			t.Errorf("%v.Match = %v", tc.f, got)
		}
	}
	if err := ParseFilter(Filter{"bogus": {"1"}}); err == nil {
		t.Error("bogus filter accepted")
	}
	if err := ParseFilter(Filter{"dangling": {"maybe"}}); err == nil {
		t.Error("dangling=maybe accepted")
	}
}

func TestRemoveHook(t *testing.T) {
	ctx := context.Background()
	s, root := newStore(t)
	id := strings.Repeat("d", 64)
	fakeContainer(t, root, id)
	res, err := s.Reserve(ctx, []Request{{Name: "named"}, {}})
	if err != nil {
		t.Fatal(err)
	}
	s.Commit(ctx, res.Names(), res.Token, id)
	ref, err := s.HookRef(res.Names())
	if err != nil || ref.Name != HookName {
		t.Fatal(ref, err)
	}
	var d HookData
	json.Unmarshal(ref.Data, &d)
	if d.Root != root {
		t.Errorf("hook root %q", d.Root)
	}
	if err := removeHook(container.HookEnv{ID: id, Data: ref.Data}, true); err != nil {
		t.Fatal(err)
	}
	vols, _ := s.List(ctx)
	if !slices.Equal(names(vols), []string{"named"}) || len(vols[0].Refs) != 0 {
		t.Errorf("after the hook: %+v", vols)
	}
}

func TestCopyFromRoot(t *testing.T) {
	ctx := context.Background()
	img := t.TempDir()
	// The image: /data is a directory with content, /link a symlink that points outside.
	os.MkdirAll(filepath.Join(img, "data", "sub"), 0o755)
	os.WriteFile(filepath.Join(img, "data", "f"), []byte("file"), 0o640)
	os.WriteFile(filepath.Join(img, "data", "sub", "g"), []byte("deep"), 0o644)
	os.Symlink("f", filepath.Join(img, "data", "l"))
	os.Chmod(filepath.Join(img, "data"), 0o750)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600)
	os.Symlink(outside, filepath.Join(img, "escape"))
	os.Symlink("../../../../../../../.."+outside, filepath.Join(img, "escape2"))

	dst := t.TempDir()
	if err := copyFromRoot(ctx, img, "/data", dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub", "g")); string(b) != "deep" {
		t.Errorf("deep file %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "l")); l != "f" {
		t.Errorf("symlink %q", l)
	}
	if st, _ := os.Stat(filepath.Join(dst, "f")); st == nil || st.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v", st)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o750 {
		t.Errorf("volume root mode %v", st.Mode())
	}
	// Not empty any more: a second copy does nothing.
	os.WriteFile(filepath.Join(img, "data", "new"), []byte("n"), 0o644)
	if err := copyFromRoot(ctx, img, "/data", dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "new")); !os.IsNotExist(err) {
		t.Errorf("a non-empty volume was copied into: %v", err)
	}
	// Symlinks of the image are resolved inside it: the host's directory is not read.
	for _, p := range []string{"/escape", "/escape2", "/escape/../escape", "/missing"} {
		dst := t.TempDir()
		if err := copyFromRoot(ctx, img, p, dst); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if ents, _ := os.ReadDir(dst); len(ents) != 0 {
			t.Errorf("%s: copied %v from outside the image", p, ents)
		}
	}
}

func TestCopyUpOverlay(t *testing.T) {
	testenv.NeedRoot(t, "a mount namespace and an overlay mount")
	ctx := context.Background()
	s, root := newStore(t)
	top, bottom := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(bottom, "data", "old"), 0o755)
	os.WriteFile(filepath.Join(bottom, "data", "base"), []byte("bottom"), 0o644)
	os.WriteFile(filepath.Join(bottom, "data", "shadowed"), []byte("bottom"), 0o644)
	os.MkdirAll(filepath.Join(top, "data"), 0o755)
	os.WriteFile(filepath.Join(top, "data", "shadowed"), []byte("top"), 0o644)
	if err := unixMknodWhiteout(filepath.Join(top, "data", "old")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Create(ctx, "vol", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CopyUp(ctx, v, []string{top, bottom}, "/data"); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(v.Mountpoint)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, []string{"base", "shadowed"}) {
		t.Errorf("copied %v, want the merged layers [base shadowed]", got)
	}
	if b, _ := os.ReadFile(filepath.Join(v.Mountpoint, "shadowed")); string(b) != "top" {
		t.Errorf("shadowed = %q", b)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), root) {
		t.Errorf("a mount of the copy-up is visible on the host:\n%s", mi)
	}
	if ents, _ := filepath.Glob(filepath.Join(root, "volumes", ".copyup-*")); len(ents) != 0 {
		t.Errorf("copy-up left %v", ents)
	}
}

// unixMknodWhiteout makes an overlay whiteout (a 0:0 character device) at p.
func unixMknodWhiteout(p string) error {
	os.RemoveAll(p)
	return syscall.Mknod(p, syscall.S_IFCHR, 0)
}
