//go:build e2e

package e2e

// The container file system commands of pull-run through its CLI: commit (of a running,
// paused and stopped container, with --change, -m, -a, whiteouts), diff, export and cp
// both ways, with the hostile cases of CVE-2018-15664 (container symlinks to "/" and
// "../../..", host destinations that are symlinks to "/", tar streams with "..").

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var commitIDRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`)

// waitFile waits until path exists in the running container id.
func (h *cliHost) waitFile(id, path string) {
	h.t.Helper()
	cliEventually(h.t, 20*time.Second, path, func() bool {
		_, _, code := h.run("exec", id, "test", "-e", path)
		return code == 0
	})
}

// imageConfig reads the committed image's config blob from the state root.
func (h *cliHost) imageConfig(ref string) ocispec.Image {
	h.t.Helper()
	id := strings.TrimSpace(h.must("image", "inspect", "-f", "{{.Id}}", ref))
	b, err := os.ReadFile(filepath.Join(h.root, "image", "content", "sha256", strings.TrimPrefix(id, "sha256:")))
	if err != nil {
		h.t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

func tarNames(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		body, _ := io.ReadAll(tr)
		out[hdr.Name] = string(body)
	}
}

func TestCommitRunningContainer(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD(h.image, "sh", "-c", "echo committed > /etc/motd2; rm /etc/motd; mkdir /data; echo 1 > /data/f; touch /ready; sleep 1000")
	h.waitFile(id, "/ready")
	out := h.must("commit", "-c", "CMD cat /etc/motd2", "-c", `ENV COMMITTED="yes it is"`, "-c", "EXPOSE 8080",
		"-m", "my message", "-a", "Jane <jane@example.com>", id, "committed:v1")
	if !commitIDRe.MatchString(out) {
		t.Fatalf("commit printed %q", out)
	}
	if got := h.field(id, "{{.State.Status}}"); got != "running" {
		t.Errorf("after commit the container is %q, want running (unpaused)", got)
	}
	if got := strings.TrimSpace(h.must("image", "inspect", "-f", "{{.Id}}", "committed:v1")); got+"\n" != out {
		t.Errorf("committed:v1 is %s, commit printed %s", got, out)
	}
	cfg := h.imageConfig("committed:v1")
	if want := []string{"/bin/sh", "-c", "cat /etc/motd2"}; !slices.Equal(cfg.Config.Cmd, want) {
		t.Errorf("Cmd %q, want %q", cfg.Config.Cmd, want)
	}
	if !slices.Contains(cfg.Config.Env, "COMMITTED=yes it is") || !slices.Contains(cfg.Config.Env, "FROM_IMAGE=yes") {
		t.Errorf("Env %q", cfg.Config.Env)
	}
	if _, ok := cfg.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("ExposedPorts %v", cfg.Config.ExposedPorts)
	}
	if cfg.Author != "Jane <jane@example.com>" || len(cfg.RootFS.DiffIDs) != 2 || len(cfg.History) == 0 {
		t.Fatalf("config: author %q, %d layers, %d history entries", cfg.Author, len(cfg.RootFS.DiffIDs), len(cfg.History))
	}
	last := cfg.History[len(cfg.History)-1]
	if last.Comment != "my message" || !strings.Contains(last.CreatedBy, "sleep 1000") || last.EmptyLayer || last.Author != cfg.Author {
		t.Errorf("history entry %+v", last)
	}
	// The new image runs with the change, without the deleted file (a whiteout).
	if got := h.must("run", "--rm", "--network", "none", "committed:v1"); got != "committed\n" {
		t.Errorf("the committed image's CMD printed %q", got)
	}
	if got := h.must("run", "--rm", "--network", "none", "committed:v1", "sh", "-c", "cat /data/f; test -e /etc/motd || echo motd gone; test -e /ready && echo ready"); got != "1\nmotd gone\nready\n" {
		t.Errorf("committed image: %q", got)
	}

	// --pause=false commits without freezing; a paused container stays paused.
	h.must("exec", id, "sh", "-c", "echo second > /second")
	out = h.must("commit", "--pause=false", id)
	if !commitIDRe.MatchString(out) {
		t.Fatalf("commit --pause=false printed %q", out)
	}
	h.must("pause", id)
	h.must("commit", "-p", id, "committed:paused")
	if got := h.field(id, "{{.State.Status}}"); got != "paused" {
		t.Errorf("a paused container is %q after commit, want paused", got)
	}
	h.must("unpause", id)
	if got := h.must("run", "--rm", "--network", "none", "committed:paused", "cat", "/second"); got != "second\n" {
		t.Errorf("second commit: %q", got)
	}

	// Bad input.
	h.expect(1, []string{"commit", "-c", "RUN echo", id}, "RUN is not a valid change command")
	h.expect(1, []string{"commit", "-c", "ONBUILD RUN true", id}, "ONBUILD")
	h.expect(1, []string{"commit", id, "Bad:Ref:x"}, "invalid reference format")
	h.expect(1, []string{"commit", "nosuch"}, "No such container: nosuch")
}

func TestCommitNoChangesAndEntrypoint(t *testing.T) {
	h := newCLIHost(t)
	h.must("create", "--name", "fresh", "--network", "none", h.image, "true")
	out := h.must("commit", "-c", `ENTRYPOINT ["echo", "hello"]`, "-c", "WORKDIR /tmp", "-c", "USER app", "-c", "LABEL a=b c=\"d e\"", "fresh", "fresh:latest")
	if !commitIDRe.MatchString(out) {
		t.Fatalf("commit printed %q", out)
	}
	cfg := h.imageConfig("fresh")
	if len(cfg.RootFS.DiffIDs) != 1 {
		t.Errorf("a commit without changes added a layer: %v", cfg.RootFS.DiffIDs)
	}
	last := cfg.History[len(cfg.History)-1]
	if !last.EmptyLayer {
		t.Errorf("history entry of an empty commit: %+v", last)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"echo", "hello"}) || cfg.Config.Cmd != nil ||
		cfg.Config.WorkingDir != "/tmp" || cfg.Config.User != "app" || cfg.Config.Labels["c"] != "d e" || cfg.Config.Labels["a"] != "b" {
		t.Errorf("config %+v", cfg.Config)
	}
	if got := h.must("run", "--rm", "--network", "none", "fresh", "world"); got != "hello world\n" {
		t.Errorf("run fresh: %q", got)
	}
}

// TestCommitOpaqueDir: a directory of the image removed and made again keeps none of the
// image's entries in the committed image (an opaque directory in the layer).
func TestCommitOpaqueDir(t *testing.T) {
	h := newCLIHost(t)
	h.push("withopt:latest", cliDefaultConfig, plD("opt"), plF("opt/a", "a"), plF("opt/b", "b"), plD("opt/sub"), plF("opt/sub/s", "s"))
	id := h.runD(h.addr+"/withopt:latest", "sh", "-c", "rm -r /opt; mkdir /opt; echo c > /opt/c; touch /ready; sleep 1000")
	h.waitFile(id, "/ready")
	if got := h.must("diff", id); got != "C /opt\nD /opt/a\nD /opt/b\nA /opt/c\nD /opt/sub\nA /ready\n" {
		t.Errorf("diff: %q", got)
	}
	h.must("commit", id, "opaque:latest")
	if got := h.must("run", "--rm", "--network", "none", "opaque", "ls", "/opt"); got != "c\n" {
		t.Errorf("/opt of the committed image: %q, want only c", got)
	}
}

func TestDiffAddChangeDelete(t *testing.T) {
	h := newCLIHost(t)
	// /root (a directory of the image) is renamed, /home removed and made again (opaque).
	id := h.runD(h.image, "sh", "-c", "echo x > /etc/x; rm /etc/motd; mkdir -p /newdir/sub; touch /newdir/sub/f; "+
		"busybox mv /root /root2; rm -r /bin/notexec; rm -r /home; mkdir /home; touch /home/new; touch /ready; sleep 1000")
	h.waitFile(id, "/ready")
	want := "C /bin\nD /bin/notexec\nC /etc\nD /etc/motd\nA /etc/x\nC /home\nA /home/new\nA /newdir\nA /newdir/sub\nA /newdir/sub/f\nA /ready\nD /root\nA /root2\n"
	if got := h.must("diff", id); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
	if got := h.must("container", "diff", id); got != want {
		t.Errorf("container diff:\n%s", got)
	}
	// A fresh container has no changes: its /etc files are bind mounts, not changes.
	fresh := h.runD(h.image, "sleep", "1000")
	if got := h.must("diff", fresh); got != "" {
		t.Errorf("diff of a fresh container: %q", got)
	}
	h.expect(1, []string{"diff", "nosuch"}, "No such container")
}

func TestExportRootfs(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD(h.image, "sh", "-c", "echo exported > /etc/x; rm /etc/motd; touch /ready; sleep 1000")
	h.waitFile(id, "/ready")
	dir := t.TempDir()
	file := filepath.Join(dir, "out.tar")
	h.must("export", "-o", file, id)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ents := tarNames(t, b)
	if ents["etc/x"] != "exported\n" || ents["etc/passwd"] == "" || ents["bin/"] != "" {
		t.Errorf("export lacks the container's files: etc/x=%q", ents["etc/x"])
	}
	if _, ok := ents["bin/busybox"]; !ok {
		t.Error("export lacks the image's bin/busybox")
	}
	if _, ok := ents["etc/motd"]; ok {
		t.Error("export has the deleted /etc/motd")
	}
	for n := range ents {
		if strings.HasPrefix(n, "/") || strings.Contains(n, "..") || strings.HasPrefix(n, "proc/") && n != "proc/" {
			t.Errorf("export entry %q", n)
		}
	}
	// To stdout (not a terminal), and of a stopped container.
	h.must("stop", "-t", "1", id)
	out := h.must("container", "export", id)
	if tarNames(t, []byte(out))["etc/x"] != "exported\n" {
		t.Error("export to stdout of a stopped container lacks etc/x")
	}
}

func TestCpBothWays(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD(h.image, "sleep", "1000")
	dir := t.TempDir()
	// Out: a file into a directory, a file to a new name, a directory, the contents of one.
	h.must("cp", id+":/etc/passwd", dir)
	h.must("cp", id+":/etc/motd", filepath.Join(dir, "renamed"))
	h.must("cp", id+":/etc", filepath.Join(dir, "etccopy"))
	os.Mkdir(filepath.Join(dir, "into"), 0o755)
	h.must("cp", id+":/etc", filepath.Join(dir, "into")) // an existing directory: into/etc
	os.Mkdir(filepath.Join(dir, "contents"), 0o755)
	h.must("cp", id+":/etc/.", filepath.Join(dir, "contents"))
	for p, want := range map[string]string{"passwd": "root:x:0:0", "renamed": "from the image", "etccopy/motd": "from the image", "contents/group": "root:x:0:", "into/etc/passwd": "root:x:0:0"} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	// Out as a tar stream.
	out := h.must("cp", id+":/etc", "-")
	if !strings.HasPrefix(tarNames(t, []byte(out))["etc/motd"], "from the image") {
		t.Errorf("cp to - lacks etc/motd")
	}
	// The whole root of a running container: /proc and /sys are left empty.
	all := tarNames(t, []byte(h.must("cp", id+":/", "-")))
	if _, ok := all["./bin/busybox"]; !ok {
		t.Errorf("cp CONTAINER:/ - lacks ./bin/busybox")
	}
	for n := range all {
		if strings.HasPrefix(n, "./proc/") && n != "./proc/" || strings.HasPrefix(n, "./sys/") && n != "./sys/" {
			t.Errorf("cp CONTAINER:/ - has %s", n)
			break
		}
	}
	// A symlink is copied as it is; -L copies its target.
	h.must("cp", id+":/bin/sh", filepath.Join(dir, "sh-link"))
	h.must("cp", "-L", id+":/bin/sh", filepath.Join(dir, "sh-file"))
	if l, err := os.Readlink(filepath.Join(dir, "sh-link")); err != nil || l != "busybox" {
		t.Errorf("cp of a symlink: %q %v", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "sh-file")); err != nil || !fi.Mode().IsRegular() || fi.Size() < 100000 {
		t.Errorf("cp -L: %v %v", fi, err)
	}
	h.expect(1, []string{"cp", id + ":/nosuch", dir}, "Could not find the file /nosuch in container "+id)
	h.expect(1, []string{"cp", id + ":/etc", filepath.Join(dir, "passwd")}, "cannot overwrite non-directory")

	// In: a file, a directory, a tar stream.
	os.WriteFile(filepath.Join(dir, "hostfile"), []byte("from the host\n"), 0o640)
	os.MkdirAll(filepath.Join(dir, "hostdir/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "hostdir/sub/f"), []byte("deep\n"), 0o644)
	h.must("cp", filepath.Join(dir, "hostfile"), id+":/tmp/")
	h.must("cp", filepath.Join(dir, "hostdir"), id+":/tmp/hd")
	h.must("cp", filepath.Join(dir, "hostfile"), id+":/etc/motd") // overwrite
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "streamed", Mode: 0o600, Size: 4, Typeflag: tar.TypeReg})
	tw.Write([]byte("tar\n"))
	tw.Close()
	if _, errs, code := h.runCtx(t.Context(), bytes.NewReader(tb.Bytes()), "cp", "-", id+":/tmp"); code != 0 {
		t.Fatalf("cp - : %d %s", code, errs)
	}
	os.Chown(filepath.Join(dir, "hostfile"), 1000, 1000)
	h.must("cp", "-a", filepath.Join(dir, "hostfile"), id+":/tmp/archived")
	got := h.must("exec", id, "sh", "-c", "cat /tmp/hostfile /tmp/hd/sub/f /etc/motd /tmp/streamed; stat -c '%a %u' /tmp/hostfile /tmp/archived")
	if got != "from the host\ndeep\nfrom the host\ntar\n640 0\n640 1000\n" {
		t.Errorf("cp in: %q", got)
	}
	h.expect(1, []string{"cp", filepath.Join(dir, "hostfile"), id + ":/nosuchdir/"}, "must exist")
	h.expect(1, []string{"cp", filepath.Join(dir, "hostfile"), filepath.Join(dir, "x")}, "must specify at least one container source")

	// A stopped container: both ways through its overlay.
	h.must("stop", "-t", "1", id)
	h.must("cp", filepath.Join(dir, "hostfile"), id+":/stopped")
	h.must("cp", id+":/stopped", filepath.Join(dir, "back"))
	if b, _ := os.ReadFile(filepath.Join(dir, "back")); string(b) != "from the host\n" {
		t.Errorf("cp of a stopped container: %q", b)
	}
	h.must("start", id)
	if got := h.must("exec", id, "cat", "/stopped"); got != "from the host\n" {
		t.Errorf("after start: %q", got)
	}
}

// TestCpStoppedContainerVolumes copies to and from a stopped (and a never started)
// container's named volume and read-only bind mount, as Docker does: its volumes are
// mounted in the private view of the copy, never on the host, and export leaves them out.
func TestCpStoppedContainerVolumes(t *testing.T) {
	h := newCLIHost(t)
	dir, hostdir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(hostdir, "x"), []byte("host bind\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := h.runD("-v", "cpvol:/data", "-v", hostdir+":/bind:ro", h.image,
		"sh", "-c", "echo in the volume > /data/f; echo in the rootfs > /rootfile; touch /ready; sleep 1000")
	h.waitFile(id, "/ready")
	h.must("stop", "-t", "1", id)

	// Out: the volume's and the bind's files.
	h.must("cp", id+":/data/f", filepath.Join(dir, "f"))
	h.must("cp", id+":/bind/x", filepath.Join(dir, "x"))
	for p, want := range map[string]string{"f": "in the volume\n", "x": "host bind\n"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("cp out of a stopped container's %s: %q %v", p, b, err)
		}
	}
	if ents := tarNames(t, []byte(h.must("cp", id+":/data", "-"))); ents["data/f"] != "in the volume\n" {
		t.Errorf("cp of the volume's directory: %v", ents)
	}

	// In: into the volume, seen from a new container; a :ro bind refuses.
	in := filepath.Join(dir, "in")
	os.WriteFile(in, []byte("copied in\n"), 0o644)
	h.must("cp", in, id+":/data/g")
	if got := h.must("run", "--rm", "--network", "none", "-v", "cpvol:/data", h.image, "cat", "/data/g"); got != "copied in\n" {
		t.Errorf("cp into the stopped container's volume, read by another container: %q", got)
	}
	h.expect(1, []string{"cp", in, id + ":/bind/x"}, "mounted volume is marked read-only")
	h.expect(1, []string{"cp", in, id + ":/bind/"}, "mounted volume is marked read-only")
	if b, _ := os.ReadFile(filepath.Join(hostdir, "x")); string(b) != "host bind\n" {
		t.Errorf("the :ro bind's file changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(hostdir, "in")); err == nil {
		t.Error("cp wrote into the :ro bind")
	}

	// A container never started: its mount points are made in the view.
	fresh := strings.TrimSpace(h.must("create", "--network", "none", "-v", "cpvol:/srv/vol", h.image, "true"))
	h.must("cp", fresh+":/srv/vol/g", filepath.Join(dir, "g"))
	if b, err := os.ReadFile(filepath.Join(dir, "g")); err != nil || string(b) != "copied in\n" {
		t.Errorf("cp out of a created container's volume: %q %v", b, err)
	}
	h.must("cp", in, fresh+":/srv/vol/h")
	if got := h.must("run", "--rm", "--network", "none", "-v", "cpvol:/data", h.image, "cat", "/data/h"); got != "copied in\n" {
		t.Errorf("cp into a created container's volume: %q", got)
	}

	// Export has the container's own files, not its volumes nor its binds.
	ents := tarNames(t, []byte(h.must("export", id)))
	if ents["rootfile"] != "in the rootfs\n" {
		t.Errorf("export lacks /rootfile")
	}
	for _, n := range []string{"data/f", "data/g", "bind/x"} {
		if _, ok := ents[n]; ok {
			t.Errorf("export has the volume's %s", n)
		}
	}

	// Nothing of the copies is mounted on the host.
	mi, err := os.ReadFile("/proc/1/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{h.root, hostdir} {
		if strings.Contains(string(mi), p) {
			t.Errorf("/proc/1/mountinfo shows %s:\n%s", p, mi)
		}
	}
}

// TestCpCVE201815664 copies through container symlinks to "/" and "../../..": they must
// resolve inside the container, never on the host.
func TestCpCVE201815664(t *testing.T) {
	h := newCLIHost(t)
	name := fmt.Sprintf("berth-cve-%d", time.Now().UnixNano())
	h.push("evil:latest", cliDefaultConfig, plF("etc/"+name, "container secret\n"))
	evil := h.addr + "/evil:latest"
	// The host has a file of the same name whose content must never show up.
	hostTwin := "/etc/" + name
	if err := os.WriteFile(hostTwin, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hostTwin); os.Remove("/" + name) })
	canary := filepath.Join("/etc", name+"-canary")
	os.WriteFile(canary, []byte("canary\n"), 0o644)
	t.Cleanup(func() { os.Remove(canary) })
	rootBefore, _ := os.ReadDir("/")

	dir := t.TempDir()
	for _, running := range []bool{true, false} {
		// The container makes its hostile symlinks; the stopped case copies through the
		// overlay of a container that made them and exited.
		id := h.runD(evil, "sh", "-c", "test -e /ready || { busybox ln -s / /evil && busybox ln -s ../../../../../ /up && touch /ready; }; sleep 1000")
		h.waitFile(id, "/ready")
		if !running {
			h.must("stop", "-t", "1", id)
		}
		for _, src := range []string{"/evil/etc/" + name, "/up/etc/" + name, "/evil/../../etc/" + name} {
			out := filepath.Join(dir, fmt.Sprintf("out-%v", running))
			os.Remove(out)
			h.must("cp", id+":"+src, out)
			if b, _ := os.ReadFile(out); string(b) != "container secret\n" {
				t.Errorf("running=%v cp %s read %q, want the container's file", running, src, b)
			}
		}
		os.WriteFile(filepath.Join(dir, "payload"), []byte("payload\n"), 0o644)
		h.must("cp", filepath.Join(dir, "payload"), id+":/evil/"+name)
		h.must("cp", filepath.Join(dir, "payload"), id+":/up/etc/"+name+"-canary")
		if _, err := os.Stat("/" + name); err == nil {
			t.Fatalf("running=%v: cp wrote /%s on the host", running, name)
		}
		if b, _ := os.ReadFile(canary); string(b) != "canary\n" {
			t.Fatalf("running=%v: the host canary changed: %q", running, b)
		}
		if !running {
			h.must("start", id)
		}
		if got := h.must("exec", id, "cat", "/"+name, "/etc/"+name+"-canary"); got != "payload\npayload\n" {
			t.Errorf("running=%v: the copies did not land in the container: %q", running, got)
		}
	}
	if b, _ := os.ReadFile(hostTwin); string(b) != "host secret\n" {
		t.Errorf("host file changed: %q", b)
	}
	rootAfter, _ := os.ReadDir("/")
	if len(rootAfter) != len(rootBefore) {
		t.Errorf("the host's / changed: %d entries, then %d", len(rootBefore), len(rootAfter))
	}
}

func TestCpBadInput(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD(h.image, "sleep", "1000")
	dir := t.TempDir()
	// A host destination that is a symlink to "/": refused, nothing written in /.
	link := filepath.Join(dir, "link")
	os.Symlink("/", link)
	rootBefore, _ := os.ReadDir("/")
	h.expect(1, []string{"cp", id + ":/etc/motd", link}, "symbolic link")
	h.expect(1, []string{"cp", id + ":/etc", link}, "symbolic link")
	if _, err := os.Stat("/motd"); err == nil {
		t.Error("cp wrote /motd on the host")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	rootAfter, _ := os.ReadDir("/")
	if len(rootAfter) != len(rootBefore) {
		t.Errorf("the host's / changed")
	}

	// Device nodes are not made on the host.
	h.must("exec", id, "sh", "-c", "busybox cp /bin/busybox /tmp/suid && busybox chmod 4755 /tmp/suid")
	_, errs := h.expect(0, []string{"cp", id + ":/dev", filepath.Join(dir, "devcopy")}, "device node")
	if _, err := os.Lstat(filepath.Join(dir, "devcopy/null")); err == nil {
		t.Errorf("cp made /dev/null on the host (%s)", errs)
	}
	// Nor setuid files of the container's choosing.
	h.must("cp", id+":/tmp/suid", filepath.Join(dir, "suid"))
	if fi, err := os.Stat(filepath.Join(dir, "suid")); err != nil || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("cp out kept a setuid bit: %v %v", fi, err)
	}

	// Tar streams with "..", absolute names, hardlinks to outside: refused.
	bad := func(hdrs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, hd := range hdrs {
			tw.WriteHeader(hd)
			if hd.Size > 0 {
				tw.Write(bytes.Repeat([]byte("x"), int(hd.Size)))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	cases := map[string][]byte{
		"leaves the destination": bad(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}),
		"absolute path":          bad(&tar.Header{Name: "/abs", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}),
		"hardlink":               bad(&tar.Header{Name: "hl", Linkname: "../../../etc/passwd", Typeflag: tar.TypeLink}),
		"symbolic link": bad(&tar.Header{Name: "sl", Linkname: "/", Typeflag: tar.TypeSymlink, Mode: 0o777},
			&tar.Header{Name: "sl/through", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}),
	}
	for want, stream := range cases {
		_, errs, code := h.runCtx(t.Context(), bytes.NewReader(stream), "cp", "-", id+":/tmp")
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("tar with %s: exit %d, %s", want, code, errs)
		}
	}
	if _, _, code := h.run("exec", id, "test", "-e", "/escape"); code == 0 {
		t.Error("../escape was written")
	}
	if _, _, code := h.run("exec", id, "test", "-e", "/through"); code == 0 {
		t.Error("sl/through was written through the symlink")
	}
	h.expect(1, []string{"cp", id + ":/etc", id + ":/tmp"}, "copying between containers is not supported")
}

// TestCommitPushPull: commit → push to a Berth registry → rmi → pull → run shows the
// committed change.
func TestCommitPushPull(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD(h.image, "sh", "-c", "echo pushed > /etc/pushed; rm /etc/motd; touch /ready; sleep 1000")
	h.waitFile(id, "/ready")
	ref := h.addr + "/committed:pushed"
	h.must("commit", "-m", "to push", id, ref)
	h.must("rm", "-f", id)
	h.must("push", ref)
	h.must("rmi", ref)
	h.must("pull", "-q", ref)
	if got := h.must("run", "--rm", "--network", "none", ref, "sh", "-c", "cat /etc/pushed; test -e /etc/motd || echo motd gone"); got != "pushed\nmotd gone\n" {
		t.Errorf("pulled commit: %q", got)
	}
	// Docker pulls the pushed commit and runs it: the change and the deletion (a whiteout) hold.
	docker := needDocker(t)
	t.Cleanup(func() { _, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", ref) })
	runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "pull", ref)
	if got := run(t, docker, "run", "--rm", "--network", "none", ref, "sh", "-c", "cat /etc/pushed; test -e /etc/motd || echo motd gone"); got != "pushed\nmotd gone\n" {
		t.Errorf("docker run of the pushed commit: %q", got)
	}
}
