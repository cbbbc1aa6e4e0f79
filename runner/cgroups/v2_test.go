package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestV2CreateDockerExamples applies Docker's options to a fake unified hierarchy and
// checks the exact file contents, with runc's conversions.
func TestV2CreateDockerExamples(t *testing.T) {
	type files map[string]string
	for _, c := range []struct {
		name  string
		fake  []fakeOpt
		res   Resources
		files files
		warn  []string
	}{
		{name: "-m 200M --memory-swap 300M",
			res:   Resources{Memory: 200 * mb, MemorySwap: 300 * mb},
			files: files{"memory.max": "209715200", "memory.swap.max": "104857600"}},
		{name: "-m 200M (swap defaults to twice the memory)",
			res:   Resources{Memory: 200 * mb},
			files: files{"memory.max": "209715200", "memory.swap.max": "209715200"}},
		{name: "-m 200M --memory-swap 200M (no swap)",
			res:   Resources{Memory: 200 * mb, MemorySwap: 200 * mb},
			files: files{"memory.max": "209715200", "memory.swap.max": "0"}},
		{name: "-m 200M --memory-swap -1",
			res:   Resources{Memory: 200 * mb, MemorySwap: -1},
			files: files{"memory.max": "209715200", "memory.swap.max": "max"}},
		{name: "-m 200M without swap accounting",
			fake:  []fakeOpt{func(k *fakeKernel) { k.noMemsw = true }},
			res:   Resources{Memory: 200 * mb},
			files: files{"memory.max": "209715200"},
			warn:  []string{WarnSwapLimit}},
		{name: "--memory-reservation 100M",
			res:   Resources{MemoryReservation: 100 * mb},
			files: files{"memory.low": "104857600", "memory.max": "max"}},
		{name: "--oom-kill-disable -m 100M",
			res:   Resources{OomKillDisable: true, Memory: 100 * mb},
			files: files{"memory.max": "104857600"},
			warn:  []string{WarnOomKillDisable}},
		{name: "-c 512",
			res:   Resources{CPUShares: 512},
			files: files{"cpu.weight": "59"}},
		{name: "-c 1024 (the v1 default is the v2 default)",
			res:   Resources{CPUShares: 1024},
			files: files{"cpu.weight": "100"}},
		{name: "-c 2",
			res:   Resources{CPUShares: 2},
			files: files{"cpu.weight": "1"}},
		{name: "--cpus 1.5",
			res:   Resources{NanoCPUs: 1500000000},
			files: files{"cpu.max": "150000 100000"}},
		{name: "--cpu-quota 50000",
			res:   Resources{CPUQuota: 50000},
			files: files{"cpu.max": "50000 100000"}},
		{name: "--cpu-period 50000",
			res:   Resources{CPUPeriod: 50000},
			files: files{"cpu.max": "max 50000"}},
		{name: "--cpu-period 50000 --cpu-quota 25000",
			res:   Resources{CPUPeriod: 50000, CPUQuota: 25000},
			files: files{"cpu.max": "25000 50000"}},
		{name: "--cpuset-cpus 1-2 --cpuset-mems 0",
			res:   Resources{CpusetCpus: "1-2", CpusetMems: "0"},
			files: files{"cpuset.cpus": "1-2", "cpuset.mems": "0"}},
		{name: "--blkio-weight 600",
			res:   Resources{BlkioWeight: 600},
			files: files{"io.weight": "5960"}},
		{name: "--blkio-weight 10",
			res:   Resources{BlkioWeight: 10},
			files: files{"io.weight": "1"}},
		{name: "--blkio-weight 600 with BFQ",
			fake:  []fakeOpt{func(k *fakeKernel) { k.weightFile = "io.bfq.weight" }},
			res:   Resources{BlkioWeight: 600},
			files: files{"io.bfq.weight": "600"}},
		{name: "--blkio-weight 600 without a weight file",
			fake:  []fakeOpt{func(k *fakeKernel) { k.weightFile = "" }},
			res:   Resources{BlkioWeight: 600},
			files: files{},
			warn:  []string{WarnBlkioWeight}},
		{name: "--pids-limit 100",
			res:   Resources{PidsLimit: 100},
			files: files{"pids.max": "100"}},
		{name: "--pids-limit -1",
			res:   Resources{PidsLimit: -1},
			files: files{"pids.max": "max"}},
		{name: "device rules",
			res:   Resources{Devices: DefaultDeviceRules()},
			files: files{},
			warn:  []string{WarnDevicesV2}},
		{name: "controllers missing at the root",
			fake: []fakeOpt{func(k *fakeKernel) { k.v2Offered = "memory pids" }},
			res:  Resources{Memory: 100 * mb, CPUShares: 512, NanoCPUs: 5e8, BlkioWeight: 100, CpusetCpus: "0"},
			files: files{"memory.max": "104857600", "cgroup.controllers": "memory pids",
				"../cgroup.subtree_control": "memory pids"},
			warn: []string{WarnCpuset, WarnCPUShares, WarnCPUQuota, WarnBlkioWeight}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeV2(t, c.fake...)
			m := NewV2(k.root, "berth/ctr1", k.opts()...)
			err := m.Create(&c.res)
			if c.name == "controllers missing at the root" {
				// --cpus without CFS is Docker's error, not a warning.
				if err == nil || !strings.Contains(err.Error(), "NanoCPUs can not be set") {
					t.Fatalf("Create: %v", err)
				}
				c.res.NanoCPUs, c.res.CPUQuota = 0, 50000
				err = m.Create(&c.res)
			}
			if err != nil {
				t.Fatal(err)
			}
			for rel, want := range c.files {
				if got := k.read(filepath.Join("berth/ctr1", rel)); got != want {
					t.Errorf("%s = %q, want %q", rel, got, want)
				}
			}
			if got := m.Warnings(); !slices.Equal(got, c.warn) {
				t.Errorf("warnings %q, want %q", got, c.warn)
			}
			if c.res.CPUShares == 0 && c.fake == nil && k.read("berth/ctr1/cpu.weight") != "100" {
				t.Error("cpu.weight written without -c")
			}
		})
	}
}

