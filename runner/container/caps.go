package container

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNames are the capability names of linux/capability.h, by number.
var capNames = []string{
	0:  "CAP_CHOWN",
	1:  "CAP_DAC_OVERRIDE",
	2:  "CAP_DAC_READ_SEARCH",
	3:  "CAP_FOWNER",
	4:  "CAP_FSETID",
	5:  "CAP_KILL",
	6:  "CAP_SETGID",
	7:  "CAP_SETUID",
	8:  "CAP_SETPCAP",
	9:  "CAP_LINUX_IMMUTABLE",
	10: "CAP_NET_BIND_SERVICE",
	11: "CAP_NET_BROADCAST",
	12: "CAP_NET_ADMIN",
	13: "CAP_NET_RAW",
	14: "CAP_IPC_LOCK",
	15: "CAP_IPC_OWNER",
	16: "CAP_SYS_MODULE",
	17: "CAP_SYS_RAWIO",
	18: "CAP_SYS_CHROOT",
	19: "CAP_SYS_PTRACE",
	20: "CAP_SYS_PACCT",
	21: "CAP_SYS_ADMIN",
	22: "CAP_SYS_BOOT",
	23: "CAP_SYS_NICE",
	24: "CAP_SYS_RESOURCE",
	25: "CAP_SYS_TIME",
	26: "CAP_SYS_TTY_CONFIG",
	27: "CAP_MKNOD",
	28: "CAP_LEASE",
	29: "CAP_AUDIT_WRITE",
	30: "CAP_AUDIT_CONTROL",
	31: "CAP_SETFCAP",
	32: "CAP_MAC_OVERRIDE",
	33: "CAP_MAC_ADMIN",
	34: "CAP_SYSLOG",
	35: "CAP_WAKE_ALARM",
	36: "CAP_BLOCK_SUSPEND",
	37: "CAP_AUDIT_READ",
	38: "CAP_PERFMON",
	39: "CAP_BPF",
	40: "CAP_CHECKPOINT_RESTORE",
}

// dockerDefaultCaps is Docker's default capability set (14 capabilities, mask 0xa80425fb).
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// CapabilityNumber returns the number of a capability named as in the runtime-spec
// ("CAP_NET_ADMIN") or as Docker's --cap-add takes it ("NET_ADMIN", "net_admin").
func CapabilityNumber(name string) (int, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capNames {
		if c == n {
			return i, nil
		}
	}
	return -1, fmt.Errorf("unknown capability %q", name)
}

// CapabilityName returns the runtime-spec name ("CAP_KILL") of capability number n.
func CapabilityName(n int) (string, error) {
	if n < 0 || n >= len(capNames) {
		return "", fmt.Errorf("unknown capability number %d", n)
	}
	return capNames[n], nil
}

// CapabilityMask returns the bit mask (bit n for capability n, as CapEff in
// /proc/<pid>/status shows it) of a list of capability names.
func CapabilityMask(names []string) (uint64, error) {
	var m uint64
	for _, name := range names {
		n, err := CapabilityNumber(name)
		if err != nil {
			return 0, err
		}
		m |= 1 << uint(n)
	}
	return m, nil
}

// capSets are the five capability sets of a process as masks.
type capSets struct {
	bounding, effective, permitted, inheritable, ambient uint64
}

// parseCaps converts the spec's capabilities; nil means Docker's default 14 in the
// bounding, effective and permitted sets (never the full set a bare runc would keep).
func parseCaps(c *specs.LinuxCapabilities) (capSets, error) {
	if c == nil {
		m, _ := CapabilityMask(dockerDefaultCaps)
		return capSets{bounding: m, effective: m, permitted: m}, nil
	}
	var s capSets
	var err error
	for _, x := range []struct {
		dst   *uint64
		names []string
		what  string
	}{
		{&s.bounding, c.Bounding, "bounding"},
		{&s.effective, c.Effective, "effective"},
		{&s.permitted, c.Permitted, "permitted"},
		{&s.inheritable, c.Inheritable, "inheritable"},
		{&s.ambient, c.Ambient, "ambient"},
	} {
		if *x.dst, err = CapabilityMask(x.names); err != nil {
			return s, fmt.Errorf("%s capabilities: %w", x.what, err)
		}
	}
	return s, nil
}

// lastCap is the highest capability the running kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return len(capNames) - 1
}

// dropBounding drops every capability not in keep from the calling thread's bounding set
// (needs CAP_SETPCAP: call it before changing the user).
func dropBounding(keep uint64, last int) error {
	for c := 0; c <= last; c++ {
		if c < 64 && keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL { // not a capability of this kernel
				continue
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// capset sets the calling thread's effective, permitted and inheritable sets.
func capset(effective, permitted, inheritable uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(effective), Permitted: uint32(permitted), Inheritable: uint32(inheritable)},
		{Effective: uint32(effective >> 32), Permitted: uint32(permitted >> 32), Inheritable: uint32(inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// raiseAmbient clears the calling thread's ambient set and raises the capabilities of set
// (each must be permitted and inheritable).
func raiseAmbient(set uint64, last int) error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		if set == 0 && err == unix.EINVAL { // kernel without ambient capabilities
			return nil
		}
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; c <= last && c < 64; c++ {
		if set&(1<<uint(c)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %s: %w", capNames[c], err)
		}
	}
	return nil
}
