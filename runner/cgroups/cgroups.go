// Package cgroups puts containers into Linux control groups and applies Docker's resource
// limits (-m, --memory-swap, --memory-reservation, -c, --cpus, --cpu-period/--cpu-quota,
// --cpuset-cpus/--cpuset-mems, --blkio-weight, --pids-limit, --oom-kill-disable), pauses
// and resumes them with the freezer, reads their statistics and OOM kills, and removes them.
//
// One Manager interface has two implementations: cgroup v1 (one directory per controller,
// mount points found in /proc/self/mountinfo; hybrid hosts use it) and cgroup v2 (one
// directory in the unified hierarchy, with controllers enabled in the parents'
// cgroup.subtree_control). New picks the one the host runs. Values defined for v1 are
// converted for v2 the way runc does (CPUSharesToWeight, BlkioWeightToIOWeight, SwapToV2).
//
// A limit the kernel cannot apply (a missing controller or file) is discarded with Docker's
// warning, reported by Manager.Warnings, as Docker does for --blkio-weight on kernels
// without a blkio weight file.
package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where the cgroup hierarchies are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// FreezerState is the state of a cgroup's freezer, with cgroup v1's names.
type FreezerState string

// Freezer states.
const (
	// Undefined: the kernel has no freezer for this cgroup.
	Undefined FreezerState = ""
	// Thawed: the processes run.
	Thawed FreezerState = "THAWED"
	// Freezing: a freeze was asked and not every process is frozen yet.
	Freezing FreezerState = "FREEZING"
	// Frozen: every process is stopped (docker pause).
	Frozen FreezerState = "FROZEN"
)

// Warnings Docker prints when the kernel cannot apply a limit; the limit is discarded.
const (
	WarnMemoryLimit       = "Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded."
	WarnSwapLimit         = "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
	WarnMemoryReservation = "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded."
	WarnOomKillDisable    = "Your kernel does not support OomKillDisable. OomKillDisable discarded."
	WarnCPUShares         = "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded."
	WarnCPUPeriod         = "Your kernel does not support CPU CFS period or the cgroup is not mounted. Period discarded."
	WarnCPUQuota          = "Your kernel does not support CPU CFS quota or the cgroup is not mounted. Quota discarded."
	WarnCpuset            = "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded."
	WarnBlkioWeight       = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
	WarnPidsLimit         = "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded."
	WarnDevicesV2         = "Device cgroup rules are not enforced on cgroup v2 by this runtime (no eBPF device filter). Device rules discarded."
)

// Manager is the cgroup (v1: one directory per controller; v2: one directory) of one
// container. It keeps no state besides its path: any process can make a Manager for an
// existing container (New with the same path) and pause, inspect or remove it.
//
// Lifecycle:
//
//  1. Create makes the directories and writes the limits, before any process joins
//     (on v1 it also fills cpuset.cpus/mems from the parent so that tasks can join).
//  2. Apply moves the container's init into the cgroup(s) before it execs; processes it
//     forks stay inside. `exec` joins the directories of Paths the same way.
//  3. While it runs: Update (docker update), Freeze/Thaw (docker pause/unpause; Freeze
//     returns once every process is frozen), State, Stats (docker stats), Procs (docker
//     top), Kill (signal every process), OOMKilled (after the init died: was a process of
//     the container killed by the OOM killer?).
//  4. Destroy kills whatever is left (freezing first so nothing forks away, or cgroup.kill
//     on v2) and removes every directory, retrying while the kernel answers EBUSY.
//
// Methods other than Create work on an existing cgroup; Destroy of a missing one is a
// no-op. Warnings lists the limits the last Create or Update had to discard.
type Manager interface {
	// Create makes the cgroup(s) and applies the limits. res may be nil (no limits).
	// On error, the directories it made are removed again.
	Create(res *Resources) error
	// Apply moves the process pid (and its threads) into the cgroup(s).
	Apply(pid int) error
	// Update changes the limits of a running container: fields left zero are unchanged.
	Update(res *Resources) error
	// Freeze stops every process (docker pause) and returns when the kernel reports the
	// cgroup FROZEN; after the freeze timeout it thaws again and fails.
	Freeze() error
	// Thaw resumes the processes (docker unpause).
	Thaw() error
	// State reports the freezer state (Undefined without a freezer).
	State() (FreezerState, error)
	// Stats reads CPU, memory and pids usage and limits.
	Stats() (*Stats, error)
	// OOMKilled reports whether the OOM killer killed a process of the cgroup (v1:
	// memory.oom_control oom_kill, v2: memory.events oom_kill).
	OOMKilled() (bool, error)
	// Procs lists the processes (thread-group ids) in the cgroup and its sub-cgroups.
	Procs() ([]int, error)
	// Kill sends sig to every process of the cgroup.
	Kill(sig syscall.Signal) error
	// KillAll SIGKILLs every process, freezing first so none escapes by forking (v2:
	// cgroup.kill when the kernel has it), and waits until the cgroup is empty.
	KillAll() error
	// Destroy runs KillAll and removes the cgroup directories in every controller.
	Destroy() error
	// Paths maps each controller to its directory, for joining (exec) and inspection.
	// v1: "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices" (only
	// those mounted; "cpu" and "cpuacct" may share a directory). v2: "" → the directory.
	Paths() map[string]string
	// Warnings are Docker's warnings for the limits the last Create/Update discarded.
	Warnings() []string
}

