package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const mb = 1 << 20

// TestV1CreateDockerExamples applies Docker's options to a fake v1 tree and checks the
// exact file contents.
func TestV1CreateDockerExamples(t *testing.T) {
	type files map[string]string // path relative to the root → content
	for _, c := range []struct {
		name  string
		fake  []fakeOpt
		res   Resources
		files files
		warn  []string
	}{
		{name: "-m 200M --memory-swap 300M",
			res: Resources{Memory: 200 * mb, MemorySwap: 300 * mb},
			files: files{"memory/C/memory.limit_in_bytes": "209715200",
				"memory/C/memory.memsw.limit_in_bytes": "314572800"}},
		{name: "-m 200M (swap defaults to twice the memory)",
			res: Resources{Memory: 200 * mb},
			files: files{"memory/C/memory.limit_in_bytes": "209715200",
				"memory/C/memory.memsw.limit_in_bytes": "419430400"}},
		{name: "-m 200M --memory-swap -1",
			res: Resources{Memory: 200 * mb, MemorySwap: -1},
			files: files{"memory/C/memory.limit_in_bytes": "209715200",
				"memory/C/memory.memsw.limit_in_bytes": unlimitedV1}},
		{name: "-m 200M without swap accounting",
			fake:  []fakeOpt{func(k *fakeKernel) { k.noMemsw = true }},
			res:   Resources{Memory: 200 * mb},
			files: files{"memory/C/memory.limit_in_bytes": "209715200"},
			warn:  []string{WarnSwapLimit}},
		{name: "--memory-reservation 100M",
			res:   Resources{MemoryReservation: 100 * mb},
			files: files{"memory/C/memory.soft_limit_in_bytes": "104857600", "memory/C/memory.limit_in_bytes": unlimitedV1}},
		{name: "--oom-kill-disable -m 100M",
			res: Resources{OomKillDisable: true, Memory: 100 * mb},
			files: files{"memory/C/memory.oom_control": "oom_kill_disable 1\nunder_oom 0\noom_kill 0",
				"memory/C/memory.limit_in_bytes": "104857600"}},
		{name: "--oom-kill-disable alone",
			res:   Resources{OomKillDisable: true},
			files: files{"memory/C/memory.oom_control": "oom_kill_disable 1\nunder_oom 0\noom_kill 0"},
			warn:  []string{"OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources."}},
		{name: "-c 512",
			res:   Resources{CPUShares: 512},
			files: files{"cpu,cpuacct/C/cpu.shares": "512"}},
		{name: "-c -5 clamped",
			res:   Resources{CPUShares: -5},
			files: files{"cpu,cpuacct/C/cpu.shares": "2"},
			warn:  []string{"Changing requested CPUShares of -5 to minimum allowed of 2"}},
		{name: "--cpus 1.5",
			res: Resources{NanoCPUs: 1500000000},
			files: files{"cpu,cpuacct/C/cpu.cfs_quota_us": "150000",
				"cpu,cpuacct/C/cpu.cfs_period_us": "100000"}},
		{name: "--cpu-period 50000 --cpu-quota 25000",
			res: Resources{CPUPeriod: 50000, CPUQuota: 25000},
			files: files{"cpu,cpuacct/C/cpu.cfs_quota_us": "25000",
				"cpu,cpuacct/C/cpu.cfs_period_us": "50000"}},
		{name: "--cpuset-cpus 1-2 --cpuset-mems 0",
			res: Resources{CpusetCpus: "1-2", CpusetMems: "0"},
			files: files{"cpuset/C/cpuset.cpus": "1-2", "cpuset/C/cpuset.mems": "0",
				"cpuset/berth/cpuset.cpus": "0-3"}},
		{name: "no cpuset: inherited from the parent",
			res: Resources{},
			files: files{"cpuset/C/cpuset.cpus": "0-3", "cpuset/C/cpuset.mems": "0",
				"cpuset/berth/cpuset.cpus": "0-3", "cpuset/berth/cpuset.mems": "0"}},
		{name: "--blkio-weight 600",
			res:   Resources{BlkioWeight: 600},
			files: files{"blkio/C/blkio.weight": "600"}},
		{name: "--blkio-weight 600 with BFQ and CFQ",
			fake:  []fakeOpt{func(k *fakeKernel) { k.weightFile = "blkio.bfq.weight" }},
			res:   Resources{BlkioWeight: 600},
			files: files{"blkio/C/blkio.bfq.weight": "600"}},
		{name: "--blkio-weight 600 without a weight file",
			fake:  []fakeOpt{func(k *fakeKernel) { k.weightFile, k.rootWeight = "", false }},
			res:   Resources{BlkioWeight: 600},
			files: files{},
			warn:  []string{WarnBlkioWeight}},
		{name: "--blkio-weight 600 on this host: BFQ files in children only, none at the root",
			fake:  []fakeOpt{func(k *fakeKernel) { k.weightFile, k.rootWeight = "blkio.bfq.weight", false }},
			res:   Resources{BlkioWeight: 600},
			files: files{"blkio/C/blkio.bfq.weight": "100"},
			warn:  []string{WarnBlkioWeight}},
		{name: "--pids-limit 100",
			res:   Resources{PidsLimit: 100},
			files: files{"pids/C/pids.max": "100"}},
		{name: "--pids-limit -1",
			res:   Resources{PidsLimit: -1},
			files: files{"pids/C/pids.max": "max"}},
		{name: "all of them",
			res: Resources{Memory: 200 * mb, MemorySwap: 300 * mb, MemoryReservation: 100 * mb, CPUShares: 512,
				NanoCPUs: 1500000000, CpusetCpus: "0", BlkioWeight: 600, PidsLimit: 100},
			files: files{"memory/C/memory.limit_in_bytes": "209715200", "memory/C/memory.memsw.limit_in_bytes": "314572800",
				"memory/C/memory.soft_limit_in_bytes": "104857600", "cpu,cpuacct/C/cpu.shares": "512",
				"cpu,cpuacct/C/cpu.cfs_quota_us": "150000", "cpu,cpuacct/C/cpu.cfs_period_us": "100000",
				"cpuset/C/cpuset.cpus": "0", "blkio/C/blkio.weight": "600", "pids/C/pids.max": "100"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeV1(t, c.fake...)
			m := NewV1(k.root, "berth/ctr1", k.opts()...)
			if err := m.Create(&c.res); err != nil {
				t.Fatal(err)
			}
			for rel, want := range c.files {
				rel = strings.Replace(rel, "/C/", "/berth/ctr1/", 1)
				if got := k.read(rel); got != want {
					t.Errorf("%s = %q, want %q", rel, got, want)
				}
			}
			if got := m.Warnings(); !slices.Equal(got, c.warn) {
				t.Errorf("warnings %q, want %q", got, c.warn)
			}
			// Untouched limits keep the kernel's defaults.
			if c.res.CPUShares == 0 && k.read("cpu,cpuacct/berth/ctr1/cpu.shares") != "1024" {
				t.Error("cpu.shares written without -c")
			}
			if c.res.PidsLimit == 0 && k.read("pids/berth/ctr1/pids.max") != "max" {
				t.Error("pids.max written without --pids-limit")
			}
		})
	}
}

