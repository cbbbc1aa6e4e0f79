//go:build e2e

package e2e

// The TestCLI* tests drive the container commands of the real pull-run binary as root: a
// busybox image built here and pushed to a Berth registry, pulled by `pull-run run`, and
// real containers (namespaces, overlay, cgroups) run, stopped, paused, exec'd into,
// attached to, killed and removed with Docker's command line, flags, output and exit
// codes. Each test has its own --root and --runroot under /var/tmp.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// cliApplets are the busybox applets of the test image.
var cliApplets = []string{
	"sh", "echo", "cat", "ls", "id", "hostname", "sleep", "ps", "mount", "touch", "true",
	"false", "env", "pwd", "tty", "stty", "readlink", "grep", "wc", "tail", "head", "kill",
	"test", "stat", "mkdir", "rm", "dd", "seq", "tr", "cut",
}

// cliImageEnts is the test image's file system: busybox-static with its applets, a user
// database, a non-executable file.
func cliImageEnts(t testing.TB) []plEnt {
	t.Helper()
	bb, err := os.ReadFile(need(t, "/usr/bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	ents := []plEnt{plD("bin"), plD("etc"), plD("root"), plD("home"), plD("proc"), plD("sys"), plD("dev"),
		{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{name: "bin/busybox", typ: tar.TypeReg, body: string(bb), mode: 0o755},
		plF("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
		plF("etc/group", "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"),
		plF("etc/motd", "from the image\n"),
		plF("bin/notexec", "#!/bin/sh\necho no\n"),
	}
	for _, a := range cliApplets {
		ents = append(ents, plS("bin/"+a, "busybox"))
	}
	return ents
}

// cliBuild is plBuild with an image config of the test's.
func cliBuild(t testing.TB, cfg ocispec.ImageConfig, layers ...plLayer) plImage {
	t.Helper()
	img := plImage{layers: layers, mediaType: ocispec.MediaTypeImageManifest, platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	created := epoch.UTC()
	c := ocispec.Image{Created: &created, Platform: img.platform, RootFS: ocispec.RootFS{Type: "layers"}, Config: cfg}
	for _, l := range layers {
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromBytes(l.tar))
		img.descs = append(img.descs, ocispec.Descriptor{MediaType: l.mediaType, Digest: digest.FromBytes(l.blob), Size: int64(len(l.blob))})
	}
	img.config, _ = json.Marshal(c)
	m := ocispec.Manifest{MediaType: img.mediaType, Layers: img.descs,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))}}
	m.SchemaVersion = 2
	img.manifest, _ = json.Marshal(m)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

var cliDefaultConfig = ocispec.ImageConfig{
	Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes"},
	Cmd: []string{"sh"},
}

// cliHost is one pull-run state root with the test image pushed to a Berth of its own.
type cliHost struct {
	t             *testing.T
	bin           string
	root, runroot string
	addr          string
	image         string // <addr>/busybox:latest
	imageID       string
}

func newCLIHost(t *testing.T) *cliHost {
	t.Helper()
	if err := os.MkdirAll("/var/tmp", 0o1777); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "berth-cli-")
	if err != nil {
		t.Fatal(err)
	}
	h := &cliHost{t: t, bin: pullRunBin(t), root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
	h.addr = startBerth(t, t.TempDir())
	img := h.push("busybox:latest", cliDefaultConfig)
	h.image, h.imageID = h.addr+"/busybox:latest", img.id()
	t.Cleanup(func() {
		// Whatever a failed test left running goes, then the directories.
		out, _, _ := h.runCtx(context.Background(), nil, "ps", "-aq", "--no-trunc")
		for _, id := range strings.Fields(out) {
			if _, errs, code := h.runCtx(context.Background(), nil, "rm", "-f", id); code != 0 {
				t.Errorf("cleanup: rm -f %s: %s", id, errs)
			}
		}
		os.RemoveAll(dir)
	})
	return h
}

// push builds the test image with cfg and pushes it as repoTag.
func (h *cliHost) push(repoTag string, cfg ocispec.ImageConfig, extra ...plEnt) plImage {
	h.t.Helper()
	layers := []plLayer{plGzip(h.t, plTar(h.t, cliImageEnts(h.t)...))}
	if len(extra) > 0 {
		layers = append(layers, plGzip(h.t, plTar(h.t, extra...)))
	}
	img := cliBuild(h.t, cfg, layers...)
	repo, tag, _ := strings.Cut(repoTag, ":")
	plPush(h.t, h.addr, repo, tag, img)
	return img
}

func (h *cliHost) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"--root", h.root, "--runroot", h.runroot}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (h *cliHost) runCtx(ctx context.Context, stdin io.Reader, args ...string) (string, string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := h.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	start := time.Now()
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			h.t.Fatalf("pull-run %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	h.t.Logf("$ pull-run %s → %d (%s)\n%s%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond),
		tail(out.String(), 20), tail(errb.String(), 20))
	return out.String(), errb.String(), code
}

// run runs pull-run and returns its outputs and exit status.
func (h *cliHost) run(args ...string) (string, string, int) {
	h.t.Helper()
	return h.runCtx(context.Background(), nil, args...)
}

// must runs pull-run and fails the test unless it exits 0.
func (h *cliHost) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("pull-run %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// expect runs pull-run and checks the exit status and that stderr contains each part.
func (h *cliHost) expect(code int, args []string, parts ...string) (string, string) {
	h.t.Helper()
	out, errs, got := h.run(args...)
	if got != code {
		h.t.Errorf("pull-run %s: exit %d, want %d\n%s%s", strings.Join(args, " "), got, code, out, errs)
	}
	for _, p := range parts {
		if !strings.Contains(errs, p) {
			h.t.Errorf("pull-run %s: stderr does not mention %q:\n%s", strings.Join(args, " "), p, errs)
		}
	}
	return out, errs
}

// runD runs a detached container and returns its full id.
func (h *cliHost) runD(args ...string) string {
	h.t.Helper()
	out := strings.TrimSpace(h.must(append([]string{"run", "-d", "--network", "none"}, args...)...))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(out) {
		h.t.Fatalf("run -d printed %q, want a 64-hex id", out)
	}
	return out
}

// inspect returns inspect's object of one container.
func (h *cliHost) inspect(name string) map[string]any {
	h.t.Helper()
	var arr []map[string]any
	out := h.must("inspect", "--type", "container", name)
	if err := json.Unmarshal([]byte(out), &arr); err != nil || len(arr) != 1 {
		h.t.Fatalf("inspect %s: %v\n%s", name, err, out)
	}
	return arr[0]
}

func (h *cliHost) field(name, tmpl string) string {
	h.t.Helper()
	return strings.TrimSpace(h.must("inspect", "-f", tmpl, name))
}

// cgroupFile reads a cgroup v1 file of the container.
func cliCgroupFile(t *testing.T, ctrl, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, "berth", id, file))
	if err != nil {
		t.Fatalf("cgroup file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func cliEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cliAlive: the process exists and is not a zombie.
func cliAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// cliAssertGone checks that nothing of container id is left: state directory, mounts in
// any mount namespace, cgroup directories, processes.
func cliAssertGone(t *testing.T, h *cliHost, id string, pids ...int) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(h.root, "containers", id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory of %s still there (%v)", id[:12], err)
	}
	if b, _ := os.ReadFile("/proc/mounts"); bytes.Contains(b, []byte(id)) {
		t.Errorf("/proc/mounts still has container %s", id[:12])
	}
	mountinfos, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	for _, mi := range mountinfos {
		if b, err := os.ReadFile(mi); err == nil && bytes.Contains(b, []byte(id)) {
			t.Errorf("%s still has a mount of container %s", mi, id[:12])
		}
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id); len(dirs) > 0 {
		t.Errorf("cgroup directories left: %v", dirs)
	}
	for _, pid := range pids {
		if pid > 0 && cliAlive(pid) {
			t.Errorf("process %d is still alive", pid)
		}
	}
}

// cliBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type cliBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *cliBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *cliBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliProc is a pull-run process started by background.
type cliProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has ended
	err  error
}

