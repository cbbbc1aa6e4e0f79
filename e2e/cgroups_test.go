//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/cgroups"
)

// The TestCgroups* tests drive runner/cgroups against the host's real cgroups (this host:
// v1, hybrid) as root: limits land in the kernel's files, processes join, freeze, hit the
// pids and memory limits, and Destroy leaves no directory in any controller.

const cgMiB = 1 << 20

// cgNew returns a Manager for a fresh "berth-test/<test>-<random>" cgroup, destroyed (and
// checked gone) at the end of the test.
func cgNew(t *testing.T) cgroups.Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the cgroups e2e tests need root")
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := strings.ToLower(strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	m, err := cgroups.New("berth-test/" + name + "-" + hex.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		cgAssertGone(t, m)
		for _, d := range m.Paths() {
			os.Remove(filepath.Dir(d)) // berth-test, if no other test uses it
		}
	})
	return m
}

func cgAssertGone(t *testing.T, m cgroups.Manager) {
	t.Helper()
	for ctrl, d := range m.Paths() {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("controller %q: %s still exists after Destroy (%v)", ctrl, d, err)
		}
	}
}

func cgRead(t *testing.T, m cgroups.Manager, ctrl, file string) string {
	t.Helper()
	d, ok := m.Paths()[ctrl]
	if !ok {
		t.Fatalf("no %q controller in %v", ctrl, m.Paths())
	}
	b, err := os.ReadFile(filepath.Join(d, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func cgIsV2(m cgroups.Manager) bool {
	_, ok := m.Paths()[""]
	return ok
}

// cgChild is a process started outside the cgroup that waits for a line on stdin before
// running script, so that it is inside the cgroup before it does anything.
type cgChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *cgBuf
	done   chan struct{}
	waited error
}

func cgStart(t *testing.T, m cgroups.Manager, script string) *cgChild {
	t.Helper()
	c := &cgChild{cmd: exec.Command("/bin/sh", "-c", "read go; "+script), out: &cgBuf{}, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Background children keep the output pipe open: do not wait for them after it exits.
	c.cmd.WaitDelay = 2 * time.Second
	go func() { c.waited = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		m.KillAll()
		c.cmd.Process.Kill()
		<-c.done
	})
	if err := m.Apply(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// cgBuf is an output buffer safe to read while the process writes to it.
type cgBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *cgBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *cgBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (c *cgChild) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.waited
	case <-time.After(d):
		t.Fatalf("process %d still running after %s; output: %s", c.cmd.Process.Pid, d, c.out)
		return nil
	}
}

// TestCgroupsLimits creates a cgroup with Docker's limits, reads them back from the
// kernel's files, updates them in both directions, runs a process inside and destroys it.
func TestCgroupsLimits(t *testing.T) {
	m := cgNew(t)
	cpus := 1.5
	if runtime.NumCPU() < 2 {
		cpus = 0.5
	}
	res := &cgroups.Resources{
		Memory: 200 * cgMiB, MemorySwap: 300 * cgMiB, MemoryReservation: 100 * cgMiB,
		CPUShares: 512, CpusetCpus: "0", BlkioWeight: 600, PidsLimit: 100,
		Devices: cgroups.DefaultDeviceRules(),
	}
	res.SetCPUs(cpus)
	if err := m.Create(res); err != nil {
		t.Fatal(err)
	}
	quota := strconv.Itoa(int(cpus * 100000))

	if cgIsV2(m) {
		for f, want := range map[string]string{
			"memory.max": "209715200", "memory.swap.max": "104857600", "memory.low": "104857600",
			"cpu.weight": "59", "cpu.max": quota + " 100000", "cpuset.cpus": "0", "pids.max": "100",
		} {
			if got := cgRead(t, m, "", f); got != want {
				t.Errorf("%s = %q, want %q", f, got, want)
			}
		}
	} else {
		for _, c := range []struct{ ctrl, file, want string }{
			{"memory", "memory.limit_in_bytes", "209715200"},
			{"memory", "memory.memsw.limit_in_bytes", "314572800"},
			{"memory", "memory.soft_limit_in_bytes", "104857600"},
			{"cpu", "cpu.shares", "512"},
			{"cpu", "cpu.cfs_quota_us", quota},
			{"cpu", "cpu.cfs_period_us", "100000"},
			{"cpuset", "cpuset.cpus", "0"},
			{"pids", "pids.max", "100"},
		} {
			if got := cgRead(t, m, c.ctrl, c.file); got != c.want {
				t.Errorf("%s = %q, want %q", c.file, got, c.want)
			}
		}
		// The parent's cpuset was filled from the root so that tasks can join.
		if got, root := cgRead(t, m, "cpuset", "../cpuset.mems"), cgRead(t, m, "cpuset", "../../cpuset.mems"); got != root {
			t.Errorf("berth-test/cpuset.mems = %q, root has %q", got, root)
		}
		// Devices: deny all but Docker's default set.
		if list := cgRead(t, m, "devices", "devices.list"); !strings.Contains(list, "c 1:3 rwm") || strings.Contains(list, "a *:* rwm") {
			t.Errorf("devices.list = %q", list)
		}
		// Docker looks for blkio.weight at the root of the blkio hierarchy; this kernel has
		// none (no CFQ; BFQ's blkio.bfq.weight only shows in child cgroups): Docker's
		// warning, and the weight is discarded.
		blkio := m.Paths()["blkio"]
		blkioRoot := filepath.Dir(filepath.Dir(blkio))
		_, e1 := os.Stat(filepath.Join(blkioRoot, "blkio.weight"))
		_, e2 := os.Stat(filepath.Join(blkioRoot, "blkio.bfq.weight"))
		hasWeight := e1 == nil || e2 == nil
		warned := slices.Contains(m.Warnings(), "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
		if hasWeight == warned {
			t.Errorf("blkio weight file at %s: %v, warnings: %q", blkioRoot, hasWeight, m.Warnings())
		}
		if !hasWeight {
			for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
				if b, err := os.ReadFile(filepath.Join(blkio, f)); err == nil && strings.TrimSpace(string(b)) == "600" {
					t.Errorf("%s = 600: the weight was not discarded", f)
				}
			}
		} else {
			t.Logf("this kernel has a blkio weight file; blkio weight applied")
		}

		// docker update: raise both memory limits, then lower them (the kernel refuses any
		// moment where memory > memory+swap, so the order of the writes matters).
		for _, u := range []struct{ mem, sw int64 }{{400 * cgMiB, 800 * cgMiB}, {100 * cgMiB, 150 * cgMiB}, {64 * cgMiB, -1}} {
			if err := m.Update(&cgroups.Resources{Memory: u.mem, MemorySwap: u.sw}); err != nil {
				t.Fatalf("update -m %d --memory-swap %d: %v", u.mem, u.sw, err)
			}
			if got := cgRead(t, m, "memory", "memory.limit_in_bytes"); got != strconv.FormatInt(u.mem, 10) {
				t.Errorf("after update: memory.limit_in_bytes = %s, want %d", got, u.mem)
			}
			wantSw := strconv.FormatInt(u.sw, 10)
			if u.sw == -1 {
				wantSw = "9223372036854771712"
			}
			if got := cgRead(t, m, "memory", "memory.memsw.limit_in_bytes"); got != wantSw {
				t.Errorf("after update: memory.memsw.limit_in_bytes = %s, want %s", got, wantSw)
			}
		}
	}

	// A process inside: every controller lists it; /proc/<pid>/cgroup agrees.
	c := cgStart(t, m, "exec sleep 300")
	pid := c.cmd.Process.Pid
	// Let the shell exec sleep inside the cgroup, so that it has used CPU and memory there.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never became sleep")
		}
	}
	pids, err := m.Procs()
	if err != nil || !slices.Contains(pids, pid) {
		t.Fatalf("Procs() = %v, %v; want %d", pids, err, pid)
	}
	own, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(m.Paths()["memory"], "/sys/fs/cgroup/memory")
	if cgIsV2(m) {
		rel = strings.TrimPrefix(m.Paths()[""], "/sys/fs/cgroup")
	}
	if !strings.Contains(string(own), ":"+rel+"\n") {
		t.Errorf("/proc/%d/cgroup does not show %s:\n%s", pid, rel, own)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Current < 1 || st.Pids.Limit != 100 || st.Memory.Usage == 0 || st.CPU.UsageNS == 0 {
		t.Errorf("Stats() = %+v", *st)
	}
	if oom, err := m.OOMKilled(); err != nil || oom {
		t.Errorf("OOMKilled() = %v, %v", oom, err)
	}

	// Destroy kills the process and removes every directory (checked by cgNew's cleanup).
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sleep ended with %v, want SIGKILL", err)
	}
	cgAssertGone(t, m)
}