func TestV1Paths(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "/berth/ctr1", k.opts()...)
	p := m.Paths()
	want := map[string]string{
		"cpuset": "cpuset", "cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct", "memory": "memory",
		"pids": "pids", "blkio": "blkio", "freezer": "freezer", "devices": "devices",
	}
	if len(p) != len(want) {
		t.Errorf("Paths() = %v", p)
	}
	for sub, h := range want {
		if got := p[sub]; got != filepath.Join(k.root, h, "berth/ctr1") {
			t.Errorf("Paths()[%s] = %s, want under %s", sub, got, h)
		}
	}
}

func TestV1ApplyProcs(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(nil))
	must(t, m.Apply(4242))
	// Each hierarchy once: cpu and cpuacct share a directory.
	for _, h := range []string{"cpuset", "cpu,cpuacct", "memory", "pids", "blkio", "freezer", "devices"} {
		if got := k.read(h + "/berth/ctr1/cgroup.procs"); got != "4242" {
			t.Errorf("%s cgroup.procs = %q", h, got)
		}
	}
	if n := len(k.writesTo("cgroup.procs")); n != 7 {
		t.Errorf("%d writes to cgroup.procs, want 7", n)
	}
	// A process in a sub-cgroup counts too.
	sub := filepath.Join(k.root, "memory/berth/ctr1/sub")
	must(t, k.mkdir(sub))
	must(t, k.write(filepath.Join(sub, "cgroup.procs"), "4343"))
	pids, err := m.Procs()
	if err != nil || !slices.Equal(pids, []int{4242, 4343}) {
		t.Errorf("Procs() = %v, %v", pids, err)
	}
}