// wait waits up to d for the process to end: its Wait error, and whether it ended.
func (p *cliProc) wait(d time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// background starts pull-run without waiting; stdout and stderr go to out. stdin, when
// not nil, is the read end of an os.Pipe (a file: exec's copying goroutine would keep Wait
// waiting as long as the writer is open); it is closed here once the child has it.
func (h *cliHost) background(stdin *os.File, out io.Writer, args ...string) *cliProc {
	h.t.Helper()
	cmd := h.command(context.Background(), args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	if stdin != nil {
		stdin.Close()
	}
	p := &cliProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// ---------------------------------------------------------------------------------------------

func TestCLIRunOutputAndExitCodes(t *testing.T) {
	h := newCLIHost(t)
	out, errs, code := h.run("run", "--rm", h.image, "echo", "hello", "world")
	if code != 0 || out != "hello world\n" {
		t.Errorf("echo: %d %q", code, out)
	}
	// The first run pulls (progress on stderr, as docker run), on the default bridge
	// network, with nothing else to say.
	for _, want := range []string{"Unable to find image '" + h.image + "' locally", "Pull complete", "Status: Downloaded newer image for " + h.image} {
		if !strings.Contains(errs, want) {
			t.Errorf("first run's stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "WARNING") {
		t.Errorf("first run warns:\n%s", errs)
	}
	out, errs, code = h.run("run", "--rm", "--network", "none", h.image, "sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 || out != "out\n" || errs != "err\n" {
		t.Errorf("exit 3: %d %q %q", code, out, errs)
	}
	h.expect(127, []string{"run", "--rm", "--network", "none", h.image, "nope"}, `pull-run: `, `exec: "nope": executable file not found in $PATH`)
	h.expect(126, []string{"run", "--rm", "--network", "none", h.image, "/bin/notexec"}, "pull-run: ", "permission denied")
	h.expect(126, []string{"run", "--rm", "--network", "none", h.image, "/etc"}, "pull-run: ")
	// -i: stdin to the container, closed at the client's EOF.
	out, _, code = h.runCtx(context.Background(), strings.NewReader("piped\nlines\n"), "run", "--rm", "-i", "--network", "none", h.image, "sh", "-c", "wc -l; cat")
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Errorf("run -i: %d %q", code, out)
	}
	// Without -i the container's stdin is empty.
	out, _, _ = h.runCtx(context.Background(), strings.NewReader("not for the container\n"), "run", "--rm", "--network", "none", h.image, "cat")
	if out != "" {
		t.Errorf("stdin without -i: %q", out)
	}
	// --rm left nothing; without --rm the container stays, exited with its code.
	if out := h.must("ps", "-aq"); out != "" {
		t.Errorf("--rm containers left: %q", out)
	}
	h.expect(7, []string{"run", "--name", "kept", "--network", "none", h.image, "sh", "-c", "exit 7"})
	if st := h.field("kept", "{{.State.Status}} {{.State.ExitCode}}"); st != "exited 7" {
		t.Errorf("kept: %q", st)
	}
	h.expect(127, []string{"run", "--name", "nocmd", "--network", "none", h.image, "nope"})
	if st := h.field("nocmd", "{{.State.Status}} {{.State.ExitCode}}"); st != "created 127" {
		t.Errorf("container whose command was not found: %q", st)
	}
	// run -d prints the full id; wait gives the exit code.
	id := h.runD(h.image, "sh", "-c", "exit 4")
	if out := h.must("wait", id); out != "4\n" {
		t.Errorf("wait: %q", out)
	}
	// create + start -a.
	id = strings.TrimSpace(h.must("create", "--network", "none", h.image, "sh", "-c", "echo created-then-started; exit 5"))
	if st := h.field(id, "{{.State.Status}}"); st != "created" {
		t.Errorf("after create: %q", st)
	}
	out, _, code = h.run("start", "-a", id)
	if code != 5 || out != "created-then-started\n" {
		t.Errorf("start -a: %d %q", code, out)
	}
	if out := h.must("start", id); out != id+"\n" {
		t.Errorf("start: %q", out)
	}
}

func TestCLIRunEnvUserWorkdirHostname(t *testing.T) {
	h := newCLIHost(t)
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=1\nOVER=file\n"), 0o644)
	out := h.must("run", "--rm", "--network", "none", "-e", "A=b c", "-e", "OVER=cli", "--env-file", envFile, h.image, "env")
	for _, want := range []string{"A=b c", "OVER=cli", "FROM_FILE=1", "FROM_IMAGE=yes", "HOME=/root", "PATH=/usr/local/sbin"} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want) {
			t.Errorf("env lacks %q:\n%s", want, out)
		}
	}
	out = h.must("run", "--rm", "--network", "none", "-u", "nobody", "-w", "/tmp", h.image, "sh", "-c", "id; pwd; echo $HOME")
	if out != "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/tmp\n/nonexistent\n" {
		t.Errorf("-u nobody -w /tmp: %q", out)
	}
	out = h.must("run", "--rm", "--network", "none", "-u", "1000:0", "-w", "/made/by/workdir", h.image, "sh", "-c", "id -u; id -g; pwd")
	if out != "1000\n0\n/made/by/workdir\n" {
		t.Errorf("-u 1000:0 -w missing dir: %q", out)
	}
	h.expect(125, []string{"run", "--rm", "--network", "none", "-u", "nosuchuser", h.image, "true"}, "nosuchuser")
	out = h.must("run", "--rm", "--network", "none", "--entrypoint", "echo", h.image, "from", "entrypoint")
	if out != "from entrypoint\n" {
		t.Errorf("--entrypoint: %q", out)
	}
	// Hostname: -h, else the short id; /etc/hostname and /etc/hosts agree.
	out = h.must("run", "--rm", "--network", "none", "-h", "myhost", h.image, "sh", "-c", "hostname; cat /etc/hostname; grep myhost /etc/hosts; cat /etc/resolv.conf")
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || lines[0] != "myhost" || lines[1] != "myhost" || !strings.Contains(lines[2], "127.0.0.1") || !strings.Contains(out, "# pull-run") || strings.Contains(out, "nameserver") {
		t.Errorf("-h myhost:\n%s", out)
	}
	id := h.runD(h.image, "sleep", "60")
	if got := strings.TrimSpace(h.must("exec", id, "hostname")); got != id[:12] {
		t.Errorf("default hostname %q, want %q", got, id[:12])
	}
	if got := h.must("exec", id, "cat", "/etc/hosts"); !strings.Contains(got, "127.0.0.1\tlocalhost") || !strings.Contains(got, id[:12]) {
		t.Errorf("/etc/hosts:\n%s", got)
	}
	// --network host: the host's name and resolv.conf.
	hostName, _ := os.Hostname()
	out = h.must("run", "--rm", "--network", "host", h.image, "hostname")
	if strings.TrimSpace(out) != hostName {
		t.Errorf("--network host hostname %q, want %q", out, hostName)
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	out = h.must("run", "--rm", "--network", "host", h.image, "cat", "/etc/resolv.conf")
	for _, l := range strings.Split(string(hostResolv), "\n") {
		if strings.HasPrefix(l, "nameserver") && !strings.Contains(out, l) {
			t.Errorf("--network host resolv.conf lacks %q:\n%s", l, out)
		}
	}
	// Labels, ulimits, tmpfs, read-only, capabilities.
	out = h.must("run", "--rm", "--network", "none", "--ulimit", "nofile=100:200", "--tmpfs", "/scratch", "--read-only", h.image,
		"sh", "-c", "ulimit -n; ulimit -Hn; grep /scratch /proc/mounts | cut -d' ' -f3; touch /x 2>&1; touch /scratch/y && echo tmpfs-ok")
	if !strings.HasPrefix(out, "100\n200\n") || !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "tmpfs-ok") {
		t.Errorf("ulimit/tmpfs/read-only:\n%s", out)
	}
	out = h.must("run", "--rm", "--network", "none", h.image, "grep", "CapEff", "/proc/self/status")
	if !strings.Contains(out, rtDockerCaps) {
		t.Errorf("default capabilities: %q, want %s", out, rtDockerCaps)
	}
	out = h.must("run", "--rm", "--network", "none", "--cap-drop", "ALL", h.image, "grep", "CapEff", "/proc/self/status")
	if !strings.Contains(out, "0000000000000000") {
		t.Errorf("--cap-drop ALL: %q", out)
	}
	out = h.must("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", "--cap-drop", "CHOWN", h.image, "grep", "CapEff", "/proc/self/status")
	if !strings.Contains(out, "00000000a82425fa") {
		t.Errorf("--cap-add SYS_ADMIN --cap-drop CHOWN: %q", out)
	}
	out = h.must("run", "--rm", "--network", "none", "--security-opt", "no-new-privileges", h.image, "grep", "NoNewPrivs", "/proc/self/status")
	if !strings.Contains(out, "1") {
		t.Errorf("no-new-privileges: %q", out)
	}
	h.must("run", "-d", "--network", "none", "--name", "labelled", "-l", "tier=web", "--label", "team=a", h.image, "sleep", "60")
	if got := h.field("labelled", `{{index .Config.Labels "tier"}} {{index .Config.Labels "team"}}`); got != "web a" {
		t.Errorf("labels: %q", got)
	}
}

func TestCLIRunIsolation(t *testing.T) {
	h := newCLIHost(t)
	// PID 1 in a new pid namespace: only the container's processes.
	out := h.must("run", "--rm", "--network", "none", h.image, "sh", "-c", "echo $$; ps -o pid,comm; true")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || lines[0] != "1" || !strings.Contains(lines[2], "1 sh") || !strings.Contains(lines[3], "ps") {
		t.Errorf("processes seen by the container:\n%s", out)
	}
	// --init: the reaper is PID 1 and forwards the stop signal: sleep ends at once.
	id := h.runD("--init", h.image, "sleep", "60")
	out = h.must("exec", id, "ps", "-o", "pid,comm")
	if !strings.Contains(out, "1 berth-init") && !strings.Contains(out, "1 init") {
		t.Logf("ps with --init:\n%s", out)
	}
	start := time.Now()
	h.must("stop", "-t", "20", id)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop of --init sleep took %v: the signal was not forwarded", d)
	}
	if got := h.field(id, "{{.State.ExitCode}}"); got != "143" {
		t.Errorf("--init sleep stopped with %s, want 143", got)
	}
	// -t: a pty, with or without a terminal here.
	out = h.must("run", "--rm", "--network", "none", "-t", h.image, "tty")
	if out != "/dev/pts/0\r\n" {
		t.Errorf("run -t tty: %q", out)
	}
	// The terminal's size is the container's tty's before its command runs.
	script := need(t, "script")
	cmdline := fmt.Sprintf("stty cols 91 rows 27; %s --root %s --runroot %s run --rm -it --network none %s sh -c 'tty; stty size; exit 6'",
		h.bin, h.root, h.runroot, h.image)
	cmd := exec.Command(script, "-qec", cmdline, "/dev/null")
	cmd.Stdin = strings.NewReader("")
	b, err := cmd.CombinedOutput()
	t.Logf("script: %v\n%q", err, b)
	if exitCode(err) != 6 || !strings.Contains(string(b), "/dev/pts/0") || !strings.Contains(string(b), "27 91") {
		t.Errorf("run -it under a pty: %v %q", err, b)
	}
}

// TestCLISignalDispositions: the container's process starts with every signal at its
// default disposition, as under Docker (a shell cannot trap a signal ignored on entry), whatever
// pull-run and its monitor ignore themselves.
func TestCLISignalDispositions(t *testing.T) {
	h := newCLIHost(t)
	out := h.must("run", "--rm", "--network", "none", h.image, "grep", "SigIgn", "/proc/self/status")
	if !strings.Contains(out, "0000000000000000") {
		t.Errorf("the container's command starts with ignored signals: %q", out)
	}
	id := h.runD(h.image, "sh", "-c", `trap 'exit 4' HUP; trap 'exit 5' INT; while true; do sleep 0.1; done`)
	time.Sleep(300 * time.Millisecond)
	h.must("kill", "-s", "HUP", id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, _, _ := h.runCtx(ctx, nil, "wait", id); out != "4\n" {
		t.Errorf("kill -s HUP to a shell trapping HUP: wait %q", out)
	}
}

// TestCLIPrivileged: --privileged gives every capability this host has (its bounding set:
// a sandbox may have fewer than the kernel knows, as here).
func TestCLIPrivileged(t *testing.T) {
	h := newCLIHost(t)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	bnd := regexp.MustCompile(`CapBnd:\s*([0-9a-f]+)`).FindSubmatch(b)
	out := h.must("run", "--rm", "--network", "none", "--privileged", h.image, "grep", "CapEff", "/proc/self/status")
	if bnd == nil || !strings.Contains(out, string(bnd[1])) {
		t.Errorf("--privileged: %q, want the host's bounding set %s", out, bnd)
	}
}

func TestCLIRunLimits(t *testing.T) {
	h := newCLIHost(t)
	_, errs := h.expect(0, []string{"run", "-d", "--name", "limited", "--network", "none", "-m", "200M", "--memory-swap", "300M",
		"-c", "512", "--cpus", "1.5", "--pids-limit", "100", "--blkio-weight", "600", "--memory-reservation", "100M", h.image, "sleep", "60"})
	if !strings.Contains(errs, "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.") {
		t.Errorf("no blkio warning:\n%s", errs)
	}
	id := h.field("limited", "{{.Id}}")
	for _, c := range []struct{ ctrl, file, want string }{
		{"memory", "memory.limit_in_bytes", "209715200"},
		{"memory", "memory.memsw.limit_in_bytes", "314572800"},
		{"memory", "memory.soft_limit_in_bytes", "104857600"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "150000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"pids", "pids.max", "100"},
	} {
		if got := cliCgroupFile(t, c.ctrl, id, c.file); got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.ctrl, c.file, got, c.want)
		}
	}
	hc := h.inspect("limited")["HostConfig"].(map[string]any)
	for k, want := range map[string]float64{"Memory": 209715200, "MemorySwap": 314572800, "CpuShares": 512, "NanoCpus": 1.5e9, "PidsLimit": 100, "BlkioWeight": 0} {
		if hc[k] != want {
			t.Errorf("HostConfig.%s = %v, want %v", k, hc[k], want)
		}
	}
	h.must("run", "-d", "--name", "period", "--network", "none", "--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0", h.image, "sleep", "60")
	pid := h.field("period", "{{.Id}}")
	if q, p := cliCgroupFile(t, "cpu", pid, "cpu.cfs_quota_us"), cliCgroupFile(t, "cpu", pid, "cpu.cfs_period_us"); q != "25000" || p != "50000" {
		t.Errorf("--cpu-quota/--cpu-period: %s/%s", q, p)
	}
	if c := cliCgroupFile(t, "cpuset", pid, "cpuset.cpus"); c != "0" {
		t.Errorf("--cpuset-cpus: %s", c)
	}
	// --oom-kill-disable, --shm-size, and the json-file log's cap with rotation.
	h.must("run", "-d", "--name", "noomk", "--network", "none", "-m", "64m", "--oom-kill-disable", "--shm-size", "16m",
		"--log-opt", "max-size=2k", "--log-opt", "max-file=2", h.image, "sh", "-c", "grep /dev/shm /proc/mounts; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line $i; done; sleep 60")
	nid := h.field("noomk", "{{.Id}}")
	if got := cliCgroupFile(t, "memory", nid, "memory.oom_control"); !strings.Contains(got, "oom_kill_disable 1") {
		t.Errorf("--oom-kill-disable: %q", got)
	}
	cliEventually(t, 10*time.Second, "line 300", func() bool { out, _, _ := h.run("logs", "--tail", "1", "noomk"); return out == "line 300\n" })
	logs, _ := filepath.Glob(filepath.Join(h.root, "containers", nid, nid+"-json.log*"))
	for _, l := range logs {
		if st, err := os.Stat(l); err != nil || st.Size() > 2048 {
			t.Errorf("log file %s: %v bytes (max-size=2k)", l, st.Size())
		}
	}
	if len(logs) != 2 {
		t.Errorf("log files with max-file=2: %v", logs)
	}
	h.expect(125, []string{"run", "--rm", "--network", "none", "--log-opt", "bogus=1", h.image, "true"}, "unknown log opt 'bogus'")
	if !strings.Contains(h.must("run", "--rm", "--network", "none", "--shm-size", "16m", h.image, "grep", "/dev/shm", "/proc/mounts"), "size=16384k") {
		t.Errorf("--shm-size 16m not applied")
	}

	// stats --no-stream shows the limit.
	out := h.must("stats", "--no-stream", "limited")
	if !regexp.MustCompile(`(?m)^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE / LIMIT\s+MEM %\s+PIDS\n` + id[:12] + `\s+limited\s+\d+\.\d\d%\s+\S+ / 200MiB\s+\d+\.\d\d%\s+1$`).MatchString(out) {
		t.Errorf("stats:\n%s", out)
	}
	// top lists the process.
	if out := h.must("top", "limited"); !regexp.MustCompile(`(?m)^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD\n.*sleep 60`).MatchString(out) {
		t.Errorf("top:\n%s", out)
	}

	// OOM: exit 137, OOMKilled.
	_, _, code := h.run("run", "--name", "oom", "--network", "none", "-m", "32m", "--memory-swap", "32m", h.image, "tail", "/dev/zero")
	if code != 137 {
		t.Errorf("OOM run exited %d, want 137", code)
	}
	if got := h.field("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"); got != "true 137" {
		t.Errorf("OOM inspect: %q", got)
	}

	// A fork bomb stops at --pids-limit: the forks past it fail, PID 1 goes on.
	bomb := h.runD("--pids-limit", "20", h.image, "sh", "-c", "(i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done); echo after; exec sleep 60")
	cliEventually(t, 20*time.Second, "the fork bomb to hit the limit", func() bool {
		out, _, _ := h.run("logs", bomb)
		return strings.Contains(out, "after")
	})
	if cur, _ := strconv.Atoi(cliCgroupFile(t, "pids", bomb, "pids.current")); cur > 20 || cur < 15 {
		t.Errorf("pids.current %d with --pids-limit 20", cur)
	}
	if _, logErr, _ := h.run("logs", bomb); !strings.Contains(logErr, "can't fork") {
		t.Errorf("no fork failure in the logs: %q", logErr)
	}
	if n := strings.Count(h.must("top", bomb), "sleep 30"); n > 19 || n < 10 {
		t.Errorf("%d sleeps with --pids-limit 20", n)
	}
}

func TestCLIStopKillPause(t *testing.T) {
	h := newCLIHost(t)
	// SIGTERM first: a trap ends cleanly.
	h.must("run", "-d", "--name", "polite", "--network", "none", h.image, "sh", "-c", `trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done`)
	cliEventually(t, 10*time.Second, "ready", func() bool { out, _, _ := h.run("logs", "polite"); return out == "ready\n" })
	start := time.Now()
	if out := h.must("stop", "polite"); out != "polite\n" {
		t.Errorf("stop printed %q", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop of a trapping container took %v", d)
	}
	if out := h.must("logs", "polite"); out != "ready\ngot TERM\n" {
		t.Errorf("logs after stop: %q", out)
	}
	if got := h.field("polite", "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 0" {
		t.Errorf("after stop: %q", got)
	}
	// Stop of a stopped container: nothing to do, exit 0.
	h.must("stop", "polite")
	// SIGTERM ignored: SIGKILL after -t.
	h.must("run", "-d", "--name", "stubborn", "--network", "none", h.image, "sh", "-c", `trap '' TERM; while true; do sleep 0.1; done`)
	start = time.Now()
	h.must("stop", "-t", "1", "stubborn")
	if d := time.Since(start); d < time.Second || d > 8*time.Second {
		t.Errorf("stop -t 1 took %v", d)
	}
	if got := h.field("stubborn", "{{.State.ExitCode}}"); got != "137" {
		t.Errorf("stubborn exit code %s, want 137", got)
	}
	// --stop-timeout is stop's default wait.
	h.must("run", "-d", "--name", "quick", "--network", "none", "--stop-timeout", "1", h.image, "sh", "-c", `trap '' TERM; while true; do sleep 0.1; done`)
	start = time.Now()
	h.must("stop", "quick")
	if d := time.Since(start); d < time.Second || d > 8*time.Second {
		t.Errorf("stop with --stop-timeout 1 took %v", d)
	}
	// --stop-signal and kill -s.
	h.must("run", "-d", "--name", "usr1", "--network", "none", "--stop-signal", "USR1", h.image, "sh", "-c", `trap 'echo USR1; exit 3' USR1; while true; do sleep 0.1; done`)
	time.Sleep(200 * time.Millisecond)
	h.must("stop", "usr1")
	if got := h.field("usr1", "{{.State.ExitCode}} {{.Config.StopSignal}}"); got != "3 USR1" {
		t.Errorf("--stop-signal: %q", got)
	}
	id := h.runD(h.image, "sh", "-c", `trap 'echo USR2; exit 4' USR2; while true; do sleep 0.1; done`)
	time.Sleep(200 * time.Millisecond)
	h.must("kill", "-s", "USR2", id)
	if out := h.must("wait", id); out != "4\n" {
		t.Errorf("kill -s USR2: wait %q", out)
	}
	h.expect(1, []string{"kill", id}, "is not running")
	h.expect(1, []string{"kill", "nosuch"}, "No such container: nosuch")

	// pause freezes a counter, unpause resumes it.
	h.must("run", "-d", "--name", "counter", "--network", "none", h.image, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done")
	cliEventually(t, 10*time.Second, "the counter", func() bool { out, _, _ := h.run("logs", "counter"); return strings.Count(out, "\n") > 3 })
	h.must("pause", "counter")
	if got := h.field("counter", "{{.State.Status}} {{.State.Paused}}"); got != "paused true" {
		t.Errorf("paused: %q", got)
	}
	if out := h.must("ps", "--filter", "name=counter", "--format", "{{.Status}}"); !strings.HasSuffix(strings.TrimSpace(out), "(Paused)") {
		t.Errorf("ps of a paused container: %q", out)
	}
	n1 := strings.Count(h.must("logs", "counter"), "\n")
	time.Sleep(600 * time.Millisecond)
	n2 := strings.Count(h.must("logs", "counter"), "\n")
	if n2 != n1 {
		t.Errorf("the counter went on while paused: %d → %d", n1, n2)
	}
	h.expect(1, []string{"exec", "counter", "true"}, "paused")
	h.expect(1, []string{"pause", "counter"}, "already paused")
	h.must("unpause", "counter")
	cliEventually(t, 5*time.Second, "the counter to go on", func() bool {
		return strings.Count(h.must("logs", "counter"), "\n") > n2+3
	})
	// restart: a new run (StartedAt moves), the counter starts again.
	before := h.field("counter", "{{.State.StartedAt}}")
	h.must("restart", "-t", "1", "counter")
	if after := h.field("counter", "{{.State.StartedAt}} {{.State.Status}}"); strings.HasPrefix(after, before) || !strings.HasSuffix(after, "running") {
		t.Errorf("restart: %q then %q", before, after)
	}
}

func TestCLIRestartPolicies(t *testing.T) {
	h := newCLIHost(t)
	h.must("run", "-d", "--name", "crashy", "--network", "none", "--restart", "always", h.image, "sh", "-c", "echo up; sleep 0.2; exit 1")
	var counts []int
	cliEventually(t, 30*time.Second, "RestartCount ≥ 3", func() bool {
		n, _ := strconv.Atoi(h.field("crashy", "{{.RestartCount}}"))
		if len(counts) == 0 || counts[len(counts)-1] != n {
			counts = append(counts, n)
		}
		return n >= 3
	})
	for i := 1; i < len(counts); i++ {
		if counts[i] < counts[i-1] {
			t.Errorf("RestartCount went down: %v", counts)
		}
	}
	if out := h.must("logs", "crashy"); strings.Count(out, "up\n") < 3 {
		t.Errorf("logs of the restarts: %q", out)
	}
	h.must("stop", "crashy")
	time.Sleep(500 * time.Millisecond)
	if got := h.field("crashy", "{{.State.Status}}"); got != "exited" {
		t.Errorf("always after stop: %q", got)
	}

	h.must("run", "-d", "--name", "us", "--network", "none", "--restart", "unless-stopped", h.image, "sleep", "60")
	h.must("stop", "-t", "0", "us")
	time.Sleep(time.Second)
	if got := h.field("us", "{{.State.Status}}"); got != "exited" {
		t.Errorf("unless-stopped came back after stop: %q", got)
	}
	h.must("run", "-d", "--name", "onfail", "--network", "none", "--restart", "on-failure:2", h.image, "sh", "-c", "exit 2")
	cliEventually(t, 20*time.Second, "on-failure:2 to give up", func() bool {
		return h.field("onfail", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
	})

	// system boot: always comes back even after a stop, unless-stopped does not.
	out := h.must("system", "boot")
	crashy := h.field("crashy", "{{.Id}}")
	if !strings.Contains(out, crashy) || strings.Contains(out, h.field("us", "{{.Id}}")) {
		t.Errorf("system boot started:\n%s", out)
	}
	h.must("rm", "-f", "crashy")
}

func TestCLIExecAttachLogs(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD("--name", "box", "-e", "FROM_RUN=1", h.image, "sh", "-c", "echo line1; sleep 0.2; echo err1 >&2; sleep 60")
	out, errs, code := h.run("exec", "box", "sh", "-c", "echo $FROM_RUN; echo to-err >&2; exit 9")
	if code != 9 || out != "1\n" || errs != "to-err\n" {
		t.Errorf("exec: %d %q %q", code, out, errs)
	}
	h.expect(127, []string{"exec", "box", "nope"}, "executable file not found")
	h.expect(126, []string{"exec", "box", "/bin/notexec"}, "permission denied")
	out = h.must("exec", "-u", "app", "-w", "/tmp", "-e", "X=y", "box", "sh", "-c", "id -un; pwd; echo $X")
	if out != "app\n/tmp\ny\n" {
		t.Errorf("exec -u -w -e: %q", out)
	}
	out, _, _ = h.runCtx(context.Background(), strings.NewReader("through exec\n"), "exec", "-i", "box", "cat")
	if out != "through exec\n" {
		t.Errorf("exec -i: %q", out)
	}
	if out := h.must("exec", "-t", "box", "tty"); out != "/dev/pts/0\r\n" && !strings.HasPrefix(out, "/dev/pts/") {
		t.Errorf("exec -t: %q", out)
	}
	h.must("exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d")
	cliEventually(t, 5*time.Second, "exec -d", func() bool { out, _, _ := h.run("exec", "box", "cat", "/tmp/d"); return out == "detached\n" })
	// The exec'd process runs in the container's cgroup and pid namespace.
	if out := h.must("exec", "box", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"); !strings.Contains(out, "sleep 60") {
		t.Errorf("exec sees PID 1 as %q", out)
	}
	// logs: stdout and stderr apart, --tail, -t.
	cliEventually(t, 5*time.Second, "err1 in the log", func() bool { _, errs, _ := h.run("logs", "box"); return errs == "err1\n" })
	out, errs, _ = h.run("logs", "box")
	if out != "line1\n" || errs != "err1\n" {
		t.Errorf("logs: %q %q", out, errs)
	}
	if out, errs, _ := h.run("logs", "-t", "--tail", "1", id); out != "" || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err1\n$`).MatchString(errs) {
		t.Errorf("logs -t --tail 1: %q %q", out, errs)
	}
	if out := h.must("logs", "--since", "1h", "box"); out != "line1\n" {
		t.Errorf("logs --since 1h: %q", out)
	}
	h.expect(1, []string{"exec", "nosuch", "true"}, "No such container")

	// logs -f follows until the container stops.
	h.must("run", "-d", "--name", "ticker", "--network", "none", h.image, "sh", "-c", "i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo tick $i; sleep 0.1; done")
	var fout cliBuffer
	logsF := h.background(nil, &fout, "logs", "-f", "ticker")
	cliEventually(t, 10*time.Second, "logs -f to show tick 5", func() bool { return strings.Contains(fout.String(), "tick 5\n") })
	cliEventually(t, 10*time.Second, "logs -f to follow to tick 10", func() bool { return strings.Contains(fout.String(), "tick 10\n") })
	h.must("stop", "-t", "0", "ticker")
	if err, ended := logsF.wait(10 * time.Second); !ended {
		t.Errorf("logs -f did not end when the container stopped")
	} else if err != nil {
		t.Errorf("logs -f ended with %v", err)
	}

	// attach to a container with stdin: input in, output out, for every attacher.
	h.must("run", "-d", "-i", "--name", "catter", "--network", "none", h.image, "cat")
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	var aout cliBuffer
	att := h.background(inR, &aout, "attach", "catter")
	time.Sleep(300 * time.Millisecond)
	inW.Write([]byte("hello attach\n"))
	cliEventually(t, 5*time.Second, "the echo through attach", func() bool { return aout.String() == "hello attach\n" })
	h.must("kill", "catter")
	if err, ended := att.wait(10 * time.Second); !ended {
		t.Errorf("attach did not end when the container was killed")
	} else if code := exitCode(err); code != 137 {
		t.Errorf("attach ended with %v, want the container's 137", err)
	}
	inW.Close()
	h.expect(1, []string{"attach", "catter"}, "You cannot attach to a stopped container")

	// ctrl-p ctrl-q detaches from a tty container, which goes on.
	h.must("run", "-d", "-it", "--name", "shell", "--network", "none", h.image, "sh")
	inR, inW, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	var tout cliBuffer
	tatt := h.background(inR, &tout, "attach", "shell")
	time.Sleep(300 * time.Millisecond)
	inW.Write([]byte("echo in-the-tty\n"))
	cliEventually(t, 5*time.Second, "the shell's answer", func() bool { return strings.Contains(tout.String(), "in-the-tty\r\n") })
	inW.Write([]byte{0x10, 0x11})
	if err, ended := tatt.wait(10 * time.Second); !ended {
		t.Errorf("ctrl-p ctrl-q did not detach")
	} else if err != nil {
		t.Errorf("detach: attach ended with %v, want 0", err)
	}
	if got := h.field("shell", "{{.State.Status}}"); got != "running" {
		t.Errorf("after detach: %q", got)
	}
	// Foreground run with a signal: SIGTERM reaches the container (sig-proxy).
	var rout cliBuffer
	fg := h.background(nil, &rout, "run", "--rm", "--network", "none", h.image, "sh", "-c", `trap 'echo got TERM; exit 12' TERM; echo waiting; while true; do sleep 0.1; done`)
	cliEventually(t, 10*time.Second, "the foreground container", func() bool { return strings.Contains(rout.String(), "waiting") })
	fg.cmd.Process.Signal(syscall.SIGTERM)
	if err, ended := fg.wait(10 * time.Second); !ended {
		t.Errorf("SIGTERM was not proxied to the container")
	} else if exitCode(err) != 12 || !strings.Contains(rout.String(), "got TERM") {
		t.Errorf("run after SIGTERM: %v %q", err, rout.String())
	}
}

func TestCLIMonitorKilled(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD("--name", "orphan", h.image, "sleep", "60")
	var st struct{ Pid, MonitorPid int }
	b, err := os.ReadFile(filepath.Join(h.root, "containers", id, "state.json"))
	if err != nil || json.Unmarshal(b, &st) != nil || st.Pid == 0 || st.MonitorPid == 0 {
		t.Fatalf("state.json: %v %s", err, b)
	}
	if err := syscall.Kill(st.MonitorPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cliEventually(t, 5*time.Second, "the monitor to die", func() bool { return !cliAlive(st.MonitorPid) })
	if !cliAlive(st.Pid) {
		t.Fatalf("the container died with its monitor")
	}
	if got := h.field("orphan", "{{.State.Status}} {{.State.Pid}}"); got != "running "+strconv.Itoa(st.Pid) {
		t.Errorf("inspect without a monitor: %q", got)
	}
	if out := h.must("ps", "--format", "{{.Names}} {{.State}}"); out != "orphan running\n" {
		t.Errorf("ps without a monitor: %q", out)
	}
	if out := h.must("exec", "orphan", "echo", "still here"); out != "still here\n" {
		t.Errorf("exec without a monitor: %q", out)
	}
	h.must("pause", "orphan")
	h.must("unpause", "orphan")
	h.must("stop", "-t", "0", "orphan")
	if got := h.field("orphan", "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 137" {
		t.Errorf("after stop without a monitor: %q", got)
	}
	h.must("start", "orphan")
	if got := h.field("orphan", "{{.State.Status}}"); got != "running" {
		t.Errorf("start again: %q", got)
	}
	b, _ = os.ReadFile(filepath.Join(h.root, "containers", id, "state.json"))
	json.Unmarshal(b, &st)
	h.must("rm", "-f", "orphan")
	cliAssertGone(t, h, id, st.Pid, st.MonitorPid)
}

func TestCLIRemove(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD("--name", "busy", h.image, "sh", "-c", "sleep 60 & sleep 60")
	h.expect(1, []string{"rm", "busy"}, "You cannot remove a running container "+id)
	var st struct{ Pid, MonitorPid int }
	b, _ := os.ReadFile(filepath.Join(h.root, "containers", id, "state.json"))
	json.Unmarshal(b, &st)
	if out := h.must("rm", "-f", "busy"); out != "busy\n" {
		t.Errorf("rm -f printed %q", out)
	}
	cliAssertGone(t, h, id, st.Pid, st.MonitorPid)
	h.expect(1, []string{"rm", "busy"}, "No such container: busy")
	// rm -f of what is gone: reported, exit 0 (idempotent, as Docker's CLI).
	h.expect(0, []string{"rm", "-f", "busy"}, "No such container: busy")

	// Two rm -f racing on one container: both end cleanly, nothing left.
	for round := 0; round < 5; round++ {
		id := h.runD(h.image, "sleep", "60")
		var wg sync.WaitGroup
		codes := make([]int, 2)
		errs := make([]string, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i], codes[i] = h.run("rm", "-f", id)
			}()
		}
		wg.Wait()
		if codes[0] != 0 || codes[1] != 0 {
			t.Errorf("round %d: racing rm -f: exit %v %q", round, codes, errs)
		}
		cliAssertGone(t, h, id)
	}
	if out := h.must("ps", "-aq"); out != "" {
		t.Errorf("containers left: %q", out)
	}
	// rm of a stopped container, container prune, rename.
	h.must("run", "--name", "done1", "--network", "none", h.image, "true")
	h.must("run", "--name", "done2", "--network", "none", h.image, "true")
	h.must("rename", "done2", "renamed")
	h.expect(1, []string{"rename", "renamed", "done1"}, `The container name "/done1" is already in use`)
	live := h.runD("--name", "live", h.image, "sleep", "60")
	h.must("rm", "done1")
	out := h.must("container", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers:\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("container prune:\n%s", out)
	}
	if out := h.must("container", "ls", "-aq", "--no-trunc"); out != live+"\n" {
		t.Errorf("after prune: %q", out)
	}
}

func TestCLIBadInput(t *testing.T) {
	h := newCLIHost(t)
	h.must("pull", "-q", h.image)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-m", "1x"}, `pull-run: invalid argument "1x" for "-m, --memory" flag: invalid suffix: 'x'`},
		{[]string{"--cpus", "-1"}, "pull-run: Range of CPUs is from 0.01 to"},
		{[]string{"-m", "4m"}, "pull-run: Minimum memory limit allowed is 6MB."},
		{[]string{"-m", "200m", "--memory-swap", "100m"}, "pull-run: Minimum memoryswap limit should be larger than memory limit, see usage."},
		{[]string{"--memory-reservation", "300m", "-m", "200m"}, "Minimum memory limit can not be less than memory reservation limit"},
		{[]string{"--cpus", "1", "--cpu-quota", "50000"}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"},
		{[]string{"--blkio-weight", "5"}, "Range of blkio weight is from 10 to 1000"},
		{[]string{"--restart", "sometimes"}, "invalid restart policy"},
		{[]string{"--rm", "--restart", "always"}, "Conflicting options: --restart and --rm"},
		{[]string{"--network", "container:"}, "invalid container format container:<name|id>"},
		{[]string{"--ip", "10.9.9.9"}, "user specified IP address is supported on user defined networks only"},
		{[]string{"-p", "99999:80"}, "Invalid hostPort"},
		{[]string{"--network", "mynet"}, "network mynet not found"},
		{[]string{"--ulimit", "nofile=2:1"}, "ulimit soft limit must be less than or equal to hard limit"},
		{[]string{"--cap-add", "NOPE"}, "NOPE"},
		{[]string{"--pull", "sometimes"}, "invalid pull option"},
		{[]string{"-w", "relative"}, "the working directory 'relative' is invalid, it needs to be an absolute path"},
		{[]string{"--bogus"}, "pull-run: unknown flag: --bogus"},
	} {
		args := append(append([]string{"run", "--rm", "--network", "none"}, c.args...), h.image, "true")
		if _, errs := h.expect(125, args, c.msg); !strings.Contains(errs, "pull-run: ") {
			t.Errorf("%v: no pull-run: prefix: %q", c.args, errs)
		}
	}
	h.expect(125, []string{"run", "--rm", "--network", "none", h.addr + "/nosuch:1", "true"}, "Unable to find image", "nosuch")
	h.expect(125, []string{"run", "--rm", "--pull", "never", "--network", "none", h.addr + "/nosuch:1", "true"}, "No such image: "+h.addr+"/nosuch:1")
	h.expect(125, []string{"create", "-m", "1x", h.image}, "invalid suffix")
	h.must("run", "-d", "--name", "taken", "--network", "none", h.image, "sleep", "60")
	h.expect(125, []string{"run", "--name", "taken", "--network", "none", h.image, "true"}, `The container name "/taken" is already in use by container`)
	h.expect(125, []string{"run", "--name", "bad/name", "--network", "none", h.image, "true"}, "Invalid container name")
	// Nothing half-made is left by the failures.
	if out := h.must("ps", "-a", "--format", "{{.Names}}"); out != "taken\n" {
		t.Errorf("containers after the failures: %q", out)
	}
	h.expect(1, []string{"stop", "nosuch"}, "No such container: nosuch")
	h.expect(1, []string{"start", "nosuch"}, "No such container: nosuch")
	h.expect(1, []string{"inspect", "nosuch"}, "No such object: nosuch")

	// An image a container uses cannot be removed.
	h.expect(1, []string{"rmi", h.image}, "container is using its referenced image")
	h.must("rm", "-f", "taken")
	h.must("rmi", h.image)
}

// TestCLIHostileImage: the image config is untrusted: a WORKDIR through a symlink to
// /proc/self/fd, or at /proc/self/fd itself, never gives the process a working directory
// outside the container (CVE-2024-21626), and a STOPSIGNAL that is no signal is refused.
func TestCLIHostileImage(t *testing.T) {
	h := newCLIHost(t)
	for i, wd := range []string{"/escape", "/proc/self/fd/7", "/proc/self/cwd", "/escape/.."} {
		cfg := cliDefaultConfig
		cfg.WorkingDir = wd
		ref := fmt.Sprintf("hostile:%d", i)
		h.push(ref, cfg, plS("escape", "/proc/self/fd/7"))
		out, errs, code := h.run("run", "--rm", "--network", "none", h.addr+"/"+ref, "sh", "-c", "pwd; ls -a")
		if code == 0 {
			// Accepted: the directory must be inside the container.
			if strings.Contains(out, "berth") || strings.Contains(out, "var/tmp") || strings.Contains(out, "containers") {
				t.Errorf("WORKDIR %s: a host directory: %q", wd, out)
			}
			continue
		}
		if code != 125 && code != 126 && code != 127 || !strings.Contains(errs, "pull-run: ") {
			t.Errorf("WORKDIR %s: exit %d, stderr %q", wd, code, errs)
		}
	}
	cfg := cliDefaultConfig
	cfg.StopSignal = "SIGNOPE"
	h.push("badstop:1", cfg)
	h.expect(125, []string{"run", "--rm", "--network", "none", h.addr + "/badstop:1", "true"}, "pull-run: ")
}

func TestCLIPsInspectFormats(t *testing.T) {
	h := newCLIHost(t)
	id := h.runD("--name", "web", "-l", "tier=front", h.image, "sleep", "60")
	h.expect(3, []string{"run", "--name", "failed", "--network", "none", h.image, "sh", "-c", "exit 3"})
	out := h.must("ps")
	re := regexp.MustCompile(`^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\n` +
		id[:12] + `\s+` + regexp.QuoteMeta(h.image) + `\s+"sleep 60"\s+(Less than a second|\d+ seconds?) ago\s+Up (Less than a second|\d+ seconds?)\s+web\n$`)
	if !re.MatchString(out) {
		t.Errorf("ps:\n%s", out)
	}
	out = h.must("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}")
	if !regexp.MustCompile(`^failed Exited \(3\) (Less than a second|\d+ seconds?) ago\n$`).MatchString(out) {
		t.Errorf("ps --filter status=exited: %q", out)
	}
	for filter, want := range map[string]string{"label=tier=front": "web\n", "exited=3": "failed\n", "name=fail": "failed\n", "ancestor=" + h.image: "failed\nweb\n"} {
		if out := h.must("ps", "-a", "--filter", filter, "--format", "{{.Names}}"); out != want {
			t.Errorf("ps --filter %s: %q, want %q", filter, out, want)
		}
	}
	out = h.must("ps", "--format", "json")
	var row map[string]any
	if err := json.Unmarshal([]byte(out), &row); err != nil || row["ID"] != id[:12] || row["Names"] != "web" || row["State"] != "running" ||
		row["Command"] != `"sleep 60"` || row["Labels"] != "tier=front" || row["Networks"] != "none" {
		t.Errorf("ps --format json: %q (%v)", out, err)
	}
	if out := h.must("ps", "-q", "--no-trunc"); out != id+"\n" {
		t.Errorf("ps -q --no-trunc: %q", out)
	}
	out = h.must("ps", "--no-trunc", "--format", "{{.Command}}")
	if out != "\"sleep 60\"\n" {
		t.Errorf("--no-trunc command: %q", out)
	}
	h.expect(1, []string{"ps", "--filter", "status=bogus"}, "Invalid filter 'status=bogus'")

	// inspect: Docker's JSON array, containers and images, -f templates.
	c := h.inspect("web")
	if c["Id"] != id || c["Name"] != "/web" || c["Image"] != h.imageID || c["Path"] != "sleep" {
		t.Errorf("inspect: Id %v Name %v Image %v Path %v", c["Id"], c["Name"], c["Image"], c["Path"])
	}
	state := c["State"].(map[string]any)
	for _, k := range []string{"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error", "StartedAt", "FinishedAt"} {
		if _, ok := state[k]; !ok {
			t.Errorf("inspect State lacks %s", k)
		}
	}
	for _, k := range []string{"Config", "HostConfig", "Mounts", "RestartCount", "GraphDriver", "NetworkSettings", "LogPath", "HostnamePath", "HostsPath", "ResolvConfPath"} {
		if _, ok := c[k]; !ok {
			t.Errorf("inspect lacks %s", k)
		}
	}
	if got := h.field("web", "{{.State.Running}} {{.HostConfig.NetworkMode}} {{json .Config.Cmd}} {{.Config.Image}}"); got != `true none ["sleep","60"] `+h.image {
		t.Errorf("inspect -f: %q", got)
	}
	out = h.must("inspect", "-f", "{{.Id}}", "web", h.image)
	if out != id+"\n"+h.imageID+"\n" {
		t.Errorf("inspect of a container and an image: %q", out)
	}
	out, _ = h.expect(1, []string{"inspect", "web", "nosuch"}, "Error: No such object: nosuch")
	var arr []any
	if json.Unmarshal([]byte(out), &arr) != nil || len(arr) != 1 {
		t.Errorf("inspect with a missing object: %q", out)
	}
	h.expect(1, []string{"inspect", "--type", "image", "web"}, "No such image: web")
	// Docker's `container` aliases.
	if out := h.must("container", "ls", "--format", "{{.Names}}"); out != "web\n" {
		t.Errorf("container ls: %q", out)
	}
	if out := h.must("container", "inspect", "-f", "{{.Name}}", "web"); out != "/web\n" {
		t.Errorf("container inspect: %q", out)
	}
}

// TestCLIStartManyRunRm runs a batch of containers the way the benchmark does (run -d,
// then rm -f of them all) and checks nothing is left.
func TestCLIStartManyRunRm(t *testing.T) {
	h := newCLIHost(t)
	h.must("pull", "-q", h.image)
	var ids []string
	for range 10 {
		ids = append(ids, h.runD(h.image, "sleep", "60"))
	}
	out := h.must(append([]string{"rm", "-f"}, ids...)...)
	if sc := bufio.NewScanner(strings.NewReader(out)); true {
		n := 0
		for sc.Scan() {
			n++
		}
		if n != len(ids) {
			t.Errorf("rm -f printed %d lines for %d containers", n, len(ids))
		}
	}
	for _, id := range ids {
		cliAssertGone(t, h, id)
	}
}