// TestCgroupsFreeze pauses a counting loop: the counter stops while frozen and the
// process shows the frozen state, then runs again after Thaw.
func TestCgroupsFreeze(t *testing.T) {
	m := cgNew(t)
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	counter := filepath.Join(t.TempDir(), "counter")
	c := cgStart(t, m, fmt.Sprintf(`i=0; while :; do i=$((i+1)); echo $i > %s.tmp; mv %s.tmp %s; done`, counter, counter, counter))
	read := func() int {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, err := os.ReadFile(counter); err == nil {
				if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					return n
				}
			}
		}
		t.Fatal("no counter")
		return 0
	}
	advances := func() bool {
		a := read()
		time.Sleep(300 * time.Millisecond)
		return read() > a
	}
	if !advances() {
		t.Fatal("the counter does not advance before Freeze")
	}

	start := time.Now()
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Logf("frozen in %s", time.Since(start))
	if st, err := m.State(); err != nil || st != cgroups.Frozen {
		t.Errorf("State() = %q, %v after Freeze", st, err)
	}
	if advances() {
		t.Error("the counter advances while frozen")
	}
	// The kernel agrees: the freezer says FROZEN and the task sleeps in the refrigerator.
	if !cgIsV2(m) {
		if got := cgRead(t, m, "freezer", "freezer.state"); got != "FROZEN" {
			t.Errorf("freezer.state = %q", got)
		}
	}
	pid := c.cmd.Process.Pid
	if state := cgProcState(t, pid); state != "D" && state != "S" {
		t.Errorf("/proc/%d/stat state %q while frozen, want D or S", pid, state)
	} else {
		t.Logf("/proc/%d/stat state while frozen: %s", pid, state)
	}

	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != cgroups.Thawed {
		t.Errorf("State() = %q, %v after Thaw", st, err)
	}
	if !advances() {
		t.Error("the counter does not advance after Thaw")
	}

	// Destroy of a frozen cgroup kills and removes it as well.
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("counter loop ended with %v, want SIGKILL", err)
	}
}