func TestV1DeviceRules(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Devices: DefaultDeviceRules()}))
	if got := k.read("devices/berth/ctr1/devices.deny"); got != "a *:* rwm" {
		t.Errorf("devices.deny = %q", got)
	}
	allow := strings.Split(k.read("devices/berth/ctr1/devices.allow"), "\n")
	if len(allow) != len(DefaultDeviceRules())-1 || allow[0] != "c *:* m" || !slices.Contains(allow, "c 136:* rwm") {
		t.Errorf("devices.allow = %q", allow)
	}
	// The deny-all comes before any allow.
	var order []string
	for _, w := range k.writes {
		if strings.Contains(w, "devices.") {
			order = append(order, w)
		}
	}
	if !strings.Contains(order[0], "devices.deny=a *:* rwm") {
		t.Errorf("first device write %q", order[0])
	}
}

// TestV1UpdateMemoryOrder raises and lowers memory and memory+swap together; the fake
// kernel refuses any moment where memory > memory+swap, as the real one does.
func TestV1UpdateMemoryOrder(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Memory: 200 * mb, MemorySwap: 300 * mb}))
	check := func(mem, sw string) {
		t.Helper()
		if got := k.read("memory/berth/ctr1/memory.limit_in_bytes"); got != mem {
			t.Errorf("memory.limit_in_bytes = %s, want %s", got, mem)
		}
		if got := k.read("memory/berth/ctr1/memory.memsw.limit_in_bytes"); got != sw {
			t.Errorf("memory.memsw.limit_in_bytes = %s, want %s", got, sw)
		}
	}
	// Raise both: 400M / 800M (swap must go first).
	must(t, m.Update(&Resources{Memory: 400 * mb, MemorySwap: 800 * mb}))
	check("419430400", "838860800")
	// Lower both: 100M / 150M (memory must go first).
	must(t, m.Update(&Resources{Memory: 100 * mb, MemorySwap: 150 * mb}))
	check("104857600", "157286400")
	// Memory alone above the current memory+swap: Docker's error, nothing changed.
	err := m.Update(&Resources{Memory: 500 * mb})
	if err == nil || err.Error() != "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time" {
		t.Errorf("update -m 500M: %v", err)
	}
	check("104857600", "157286400")
	// Memory alone within it.
	must(t, m.Update(&Resources{Memory: 120 * mb}))
	check("125829120", "157286400")
	// Swap unlimited, then memory far above the old total.
	must(t, m.Update(&Resources{Memory: 1024 * mb, MemorySwap: -1}))
	check("1073741824", unlimitedV1)
	// Back down from unlimited.
	must(t, m.Update(&Resources{Memory: 200 * mb, MemorySwap: 300 * mb}))
	check("209715200", "314572800")
	// Other limits of docker update.
	must(t, m.Update(&Resources{CPUShares: 256, NanoCPUs: 500000000, PidsLimit: 50}))
	if k.read("cpu,cpuacct/berth/ctr1/cpu.shares") != "256" || k.read("cpu,cpuacct/berth/ctr1/cpu.cfs_quota_us") != "50000" ||
		k.read("pids/berth/ctr1/pids.max") != "50" {
		t.Error("update of cpu/pids not applied")
	}
	check("209715200", "314572800")
	// Update of a cgroup that does not exist.
	gone := NewV1(k.root, "berth/nothere", k.opts()...)
	if err := gone.Update(&Resources{CPUShares: 2}); err == nil {
		t.Error("update of a missing cgroup succeeded")
	}
}

