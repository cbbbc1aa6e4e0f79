//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/cgroups"
	"github.com/berth-registry/berth/runner/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The TestRuntime* tests run real containers with runner/container as root: a busybox-static
// rootfs built here, a runtime-spec written by hand (Docker's defaults), the test binary
// itself re-executed (from a sealed memfd) as the containers' init.

func init() {
	// The test binary is the containers' init: in that role Main never returns.
	container.Main()
}

const rtDockerCaps = "00000000a80425fb"

var rtApplets = []string{
	"sh", "echo", "cat", "ls", "id", "hostname", "sleep", "ps", "mount", "touch", "true",
	"false", "wget", "env", "pwd", "tty", "stty", "readlink", "grep", "wc", "tail", "head",
	"ulimit", "kill", "test", "stat", "mkdir", "rm", "dd", "sync",
}

var rtBusybox struct {
	sync.Mutex
	dir string
}

// rtBusyboxDir returns a read-only busybox rootfs shared as the lower layer of the
// overlays (made by the first test that needs it, removed at its end).
func rtBusyboxDir(t testing.TB) string {
	t.Helper()
	rtBusybox.Lock()
	defer rtBusybox.Unlock()
	if rtBusybox.dir != "" {
		return rtBusybox.dir
	}
	dir, err := os.MkdirTemp("", "berth-rt-busybox-")
	if err != nil {
		t.Fatal(err)
	}
	if err := rtMakeRootfs(dir); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	rtBusybox.dir = dir
	t.Cleanup(func() {
		rtBusybox.Lock()
		defer rtBusybox.Unlock()
		os.RemoveAll(dir)
		rtBusybox.dir = ""
	})
	return dir
}

func rtMakeRootfs(dir string) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("busybox-static is needed: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "data-src"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	for _, a := range rtApplets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
		"etc/motd":   "from the image\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	// Not executable, for the 126 test.
	return os.WriteFile(filepath.Join(dir, "bin", "notexec"), []byte("#!/bin/sh\necho no\n"), 0o644)
}

// rtRootfs returns a fresh busybox rootfs directory for one test.
func rtRootfs(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := rtMakeRootfs(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rtOverlay returns an overlay Rootfs over the shared busybox layer.
func rtOverlay(t testing.TB) container.Rootfs {
	t.Helper()
	base := t.TempDir()
	r := container.Rootfs{
		Path:  filepath.Join(base, "rootfs"),
		Lower: []string{rtBusyboxDir(t)},
		Upper: filepath.Join(base, "upper"),
		Work:  filepath.Join(base, "work"),
	}
	for _, d := range []string{r.Path, r.Upper, r.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// rtSpec is a spec like the one Docker writes for `docker run --network none IMAGE args`.
func rtSpec(rootfs string, args ...string) *specs.Spec {
	caps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 1024}},
		},
		Hostname: "rt-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
			},
			MaskedPaths: []string{
				"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
				"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

type rtResult struct {
	stdout, stderr string
	status         container.ExitStatus
}

// rtRun starts cfg with pipes for stdout/stderr, waits and returns the output.
func rtRun(t testing.TB, cfg *container.Config) (rtResult, error) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stdout, cfg.Stderr = outW, errW
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := container.Start(ctx, cfg)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return rtResult{}, err
	}
	var wg sync.WaitGroup
	var out, serr []byte
	wg.Add(2)
	go func() { defer wg.Done(); out, _ = io.ReadAll(outR) }()
	go func() { defer wg.Done(); serr, _ = io.ReadAll(errR) }()
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			p.Signal(syscall.SIGKILL)
		}
	}()
	st, err := p.Wait()
	close(done)
	wg.Wait()
	outR.Close()
	errR.Close()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return rtResult{string(out), string(serr), st}, nil
}

// rtMust runs args in a fresh container (spec adjusted by edit) and checks the exit code.
func rtMust(t *testing.T, code int, edit func(*container.Config), args ...string) rtResult {
	t.Helper()
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t)}
	cfg.Spec = rtSpec("", args...)
	if edit != nil {
		edit(cfg)
	}
	r, err := rtRun(t, cfg)
	if err != nil {
		t.Fatalf("%q: Start: %v", args, err)
	}
	if r.status.Code != code {
		t.Fatalf("%q: exit %v, want %d\nstdout: %s\nstderr: %s", args, r.status, code, r.stdout, r.stderr)
	}
	return r
}

func rtID(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	name := strings.ToLower(strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return name + "-" + hex.EncodeToString(b)
}

func rtCgroup(t *testing.T, res *cgroups.Resources) cgroups.Manager {
	t.Helper()
	m, err := cgroups.New("berth-test/" + rtID(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(res); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("cgroup Destroy: %v", err)
		}
		for _, d := range m.Paths() {
			os.Remove(filepath.Dir(d))
		}
	})
	return m
}

