package cgroups

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// MinMemory is the smallest memory limit (and reservation) Docker accepts: 6 MiB.
const MinMemory = 6 * 1024 * 1024

// DefaultCPUPeriod is the CFS period (µs) used for --cpus, as Docker does.
const DefaultCPUPeriod = 100000

// CPU shares bounds of the kernel (and Docker's clamping range).
const (
	MinCPUShares = 2
	MaxCPUShares = 262144
)

// Resources are the cgroup limits of a container, with the meaning Docker gives to its
// `docker run` / `docker update` options. A zero field means "not set": at Create the
// kernel default (unlimited) stays, at Update the current value stays (as `docker update`).
type Resources struct {
	// Memory is the hard memory limit in bytes (-m/--memory). 0 = unset; -1 = unlimited.
	Memory int64
	// MemorySwap is the memory+swap limit in bytes (--memory-swap), Docker's meaning: the
	// total, not the swap alone. 0 = unset: at Create with Memory set, Docker's default of
	// twice Memory is used. -1 = unlimited swap.
	MemorySwap int64
	// MemoryReservation is the soft limit in bytes (--memory-reservation); v2: memory.low.
	MemoryReservation int64
	// CPUShares is the relative CPU weight (-c/--cpu-shares), 2..262144 (1024 is the
	// default); out-of-range values are clamped with a warning, as Docker does. v2 converts
	// it to cpu.weight (see CPUSharesToWeight).
	CPUShares int64
	// CPUPeriod is the CFS period in µs (--cpu-period), 1000..1000000.
	CPUPeriod int64
	// CPUQuota is the CFS quota in µs (--cpu-quota), ≥ 1000; -1 = unlimited.
	CPUQuota int64
	// NanoCPUs is --cpus × 1e9 (see ParseCPUs, SetCPUs). It becomes quota/period with a
	// period of 100000 µs and may not be combined with CPUPeriod or CPUQuota.
	NanoCPUs int64
	// CpusetCpus is the list of CPUs allowed (--cpuset-cpus), as "0-2,4".
	CpusetCpus string
	// CpusetMems is the list of memory nodes allowed (--cpuset-mems).
	CpusetMems string
	// BlkioWeight is the block I/O weight (--blkio-weight), 10..1000; 0 = unset.
	// Discarded with Docker's warning when the kernel has no weight file.
	BlkioWeight uint16
	// PidsLimit is the maximum number of tasks (--pids-limit). Negative = unlimited
	// ("max"); 0 = unset (unlimited at Create, unchanged at Update).
	PidsLimit int64
	// OomKillDisable disables the OOM killer (--oom-kill-disable). cgroup v1 only; v2
	// discards it with Docker's warning.
	OomKillDisable bool
	// Devices are device-cgroup rules applied in order at Create (cgroup v1 devices.allow
	// and devices.deny), typically DefaultDeviceRules(). nil leaves the device cgroup
	// open. Update ignores them. Not enforced on cgroup v2 (a warning says so).
	Devices []DeviceRule
}

// SetCPUs sets NanoCPUs from a --cpus value such as 1.5.
func (r *Resources) SetCPUs(cpus float64) {
	r.NanoCPUs = int64(math.Round(cpus * 1e9))
}

// CFS returns the effective CFS quota and period in µs: from NanoCPUs when set (period
// 100000, quota = cpus × period, as Docker converts --cpus), else CPUQuota and CPUPeriod.
func (r *Resources) CFS() (quota, period int64) {
	if r.NanoCPUs > 0 {
		return r.NanoCPUs * DefaultCPUPeriod / 1e9, DefaultCPUPeriod
	}
	return r.CPUQuota, r.CPUPeriod
}

// Validate checks the values the way the Docker daemon does before creating a container
// and returns Docker's error messages. The CPU count is the host's (runtime.NumCPU).
func (r *Resources) Validate() error {
	return r.validate(runtime.NumCPU(), false)
}

// ValidateUpdate is Validate for `docker update`, where MemorySwap may be given alone.
func (r *Resources) ValidateUpdate() error {
	return r.validate(runtime.NumCPU(), true)
}

