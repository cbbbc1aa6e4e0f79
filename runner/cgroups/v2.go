package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// v2Controllers are the controllers enabled for a container, in the kernel's order.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids"}

// v2 is the cgroup v2 Manager: one directory in the unified hierarchy.
type v2 struct {
	common
	dir string // the cgroup's directory
}

func newV2(o options, path string) *v2 {
	m := &v2{common: common{o: o}}
	if m.path, m.err = cleanPath(path); m.err == nil {
		m.dir = filepath.Join(o.root, m.path)
	}
	return m
}

func (m *v2) Paths() map[string]string {
	if m.err != nil {
		return map[string]string{}
	}
	return map[string]string{"": m.dir}
}

func (m *v2) Create(res *Resources) (err error) {
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
	if err := m.mkdirs(m.o.root, &made, m.enableControllers, nil); err != nil {
		return err
	}
	return m.set(&r, false)
}

// enableControllers writes "+cpu +memory …" to dir/cgroup.subtree_control for the
// controllers dir offers and has not enabled for its children yet, one at a time so that
// one refusal does not lose the others. A controller that cannot be enabled shows up later
// as a discarded limit with Docker's warning.
func (m *v2) enableControllers(dir string) {
	avail, err := readString(dir, "cgroup.controllers")
	if err != nil {
		return
	}
	enabled, _ := readString(dir, "cgroup.subtree_control")
	has := func(list, c string) bool {
		for _, x := range strings.Fields(list) {
			if x == c {
				return true
			}
		}
		return false
	}
	for _, c := range v2Controllers {
		if has(avail, c) && !has(enabled, c) {
			_ = writeFile(m.o.k, dir, "cgroup.subtree_control", "+"+c)
		}
	}
}

func (m *v2) Update(res *Resources) error {
	if res == nil && m.err == nil {
		return nil
	}
	r, unlock, err := m.begin(res, false)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(m.dir); err != nil {
		return fmt.Errorf("cgroups: update: %w", err)
	}
	return m.set(&r, true)
}

// set writes the non-zero fields of r, converted for v2. m.mu is held.
func (m *v2) set(r *Resources, update bool) error {
	k, d := m.o.k, m.dir
	if r.CpusetCpus != "" || r.CpusetMems != "" {
		if !exists(d, "cpuset.cpus") {
			m.warn.add(WarnCpuset)
		} else if err := setCpuset(k, d, filepath.Dir(d), "cpuset.cpus.effective", "cpuset.mems.effective", r); err != nil {
			return err
		}
	}

	// memory
	hasMem := exists(d, "memory.max")
	if r.Memory != 0 || r.MemorySwap != 0 {
		if !hasMem {
			if r.Memory > 0 {
				m.warn.add(WarnMemoryLimit)
			}
		} else {
			swap := r.MemorySwap
			if !exists(d, "memory.swap.max") {
				if r.Memory > 0 && swap != -1 {
					m.warn.add(WarnSwapLimit)
				}
				swap = 0
			}
			memory := r.Memory
			if update && memory == 0 && swap > 0 {
				// docker update --memory-swap alone: the total is relative to the current limit.
				cur, unlimited, err := readUint(d, "memory.max")
				if err != nil {
					return err
				}
				if unlimited {
					return errors.New("unable to set swap limit without memory limit")
				}
				memory = int64(cur)
			}
			v, err := SwapToV2(swap, memory)
			if err != nil {
				return err
			}
			// v == 0 with a swap total given means memory+swap == memory: no swap at all.
			if v != 0 || swap > 0 {
				if err := writeFile(k, d, "memory.swap.max", maxOr(v)); err != nil {
					return err
				}
			}
			if r.Memory != 0 {
				if err := writeFile(k, d, "memory.max", maxOr(r.Memory)); err != nil {
					return err
				}
			}
		}
	}
	if r.MemoryReservation != 0 {
		if !exists(d, "memory.low") {
			m.warn.add(WarnMemoryReservation)
		} else if err := writeFile(k, d, "memory.low", strconv.FormatInt(r.MemoryReservation, 10)); err != nil {
			return err
		}
	}
	if r.OomKillDisable {
		m.warn.add(WarnOomKillDisable)
	}

	// cpu
	if r.CPUShares != 0 {
		if !exists(d, "cpu.weight") {
			m.warn.add(WarnCPUShares)
		} else if err := writeFile(k, d, "cpu.weight", strconv.FormatUint(CPUSharesToWeight(uint64(r.CPUShares)), 10)); err != nil {
			return err
		}
	}
	if quota, period := r.CFS(); quota != 0 || period != 0 {
		switch {
		case exists(d, "cpu.max"):
			if err := writeFile(k, d, "cpu.max", cpuMax(d, quota, period)); err != nil {
				return err
			}
		default:
			if err := m.noCFS(r, quota, period); err != nil {
				return err
			}
		}
	}

	if r.PidsLimit != 0 {
		if !exists(d, "pids.max") {
			m.warn.add(WarnPidsLimit)
		} else if err := writeFile(k, d, "pids.max", pidsMax(r.PidsLimit)); err != nil {
			return err
		}
	}

	// io: with the BFQ scheduler the weight file is io.bfq.weight, in blkio's own range
	// (runc writes the weight unconverted there); otherwise io.weight, converted.
	if r.BlkioWeight != 0 {
		switch {
		case exists(d, "io.bfq.weight"):
			if err := writeFile(k, d, "io.bfq.weight", strconv.Itoa(int(r.BlkioWeight))); err != nil {
				return err
			}
		case exists(d, "io.weight"):
			if err := writeFile(k, d, "io.weight", strconv.FormatUint(BlkioWeightToIOWeight(r.BlkioWeight), 10)); err != nil {
				return err
			}
		default:
			m.warn.add(WarnBlkioWeight)
		}
	}

	if !update && len(r.Devices) > 0 {
		m.warn.add(WarnDevicesV2)
	}
	return nil
}