func cgProcState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}

// TestCgroupsPidsLimit runs a shell that forks ten sleeps under pids.max = 5: forks fail
// once five tasks exist, and pids.current never goes above the limit.
func TestCgroupsPidsLimit(t *testing.T) {
	m := cgNew(t)
	if err := m.Create(&cgroups.Resources{PidsLimit: 5}); err != nil {
		t.Fatal(err)
	}
	c := cgStart(t, m, `started=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 300 & started=$((started+1)); done; echo "loop done"; sleep 300`)
	// Wait until the loop is through or the shell gave up.
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out = c.out.String()
		select {
		case <-c.done:
		default:
			if !strings.Contains(out, "loop done") && !strings.Contains(strings.ToLower(out), "fork") {
				continue
			}
		}
		break
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Limit != 5 || st.Pids.Current > 5 {
		t.Errorf("pids: current %d limit %d", st.Pids.Current, st.Pids.Limit)
	}
	if !strings.Contains(strings.ToLower(out), "fork") {
		t.Errorf("no fork failure reported by the shell; output %q", out)
	}
	if !cgIsV2(m) {
		if ev := cgRead(t, m, "pids", "pids.events"); ev == "max 0" {
			t.Errorf("pids.events = %q: the limit was never hit", ev)
		}
	}
	pids, _ := m.Procs()
	if len(pids) > 5 {
		t.Errorf("%d processes in the cgroup: %v", len(pids), pids)
	}
	t.Logf("shell output: %q; pids.current %d", strings.TrimSpace(out), st.Pids.Current)
}

