package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// v1 is the cgroup v1 Manager: one directory per controller hierarchy.
type v1 struct {
	common
	mounts map[string]string // controller → hierarchy mount point
}

func newV1(o options, path string) *v1 {
	m := &v1{common: common{o: o}}
	if m.path, m.err = cleanPath(path); m.err != nil {
		return m
	}
	var mounts map[string]string
	if f, err := os.Open(o.mountinfo); err == nil {
		mounts, _ = parseMountinfo(f, o.root)
		f.Close()
	}
	if len(mounts) == 0 {
		var err error
		if mounts, err = scanV1Root(o.root); err != nil {
			m.err = fmt.Errorf("cgroups: no cgroup v1 hierarchy under %s: %w", o.root, err)
			return m
		}
	}
	if len(mounts) == 0 {
		m.err = fmt.Errorf("cgroups: no cgroup v1 controller mounted under %s", o.root)
	}
	m.mounts = mounts
	return m
}

// dir is the cgroup directory of controller sub, if that controller is mounted.
func (m *v1) dir(sub string) (string, bool) {
	mnt, ok := m.mounts[sub]
	if !ok {
		return "", false
	}
	return filepath.Join(mnt, m.path), true
}

// mountDirs lists each mounted hierarchy once (cpu and cpuacct may share one).
func (m *v1) mountDirs() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range v1Subsystems {
		if mnt, ok := m.mounts[s]; ok && !seen[mnt] {
			seen[mnt] = true
			out = append(out, mnt)
		}
	}
	return out
}

// dirs lists the container's cgroup directory in each hierarchy once.
func (m *v1) dirs() []string {
	var out []string
	for _, mnt := range m.mountDirs() {
		out = append(out, filepath.Join(mnt, m.path))
	}
	return out
}

func (m *v1) Paths() map[string]string {
	out := map[string]string{}
	for _, s := range v1Subsystems {
		if d, ok := m.dir(s); ok {
			out[s] = d
		}
	}
	return out
}

func (m *v1) Create(res *Resources) (err error) {
	r, unlock, err := m.begin(res, true)
	if err != nil {
		return err
	}
	defer unlock()
	var made []string
	defer func() {
		if err != nil {
			m.rollback(made)
		}
	}()
	cpusetMnt := m.mounts["cpuset"]
	for _, mnt := range m.mountDirs() {
		var after func(parent, dir string) error
		if mnt == cpusetMnt {
			after = m.inheritCpuset
		}
		if err := m.mkdirs(mnt, &made, nil, after); err != nil {
			return err
		}
	}
	return m.set(&r, false)
}

// inheritCpuset copies cpuset.cpus and cpuset.mems from the parent when they are empty, as
// a new v1 cpuset cgroup starts with none and no task can join it then.
func (m *v1) inheritCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		v, err := readString(dir, f)
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if v != "" {
			continue
		}
		pv, err := readString(parent, f)
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if err := writeFile(m.o.k, dir, f, pv); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) Update(res *Resources) error {
	if res == nil && m.err == nil {
		return nil
	}
	r, unlock, err := m.begin(res, false)
	if err != nil {
		return err
	}
	defer unlock()
	for _, d := range m.dirs() {
		if _, err := os.Stat(d); err != nil {
			return fmt.Errorf("cgroups: update: %w", err)
		}
	}
	return m.set(&r, true)
}