// maxOr formats a v2 limit: negative is "max".
func maxOr(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// cpuMax formats cpu.max, "$QUOTA $PERIOD" with "max" for no quota. A quota or period not
// given keeps its current value (the kernel keeps it too; writing both makes the file exact).
func cpuMax(d string, quota, period int64) string {
	q, p := "max", int64(DefaultCPUPeriod)
	if cur, err := readString(d, "cpu.max"); err == nil {
		if f := strings.Fields(cur); len(f) == 2 {
			q = f[0]
			if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				p = n
			}
		}
	}
	switch {
	case quota > 0:
		q = strconv.FormatInt(quota, 10)
	case quota < 0:
		q = "max"
	}
	if period != 0 {
		p = period
	}
	return q + " " + strconv.FormatInt(p, 10)
}

func (m *v2) Apply(pid int) error {
	if m.err != nil {
		return m.err
	}
	return writeProc(m.o.k, m.dir, pid)
}

func (m *v2) Freeze() error { return m.freeze(m.o.freezeTimeout) }

func (m *v2) freeze(timeout time.Duration) error {
	if m.err != nil {
		return m.err
	}
	if !exists(m.dir, "cgroup.freeze") {
		return errors.New("cgroups: this kernel has no cgroup v2 freezer (cgroup.freeze, Linux ≥ 5.2)")
	}
	if err := writeFile(m.o.k, m.dir, "cgroup.freeze", "1"); err != nil {
		return err
	}
	if err := m.waitFrozen(true, timeout); err != nil {
		_ = writeFile(m.o.k, m.dir, "cgroup.freeze", "0")
		return fmt.Errorf("%w; thawed again", err)
	}
	return nil
}