func TestV1CpusetNotAvailable(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	err := m.Create(&Resources{CpusetCpus: "7", Memory: 100 * mb})
	if err == nil || err.Error() != "Requested CPUs are not available - requested 7, available: 0-3" {
		t.Fatalf("Create: %v", err)
	}
	// A failed Create leaves nothing behind, not even the parent it made.
	for _, h := range []string{"cpuset", "cpu,cpuacct", "memory", "pids", "blkio", "freezer", "devices"} {
		if _, err := os.Stat(filepath.Join(k.root, h, "berth")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s/berth left behind: %v", h, err)
		}
	}
	err = m.Create(&Resources{CpusetMems: "1"})
	if err == nil || err.Error() != "Requested memory nodes are not available - requested 1, available: 0" {
		t.Fatalf("Create: %v", err)
	}
}

func TestV1MissingControllers(t *testing.T) {
	root := t.TempDir()
	k := &fakeKernel{t: t, root: root, weightFile: "blkio.weight", freezeDelay: time.Millisecond}
	for _, h := range []string{"memory", "freezer"} {
		must(t, os.Mkdir(filepath.Join(root, h), 0o755))
		k.populate(filepath.Join(root, h), []string{h}, true)
	}
	m := NewV1(root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Memory: 100 * mb, CPUShares: 512, CPUQuota: 50000, PidsLimit: 10,
		BlkioWeight: 300, CpusetCpus: "0"}))
	want := []string{WarnCpuset, WarnCPUShares, WarnCPUQuota, WarnPidsLimit, WarnBlkioWeight}
	if got := m.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings\n%q\nwant\n%q", got, want)
	}
	if k.read("memory/berth/ctr1/memory.limit_in_bytes") != "104857600" {
		t.Error("memory limit not applied")
	}
	if err := m.Create(&Resources{NanoCPUs: 1e9}); err == nil || !strings.Contains(err.Error(), "NanoCPUs can not be set") {
		t.Errorf("--cpus without CFS: %v", err)
	}
	if err := NewV1(root, "x", k.opts()...).Create(&Resources{Devices: DefaultDeviceRules()}); err == nil {
		t.Error("device rules without the devices controller accepted")
	}
}

func TestV1Freeze(t *testing.T) {
	k := newFakeV1(t, func(k *fakeKernel) { k.freezeDelay = 150 * time.Millisecond })
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(nil))
	if st, err := m.State(); err != nil || st != Thawed {
		t.Fatalf("State() = %q, %v", st, err)
	}
	start := time.Now()
	must(t, m.Freeze())
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("Freeze returned after %s, before the kernel said FROZEN", d)
	}
	if st, _ := m.State(); st != Frozen {
		t.Errorf("State() = %q after Freeze", st)
	}
	must(t, m.Thaw())
	if st, _ := m.State(); st != Thawed {
		t.Errorf("State() = %q after Thaw", st)
	}

	// A freeze that never completes times out and leaves the cgroup thawed.
	k2 := newFakeV1(t, func(k *fakeKernel) { k.stuckFreeze = true })
	m2 := NewV1(k2.root, "berth/ctr2", k2.opts(WithFreezeTimeout(200*time.Millisecond))...)
	must(t, m2.Create(nil))
	if err := m2.Freeze(); err == nil || !strings.Contains(err.Error(), "still FREEZING") {
		t.Errorf("stuck Freeze: %v", err)
	}
	if st, _ := m2.State(); st != Thawed {
		t.Errorf("State() = %q after a failed Freeze", st)
	}
}