// set writes the non-zero fields of r. m.mu is held.
func (m *v1) set(r *Resources, update bool) error {
	k := m.o.k
	// cpuset first: nothing else depends on it, and it must be valid before tasks join.
	if r.CpusetCpus != "" || r.CpusetMems != "" {
		if d, ok := m.dir("cpuset"); !ok {
			m.warn.add(WarnCpuset)
		} else if err := setCpuset(k, d, filepath.Dir(d), "cpuset.cpus", "cpuset.mems", r); err != nil {
			return err
		}
	}

	if d, ok := m.dir("memory"); !ok {
		if r.Memory > 0 {
			m.warn.add(WarnMemoryLimit)
		}
		if r.MemoryReservation > 0 {
			m.warn.add(WarnMemoryReservation)
		}
		if r.OomKillDisable {
			m.warn.add(WarnOomKillDisable)
		}
	} else {
		if err := m.setMemory(d, r, update); err != nil {
			return err
		}
		if r.MemoryReservation != 0 {
			if !exists(d, "memory.soft_limit_in_bytes") {
				m.warn.add(WarnMemoryReservation)
			} else if err := writeFile(k, d, "memory.soft_limit_in_bytes", strconv.FormatInt(r.MemoryReservation, 10)); err != nil {
				return err
			}
		}
		if r.OomKillDisable {
			if !exists(d, "memory.oom_control") {
				m.warn.add(WarnOomKillDisable)
			} else if err := writeFile(k, d, "memory.oom_control", "1"); err != nil {
				return err
			}
		}
	}

	d, hasCPU := m.dir("cpu")
	if r.CPUShares != 0 {
		if !hasCPU || !exists(d, "cpu.shares") {
			m.warn.add(WarnCPUShares)
		} else if err := writeFile(k, d, "cpu.shares", strconv.FormatInt(r.CPUShares, 10)); err != nil {
			return err
		}
	}
	if quota, period := r.CFS(); quota != 0 || period != 0 {
		switch {
		case hasCPU && exists(d, "cpu.cfs_quota_us"):
			if err := setCFSv1(k, d, quota, period); err != nil {
				return err
			}
		default:
			if err := m.noCFS(r, quota, period); err != nil {
				return err
			}
		}
	}

	if r.PidsLimit != 0 {
		if d, ok := m.dir("pids"); !ok || !exists(d, "pids.max") {
			m.warn.add(WarnPidsLimit)
		} else if err := writeFile(k, d, "pids.max", pidsMax(r.PidsLimit)); err != nil {
			return err
		}
	}

	// Docker decides whether the kernel supports a blkio weight from the hierarchy's root
	// (sysinfo: blkio.weight at the mount point). Kernels without CFQ (Linux ≥ 5.0) have
	// none there, even when BFQ shows blkio.bfq.weight in child cgroups, so Docker warns and
	// discards the weight on cgroup v1; so do we. When supported, the child's file is
	// blkio.bfq.weight if present (as runc prefers), else blkio.weight.
	if r.BlkioWeight != 0 {
		file := ""
		d, ok := m.dir("blkio")
		if mnt := m.mounts["blkio"]; ok && (exists(mnt, "blkio.weight") || exists(mnt, "blkio.bfq.weight")) {
			if exists(d, "blkio.bfq.weight") {
				file = "blkio.bfq.weight"
			} else if exists(d, "blkio.weight") {
				file = "blkio.weight"
			}
		}
		if file == "" {
			m.warn.add(WarnBlkioWeight)
		} else if err := writeFile(k, d, file, strconv.Itoa(int(r.BlkioWeight))); err != nil {
			return err
		}
	}

	if !update && r.Devices != nil {
		d, ok := m.dir("devices")
		if !ok {
			return errors.New("cgroups: the devices controller is not mounted: cannot restrict device access")
		}
		for _, rule := range r.Devices {
			file := "devices.deny"
			if rule.Allow {
				file = "devices.allow"
			}
			if err := writeFile(k, d, file, rule.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// setMemory writes memory.limit_in_bytes and memory.memsw.limit_in_bytes in an order the
// kernel accepts: it requires memory ≤ memory+swap at every moment, so when the new
// memory+swap total is at least the current memory limit it goes first (raising), else the
// memory limit goes first (lowering).
func (m *v1) setMemory(d string, r *Resources, update bool) error {
	const memFile, swFile = "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	k := m.o.k
	mem, swap := r.Memory, r.MemorySwap
	if !exists(d, swFile) {
		if mem > 0 && swap != -1 {
			m.warn.add(WarnSwapLimit)
		}
		swap = 0
	} else if mem == -1 && swap == 0 {
		swap = -1 // unlimited memory, swap not given: both unlimited (as runc)
	}
	if update && mem > 0 && swap == 0 && exists(d, swFile) {
		cur, unlimited, err := readUint(d, swFile)
		if err != nil {
			return err
		}
		if !unlimited && uint64(mem) > cur {
			return errors.New("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
		}
	}
	if mem != 0 && !exists(d, memFile) {
		m.warn.add(WarnMemoryLimit)
		return nil
	}
	write := func(file string, v int64) error { return writeFile(k, d, file, strconv.FormatInt(v, 10)) }
	switch {
	case mem != 0 && swap != 0:
		cur, unlimited, err := readUint(d, memFile)
		if err != nil {
			return err
		}
		if swap == -1 || (!unlimited && cur <= uint64(swap)) {
			if err := write(swFile, swap); err != nil {
				return err
			}
			return write(memFile, mem)
		}
		if err := write(memFile, mem); err != nil {
			return err
		}
		return write(swFile, swap)
	case mem != 0:
		return write(memFile, mem)
	case swap != 0:
		return write(swFile, swap)
	}
	return nil
}

// setCFSv1 writes cpu.cfs_period_us then cpu.cfs_quota_us. The kernel may refuse a new
// period (EINVAL) while the old quota with it would exceed the parent's bandwidth; then the
// quota goes first and the period is written again after it.
func setCFSv1(k kernel, d string, quota, period int64) error {
	retryPeriod := false
	if period != 0 {
		if err := writeFile(k, d, "cpu.cfs_period_us", strconv.FormatInt(period, 10)); err != nil {
			if !errors.Is(err, unix.EINVAL) || quota == 0 {
				return err
			}
			retryPeriod = true
		}
	}
	if quota != 0 {
		if err := writeFile(k, d, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
			return err
		}
		if retryPeriod {
			return writeFile(k, d, "cpu.cfs_period_us", strconv.FormatInt(period, 10))
		}
	}
	return nil
}

// setCpuset checks the requested CPUs and memory nodes against the parent's and writes them.
func setCpuset(k kernel, d, parent, cpusFile, memsFile string, r *Resources) error {
	for _, c := range []struct{ want, file, what string }{
		{r.CpusetCpus, cpusFile, "CPUs"},
		{r.CpusetMems, memsFile, "memory nodes"},
	} {
		if c.want == "" {
			continue
		}
		avail, err := readString(parent, c.file)
		if err == nil {
			ok, err := listSubset(c.want, avail)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("Requested %s are not available - requested %s, available: %s", c.what, c.want, avail)
			}
		}
		if err := writeFile(k, d, strings.TrimSuffix(c.file, ".effective"), c.want); err != nil {
			return err
		}
	}
	return nil
}

func pidsMax(limit int64) string {
	if limit < 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}

func (m *v1) Apply(pid int) error {
	if m.err != nil {
		return m.err
	}
	for _, d := range m.dirs() {
		if err := writeProc(m.o.k, d, pid); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) Freeze() error { return m.freeze(m.o.freezeTimeout) }

func (m *v1) freeze(timeout time.Duration) error {
	if m.err != nil {
		return m.err
	}
	d, ok := m.dir("freezer")
	if !ok {
		return errors.New("cgroups: the freezer controller is not mounted")
	}
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Microsecond
	for i := 0; ; i++ {
		// Every 50 rounds, thaw and freeze again: a task that was between two states (a
		// vfork parent waiting for its child, for example) gets another chance.
		if i > 0 && i%50 == 0 {
			if err := writeFile(m.o.k, d, "freezer.state", string(Thawed)); err != nil {
				return err
			}
		}
		if err := writeFile(m.o.k, d, "freezer.state", string(Frozen)); err != nil {
			return err
		}
		st, err := readString(d, "freezer.state")
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if FreezerState(st) == Frozen {
			return nil
		}
		if time.Now().After(deadline) {
			_ = writeFile(m.o.k, d, "freezer.state", string(Thawed))
			return fmt.Errorf("cgroups: %s still %s after %s; thawed again", d, st, timeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

func (m *v1) Thaw() error {
	if m.err != nil {
		return m.err
	}
	d, ok := m.dir("freezer")
	if !ok {
		return nil
	}
	if err := writeFile(m.o.k, d, "freezer.state", string(Thawed)); err != nil {
		return err
	}
	deadline := time.Now().Add(m.o.freezeTimeout)
	for {
		st, err := readString(d, "freezer.state")
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if FreezerState(st) == Thawed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: %s still %s after thawing", d, st)
		}
		time.Sleep(time.Millisecond)
	}
}

func (m *v1) State() (FreezerState, error) {
	if m.err != nil {
		return Undefined, m.err
	}
	d, ok := m.dir("freezer")
	if !ok {
		return Undefined, nil
	}
	st, err := readString(d, "freezer.state")
	if err != nil {
		return Undefined, fmt.Errorf("cgroups: %w", err)
	}
	switch s := FreezerState(st); s {
	case Thawed, Freezing, Frozen:
		return s, nil
	}
	return Undefined, fmt.Errorf("cgroups: unknown freezer state %q", st)
}

func (m *v1) Stats() (*Stats, error) {
	if m.err != nil {
		return nil, m.err
	}
	s := &Stats{}
	found := false
	if d, ok := m.dir("cpuacct"); ok && exists(d, "cpuacct.usage") {
		found = true
		s.CPU.UsageNS, _, _ = readUint(d, "cpuacct.usage")
		if exists(d, "cpuacct.usage_user") {
			s.CPU.UserNS, _, _ = readUint(d, "cpuacct.usage_user")
			s.CPU.SystemNS, _, _ = readUint(d, "cpuacct.usage_sys")
		} else if kv, err := readKeyValues(d, "cpuacct.stat"); err == nil {
			const nsPerTick = 1e9 / 100 // USER_HZ
			s.CPU.UserNS, s.CPU.SystemNS = kv["user"]*nsPerTick, kv["system"]*nsPerTick
		}
	}
	if d, ok := m.dir("cpu"); ok {
		if kv, err := readKeyValues(d, "cpu.stat"); err == nil {
			found = true
			s.CPU.Periods, s.CPU.ThrottledPeriods, s.CPU.ThrottledNS = kv["nr_periods"], kv["nr_throttled"], kv["throttled_time"]
		}
	}
	if d, ok := m.dir("memory"); ok && exists(d, "memory.usage_in_bytes") {
		found = true
		s.Memory.Usage, _, _ = readUint(d, "memory.usage_in_bytes")
		s.Memory.MaxUsage, _, _ = readUint(d, "memory.max_usage_in_bytes")
		s.Memory.Limit, _, _ = readUint(d, "memory.limit_in_bytes")
		if kv, err := readKeyValues(d, "memory.stat"); err == nil {
			s.Memory.Stat = kv
			s.Memory.InactiveFile = kv["total_inactive_file"]
		}
		if kv, err := readKeyValues(d, "memory.oom_control"); err == nil {
			s.Memory.OOMKills = kv["oom_kill"]
		}
	}
	if d, ok := m.dir("pids"); ok && exists(d, "pids.current") {
		found = true
		s.Pids.Current, _, _ = readUint(d, "pids.current")
		s.Pids.Limit, _, _ = readUint(d, "pids.max")
	}
	if !found {
		return nil, fmt.Errorf("cgroups: no statistics for %s: cgroup missing", m.path)
	}
	return s, nil
}

func (m *v1) OOMKilled() (bool, error) {
	if m.err != nil {
		return false, m.err
	}
	d, ok := m.dir("memory")
	if !ok {
		return false, errors.New("cgroups: the memory controller is not mounted")
	}
	kv, err := readKeyValues(d, "memory.oom_control")
	if err != nil {
		return false, fmt.Errorf("cgroups: %w", err)
	}
	n, ok := kv["oom_kill"]
	if !ok {
		return false, fmt.Errorf("cgroups: %s/memory.oom_control has no oom_kill counter (kernel < 4.13)", d)
	}
	return n > 0, nil
}

func (m *v1) Procs() ([]int, error) {
	if m.err != nil {
		return nil, m.err
	}
	return procsOf(m.dirs())
}

func (m *v1) Kill(sig syscall.Signal) error {
	pids, err := m.Procs()
	if err != nil {
		return err
	}
	return signalAll(pids, sig)
}

func (m *v1) KillAll() error {
	pids, err := m.Procs()
	if err != nil || len(pids) == 0 {
		return err
	}
	deadline := time.Now().Add(m.o.killTimeout)
	frozen := false
	if d, ok := m.dir("freezer"); ok && exists(d, "freezer.state") {
		// Frozen, nothing forks between listing and killing; the signals act on thaw.
		frozen = m.freeze(min(m.o.freezeTimeout, 2*time.Second)) == nil
		if frozen {
			if pids, err = m.Procs(); err != nil {
				return err
			}
		}
	}
	kerr := signalAll(pids, unix.SIGKILL)
	if frozen {
		if err := m.Thaw(); err != nil {
			return err
		}
	}
	if err := waitEmpty(m.dirs(), deadline); err != nil {
		return errors.Join(kerr, err)
	}
	return nil
}

func (m *v1) Destroy() error {
	if m.err != nil {
		return m.err
	}
	killErr := m.KillAll()
	deadline := time.Now().Add(m.o.killTimeout)
	var errs []error
	for _, d := range m.dirs() {
		kill := func() {
			if pids, err := procsOf([]string{d}); err == nil {
				_ = signalAll(pids, unix.SIGKILL)
			}
		}
		if err := removeTree(m.o.k, d, deadline, kill); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(append(errs, killErr)...)
	}
	return nil
}