func (r *Resources) validate(numCPU int, update bool) error {
	// memory
	if r.Memory != 0 && r.Memory < MinMemory && !(update && r.Memory == -1) {
		return errors.New("Minimum memory limit allowed is 6MB")
	}
	if r.MemorySwap < -1 {
		return fmt.Errorf("invalid memory swap limit %d: use -1 for unlimited swap", r.MemorySwap)
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return errors.New("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.Memory == 0 && r.MemorySwap > 0 && !update {
		return errors.New("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.MemoryReservation < 0 {
		return fmt.Errorf("invalid memory reservation %d", r.MemoryReservation)
	}
	if r.MemoryReservation > 0 && r.MemoryReservation < MinMemory {
		return errors.New("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return errors.New("Minimum memory limit can not be less than memory reservation limit, see usage")
	}

	// cpu
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return errors.New("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return errors.New("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if r.NanoCPUs < 0 || r.NanoCPUs > int64(numCPU)*1e9 {
		return fmt.Errorf("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", numCPU, numCPU)
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return errors.New("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return errors.New("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUQuota < -1 {
		return fmt.Errorf("invalid CPU cfs quota %d: use -1 for unlimited", r.CPUQuota)
	}

	// cpuset
	if r.CpusetCpus != "" {
		if _, err := ParseCPUList(r.CpusetCpus); err != nil {
			return fmt.Errorf("Invalid value %s for cpuset cpus: %w", r.CpusetCpus, err)
		}
	}
	if r.CpusetMems != "" {
		if _, err := ParseCPUList(r.CpusetMems); err != nil {
			return fmt.Errorf("Invalid value %s for cpuset mems: %w", r.CpusetMems, err)
		}
	}

	// blkio
	if r.BlkioWeight > 0 && (r.BlkioWeight < 10 || r.BlkioWeight > 1000) {
		return errors.New("Range of blkio weight is from 10 to 1000")
	}

	for _, d := range r.Devices {
		if err := d.validate(); err != nil {
			return err
		}
	}
	return nil
}

// withDefaults returns a copy with Docker's create-time defaults applied: MemorySwap of
// twice Memory when only Memory is set, and CPU shares clamped to the kernel's range.
func (r *Resources) withDefaults(create bool) (Resources, []string) {
	c := *r
	var warnings []string
	if create && c.Memory > 0 && c.MemorySwap == 0 {
		c.MemorySwap = 2 * c.Memory
	}
	if c.CPUShares < 0 {
		warnings = append(warnings, fmt.Sprintf("Changing requested CPUShares of %d to minimum allowed of %d", c.CPUShares, MinCPUShares))
		c.CPUShares = MinCPUShares
	} else if c.CPUShares > MaxCPUShares {
		warnings = append(warnings, fmt.Sprintf("Changing requested CPUShares of %d to maximum allowed of %d", c.CPUShares, MaxCPUShares))
		c.CPUShares = MaxCPUShares
	}
	if create && c.OomKillDisable && c.Memory <= 0 {
		warnings = append(warnings, "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.")
	}
	return c, warnings
}

// ParseSize parses a Docker size string as `docker run -m` does (go-units RAMInBytes):
// a decimal number with an optional space and a binary unit b, k, m, g, t or p (any case,
// optionally followed by "b" or "ib"): "200M", "1g", "512k", "1.5GiB", "1048576".
// "1x" gives "invalid suffix: 'x'"; negative or missing numbers "invalid size: '…'".
func ParseSize(s string) (int64, error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return -1, fmt.Errorf("invalid size: '%s'", s)
	}
	num, sfx := s[:i], s[i:]
	sfx = strings.TrimPrefix(sfx, " ")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return -1, fmt.Errorf("invalid size: '%s'", s)
	}
	if sfx == "" {
		return int64(f), nil
	}
	l := strings.ToLower(sfx)
	shift := strings.IndexByte("bkmgtp", l[0])
	rest := l[1:]
	switch {
	case shift < 0, len(l) > 3,
		shift == 0 && rest != "",
		shift > 0 && rest != "" && rest != "b" && rest != "ib":
		return -1, fmt.Errorf("invalid suffix: '%s'", sfx)
	}
	f *= float64(uint64(1) << (10 * shift))
	if f >= math.MaxInt64 {
		return -1, fmt.Errorf("invalid size: '%s': too large", s)
	}
	return int64(f), nil
}

// ParseMemorySwap parses a --memory-swap value: "-1" is unlimited (-1), anything else is
// ParseSize.
func ParseMemorySwap(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	return ParseSize(s)
}

// ParseCPUs parses a --cpus value ("1.5", "0.25", "2") into NanoCPUs, exactly (a rational
// number, at most nine decimals), as Docker's opts.NanoCPUs does.
func ParseCPUs(s string) (int64, error) {
	rat, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("failed to parse %v as a rational number", s)
	}
	nano := rat.Mul(rat, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return 0, errors.New("value is too precise")
	}
	if !nano.Num().IsInt64() {
		return 0, fmt.Errorf("value %s is out of range", s)
	}
	return nano.Num().Int64(), nil
}

// ParseCPUList parses a kernel CPU or memory-node list ("0-3,5,7-8") into sorted unique
// numbers. An empty string is an empty list.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid format: %s", s)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
				return nil, fmt.Errorf("invalid format: %s", s)
			}
		}
		for n := a; n <= b; n++ {
			seen[int(n)] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

// listSubset reports whether every number of the list want is in the list have.
func listSubset(want, have string) (bool, error) {
	w, err := ParseCPUList(want)
	if err != nil {
		return false, err
	}
	h, err := ParseCPUList(have)
	if err != nil {
		return false, err
	}
	set := map[int]bool{}
	for _, n := range h {
		set[n] = true
	}
	for _, n := range w {
		if !set[n] {
			return false, nil
		}
	}
	return true, nil
}

// CPUSharesToWeight converts cgroup v1 CPU shares [2..262144] to a cgroup v2 cpu.weight
// [1..10000] the way runc does today (opencontainers/cgroups since runc 1.3.2/1.4.0,
// opencontainers/cgroups#20, also crun ≥ 1.23): a quadratic in log2(shares) that maps the
// v1 range onto the v2 range and the v1 default 1024 onto the v2 default 100:
//
//	l = log2(shares); weight = ceil(10^((l² + 125·l)/612 − 7/34))
//
// so 2 → 1, 512 → 59, 1024 → 100, 2000 → 170, 262144 → 10000. The older linear
// 1 + ((shares−2)·9999)/262142 mapped 1024 to 39, giving containers far less CPU than the
// v2 default; see LegacyCPUSharesToWeight. 0 means unset and gives 0.
func CPUSharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= MinCPUShares:
		return 1
	case shares >= MaxCPUShares:
		return 10000
	}
	l := math.Log2(float64(shares))
	exp := (l*l+125*l)/612.0 - 7.0/34.0
	return uint64(math.Ceil(math.Pow(10, exp)))
}