func TestV1Stats(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Memory: 200 * mb, PidsLimit: 100}))
	c := filepath.Join(k.root, "%s/berth/ctr1")
	at := func(h, f string) string { return filepath.Join(strings.Replace(c, "%s", h, 1), f) }
	k.set(at("cpu,cpuacct", "cpuacct.usage"), "123456789")
	k.set(at("cpu,cpuacct", "cpuacct.usage_user"), "100000000")
	k.set(at("cpu,cpuacct", "cpuacct.usage_sys"), "23456789")
	k.set(at("cpu,cpuacct", "cpu.stat"), "nr_periods 10\nnr_throttled 3\nthrottled_time 4500")
	k.set(at("memory", "memory.usage_in_bytes"), "52428800")
	k.set(at("memory", "memory.max_usage_in_bytes"), "62914560")
	k.set(at("memory", "memory.stat"), "cache 1000\nrss 2000\ntotal_inactive_file 4096\ntotal_rss 2000")
	k.set(at("memory", "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2")
	k.set(at("pids", "pids.current"), "3")
	s, err := m.Stats()
	must(t, err)
	want := Stats{
		CPU: CPUStats{UsageNS: 123456789, UserNS: 100000000, SystemNS: 23456789, Periods: 10, ThrottledPeriods: 3, ThrottledNS: 4500},
		Memory: MemoryStats{Usage: 52428800, MaxUsage: 62914560, Limit: 209715200, InactiveFile: 4096, OOMKills: 2,
			Stat: map[string]uint64{"cache": 1000, "rss": 2000, "total_inactive_file": 4096, "total_rss": 2000}},
		Pids: PidsStats{Current: 3, Limit: 100},
	}
	if s.CPU != want.CPU || s.Pids != want.Pids || s.Memory.Usage != want.Memory.Usage ||
		s.Memory.MaxUsage != want.Memory.MaxUsage || s.Memory.Limit != want.Memory.Limit ||
		s.Memory.InactiveFile != want.Memory.InactiveFile || s.Memory.OOMKills != 2 || len(s.Memory.Stat) != 4 {
		t.Errorf("Stats() =\n%+v\nwant\n%+v", *s, want)
	}
	// Unlimited limits read as 0; without usage_user the ticks of cpuacct.stat are used.
	must(t, os.Remove(at("cpu,cpuacct", "cpuacct.usage_user")))
	k.set(at("cpu,cpuacct", "cpuacct.stat"), "user 7\nsystem 3")
	k.set(at("memory", "memory.limit_in_bytes"), unlimitedV1)
	k.set(at("pids", "pids.max"), "max")
	s, err = m.Stats()
	must(t, err)
	if s.Memory.Limit != 0 || s.Pids.Limit != 0 || s.CPU.UserNS != 70000000 || s.CPU.SystemNS != 30000000 {
		t.Errorf("Stats() = %+v", *s)
	}
	if _, err := NewV1(k.root, "berth/nothere", k.opts()...).Stats(); err == nil {
		t.Error("Stats of a missing cgroup succeeded")
	}
}

func TestV1OOMKilled(t *testing.T) {
	k := newFakeV1(t)
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(nil))
	f := filepath.Join(k.root, "memory/berth/ctr1/memory.oom_control")
	if oom, err := m.OOMKilled(); err != nil || oom {
		t.Errorf("OOMKilled() = %v, %v on a fresh cgroup", oom, err)
	}
	k.set(f, "oom_kill_disable 0\nunder_oom 0\noom_kill 1")
	if oom, err := m.OOMKilled(); err != nil || !oom {
		t.Errorf("OOMKilled() = %v, %v after oom_kill 1", oom, err)
	}
	k.set(f, "oom_kill_disable 0\nunder_oom 0")
	if _, err := m.OOMKilled(); err == nil {
		t.Error("OOMKilled() without an oom_kill counter gave no error")
	}
}

