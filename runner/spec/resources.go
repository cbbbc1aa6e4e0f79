package spec

import (
	"fmt"

	"github.com/berth-registry/berth/runner/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConvertResources converts Docker's limits to the spec's Linux.Resources, after
// checking them with Resources.Validate (Docker's messages), with the daemon's create-time
// adjustments: --memory-swap defaults to twice --memory when only --memory is set, CPU
// shares outside 2..262144 are clamped (with Docker's warning), --cpus becomes a CFS quota
// over a 100000 µs period, and a negative --pids-limit becomes -1 (unlimited). The values
// stay cgroup v1 values (shares, blkio weight, memory+swap), as in Docker's specs; v2
// conversion is the cgroup manager's job. r.Devices, when non-nil, become the device
// rules; otherwise Devices is left nil for the caller to fill. nil r gives an empty
// LinuxResources.
func ConvertResources(r *cgroups.Resources) (*specs.LinuxResources, []string, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil, nil
	}
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	c := *r
	var warnings []string
	if c.Memory > 0 && c.MemorySwap == 0 {
		c.MemorySwap = 2 * c.Memory
	}
	switch {
	case c.CPUShares < 0:
		warnings = append(warnings, fmt.Sprintf("Changing requested CPUShares of %d to minimum allowed of %d", c.CPUShares, cgroups.MinCPUShares))
		c.CPUShares = cgroups.MinCPUShares
	case c.CPUShares > 0 && c.CPUShares < cgroups.MinCPUShares:
		warnings = append(warnings, fmt.Sprintf("Changing requested CPUShares of %d to minimum allowed of %d", c.CPUShares, cgroups.MinCPUShares))
		c.CPUShares = cgroups.MinCPUShares
	case c.CPUShares > cgroups.MaxCPUShares:
		warnings = append(warnings, fmt.Sprintf("Changing requested CPUShares of %d to maximum allowed of %d", c.CPUShares, cgroups.MaxCPUShares))
		c.CPUShares = cgroups.MaxCPUShares
	}
	if c.OomKillDisable && c.Memory <= 0 {
		warnings = append(warnings, "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.")
	}

	if c.Memory != 0 || c.MemorySwap != 0 || c.MemoryReservation != 0 || c.OomKillDisable {
		m := &specs.LinuxMemory{}
		if c.Memory != 0 {
			m.Limit = ptr(c.Memory)
		}
		if c.MemorySwap != 0 {
			m.Swap = ptr(c.MemorySwap)
		}
		if c.MemoryReservation != 0 {
			m.Reservation = ptr(c.MemoryReservation)
		}
		if c.OomKillDisable {
			m.DisableOOMKiller = ptr(true)
		}
		out.Memory = m
	}

	quota, period := c.CFS()
	if c.CPUShares != 0 || quota != 0 || period != 0 || c.CpusetCpus != "" || c.CpusetMems != "" {
		cpu := &specs.LinuxCPU{Cpus: c.CpusetCpus, Mems: c.CpusetMems}
		if c.CPUShares > 0 {
			cpu.Shares = ptr(uint64(c.CPUShares))
		}
		if quota != 0 {
			cpu.Quota = ptr(quota)
		}
		if period > 0 {
			cpu.Period = ptr(uint64(period))
		}
		out.CPU = cpu
	}

	if c.PidsLimit != 0 {
		limit := c.PidsLimit
		if limit < 0 {
			limit = -1
		}
		out.Pids = &specs.LinuxPids{Limit: ptr(limit)}
	}

	if c.BlkioWeight != 0 {
		out.BlockIO = &specs.LinuxBlockIO{Weight: ptr(c.BlkioWeight)}
	}

	if c.Devices != nil {
		out.Devices = DeviceCgroupRules(c.Devices)
	}
	return out, warnings, nil
}

// DeviceCgroupRules converts device-cgroup rules to the spec's form, in order.
func DeviceCgroupRules(rules []cgroups.DeviceRule) []specs.LinuxDeviceCgroup {
	out := make([]specs.LinuxDeviceCgroup, 0, len(rules))
	for _, d := range rules {
		r := specs.LinuxDeviceCgroup{Allow: d.Allow, Access: d.Access}
		if d.Type != 'a' {
			r.Type = string(d.Type)
			if d.Major >= 0 {
				r.Major = ptr(d.Major)
			}
			if d.Minor >= 0 {
				r.Minor = ptr(d.Minor)
			}
		}
		out = append(out, r)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