func TestV2SubtreeControl(t *testing.T) {
	k := newFakeV2(t)
	m := NewV2(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(nil))
	for _, rel := range []string{"cgroup.subtree_control", "berth/cgroup.subtree_control"} {
		if got := k.read(rel); got != "cpuset cpu io memory pids" {
			t.Errorf("%s = %q", rel, got)
		}
	}
	// The leaf enables nothing for children: processes live in it.
	if got := k.read("berth/ctr1/cgroup.subtree_control"); got != "" {
		t.Errorf("leaf subtree_control = %q", got)
	}
	if got := k.read("berth/ctr1/cgroup.controllers"); got != "cpuset cpu io memory pids" {
		t.Errorf("leaf cgroup.controllers = %q", got)
	}
	// A second container enables nothing again.
	n := len(k.writesTo("cgroup.subtree_control"))
	must(t, NewV2(k.root, "berth/ctr2", k.opts()...).Create(nil))
	if n2 := len(k.writesTo("cgroup.subtree_control")); n2 != n {
		t.Errorf("%d more subtree_control writes for the second container", n2-n)
	}
	if p := m.Paths(); len(p) != 1 || p[""] != filepath.Join(k.root, "berth/ctr1") {
		t.Errorf("Paths() = %v", p)
	}
	must(t, m.Apply(4242))
	if got := k.read("berth/ctr1/cgroup.procs"); got != "4242" {
		t.Errorf("cgroup.procs = %q", got)
	}
}