// Stats are the usage figures of a cgroup. Limits are 0 when unlimited.
type Stats struct {
	CPU    CPUStats
	Memory MemoryStats
	Pids   PidsStats
}

// CPUStats is CPU time used and CFS throttling.
type CPUStats struct {
	// UsageNS is the total CPU time consumed, in nanoseconds.
	UsageNS uint64
	// UserNS and SystemNS split it (v1 without cpuacct.usage_user: tick precision).
	UserNS   uint64
	SystemNS uint64
	// Periods, ThrottledPeriods and ThrottledNS come from cpu.stat.
	Periods          uint64
	ThrottledPeriods uint64
	ThrottledNS      uint64
}

// MemoryStats is memory usage, the limit and OOM kills.
type MemoryStats struct {
	// Usage is the memory charged to the cgroup, page cache included.
	Usage uint64
	// MaxUsage is the peak usage (v1 memory.max_usage_in_bytes, v2 memory.peak; 0 if the
	// kernel does not record it).
	MaxUsage uint64
	// Limit is the hard limit, 0 when unlimited.
	Limit uint64
	// InactiveFile is the inactive page cache (v1 total_inactive_file, v2 inactive_file):
	// Docker's `stats` shows Usage − InactiveFile.
	InactiveFile uint64
	// OOMKills is the number of processes the OOM killer killed in the cgroup.
	OOMKills uint64
	// Stat is the whole memory.stat file.
	Stat map[string]uint64
}

// PidsStats is the task count and limit.
type PidsStats struct {
	Current uint64
	// Limit is pids.max, 0 when unlimited.
	Limit uint64
}

// Option changes how a Manager is made.
type Option func(*options)

type options struct {
	root          string
	freezeTimeout time.Duration
	killTimeout   time.Duration
	statfs        func(path string, buf *unix.Statfs_t) error
	mountinfo     string
	k             kernel
}

// WithRoot sets the directory holding the cgroup hierarchies (default /sys/fs/cgroup).
// Any directory laid out like /sys/fs/cgroup works (tests use fake trees).
func WithRoot(dir string) Option { return func(o *options) { o.root = dir } }

// WithFreezeTimeout bounds how long Freeze waits for FROZEN (default 10 s).
func WithFreezeTimeout(d time.Duration) Option { return func(o *options) { o.freezeTimeout = d } }

// WithKillTimeout bounds how long KillAll and Destroy wait for the processes to go and
// the directories to be removable (default 10 s).
func WithKillTimeout(d time.Duration) Option { return func(o *options) { o.killTimeout = d } }