// LegacyCPUSharesToWeight is the linear conversion runc used before 1.3.2:
// 1 + ((shares−2)·9999)/262142. Kept for reference and for reading old containers.
func LegacyCPUSharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, MinCPUShares), MaxCPUShares)
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight converts a blkio weight [10..1000] to a cgroup v2 io.weight
// [1..10000] linearly, as runc does: 1 + (w−10)·9999/990. 0 means unset and gives 0.
func BlkioWeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	w = min(max(w, 10), 1000)
	return 1 + (uint64(w)-10)*9999/990
}

// SwapToV2 converts Docker's memory+swap total to the cgroup v2 memory.swap.max value
// (swap alone), as runc does: -1 stays -1 ("max"), 0 stays 0 (unset), memory -1 with swap
// unset gives -1, otherwise swap − memory.
func SwapToV2(memorySwap, memory int64) (int64, error) {
	switch {
	case memory == -1 && memorySwap == 0:
		return -1, nil
	case memorySwap == -1, memorySwap == 0:
		return memorySwap, nil
	case memory == -1:
		return memorySwap, nil
	case memory == 0:
		return 0, errors.New("unable to set swap limit without memory limit")
	case memory < 0:
		return 0, fmt.Errorf("invalid memory value: %d", memory)
	case memorySwap < memory:
		return 0, errors.New("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	return memorySwap - memory, nil
}

// DeviceRule is one device-cgroup rule: allow or deny access ("r", "w", "m" combined) to
// a device type ('a' all, 'c' char, 'b' block) and major:minor numbers (-1 = any).
type DeviceRule struct {
	Allow  bool
	Type   byte
	Major  int64
	Minor  int64
	Access string
}

// String gives the rule in the kernel's devices.allow syntax: "c 1:3 rwm", "a *:* rwm".
func (d DeviceRule) String() string {
	num := func(n int64) string {
		if n < 0 {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	if d.Type == 'a' {
		return "a *:* " + d.Access
	}
	return fmt.Sprintf("%c %s:%s %s", d.Type, num(d.Major), num(d.Minor), d.Access)
}

func (d DeviceRule) validate() error {
	if d.Type != 'a' && d.Type != 'b' && d.Type != 'c' {
		return fmt.Errorf("invalid device rule type %q", d.Type)
	}
	if d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
		return fmt.Errorf("invalid device rule access %q", d.Access)
	}
	return nil
}

// DefaultDeviceRules is the device cgroup of an unprivileged Docker container: deny
// everything, allow mknod of any device, and read/write/mknod of /dev/null, zero, full,
// random, urandom, tty, console, ptmx, the pty slaves (136:*) and /dev/net/tun.
func DefaultDeviceRules() []DeviceRule {
	c := func(major, minor int64, access string) DeviceRule {
		return DeviceRule{Allow: true, Type: 'c', Major: major, Minor: minor, Access: access}
	}
	return []DeviceRule{
		{Allow: false, Type: 'a', Major: -1, Minor: -1, Access: "rwm"},
		c(-1, -1, "m"),
		{Allow: true, Type: 'b', Major: -1, Minor: -1, Access: "m"},
		c(1, 3, "rwm"),    // /dev/null
		c(1, 5, "rwm"),    // /dev/zero
		c(1, 7, "rwm"),    // /dev/full
		c(1, 8, "rwm"),    // /dev/random
		c(1, 9, "rwm"),    // /dev/urandom
		c(5, 0, "rwm"),    // /dev/tty
		c(5, 1, "rwm"),    // /dev/console
		c(5, 2, "rwm"),    // /dev/ptmx
		c(136, -1, "rwm"), // /dev/pts/*
		c(10, 200, "rwm"), // /dev/net/tun
	}
}
