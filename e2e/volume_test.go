//go:build e2e

package e2e

// The TestVolume* tests drive pull-run's volumes through the real binary as root: named
// and anonymous volumes, bind mounts, --mount, --tmpfs, --volumes-from, the copy-up of an
// image's VOLUME content, rm -v, volume create|ls|inspect|rm|prune, and the bad inputs
// (missing bind sources, bad names, a destination through a symlink that points outside
// the rootfs: the host stays untouched).

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// volNames is `volume ls -q` as a sorted list.
func (h *cliHost) volNames(args ...string) []string {
	h.t.Helper()
	names := strings.Fields(h.must(append([]string{"volume", "ls", "-q"}, args...)...))
	slices.Sort(names)
	return names
}

// volumeMounts is inspect's Mounts of a container.
func (h *cliHost) volumeMounts(name string) []map[string]any {
	h.t.Helper()
	var out []map[string]any
	for _, m := range h.inspect(name)["Mounts"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

func TestVolumeNamedAndCommands(t *testing.T) {
	h := newCLIHost(t)
	if out := h.must("volume", "create", "--label", "team=a", "data1"); out != "data1\n" {
		t.Fatalf("volume create printed %q", out)
	}
	var vi []map[string]any
	if err := json.Unmarshal([]byte(h.must("volume", "inspect", "data1")), &vi); err != nil || len(vi) != 1 {
		t.Fatalf("volume inspect: %v", err)
	}
	want := filepath.Join(h.root, "volumes", "data1", "_data")
	if vi[0]["Driver"] != "local" || vi[0]["Scope"] != "local" || vi[0]["Name"] != "data1" ||
		vi[0]["Mountpoint"] != want || vi[0]["Labels"].(map[string]any)["team"] != "a" {
		t.Errorf("volume inspect: %v", vi[0])
	}
	if _, err := time.Parse(time.RFC3339, vi[0]["CreatedAt"].(string)); err != nil {
		t.Errorf("CreatedAt: %v", err)
	}
	anon := strings.TrimSpace(h.must("volume", "create"))
	if !hex64.MatchString(anon) {
		t.Errorf("volume create without a name printed %q", anon)
	}
	h.must("volume", "rm", anon)

	// Data written to a named volume survives the container and shows in a new one.
	h.must("run", "--rm", "--network", "none", "-v", "data1:/data", h.image, "sh", "-c", "echo hello > /data/f")
	if out := h.must("run", "--rm", "--network", "none", "-v", "data1:/data:ro", h.image, "cat", "/data/f"); out != "hello\n" {
		t.Errorf("second container read %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(want, "f")); string(b) != "hello\n" {
		t.Errorf("volume data on the host: %q", b)
	}
	// -v creates a missing named volume; --mount too, with its labels.
	h.must("run", "--rm", "--network", "none", "--mount", "type=volume,src=data2,dst=/d,volume-label=x=y", h.image, "true")
	if out := h.must("volume", "ls", "--filter", "label=x=y", "-q"); out != "data2\n" {
		t.Errorf("ls --filter label: %q", out)
	}
	out := h.must("volume", "ls")
	if !regexp.MustCompile(`(?m)^DRIVER\s+VOLUME NAME$`).MatchString(out) || !regexp.MustCompile(`(?m)^local\s+data1$`).MatchString(out) {
		t.Errorf("volume ls:\n%s", out)
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(strings.Split(h.must("volume", "ls", "--format", "json"), "\n")[0]), &row); err != nil ||
		row["Driver"] != "local" || row["Name"] != "data1" {
		t.Errorf("ls --format json: %v %v", row, err)
	}

	// A volume in use cannot be removed (nor pruned), with -f neither.
	bdir := t.TempDir()
	id := strings.TrimSpace(h.must("create", "--name", "holder", "--network", "none", "-v", "data1:/data", "-v", "/anon",
		"--mount", "type=bind,src="+bdir+",dst=/b,readonly,bind-propagation=rslave", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m",
		"--mount", "type=volume,dst=/mv,volume-nocopy", h.image, "true"))
	// inspect, as Docker's: -v's anonymous volume in Config.Volumes (a named one and
	// --mount's are not), the --mount values in HostConfig.Mounts in the API's shape.
	if got := h.field("holder", "{{json .Config.Volumes}}"); got != `{"/anon":{}}` {
		t.Errorf("Config.Volumes: %s", got)
	}
	var gotMounts, wantMounts []map[string]any
	if err := json.Unmarshal([]byte(h.field("holder", "{{json .HostConfig.Mounts}}")), &gotMounts); err != nil {
		t.Fatalf("HostConfig.Mounts: %v", err)
	}
	if err := json.Unmarshal([]byte(`[{"Type":"bind","Source":"`+bdir+`","Target":"/b","ReadOnly":true,"BindOptions":{"Propagation":"rslave"}},`+
		`{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}},{"Type":"volume","Target":"/mv","VolumeOptions":{"NoCopy":true}}]`), &wantMounts); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotMounts, wantMounts) {
		t.Errorf("HostConfig.Mounts:\n got %v\nwant %v", gotMounts, wantMounts)
	}
	h.expect(1, []string{"volume", "rm", "data1"}, "remove data1: volume is in use - ["+id+"]")
	h.expect(1, []string{"volume", "rm", "-f", "data1"}, "volume is in use")
	if out := h.must("volume", "ls", "-q", "--filter", "dangling=true"); strings.Contains(out, "data1") {
		t.Errorf("dangling lists a volume in use: %q", out)
	}
	h.must("volume", "prune", "-a", "-f")
	if got := h.volNames(); !slices.Contains(got, "data1") || slices.Contains(got, "data2") {
		t.Errorf("after prune -a: %v (data1 in use must stay, data2 unused must go)", got)
	}
	h.must("rm", "-v", "holder")
	if out := h.must("volume", "rm", "data1"); out != "data1\n" {
		t.Errorf("volume rm printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(h.root, "volumes", "data1")); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
	h.expect(1, []string{"volume", "inspect", "data1"}, "No such volume: data1")
	h.expect(1, []string{"volume", "rm", "data1"}, "no such volume")
	h.must("volume", "rm", "-f", "data1")
}

func TestVolumeBindAndTmpfs(t *testing.T) {
	h := newCLIHost(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "from-host"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.must("run", "--rm", "--network", "none", "-v", dir+":/mnt/b", h.image, "sh", "-c", "cat /mnt/b/from-host; echo ctr > /mnt/b/from-ctr")
	if out != "host\n" {
		t.Errorf("container read %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "from-ctr")); string(b) != "ctr\n" {
		t.Errorf("host read %q", b)
	}
	// :ro refuses writes: the shell's error, its exit status.
	_, errs, code := h.run("run", "--rm", "--network", "none", "-v", dir+":/mnt/b:ro", h.image, "sh", "-c", "echo x > /mnt/b/nope")
	if code == 0 || !strings.Contains(errs, "Read-only file system") {
		t.Errorf("write to a :ro bind: exit %d, %q", code, errs)
	}
	_, errs, code = h.run("run", "--rm", "--network", "none", "--mount", "type=bind,src="+dir+",dst=/m,readonly", h.image, "touch", "/m/nope")
	if code == 0 || !strings.Contains(errs, "Read-only file system") {
		t.Errorf("write to a readonly --mount: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Errorf("a read-only bind was written: %v", err)
	}
	// inspect shows the bind.
	h.must("create", "--name", "bb", "--network", "none", "-v", dir+":/mnt/b:ro", h.image, "true")
	ms := h.volumeMounts("bb")
	if len(ms) != 1 || ms[0]["Type"] != "bind" || ms[0]["Source"] != dir || ms[0]["Destination"] != "/mnt/b" || ms[0]["RW"] != false || ms[0]["Mode"] != "ro" {
		t.Errorf("Mounts: %v", ms)
	}
	if got := h.field("bb", "{{json .HostConfig.Binds}}"); got != `["`+dir+`:/mnt/b:ro"]` {
		t.Errorf("HostConfig.Binds: %s", got)
	}

	// --tmpfs and --mount type=tmpfs.
	out = h.must("run", "--rm", "--network", "none", "--tmpfs", "/scratch:size=2m", "--mount", "type=tmpfs,dst=/t2,tmpfs-size=1m,tmpfs-mode=1770",
		h.image, "sh", "-c", "grep -E ' /(scratch|t2) ' /proc/mounts; stat -c %a /t2; echo x > /t2/f && cat /t2/f")
	if !regexp.MustCompile(`tmpfs /scratch tmpfs \S*size=2048k`).MatchString(out) || !regexp.MustCompile(`tmpfs /t2 tmpfs \S*size=1024k`).MatchString(out) ||
		!strings.Contains(out, "\n1770\nx\n") {
		t.Errorf("tmpfs mounts:\n%s", out)
	}
}

func TestVolumeVolumesFrom(t *testing.T) {
	h := newCLIHost(t)
	h.must("create", "--name", "store", "--network", "none", "-v", "/data", "-v", "named:/named", h.image, "true")
	c1 := h.runD("--volumes-from", "store", h.image, "sleep", "300")
	c2 := h.runD("--volumes-from", "store", h.image, "sleep", "300")
	h.must("exec", c1, "sh", "-c", "echo one > /data/a; echo n1 > /named/a")
	if out := h.must("exec", c2, "cat", "/data/a", "/named/a"); out != "one\nn1\n" {
		t.Errorf("c2 read %q", out)
	}
	h.must("exec", c2, "sh", "-c", "echo two > /data/b")
	if out := h.must("exec", c1, "cat", "/data/b"); out != "two\n" {
		t.Errorf("c1 read %q", out)
	}
	// :ro makes the shared mounts read-only.
	_, errs, code := h.run("run", "--rm", "--network", "none", "--volumes-from", "store:ro", h.image, "sh", "-c", "echo x > /data/c")
	if code == 0 || !strings.Contains(errs, "Read-only file system") {
		t.Errorf("--volumes-from :ro write: exit %d %q", code, errs)
	}
	// Own mounts win over the shared ones.
	if out := h.must("run", "--rm", "--network", "none", "--volumes-from", "store", "-v", "other:/data", h.image, "ls", "/data"); out != "" {
		t.Errorf("own -v over a shared destination: %q", out)
	}
	// rm -v of a user of the store's anonymous volume keeps it (the store still uses it).
	before := h.volNames()
	h.must("rm", "-f", "-v", c1)
	if got := h.volNames(); !slices.Equal(got, before) {
		t.Errorf("rm -v of a --volumes-from user removed volumes: %v → %v", before, got)
	}
	h.must("rm", "-f", c2)
	h.expect(125, []string{"run", "--rm", "--network", "none", "--volumes-from", "nosuch", h.image, "true"}, "No such container: nosuch")
}

func TestVolumeCopyUpAndRemove(t *testing.T) {
	h := newCLIHost(t)
	cfg := cliDefaultConfig
	cfg.Volumes = map[string]struct{}{"/data": {}}
	h.push("datapack:latest", cfg,
		plEnt{name: "data", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
		plEnt{name: "data/seed.txt", typ: tar.TypeReg, body: "seeded\n", mode: 0o640, uid: 1000, gid: 1000},
		plD("data/sub"), plF("data/sub/deep.txt", "deep\n"), plS("data/link", "seed.txt"))
	img := h.addr + "/datapack:latest"

	// The image's VOLUME gets an anonymous volume filled with the image's content.
	out := h.must("run", "--name", "c1", "--network", "none", img, "sh", "-c", "cat /data/seed.txt /data/link /data/sub/deep.txt; stat -c '%u:%g %a' /data /data/seed.txt")
	if out != "seeded\nseeded\ndeep\n1000:1000 750\n1000:1000 640\n" {
		t.Errorf("data-packed image's anonymous volume:\n%s", out)
	}
	ms := h.volumeMounts("c1")
	if len(ms) != 1 || ms[0]["Type"] != "volume" || !hex64.MatchString(ms[0]["Name"].(string)) || ms[0]["Destination"] != "/data" {
		t.Fatalf("Mounts: %v", ms)
	}
	anon1 := ms[0]["Name"].(string)
	if b, _ := os.ReadFile(filepath.Join(h.root, "volumes", anon1, "_data", "seed.txt")); string(b) != "seeded\n" {
		t.Errorf("anonymous volume on the host: %q", b)
	}
	// A named volume is filled on first use; its content then stays the volume's.
	if out := h.must("run", "--rm", "--network", "none", "-v", "packed:/data", img, "sh", "-c", "cat /data/sub/deep.txt; echo changed > /data/seed.txt"); out != "deep\n" {
		t.Errorf("named volume first use: %q", out)
	}
	if out := h.must("run", "--rm", "--network", "none", "-v", "packed:/data", img, "cat", "/data/seed.txt"); out != "changed\n" {
		t.Errorf("named volume second use: %q", out)
	}
	// nocopy leaves a new volume empty.
	if out := h.must("run", "--rm", "--network", "none", "-v", "empty:/data:nocopy", img, "ls", "-A", "/data"); out != "" {
		t.Errorf("nocopy volume: %q", out)
	}

	// rm -v removes the anonymous volumes only; rm without -v keeps them; --rm removes them.
	h.must("create", "--name", "c2", "--network", "none", "-v", "keep:/keep", "-v", "/anon", img, "true")
	ms = h.volumeMounts("c2")
	if len(ms) != 3 {
		t.Fatalf("c2 Mounts: %v", ms)
	}
	// Config.Volumes has the image's VOLUMEs and -v's anonymous ones; no --mount, no
	// HostConfig.Mounts.
	if got := h.field("c2", "{{json .Config.Volumes}}"); got != `{"/anon":{},"/data":{}}` {
		t.Errorf("c2 Config.Volumes: %s", got)
	}
	if got := h.field("c2", "{{json .HostConfig.Mounts}}"); got != "null" {
		t.Errorf("c2 HostConfig.Mounts: %s", got)
	}
	var c2anon []string
	for _, m := range ms {
		if n := m["Name"].(string); hex64.MatchString(n) {
			c2anon = append(c2anon, n)
		}
	}
	if len(c2anon) != 2 {
		t.Fatalf("c2 anonymous volumes: %v", ms)
	}
	h.must("rm", "-v", "c2")
	got := h.volNames()
	if !slices.Contains(got, "keep") || slices.Contains(got, c2anon[0]) || slices.Contains(got, c2anon[1]) {
		t.Errorf("after rm -v: %v (keep stays, %v go)", got, c2anon)
	}
	h.must("rm", "c1")
	if got := h.volNames(); !slices.Contains(got, anon1) {
		t.Errorf("rm without -v removed the anonymous volume %s: %v", anon1, got)
	}
	before := h.volNames()
	h.must("run", "--rm", "--network", "none", img, "true")
	if got := h.volNames(); !slices.Equal(got, before) {
		t.Errorf("--rm left volumes: %v → %v", before, got)
	}
	// prune without -a: only anonymous unused volumes; -a: all unused ones.
	out = h.must("volume", "prune", "-f")
	if !strings.Contains(out, "Deleted Volumes:\n"+anon1+"\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("volume prune:\n%s", out)
	}
	if got := h.volNames(); !slices.Equal(got, []string{"empty", "keep", "packed"}) {
		t.Errorf("after prune: %v", got)
	}
	h.must("volume", "prune", "-a", "-f")
	if got := h.volNames(); len(got) != 0 {
		t.Errorf("after prune -a: %v", got)
	}
}

// hostSnapshot is the names, sizes and mtimes under dir, and dir's own mtime.
func hostSnapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		b.WriteString(p + " " + fi.Mode().String() + " " + time.Unix(st.Mtim.Unix()).String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestVolumeBadInput(t *testing.T) {
	h := newCLIHost(t)
	run := func(args ...string) []string {
		return append([]string{"run", "--rm", "--network", "none"}, append(args, h.image, "true")...)
	}
	const missing = "/var/tmp/berth-no-such-dir-for-volume-test"
	h.expect(125, run("-v", missing+":/x"), `invalid mount config for type "bind": bind source path does not exist: `+missing)
	h.expect(125, run("--mount", "type=bind,src="+missing+",dst=/x"), "bind source path does not exist: "+missing)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a missing bind source was created: %v", err)
	}
	for _, name := range []string{"a/b", "..", "../etc", "./rel", "x/../.."} {
		h.expect(125, run("-v", name+":/x"), "includes invalid characters for a local volume name")
		h.expect(125, run("--mount", "src="+name+",dst=/x"), "includes invalid characters")
		h.expect(1, []string{"volume", "create", name}, "invalid volume name")
	}
	h.expect(125, run("-v", "v:/x:bogus"), "invalid mode: bogus")
	h.expect(125, run("-v", "v:rel"), "mount path must be absolute")
	h.expect(125, run("-v", "v:/"), "destination can't be '/'")
	h.expect(125, run("-v", "/a:/b:c:d"), "invalid volume specification: '/a:/b:c:d'")
	h.expect(125, run("-v", "v1:/d", "--mount", "src=v2,dst=/d"), "Duplicate mount point: /d")
	h.expect(125, run("--tmpfs", "/d/", "-v", "v1:/d"), "Duplicate mount point: /d")
	h.expect(125, run("--mount", "type=tmpfs,dst=/d", "--tmpfs", "/d"), "Duplicate mount point: /d")
	h.expect(125, run("--mount", "type=tmpfs,src=x,dst=/t"), `invalid mount config for type "tmpfs": field Source must not be specified`)
	h.expect(125, run("--mount", "type=bind,dst=/t"), "field Source must not be empty")
	h.expect(125, run("--mount", "type=volume,src=v,dst=/t,tmpfs-size=1m"), "cannot mix 'tmpfs-*' options with mount type 'volume'")
	h.expect(125, run("--mount", "type=nfs,dst=/t"), "mount type unknown")
	h.expect(125, run("--mount", "src=v,dst=/t,bogus=1"), "unexpected key 'bogus'")
	h.expect(125, run("--volumes-from", "nosuch"), "No such container: nosuch")
	h.expect(1, []string{"volume", "create", "-d", "nfs", "v"}, `plugin "nfs" not found`)
	if got := h.volNames(); len(got) != 0 {
		t.Errorf("bad inputs left volumes: %v", got)
	}

	// A destination through a symlink of the image that points outside the rootfs stays
	// inside it: the host's directory is not touched.
	victim, err := os.MkdirTemp("/var/tmp", "berth-victim-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(victim)
	if err := os.WriteFile(filepath.Join(victim, "keep"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(victim, old, old)
	snap := hostSnapshot(t, victim)
	cfg := cliDefaultConfig
	cfg.Volumes = map[string]struct{}{"/vabs/img": {}}
	// (Relative symlinks above the layer root are refused at pull: "rel" goes through an
	// absolute one.)
	h.push("evil:latest", cfg, plS("abs", victim), plS("up", "/"), plS("rel", "up/../up"+victim),
		plS("vabs", victim), plS("etcl", "/etc"))
	evil := h.addr + "/evil:latest"
	bind := t.TempDir()
	for _, args := range [][]string{
		{"-v", "evil1:/abs/x"},
		{"-v", "evil2:/rel/x"},
		{"-v", bind + ":/abs/bound"},
		{"--mount", "type=volume,src=evil3,dst=/rel/m"},
		{"--tmpfs", "/abs/t"},
	} {
		a := append([]string{"run", "--rm", "--network", "none"}, args...)
		a = append(a, evil, "sh", "-c", "for d in /abs/x /rel/x /abs/bound /rel/m /abs/t /vabs/img; do test -d $d && echo pwn > $d/f; done; echo ok")
		if out := h.must(a...); out != "ok\n" {
			t.Errorf("%v: %q", args, out)
		}
	}
	// A relative symlink made at run time in a volume, then a destination through it.
	h.must("run", "--rm", "--network", "none", "-v", "trap:/trap", evil, "busybox", "ln", "-s", "../../../../../../../../.."+victim, "/trap/esc")
	if out := h.must("run", "--rm", "--network", "none", "-v", "trap:/trap", "-v", "evil5:/trap/esc/x", "-v", bind+":/trap/esc/b", evil,
		"sh", "-c", "echo pwn > /trap/esc/x/f && echo pwn > /trap/esc/b/g && echo ok"); out != "ok\n" {
		t.Errorf("through a volume's symlink: %q", out)
	}
	// A symlink to /etc in the image is the image's /etc, not the host's.
	h.must("run", "--rm", "--network", "none", "-v", "evil4:/etcl/berth-volume-test", evil, "true")
	if _, err := os.Stat("/etc/berth-volume-test"); !os.IsNotExist(err) {
		os.RemoveAll("/etc/berth-volume-test")
		t.Errorf("a volume was mounted on the host's /etc: %v", err)
	}
	// The writes went to the volumes, mounted inside the rootfs where the symlinks led.
	for _, v := range []string{"evil1", "evil2", "evil3", "evil5"} {
		if b, err := os.ReadFile(filepath.Join(h.root, "volumes", v, "_data", "f")); string(b) != "pwn\n" {
			t.Errorf("volume %s did not get the container's write: %q %v", v, b, err)
		}
	}
	if got := hostSnapshot(t, victim); got != snap {
		t.Errorf("the host directory behind the image's symlinks changed:\nbefore:\n%s\nafter:\n%s", snap, got)
	}
	if ents, _ := os.ReadDir(bind); len(ents) != 2 {
		t.Errorf("the bind mount did not get the container's write: %v", ents)
	}
}