func rtStatusField(status, field string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestRuntimeOutputAndExitCodes(t *testing.T) {
	r := rtMust(t, 0, nil, "echo", "hello", "world")
	if r.stdout != "hello world\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	rtMust(t, 3, nil, "sh", "-c", "echo oops >&2; exit 3")
	r = rtMust(t, 0, nil, "sh", "-c", "echo err >&2")
	if r.stderr != "err\n" {
		t.Errorf("stderr %q", r.stderr)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nonexistent-cmd"}, 127, `exec: "nonexistent-cmd": executable file not found in $PATH`},
		{[]string{"/bin/nope"}, 127, `exec: "/bin/nope": stat /bin/nope: no such file or directory`},
		{[]string{"/bin/notexec"}, 126, `exec: "/bin/notexec": permission denied`},
		{[]string{"/etc"}, 126, `exec: "/etc": is a directory`},
	} {
		cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Spec: rtSpec("", tc.args...)}
		_, err := rtRun(t, cfg)
		var se *container.StartError
		if !errors.As(err, &se) {
			t.Fatalf("%q: err %v, want a StartError", tc.args, err)
		}
		if se.Code != tc.code || se.Msg != tc.msg {
			t.Errorf("%q: code %d msg %q, want %d %q", tc.args, se.Code, se.Msg, tc.code, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), "unable to start container process: exec: ") {
			t.Errorf("error text %q", err)
		}
	}

	// A signal gives 128+n; PID 1 of a pid namespace ignores SIGTERM without a handler,
	// as in Docker.
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Spec: rtSpec("", "sleep", "30")}
	p, err := container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	if err := p.Signal(0); err != nil {
		t.Errorf("sleep as PID 1 died of SIGTERM: %v", err)
	}
	p.Signal(syscall.SIGKILL)
	st, _ := p.Wait()
	if st.Code != 137 || st.Signal != syscall.SIGKILL {
		t.Errorf("after SIGKILL: %v, want 137", st)
	}
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after Wait: %v", err)
	}
}