// TestCgroupsOOMKill lets `tail /dev/zero` (it buffers an endless line) allocate past a
// 32 MiB limit without swap: the OOM killer kills it and OOMKilled reports it.
func TestCgroupsOOMKill(t *testing.T) {
	m := cgNew(t)
	if err := m.Create(&cgroups.Resources{Memory: 32 * cgMiB, MemorySwap: 32 * cgMiB}); err != nil {
		t.Fatal(err)
	}
	if oom, err := m.OOMKilled(); err != nil || oom {
		t.Fatalf("OOMKilled() = %v, %v before anything ran", oom, err)
	}
	c := cgStart(t, m, "exec tail /dev/zero")
	err := c.wait(t, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("tail /dev/zero ended with %v (output %q), want SIGKILL by the OOM killer", err, c.out)
	}
	oom, err := m.OOMKilled()
	if err != nil || !oom {
		t.Errorf("OOMKilled() = %v, %v after the OOM kill", oom, err)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.OOMKills < 1 || st.Memory.Limit != 32*cgMiB || st.Memory.MaxUsage < 30*cgMiB {
		t.Errorf("memory stats after the OOM kill: %+v", st.Memory)
	}
}

// TestCgroupsDestroyKillsEverything leaves a process tree running (a shell with a
// background child, in a nested sub-cgroup too on v1) and checks Destroy kills it all and
// removes every directory.
func TestCgroupsDestroyKillsEverything(t *testing.T) {
	m := cgNew(t)
	if err := m.Create(&cgroups.Resources{PidsLimit: 50}); err != nil {
		t.Fatal(err)
	}
	c := cgStart(t, m, `sleep 300 & sleep 300 & echo started; wait`)
	var pids []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if pids, _ = m.Procs(); len(pids) >= 3 {
			break
		}
	}
	if len(pids) < 3 {
		t.Fatalf("Procs() = %v, want the shell and two sleeps", pids)
	}
	// A sub-cgroup made by the workload itself (as a nested container manager would).
	nested := filepath.Join(m.Paths()["pids"], "nested")
	if cgIsV2(m) {
		nested = filepath.Join(m.Paths()[""], "nested")
	}
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nested, "cgroup.procs"), []byte(strconv.Itoa(pids[len(pids)-1])), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 5*time.Second); err == nil {
		t.Error("the shell survived Destroy")
	}
	for _, pid := range pids {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Errorf("process %d survived Destroy: %s", pid, st)
		}
	}
	cgAssertGone(t, m)
	if _, err := os.Stat(nested); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nested cgroup %s left behind", nested)
	}
}

// TestCgroupsValidation: Docker's errors come before anything touches the kernel.
func TestCgroupsValidation(t *testing.T) {
	m := cgNew(t)
	for _, c := range []struct {
		r   cgroups.Resources
		err string
	}{
		{cgroups.Resources{Memory: 4 * cgMiB}, "Minimum memory limit allowed is 6MB"},
		{cgroups.Resources{Memory: 300 * cgMiB, MemorySwap: 200 * cgMiB}, "Minimum memoryswap limit should be larger than memory limit, see usage"},
		{cgroups.Resources{NanoCPUs: -1e9}, fmt.Sprintf("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", runtime.NumCPU(), runtime.NumCPU())},
		{cgroups.Resources{CpusetCpus: "1000"}, "Requested CPUs are not available - requested 1000, available: "},
	} {
		if err := m.Create(&c.r); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Create(%+v) = %v, want %q", c.r, err, c.err)
		}
		cgAssertGone(t, m)
	}
	if _, err := cgroups.ParseSize("1x"); err == nil || err.Error() != "invalid suffix: 'x'" {
		t.Errorf("ParseSize(1x) = %v", err)
	}
}