// TestV1Destroy kills a real process listed in the fake tree, retries rmdir while the fake
// kernel says EBUSY, and removes every directory of the container but not the parent.
func TestV1Destroy(t *testing.T) {
	k := newFakeV1(t, func(k *fakeKernel) { k.freezeDelay = 5 * time.Millisecond })
	m := NewV1(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Memory: 100 * mb}))
	other := NewV1(k.root, "berth/ctr2", k.opts()...)
	must(t, other.Create(nil))

	cmd := exec.Command("sleep", "60")
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		time.Sleep(50 * time.Millisecond) // the kernel takes its time: rmdir sees EBUSY first
		k.exit(cmd.Process.Pid)
		done <- err
	}()
	must(t, m.Apply(cmd.Process.Pid))
	if err := m.Kill(0); err != nil { // signal 0: only checks the process is there
		t.Fatal(err)
	}

	must(t, m.Destroy())
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.String() != "signal: killed" {
			t.Errorf("sleep ended with %v, want SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sleep still running after Destroy")
	}
	if ws := k.writesTo("freezer.state"); len(ws) < 2 || ws[0] != "FROZEN" || ws[len(ws)-1] != "THAWED" {
		t.Errorf("Destroy did not freeze, kill, thaw: freezer writes %q", ws)
	}
	for _, h := range []string{"cpuset", "cpu,cpuacct", "memory", "pids", "blkio", "freezer", "devices"} {
		if _, err := os.Stat(filepath.Join(k.root, h, "berth/ctr1")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s/berth/ctr1 left behind", h)
		}
		if _, err := os.Stat(filepath.Join(k.root, h, "berth/ctr2")); err != nil {
			t.Errorf("%s/berth/ctr2 removed: %v", h, err)
		}
	}
	// Destroy again, and of what never existed, is fine.
	must(t, m.Destroy())
	must(t, NewV1(k.root, "berth/never", k.opts()...).Destroy())
}

func TestParseMountinfo(t *testing.T) {
	// This host (hybrid v1): separate cpu and cpuacct, a named systemd hierarchy, cgroup2 in
	// unified.
	host := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	got, err := parseMountinfo(strings.NewReader(host), "/sys/fs/cgroup")
	must(t, err)
	for _, s := range v1Subsystems {
		if got[s] != "/sys/fs/cgroup/"+s {
			t.Errorf("%s → %q", s, got[s])
		}
	}
	if len(got) != len(v1Subsystems) {
		t.Errorf("got %v", got)
	}
	// systemd's layout: combined cpu,cpuacct with optional fields; an escaped space; a
	// hierarchy mounted elsewhere is ignored.
	sd := `25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:7 master:1 - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/my\040memory rw shared:8 - cgroup cgroup rw,memory
27 24 0:24 / /mnt/pids rw shared:9 - cgroup cgroup rw,pids
`
	got, err = parseMountinfo(strings.NewReader(sd), "/sys/fs/cgroup")
	must(t, err)
	if got["cpu"] != "/sys/fs/cgroup/cpu,cpuacct" || got["cpuacct"] != "/sys/fs/cgroup/cpu,cpuacct" ||
		got["memory"] != "/sys/fs/cgroup/my memory" || got["pids"] != "" {
		t.Errorf("got %v", got)
	}
}

func TestScanV1RootSeparate(t *testing.T) {
	// This host's layout: cpu and cpuacct in separate hierarchies.
	root := t.TempDir()
	for _, h := range []string{"cpu", "cpuacct", "memory", "systemd", "unified"} {
		must(t, os.Mkdir(filepath.Join(root, h), 0o755))
	}
	got, err := scanV1Root(root)
	must(t, err)
	if len(got) != 3 || got["cpu"] != filepath.Join(root, "cpu") || got["cpuacct"] != filepath.Join(root, "cpuacct") {
		t.Errorf("got %v", got)
	}
	k := &fakeKernel{t: t, root: root}
	for _, h := range []string{"cpu", "cpuacct", "memory"} {
		k.populate(filepath.Join(root, h), []string{h}, true)
	}
	m := NewV1(root, "berth/x", k.opts()...)
	must(t, m.Create(&Resources{CPUShares: 100}))
	must(t, m.Apply(77))
	if k.read("cpu/berth/x/cpu.shares") != "100" || k.read("cpuacct/berth/x/cgroup.procs") != "77" {
		t.Error("separate cpu/cpuacct hierarchies not both used")
	}
	if strconv.Itoa(len(m.Paths())) != "3" {
		t.Errorf("Paths() = %v", m.Paths())
	}
}