func TestRuntimeIsolation(t *testing.T) {
	t.Run("pid namespace", func(t *testing.T) {
		r := rtMust(t, 0, nil, "sh", "-c", "ps -o pid,comm; true") // "; true": sh does not exec ps
		// Only sh (PID 1) and ps. (ps does not get PID 2: the init's Go threads used a few
		// pids of the namespace before the exec, as runc's do in Docker.)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 {
			t.Fatalf("ps shows %d processes:\n%s", len(lines)-1, r.stdout)
		}
		if f := strings.Fields(lines[1]); f[0] != "1" || f[1] != "sh" {
			t.Errorf("PID 1 is not sh: %q", lines[1])
		}
		if f := strings.Fields(lines[2]); f[1] != "ps" {
			t.Errorf("second process is not ps: %q", lines[2])
		}
	})
	t.Run("hostname env cwd", func(t *testing.T) {
		r := rtMust(t, 0, func(c *container.Config) {
			c.Spec.Hostname = "box1"
			c.Spec.Process.Env = append(c.Spec.Process.Env, "FOO=bar baz")
			c.Spec.Process.Cwd = "/work/dir"
		}, "sh", "-c", `hostname; echo "$FOO"; pwd; ulimit -n`)
		if r.stdout != "box1\nbar baz\n/work/dir\n1024\n" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("user nobody", func(t *testing.T) {
		r := rtMust(t, 0, func(c *container.Config) {
			c.Spec.Process.User = specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{5}}
		}, "sh", "-c", "id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|CapPrm):' /proc/self/status")
		lines := strings.Split(r.stdout, "\n")
		if lines[0] != "65534" || lines[1] != "65534" || lines[2] != "65534 5" {
			t.Errorf("ids %q", r.stdout)
		}
		if got := rtStatusField(r.stdout, "CapEff"); got != "0000000000000000" {
			t.Errorf("nobody CapEff %s", got)
		}
		if got := rtStatusField(r.stdout, "CapBnd"); got != rtDockerCaps {
			t.Errorf("nobody CapBnd %s", got)
		}
	})
	t.Run("capabilities", func(t *testing.T) {
		r := rtMust(t, 0, nil, "cat", "/proc/self/status")
		for _, f := range []string{"CapEff", "CapPrm", "CapBnd"} {
			if got := rtStatusField(r.stdout, f); got != rtDockerCaps {
				t.Errorf("root %s = %s, want %s", f, got, rtDockerCaps)
			}
		}
		if got := rtStatusField(r.stdout, "CapInh"); got != "0000000000000000" {
			t.Errorf("CapInh %s", got)
		}
		if got := rtStatusField(r.stdout, "NoNewPrivs"); got != "0" {
			t.Errorf("NoNewPrivs %s", got)
		}
		// nil capabilities are Docker's default, never all of them.
		r = rtMust(t, 0, func(c *container.Config) {
			c.Spec.Process.Capabilities = nil
			c.Spec.Process.NoNewPrivileges = true
		}, "cat", "/proc/self/status")
		if got := rtStatusField(r.stdout, "CapEff"); got != rtDockerCaps {
			t.Errorf("default CapEff %s", got)
		}
		if got := rtStatusField(r.stdout, "NoNewPrivs"); got != "1" {
			t.Errorf("NoNewPrivs %s", got)
		}
		// cap-drop ALL + cap-add NET_ADMIN for a non-root user, ambient.
		r = rtMust(t, 0, func(c *container.Config) {
			c.Spec.Process.User = specs.User{UID: 1000, GID: 1000}
			na := []string{"CAP_NET_ADMIN"}
			c.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: na, Effective: na, Permitted: na, Inheritable: na, Ambient: na}
		}, "cat", "/proc/self/status")
		if got := rtStatusField(r.stdout, "CapEff"); got != "0000000000001000" {
			t.Errorf("ambient NET_ADMIN CapEff %s", got)
		}
	})
	t.Run("masked and read-only paths", func(t *testing.T) {
		r := rtMust(t, 0, nil, "sh", "-c", `
			wc -c < /proc/timer_list
			wc -c < /proc/keys
			ls /sys/firmware | wc -l
			echo 1 > /proc/sys/kernel/domainname && echo WROTE-PROC-SYS
			touch /sys/kernel/x 2>/dev/null && echo WROTE-SYS
			echo 1 > /proc/sysrq-trigger && echo WROTE-SYSRQ
			grep -c ' /sys/fs/cgroup/memory ro,' /proc/self/mountinfo
			touch /sys/fs/cgroup/memory/x 2>/dev/null && echo WROTE-CGROUP
			true`)
		if strings.Contains(r.stdout, "WROTE") {
			t.Errorf("wrote into a read-only path:\n%s", r.stdout)
		}
		lines := strings.Split(r.stdout, "\n")
		if len(lines) < 4 || lines[0] != "0" || lines[1] != "0" || lines[2] != "0" || lines[3] != "1" {
			t.Errorf("timer_list/keys/firmware/cgroup: %q", r.stdout)
		}
		if host, _ := os.ReadFile("/proc/timer_list"); len(host) == 0 {
			t.Errorf("/proc/timer_list is empty on the host: the test proves nothing")
		}
		if !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
	t.Run("read-only root and sysctl", func(t *testing.T) {
		r := rtMust(t, 0, func(c *container.Config) {
			c.Spec.Root.Readonly = true
			c.Spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_unprivileged_port_start": "123", "kernel.msgmax": "4242"}
		}, "sh", "-c", "touch /x 2>&1; touch /dev/shm/ok && echo shm-ok; cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/msgmax")
		if !strings.Contains(r.stdout, "Read-only file system") || !strings.Contains(r.stdout, "shm-ok\n123\n4242\n") {
			t.Errorf("stdout %q", r.stdout)
		}
		// They were the container's namespaces' sysctls.
		if host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); strings.TrimSpace(string(host)) == "123" {
			t.Errorf("the host's ip_unprivileged_port_start changed")
		}
		if host, _ := os.ReadFile("/proc/sys/kernel/msgmax"); strings.TrimSpace(string(host)) == "4242" {
			t.Errorf("the host's msgmax changed")
		}
	})
	t.Run("no pivot_root", func(t *testing.T) {
		// MS_MOVE + chroot (the fallback for a rootfs on ramfs): the host's other mounts
		// are detached first.
		r := rtMust(t, 0, func(c *container.Config) { c.NoPivotRoot = true }, "sh", "-c",
			"cat /etc/motd; hostname; grep -c . /proc/self/mountinfo; grep -c '/sys/fs/cgroup/memory ro' /proc/self/mountinfo")
		lines := strings.Split(r.stdout, "\n")
		if len(lines) < 4 || lines[0] != "from the image" || lines[1] != "rt-test" || lines[3] != "1" {
			t.Errorf("stdout %q", r.stdout)
		}
		host, _ := os.ReadFile("/proc/self/mountinfo")
		t.Logf("mounts: %s in the container, %d on the host", lines[2], strings.Count(string(host), "\n"))
	})
	t.Run("devices", func(t *testing.T) {
		r := rtMust(t, 0, nil, "sh", "-c", "ls /dev | sort | tr '\\n' ' '; echo; head -c 4 /dev/zero | wc -c; readlink /dev/ptmx; readlink /dev/fd")
		want := "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
		if _, err := os.Stat("/proc/kcore"); err != nil {
			want = strings.TrimPrefix(want, "core ")
		}
		if !strings.HasPrefix(r.stdout, want+"\n") {
			t.Errorf("/dev: %q", r.stdout)
		}
		if !strings.Contains(r.stdout, "\n4\npts/ptmx\n/proc/self/fd\n") {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("extra files and hooks", func(t *testing.T) {
		pr, pw, _ := os.Pipe()
		defer pr.Close()
		hostDir := t.TempDir()
		var hookPid int
		r := rtMust(t, 0, func(c *container.Config) {
			c.ExtraFiles = []*os.File{pw}
			c.Spec.Mounts = append(c.Spec.Mounts, specs.Mount{Destination: "/hook", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro"}})
			c.Hooks = []func(int) error{func(pid int) error {
				hookPid = pid
				return os.WriteFile(filepath.Join(hostDir, "f"), []byte("hook ran\n"), 0o644)
			}}
		}, "sh", "-c", "cat /hook/f; echo via-fd3 >&3; ls /proc/self/fd | tr '\\n' ' '")
		pw.Close()
		got, _ := io.ReadAll(pr)
		if string(got) != "via-fd3\n" || !strings.HasPrefix(r.stdout, "hook ran\n") || hookPid == 0 {
			t.Errorf("fd3 %q stdout %q hook pid %d", got, r.stdout, hookPid)
		}
		if !strings.HasSuffix(r.stdout, "0 1 2 3 4 ") { // 3 is the pipe, 4 ls's directory
			t.Errorf("fds %q", r.stdout)
		}
	})
}

// TestRuntimeFDsAndCwdCVE202421626: a descriptor the parent leaks (not close-on-exec, to
// the host's /) is invisible in the container, and a working directory through
// /proc/self/fd/N fails instead of landing on the host.
func TestRuntimeFDsAndCwdCVE202421626(t *testing.T) {
	leak, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)

	r := rtMust(t, 0, nil, "ls", "/proc/self/fd")
	if got := strings.Fields(r.stdout); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Errorf("descriptors in the container: %q, want 0 1 2 3 (3: ls's own)", got)
	}
	for _, fd := range []int{leak, 3, 4, 5, 6, 7, 8} {
		cwd := "/proc/self/fd/" + strconv.Itoa(fd)
		cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Spec: rtSpec("", "sh", "-c", "pwd; ls")}
		cfg.Spec.Process.Cwd = cwd
		r, err := rtRun(t, cfg)
		if err == nil {
			t.Errorf("cwd %s: started (%q); want an error", cwd, r.stdout)
			continue
		}
		if !strings.Contains(err.Error(), "cwd") {
			t.Errorf("cwd %s: error %v", cwd, err)
		}
	}
	// Symlinks and ".." stay inside.
	root := rtRootfs(t)
	os.Symlink("/../../../../../", filepath.Join(root, "up"))
	for _, cwd := range []string{"/../../../..", "/up", "/up/tmp"} {
		cfg := &container.Config{ID: rtID(t), Spec: rtSpec(root, "sh", "-c", "pwd; ls /")}
		cfg.Spec.Process.Cwd = cwd
		r, err := rtRun(t, cfg)
		if err != nil {
			t.Fatalf("cwd %s: %v", cwd, err)
		}
		if !strings.Contains(r.stdout, "busybox") && !strings.Contains(r.stdout, "data-src") {
			t.Errorf("cwd %s: %q", cwd, r.stdout)
		}
		t.Logf("cwd %s → %s", cwd, strings.SplitN(r.stdout, "\n", 2)[0])
	}
}

// TestRuntimeMemfdCVE20195736: the init runs from a sealed memfd copy of the binary, which
// cannot be written, and the host binary is never reachable through /proc/<pid>/exe.
func TestRuntimeMemfdCVE20195736(t *testing.T) {
	f, err := container.ExecutableMemfd()
	if err != nil {
		t.Fatal(err)
	}
	if err := container.CheckSealed(f); err != nil {
		t.Fatal(err)
	}
	seals, _ := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	t.Logf("memfd %s seals %#x", f.Name(), seals)
	if _, err := unix.Pwrite(int(f.Fd()), []byte("x"), 0); err != unix.EPERM && err != unix.EBADF {
		t.Errorf("pwrite on the memfd: %v, want EPERM", err)
	}
	w, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_WRONLY, 0)
	if err == nil {
		_, err = w.Write([]byte("x"))
		w.Close()
	}
	if err == nil {
		t.Error("write through /proc/self/fd/N of the memfd succeeded")
	}

	// A running init (the reaper stays around) is the memfd.
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Reaper: true, Spec: rtSpec("", "sleep", "30")}
	p, err := container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer p.Signal(syscall.SIGKILL)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(exe, "/memfd:berth-init") {
		t.Errorf("init's exe is %q, want the memfd", exe)
	}
	for _, flag := range []int{os.O_WRONLY, os.O_RDWR} {
		w, err := os.OpenFile(fmt.Sprintf("/proc/%d/exe", p.Pid), flag, 0)
		if err == nil {
			_, err = w.Write([]byte("x"))
			w.Close()
		}
		if err == nil {
			t.Errorf("wrote to /proc/%d/exe", p.Pid)
		} else {
			t.Logf("write to the init's exe: %v", err)
		}
	}
	selfExe, _ := os.Readlink("/proc/self/exe")
	if exe == selfExe {
		t.Errorf("the init runs the binary on disk")
	}
}