// waitFrozen polls cgroup.events until its "frozen" line says want.
func (m *v2) waitFrozen(want bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Microsecond
	for {
		kv, err := readKeyValues(m.dir, "cgroup.events")
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if (kv["frozen"] == 1) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: %s: cgroup.events says frozen %d after %s", m.dir, kv["frozen"], timeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

func (m *v2) Thaw() error {
	if m.err != nil {
		return m.err
	}
	if !exists(m.dir, "cgroup.freeze") {
		return nil
	}
	if err := writeFile(m.o.k, m.dir, "cgroup.freeze", "0"); err != nil {
		return err
	}
	return m.waitFrozen(false, m.o.freezeTimeout)
}

func (m *v2) State() (FreezerState, error) {
	if m.err != nil {
		return Undefined, m.err
	}
	s, err := readString(m.dir, "cgroup.freeze")
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(m.dir); derr != nil {
			return Undefined, fmt.Errorf("cgroups: %w", derr)
		}
		return Undefined, nil
	}
	if err != nil {
		return Undefined, fmt.Errorf("cgroups: %w", err)
	}
	switch s {
	case "0":
		return Thawed, nil
	case "1":
		kv, err := readKeyValues(m.dir, "cgroup.events")
		if err != nil {
			return Undefined, fmt.Errorf("cgroups: %w", err)
		}
		if kv["frozen"] == 1 {
			return Frozen, nil
		}
		return Freezing, nil
	}
	return Undefined, fmt.Errorf("cgroups: unknown cgroup.freeze value %q", s)
}

func (m *v2) Stats() (*Stats, error) {
	if m.err != nil {
		return nil, m.err
	}
	if _, err := os.Stat(m.dir); err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	s := &Stats{}
	if kv, err := readKeyValues(m.dir, "cpu.stat"); err == nil {
		s.CPU = CPUStats{
			UsageNS:          kv["usage_usec"] * 1000,
			UserNS:           kv["user_usec"] * 1000,
			SystemNS:         kv["system_usec"] * 1000,
			Periods:          kv["nr_periods"],
			ThrottledPeriods: kv["nr_throttled"],
			ThrottledNS:      kv["throttled_usec"] * 1000,
		}
	}
	if exists(m.dir, "memory.current") {
		s.Memory.Usage, _, _ = readUint(m.dir, "memory.current")
		s.Memory.Limit, _, _ = readUint(m.dir, "memory.max")
		s.Memory.MaxUsage, _, _ = readUint(m.dir, "memory.peak")
		if kv, err := readKeyValues(m.dir, "memory.stat"); err == nil {
			s.Memory.Stat = kv
			s.Memory.InactiveFile = kv["inactive_file"]
		}
		if kv, err := readKeyValues(m.dir, "memory.events"); err == nil {
			s.Memory.OOMKills = kv["oom_kill"]
		}
	}
	if exists(m.dir, "pids.current") {
		s.Pids.Current, _, _ = readUint(m.dir, "pids.current")
		s.Pids.Limit, _, _ = readUint(m.dir, "pids.max")
	}
	return s, nil
}

func (m *v2) OOMKilled() (bool, error) {
	if m.err != nil {
		return false, m.err
	}
	kv, err := readKeyValues(m.dir, "memory.events")
	if err != nil {
		return false, fmt.Errorf("cgroups: %w", err)
	}
	n, ok := kv["oom_kill"]
	if !ok {
		return false, fmt.Errorf("cgroups: %s/memory.events has no oom_kill counter", m.dir)
	}
	return n > 0, nil
}

func (m *v2) Procs() ([]int, error) {
	if m.err != nil {
		return nil, m.err
	}
	return procsOf([]string{m.dir})
}

func (m *v2) Kill(sig syscall.Signal) error {
	pids, err := m.Procs()
	if err != nil {
		return err
	}
	return signalAll(pids, sig)
}

func (m *v2) KillAll() error {
	pids, err := m.Procs()
	if err != nil || len(pids) == 0 {
		return err
	}
	deadline := time.Now().Add(m.o.killTimeout)
	if exists(m.dir, "cgroup.kill") { // Linux ≥ 5.14: the kernel kills the whole subtree
		if err := writeFile(m.o.k, m.dir, "cgroup.kill", "1"); err != nil {
			return err
		}
		return waitEmpty([]string{m.dir}, deadline)
	}
	frozen := exists(m.dir, "cgroup.freeze") && m.freeze(min(m.o.freezeTimeout, 2*time.Second)) == nil
	if frozen {
		if pids, err = m.Procs(); err != nil {
			return err
		}
	}
	kerr := signalAll(pids, unix.SIGKILL)
	if frozen {
		if err := m.Thaw(); err != nil {
			return err
		}
	}
	if err := waitEmpty([]string{m.dir}, deadline); err != nil {
		return errors.Join(kerr, err)
	}
	return nil
}

func (m *v2) Destroy() error {
	if m.err != nil {
		return m.err
	}
	killErr := m.KillAll()
	kill := func() {
		if pids, err := m.Procs(); err == nil {
			_ = signalAll(pids, unix.SIGKILL)
		}
	}
	if err := removeTree(m.o.k, m.dir, time.Now().Add(m.o.killTimeout), kill); err != nil {
		return errors.Join(err, killErr)
	}
	return nil
}