func TestV2Update(t *testing.T) {
	k := newFakeV2(t)
	m := NewV2(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Memory: 200 * mb, MemorySwap: 300 * mb, NanoCPUs: 1e9}))
	// docker update --memory-swap 500M: the total is relative to the current memory.max.
	must(t, m.Update(&Resources{MemorySwap: 500 * mb}))
	if got := k.read("berth/ctr1/memory.swap.max"); got != "314572800" {
		t.Errorf("memory.swap.max = %s", got)
	}
	must(t, m.Update(&Resources{Memory: 400 * mb, MemorySwap: -1, CPUQuota: -1, CPUShares: 2000}))
	if k.read("berth/ctr1/memory.max") != "419430400" || k.read("berth/ctr1/memory.swap.max") != "max" ||
		k.read("berth/ctr1/cpu.max") != "max 100000" || k.read("berth/ctr1/cpu.weight") != "170" {
		t.Error("update not applied")
	}
	if err := m.Update(&Resources{Memory: -1}); err != nil {
		t.Fatal(err)
	}
	if k.read("berth/ctr1/memory.max") != "max" || k.read("berth/ctr1/memory.swap.max") != "max" {
		t.Error("update -m -1 did not lift both limits")
	}
	if err := m.Update(&Resources{MemorySwap: 500 * mb}); err == nil || !strings.Contains(err.Error(), "without memory limit") {
		t.Errorf("swap alone with unlimited memory: %v", err)
	}
}

func TestV2Freeze(t *testing.T) {
	k := newFakeV2(t, func(k *fakeKernel) { k.freezeDelay = 300 * time.Millisecond })
	m := NewV2(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(nil))
	if st, err := m.State(); err != nil || st != Thawed {
		t.Fatalf("State() = %q, %v", st, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(20 * time.Millisecond)
		if st, _ := m.State(); st != Freezing {
			t.Errorf("State() = %q while freezing", st)
		}
	}()
	start := time.Now()
	must(t, m.Freeze())
	<-done
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Freeze returned after %s, before cgroup.events said frozen 1", d)
	}
	if st, _ := m.State(); st != Frozen {
		t.Errorf("State() = %q after Freeze", st)
	}
	must(t, m.Thaw())
	if st, _ := m.State(); st != Thawed {
		t.Errorf("State() = %q after Thaw", st)
	}

	k2 := newFakeV2(t, func(k *fakeKernel) { k.stuckFreeze = true })
	m2 := NewV2(k2.root, "berth/ctr2", k2.opts(WithFreezeTimeout(200*time.Millisecond))...)
	must(t, m2.Create(nil))
	if err := m2.Freeze(); err == nil || !strings.Contains(err.Error(), "thawed again") {
		t.Errorf("stuck Freeze: %v", err)
	}
	if st, _ := m2.State(); st != Thawed {
		t.Errorf("State() = %q after a failed Freeze", st)
	}
}

func TestV2StatsOOM(t *testing.T) {
	k := newFakeV2(t)
	m := NewV2(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(&Resources{Memory: 200 * mb, PidsLimit: 100}))
	d := filepath.Join(k.root, "berth/ctr1")
	k.set(filepath.Join(d, "cpu.stat"), "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 10\nnr_throttled 3\nthrottled_usec 45\nnr_bursts 0")
	k.set(filepath.Join(d, "memory.current"), "52428800")
	k.set(filepath.Join(d, "memory.peak"), "62914560")
	k.set(filepath.Join(d, "memory.stat"), "anon 1000\nfile 2000\ninactive_file 4096")
	k.set(filepath.Join(d, "pids.current"), "3")
	s, err := m.Stats()
	must(t, err)
	want := Stats{
		CPU:    CPUStats{UsageNS: 123456000, UserNS: 100000000, SystemNS: 23456000, Periods: 10, ThrottledPeriods: 3, ThrottledNS: 45000},
		Memory: MemoryStats{Usage: 52428800, MaxUsage: 62914560, Limit: 209715200, InactiveFile: 4096},
		Pids:   PidsStats{Current: 3, Limit: 100},
	}
	if s.CPU != want.CPU || s.Pids != want.Pids || s.Memory.Usage != want.Memory.Usage || s.Memory.MaxUsage != want.Memory.MaxUsage ||
		s.Memory.Limit != want.Memory.Limit || s.Memory.InactiveFile != 4096 || s.Memory.Stat["anon"] != 1000 {
		t.Errorf("Stats() =\n%+v\nwant\n%+v", *s, want)
	}
	if oom, err := m.OOMKilled(); err != nil || oom {
		t.Errorf("OOMKilled() = %v, %v", oom, err)
	}
	k.set(filepath.Join(d, "memory.events"), "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0")
	if oom, err := m.OOMKilled(); err != nil || !oom {
		t.Errorf("OOMKilled() = %v, %v after oom_kill 1", oom, err)
	}
	if s, _ := m.Stats(); s.Memory.OOMKills != 1 {
		t.Errorf("OOMKills = %d", s.Memory.OOMKills)
	}
	k.set(filepath.Join(d, "memory.max"), "max")
	if s, _ := m.Stats(); s.Memory.Limit != 0 {
		t.Errorf("unlimited memory.max read as %d", s.Memory.Limit)
	}
	if _, err := NewV2(k.root, "berth/nothere", k.opts()...).Stats(); err == nil {
		t.Error("Stats of a missing cgroup succeeded")
	}
}