// TestRuntimeMountTargets: mount targets are resolved inside the rootfs, whatever symlinks
// the image holds; the host is never touched.
func TestRuntimeMountTargets(t *testing.T) {
	root := rtRootfs(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "marker-rt"), []byte("from the volume\n"), 0o644)
	os.Symlink("/etc", filepath.Join(root, "data"))                          // absolute
	os.Symlink("../../../../../../etc", filepath.Join(root, "data2"))        // relative, climbing
	os.Symlink("/nonexistent-rt/deeper", filepath.Join(root, "dangling"))    // dangling
	os.Symlink("/etc/hostfile-rt-test", filepath.Join(root, "danglingfile")) // dangling file
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("a file\n"), 0o644)

	before, _ := os.ReadDir("/etc")
	cfg := &container.Config{ID: rtID(t), Spec: rtSpec(root, "sh", "-c",
		"cat /etc/marker-rt; cat /etc/sub/marker-rt; cat /nonexistent-rt/deeper/marker-rt; cat /etc/hostfile-rt-test; cat /etc/motd")}
	cfg.Spec.Mounts = append(cfg.Spec.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind"}},
		specs.Mount{Destination: "/data2/sub", Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/dangling", Type: "bind", Source: src, Options: []string{"rbind"}},
		specs.Mount{Destination: "/danglingfile", Type: "bind", Source: file, Options: []string{"bind"}},
	)
	r, err := rtRun(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "from the volume\nfrom the volume\nfrom the volume\na file\n"
	if r.stdout != want || r.status.Code != 1 { // /etc/motd is hidden by the volume
		t.Errorf("stdout %q (exit %v), want %q\nstderr %s", r.stdout, r.status, want, r.stderr)
	}
	for _, p := range []string{"/etc/marker-rt", "/etc/sub", "/nonexistent-rt", "/etc/hostfile-rt-test"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was created on the host", p)
		}
	}
	after, _ := os.ReadDir("/etc")
	if len(after) != len(before) {
		t.Errorf("host /etc changed: %d → %d entries", len(before), len(after))
	}
	// /data2/sub and /danglingfile resolve to /etc/..., which is the volume at that point.
	for _, p := range []string{filepath.Join(root, "nonexistent-rt/deeper"), filepath.Join(src, "sub"), filepath.Join(src, "hostfile-rt-test")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("mount target not created where expected: %v", err)
		}
	}

	// A mount onto a path inside /proc is refused.
	cfg = &container.Config{ID: rtID(t), Spec: rtSpec(root, "true")}
	cfg.Spec.Mounts = append(cfg.Spec.Mounts, specs.Mount{Destination: "/proc/self/attr", Type: "bind", Source: src, Options: []string{"rbind"}})
	if _, err := rtRun(t, cfg); err == nil || !strings.Contains(err.Error(), "inside /proc") {
		t.Errorf("mount into /proc: %v", err)
	}
}