func newOptions(opts []Option) options {
	o := options{
		root:          DefaultRoot,
		freezeTimeout: 10 * time.Second,
		killTimeout:   10 * time.Second,
		statfs:        unix.Statfs,
		mountinfo:     "/proc/self/mountinfo",
		k:             hostKernel{},
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// New returns the Manager of the cgroup path (such as "berth/<container-id>", relative to
// each hierarchy) for the host's cgroup version: v2 when the root is a cgroup2 file system
// (CGROUP2_SUPER_MAGIC), v1 otherwise (hybrid hosts included: their unified hierarchy holds
// none of the controllers).
func New(path string, opts ...Option) (Manager, error) {
	o := newOptions(opts)
	if _, err := cleanPath(path); err != nil {
		return nil, err
	}
	v2, err := isV2(o)
	if err != nil {
		return nil, err
	}
	if v2 {
		return newV2(o, path), nil
	}
	m := newV1(o, path)
	return m, m.err
}

// IsV2 reports whether the host (or the root given with WithRoot) runs cgroup v2 alone.
func IsV2(opts ...Option) (bool, error) {
	return isV2(newOptions(opts))
}

func isV2(o options) (bool, error) {
	var st unix.Statfs_t
	if err := o.statfs(o.root, &st); err != nil {
		return false, fmt.Errorf("cgroups: statfs %s: %w", o.root, err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// NewV1 returns a cgroup v1 Manager of path under root (DefaultRoot or a fake tree). On
// the real root the controllers' mount points come from /proc/self/mountinfo; elsewhere
// each entry of root names its controllers ("memory", "cpu,cpuacct", symlinks such as
// "cpu" → "cpu,cpuacct" allowed). Errors (bad path, no controller) come from Create.
func NewV1(root, path string, opts ...Option) Manager {
	o := newOptions(opts)
	o.root = root
	return newV1(o, path)
}

// NewV2 returns a cgroup v2 Manager of path under root, the unified hierarchy (DefaultRoot
// or a fake tree).
func NewV2(root, path string, opts ...Option) Manager {
	o := newOptions(opts)
	o.root = root
	return newV2(o, path)
}

func cleanPath(p string) (string, error) {
	c := filepath.Clean("/" + p)
	if p == "" || c == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("cgroups: invalid cgroup path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("cgroups: invalid cgroup path %q: \"..\" not allowed", p)
		}
	}
	return strings.TrimPrefix(c, "/"), nil
}

// kernel is what changes a cgroup file system. The tests substitute a fake kernel that
// behaves like cgroupfs on a plain directory tree.
type kernel interface {
	mkdir(path string) error
	write(path, data string) error
	rmdir(path string) error
}

type hostKernel struct{}

func (hostKernel) mkdir(path string) error { return os.Mkdir(path, 0o755) }

func (hostKernel) rmdir(path string) error {
	if err := unix.Rmdir(path); err != nil {
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// write writes data with one write(2) to an existing cgroup file, as the kernel expects.
func (hostKernel) write(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeFile(k kernel, dir, file, data string) error {
	p := filepath.Join(dir, file)
	if err := k.write(p, data); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cgroups: write %q to %s: %w", data, p, err)
	}
	return nil
}

func readString(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func exists(dir, file string) bool {
	_, err := os.Stat(filepath.Join(dir, file))
	return err == nil
}

// readUint reads a file holding one number; "max" and v1's huge "unlimited" values give
// unlimited=true and 0.
func readUint(dir, file string) (v uint64, unlimited bool, err error) {
	s, err := readString(dir, file)
	if err != nil {
		return 0, false, err
	}
	return parseUint(s)
}

func parseUint(s string) (uint64, bool, error) {
	if s == "max" || s == "-1" {
		return 0, true, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cgroups: not a number: %q", s)
	}
	if v >= 1<<62 { // v1 reports "unlimited" as PAGE_COUNTER_MAX pages
		return 0, true, nil
	}
	return v, false, nil
}

// readKeyValues parses "key value" lines (memory.stat, cpu.stat, memory.events, ...).
func readKeyValues(dir, file string) (map[string]uint64, error) {
	s, err := readString(dir, file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out, nil
}

// readProcs reads cgroup.procs of dir and of every cgroup below it.
func readProcs(dir string, into map[int]bool) error {
	s, err := readString(dir, "cgroup.procs")
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("cgroups: %s/cgroup.procs: bad pid %q", dir, f)
		}
		into[pid] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := readProcs(filepath.Join(dir, e.Name()), into); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func procsOf(dirs []string) ([]int, error) {
	set := map[int]bool{}
	for _, d := range dirs {
		if err := readProcs(d, set); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	out := make([]int, 0, len(set))
	for pid := range set {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out, nil
}

func signalAll(pids []int, sig syscall.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("cgroups: kill %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// writeProc writes pid to dir/cgroup.procs, retrying a little on EINVAL (a task still
// being forked, TASK_NEW, cannot move yet).
func writeProc(k kernel, dir string, pid int) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = writeFile(k, dir, "cgroup.procs", strconv.Itoa(pid)); err == nil || !errors.Is(err, unix.EINVAL) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// removeTree removes the cgroup directory dir and any sub-cgroups, deepest first, retrying
// while the kernel says EBUSY (processes still exiting) until the deadline; before each
// retry, kill is called. A missing directory is not an error.
func removeTree(k kernel, dir string, deadline time.Time, kill func()) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(k, filepath.Join(dir, e.Name()), deadline, kill); err != nil {
				return err
			}
		}
	}
	delay := 5 * time.Millisecond
	for {
		err := k.rmdir(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cgroups: remove %s: %w", dir, err)
		}
		if kill != nil {
			kill()
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// waitEmpty polls until dirs hold no process or the deadline passes; each round sends
// SIGKILL to what is left.
func waitEmpty(dirs []string, deadline time.Time) error {
	delay := time.Millisecond
	for {
		pids, err := procsOf(dirs)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: processes %v still in the cgroup after SIGKILL", pids)
		}
		_ = signalAll(pids, unix.SIGKILL)
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// warnings collects Docker's warnings without duplicates.
type warnings []string

func (w *warnings) add(s string) {
	for _, x := range *w {
		if x == s {
			return
		}
	}
	*w = append(*w, s)
}