// TestV2Destroy kills a real process through cgroup.kill (or freeze + SIGKILL on kernels
// without it) and removes the directory.
func TestV2Destroy(t *testing.T) {
	for _, noKill := range []bool{false, true} {
		k := newFakeV2(t, func(k *fakeKernel) { k.noCgroupKil = noKill; k.freezeDelay = 5 * time.Millisecond })
		m := NewV2(k.root, "berth/ctr1", k.opts()...)
		must(t, m.Create(nil))
		cmd := exec.Command("sleep", "60")
		must(t, cmd.Start())
		done := make(chan error, 1)
		go func() {
			err := cmd.Wait()
			k.exit(cmd.Process.Pid)
			done <- err
		}()
		must(t, m.Apply(cmd.Process.Pid))
		must(t, m.Destroy())
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); !ok || ee.String() != "signal: killed" {
				t.Errorf("sleep ended with %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("sleep survived Destroy")
		}
		if got := k.writesTo("cgroup.kill"); noKill != (len(got) == 0) {
			t.Errorf("cgroup.kill writes %q with noKill=%v", got, noKill)
		}
		if _, err := os.Stat(filepath.Join(k.root, "berth/ctr1")); !errors.Is(err, fs.ErrNotExist) {
			t.Error("berth/ctr1 left behind")
		}
		if _, err := os.Stat(filepath.Join(k.root, "berth")); err != nil {
			t.Error("the shared parent was removed")
		}
		must(t, m.Destroy())
	}
}

// TestRemoveTreeRetriesEBUSY: rmdir is retried while the kernel says EBUSY, sub-cgroups go
// first, and the retry kills what is left.
func TestRemoveTreeRetriesEBUSY(t *testing.T) {
	k := newFakeV2(t)
	m := NewV2(k.root, "berth/ctr1", k.opts()...)
	must(t, m.Create(nil))
	d := filepath.Join(k.root, "berth/ctr1")
	must(t, k.mkdir(filepath.Join(d, "nested")))
	k.set(filepath.Join(d, "cgroup.procs"), "999999999")
	kills := 0
	go func() {
		time.Sleep(100 * time.Millisecond)
		k.exit(999999999)
	}()
	must(t, removeTree(k, d, time.Now().Add(5*time.Second), func() { kills++ }))
	if kills == 0 {
		t.Error("no kill between EBUSY retries")
	}
	if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
		t.Error("not removed")
	}
	// Past the deadline, the EBUSY error is returned.
	must(t, m.Create(nil))
	k.set(filepath.Join(d, "cgroup.procs"), "999999999")
	err := removeTree(k, d, time.Now().Add(50*time.Millisecond), nil)
	if err == nil || !strings.Contains(err.Error(), "device or resource busy") {
		t.Errorf("removeTree: %v", err)
	}
}