func TestRuntimeTerminal(t *testing.T) {
	for _, reaper := range []bool{false, true} {
		t.Run(fmt.Sprintf("reaper=%v", reaper), func(t *testing.T) { rtTerminal(t, reaper) })
	}
}

func rtTerminal(t *testing.T, reaper bool) {
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Reaper: reaper,
		Spec: rtSpec("", "sh", "-c", "tty; stty size; ls -l /dev/console | wc -l; ps -o pid,comm | grep -c init; true")}
	cfg.Spec.Process.Terminal = true
	cfg.Spec.Process.ConsoleSize = &specs.Box{Height: 40, Width: 132}
	p, err := container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Console == nil {
		t.Fatal("no console")
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, p.Console); close(done) }()
	st, _ := p.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("console not closed")
	}
	p.Console.Close()
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	want := "/dev/pts/0\n40 132\n1\n0\n"
	if reaper {
		want = "/dev/pts/0\n40 132\n1\n1\n"
	}
	if st.Code != 0 || got != want {
		t.Errorf("exit %v, output %q", st, got)
	}
}

func TestRuntimeReaper(t *testing.T) {
	r := rtMust(t, 0, func(c *container.Config) { c.Reaper = true },
		"sh", "-c", "(sleep 0.1 &); sleep 0.6; ps -o pid,stat,comm; grep CapEff /proc/1/status; readlink /proc/1/exe || echo exe-denied")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "berth-init") || !strings.HasPrefix(strings.TrimSpace(lines[1]), "1 ") {
		t.Errorf("PID 1 is not the reaper:\n%s", r.stdout)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "Z") {
			t.Errorf("zombie: %q\n%s", l, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "CapEff:\t0000000000000000") {
		t.Errorf("reaper keeps capabilities:\n%s", r.stdout)
	}
	// The reaper is not dumpable: the container cannot even look at its executable.
	if !strings.HasSuffix(r.stdout, "exe-denied\n") {
		t.Errorf("/proc/1/exe of the reaper is readable in the container:\n%s", r.stdout)
	}
	rtMust(t, 7, func(c *container.Config) { c.Reaper = true }, "sh", "-c", "exit 7")

	// SIGTERM reaches the command (which, not PID 1, dies of it).
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Reaper: true, Spec: rtSpec("", "sleep", "30")}
	p, err := container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	p.Signal(syscall.SIGTERM)
	st, _ := p.Wait()
	if st.Code != 143 {
		t.Errorf("after SIGTERM: %v, want 143", st)
	}
	// The trap of a shell runs, with the forwarded signal.
	cfg = &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Reaper: true,
		Spec: rtSpec("", "sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.05; done")}
	p, err = container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	p.Signal(syscall.SIGUSR1)
	if st, _ := p.Wait(); st.Code != 42 {
		t.Errorf("trap: %v, want 42", st)
	}
	// Exec failures are reported by the reaper too.
	cfg = &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Reaper: true, Spec: rtSpec("", "nope")}
	var se *container.StartError
	if _, err := rtRun(t, cfg); !errors.As(err, &se) || se.Code != 127 {
		t.Errorf("reaper, missing command: %v", err)
	}
}

func TestRuntimeExec(t *testing.T) {
	cg := rtCgroup(t, &cgroups.Resources{PidsLimit: 50})
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Cgroup: cg, Spec: rtSpec("", "sleep", "30")}
	cfg.Spec.Hostname = "exec-box"
	init, err := container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer init.Wait()
	defer init.Signal(syscall.SIGKILL)

	exec := func(t *testing.T, edit func(*container.ExecConfig), args ...string) (rtResult, error) {
		t.Helper()
		outR, outW, _ := os.Pipe()
		defer outR.Close()
		ec := &container.ExecConfig{
			ID: cfg.ID, InitPid: init.Pid, InitStartTime: init.StartTime, Cgroup: cg,
			Process: &specs.Process{Args: args, Env: []string{"PATH=/bin", "X=1"}, Cwd: "/"},
			Stdout:  outW, Stderr: outW,
		}
		if edit != nil {
			edit(ec)
		}
		p, err := container.Exec(context.Background(), ec)
		outW.Close()
		if err != nil {
			return rtResult{}, err
		}
		out, _ := io.ReadAll(outR)
		st, err := p.Wait()
		if err != nil {
			t.Fatal(err)
		}
		return rtResult{stdout: string(out), status: st}, nil
	}

	r, err := exec(t, nil, "sh", "-c", "hostname; echo $X; ps -o pid,comm | grep -c sleep; readlink /proc/1/exe; cat /proc/self/cgroup | grep -c berth-test; grep CapEff /proc/self/status; ls /proc/self/fd | tr '\\n' ' '")
	if err != nil {
		t.Fatal(err)
	}
	want := "exec-box\n1\n1\n/bin/busybox\n"
	if !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "CapEff:\t"+rtDockerCaps) || r.status.Code != 0 {
		t.Errorf("exec: %v %q, want prefix %q", r.status, r.stdout, want)
	}
	if !strings.HasSuffix(r.stdout, "\n0 1 2 3 ") {
		t.Errorf("exec descriptors: %q", r.stdout)
	}

	// Namespaces and cgroup of a running exec'd process, from the host.
	ec := &container.ExecConfig{ID: cfg.ID, InitPid: init.Pid, Cgroup: cg,
		Process: &specs.Process{Args: []string{"sleep", "30"}, Cwd: "/tmp", User: specs.User{UID: 65534, GID: 65534}}}
	p, err := container.Exec(context.Background(), ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"mnt", "pid", "uts", "ipc", "net"} {
		a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", init.Pid, ns))
		b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.Pid, ns))
		if a == "" || a != b {
			t.Errorf("ns %s: init %s, exec %s", ns, a, b)
		}
	}
	cgFile, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid))
	if !strings.Contains(string(cgFile), cg.Paths()["pids"][len(cgroups.DefaultRoot+"/pids"):]) {
		t.Errorf("exec'd process not in the cgroup:\n%s", cgFile)
	}
	// Only the container's processes are in its cgroup: the exec helper (the command's
	// parent, which relays its status) went back to our cgroup after the fork.
	procs, _ := cg.Procs()
	if want := []int{init.Pid, p.Pid}; !slices.Equal(procs, want) && !slices.Equal(procs, []int{p.Pid, init.Pid}) {
		t.Errorf("cgroup procs %v, want %v", procs, want)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
	if rtStatusField(string(status), "Uid") != "65534\t65534\t65534\t65534" || rtStatusField(string(status), "CapEff") != "0000000000000000" {
		t.Errorf("exec as nobody:\n%s", status)
	}
	if !strings.Contains(rtStatusField(string(status), "NSpid"), "\t") {
		t.Errorf("NSpid %q: not in a child pid namespace", rtStatusField(string(status), "NSpid"))
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Error(err)
	}
	if st, _ := p.Wait(); st.Code != 137 || st.Signal != syscall.SIGKILL {
		t.Errorf("killed exec: %v", st)
	}

	if r, _ := exec(t, nil, "sh", "-c", "exit 5"); r.status.Code != 5 {
		t.Errorf("exit code: %v", r.status)
	}
	var se *container.StartError
	if _, err := exec(t, nil, "nope"); !errors.As(err, &se) || se.Code != 127 {
		t.Errorf("missing command: %v", err)
	}
	if _, err := exec(t, func(ec *container.ExecConfig) { ec.Process.Cwd = "/does/not/exist" }, "true"); err == nil || !strings.Contains(err.Error(), "cwd") {
		t.Errorf("missing cwd: %v", err)
	}
	if r, err := exec(t, func(ec *container.ExecConfig) { ec.Process.Cwd = "/proc/self/fd/3" }, "pwd"); err == nil {
		t.Errorf("cwd through a magic link: %q", r.stdout)
	}

	// A terminal.
	ec = &container.ExecConfig{ID: cfg.ID, InitPid: init.Pid,
		Process: &specs.Process{Args: []string{"sh", "-c", "tty; stty size"}, Terminal: true, ConsoleSize: &specs.Box{Height: 10, Width: 20}}}
	p, err = container.Exec(context.Background(), ec)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(p.Console)
	p.Console.Close()
	p.Wait()
	if got := strings.ReplaceAll(string(out), "\r\n", "\n"); got != "/dev/pts/0\n10 20\n" {
		t.Errorf("exec -t: %q", got)
	}

	// The container's mount namespace: a file written by exec is seen by another exec.
	exec(t, nil, "sh", "-c", "echo shared > /tmp/shared")
	if r, _ := exec(t, nil, "cat", "/tmp/shared"); r.stdout != "shared\n" {
		t.Errorf("mount namespace not shared: %q", r.stdout)
	}

	// After the init died, Exec fails cleanly.
	init.Signal(syscall.SIGKILL)
	init.Wait()
	if _, err := exec(t, nil, "true"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec into a dead container: %v", err)
	}
}

func TestRuntimeOOMKill(t *testing.T) {
	cg := rtCgroup(t, &cgroups.Resources{Memory: 32 << 20, MemorySwap: 32 << 20})
	r := rtMust(t, 137, func(c *container.Config) { c.Cgroup = cg }, "tail", "/dev/zero")
	if r.status.Signal != syscall.SIGKILL {
		t.Errorf("status %v", r.status)
	}
	if oom, err := cg.OOMKilled(); err != nil || !oom {
		t.Errorf("OOMKilled %v %v", oom, err)
	}
}

// TestRuntimeOverlayLeavesNoMount: the overlay lives in the container's mount namespace
// only; after the container ends nothing of it is mounted on the host.
func TestRuntimeOverlayLeavesNoMount(t *testing.T) {
	rootfs := rtOverlay(t)
	cfg := &container.Config{ID: rtID(t), Rootfs: rootfs, Spec: rtSpec("", "sh", "-c", "echo hi > /newfile; rm /etc/motd; cat /newfile; sleep 30")}
	outR, outW, _ := os.Pipe()
	cfg.Stdout = outW
	p, err := container.Start(context.Background(), cfg)
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 3)
	io.ReadFull(outR, line)
	outR.Close()
	if string(line) != "hi\n" {
		t.Errorf("output %q", line)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), rootfs.Path) {
		t.Errorf("the overlay is visible on the host while running")
	}
	p.Signal(syscall.SIGKILL)
	if st, _ := p.Wait(); st.Code != 137 {
		t.Errorf("status %v", st)
	}
	mi, _ = os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), rootfs.Path) || strings.Contains(string(mi), rootfs.Upper) {
		t.Errorf("a mount remains:\n%s", mi)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs.Upper, "newfile")); err != nil || string(b) != "hi\n" {
		t.Errorf("upper: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(rtBusyboxDir(t), "etc/motd")); err != nil {
		t.Errorf("lower changed: %v", err)
	}
	if ents, _ := os.ReadDir(rootfs.Path); len(ents) != 0 {
		t.Errorf("target dir not empty on the host: %d entries", len(ents))
	}
	if err := os.RemoveAll(filepath.Dir(rootfs.Path)); err != nil {
		t.Errorf("remove: %v", err)
	}
}

// TestRuntimeJoinNetNS: Config.NetNS joins an existing network namespace (the parent's
// locked thread enters it before the clone).
func TestRuntimeJoinNetNS(t *testing.T) {
	cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Spec: rtSpec("", "sleep", "30")}
	first, err := container.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	defer first.Signal(syscall.SIGKILL)
	nsPath := fmt.Sprintf("/proc/%d/ns/net", first.Pid)
	want, _ := os.Readlink(nsPath)
	self, _ := os.Readlink("/proc/self/ns/net")
	r := rtMust(t, 0, func(c *container.Config) { c.NetNS = nsPath }, "sh", "-c",
		"readlink /proc/self/ns/net; touch /sys/kernel/x 2>/dev/null && echo WROTE-SYS; grep -c ' /sys ro,' /proc/self/mountinfo")
	if r.stdout != want+"\n1\n" || want == self {
		t.Errorf("joined %q, want %q (host %q) and a read-only /sys", r.stdout, want, self)
	}
	if now, _ := os.Readlink("/proc/self/ns/net"); now != self {
		t.Errorf("the test process changed network namespace")
	}
}

// TestRuntimeParallelStarts: concurrent Starts in one process do not see each other's
// descriptors (a leaked sync socket would hang a Start) or output.
func TestRuntimeParallelStarts(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				want := fmt.Sprintf("g%d-%d", g, i)
				cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Spec: rtSpec("", "sh", "-c", "echo "+want+"; ls /proc/self/fd | wc -l")}
				r, err := rtRun(t, cfg)
				if err != nil {
					errs <- err
					return
				}
				if r.stdout != want+"\n4\n" || r.status.Code != 0 {
					errs <- fmt.Errorf("%s: %q %v", want, r.stdout, r.status)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRuntimeStartTrueTiming logs the median of 20 starts of `true` (overlay rootfs, cgroup,
// mount/pid/uts/ipc/net namespaces, Docker's mounts and masks), Start to Wait.
func TestRuntimeStartTrueTiming(t *testing.T) {
	if _, err := container.ExecutableMemfd(); err != nil { // cached, as in a pull-run process
		t.Fatal(err)
	}
	cg := rtCgroup(t, &cgroups.Resources{Memory: 64 << 20})
	var times []time.Duration
	for range 20 {
		cfg := &container.Config{ID: rtID(t), Rootfs: rtOverlay(t), Cgroup: cg, Spec: rtSpec("", "true")}
		start := time.Now()
		p, err := container.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := p.Wait()
		times = append(times, time.Since(start))
		if st.Code != 0 {
			t.Fatal(st)
		}
	}
	slices.Sort(times)
	t.Logf("start→exit of `true`: min %v, median %v, p90 %v, max %v", times[0], times[len(times)/2], times[len(times)*9/10], times[len(times)-1])
}

func BenchmarkStartTrue(b *testing.B) {
	if _, err := container.ExecutableMemfd(); err != nil {
		b.Fatal(err)
	}
	rootfs := rtBusyboxDir(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		base := b.TempDir()
		r := container.Rootfs{Path: filepath.Join(base, "r"), Lower: []string{rootfs}, Upper: filepath.Join(base, "u"), Work: filepath.Join(base, "w")}
		for _, d := range []string{r.Path, r.Upper, r.Work} {
			os.Mkdir(d, 0o755)
		}
		b.StartTimer()
		p, err := container.Start(context.Background(), &container.Config{ID: "bench", Rootfs: r, Spec: rtSpec("", "true")})
		if err != nil {
			b.Fatal(err)
		}
		if st, _ := p.Wait(); st.Code != 0 {
			b.Fatal(st)
		}
	}
}
