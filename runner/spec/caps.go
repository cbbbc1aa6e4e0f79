package spec

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// capNames are the Linux capabilities by number (linux/capability.h), up to
// CAP_CHECKPOINT_RESTORE (40).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capLastCapFile tells the highest capability number the kernel knows. Tests replace it.
var capLastCapFile = "/proc/sys/kernel/cap_last_cap"

// capAll is the --cap-add/--cap-drop word for every capability.
const capAll = "ALL"

// DefaultCapabilities returns Docker's default capability set for a container, the 14
// capabilities of moby's caps.DefaultCapabilities, in its order.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// AllCapabilities returns every capability both this package and the running kernel know
// (numbers up to /proc/sys/kernel/cap_last_cap; all known ones when that file cannot be
// read), in number order: the set of a --privileged container.
func AllCapabilities() []string {
	last := len(capNames) - 1
	if b, err := os.ReadFile(capLastCapFile); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < last {
			last = n
		}
	}
	return slices.Clone(capNames[:last+1])
}

// boundingFile holds this process's status, whose CapBnd line is the
// bounding set. Tests replace it.
var boundingFile = "/proc/self/status"

// grantable keeps the capabilities in this process's bounding set: what
// --privileged and --cap-add ALL can really give (a host or an outer
// container may have dropped some, and capset would refuse them).
func grantable(caps []string) []string {
	b, err := os.ReadFile(boundingFile)
	if err != nil {
		return caps
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return caps
		}
		out := make([]string, 0, len(caps))
		for _, c := range caps {
			if n := slices.Index(capNames, c); n >= 0 && n < 64 && mask&(1<<uint(n)) != 0 {
				out = append(out, c)
			}
		}
		return out
	}
	return caps
}

// NormalizeCap normalizes a capability name as Docker does: upper case, with the CAP_
// prefix added when missing ("net_admin" → "CAP_NET_ADMIN"); "all" gives "ALL". A name
// that the kernel (AllCapabilities) does not know is an error: unknown capability:
// "CAP_FOO".
func NormalizeCap(name string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(name))
	if c == capAll {
		return c, nil
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	if !slices.Contains(AllCapabilities(), c) {
		return "", fmt.Errorf("unknown capability: %q", c)
	}
	return c, nil
}

func normalizeCaps(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		c, err := NormalizeCap(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseCapabilities computes a container's capability set the way Docker's
// TweakCapabilities does: privileged gives AllCapabilities; else --cap-add ALL gives
// every capability but those dropped; --cap-drop ALL gives only those added; otherwise
// DefaultCapabilities less the dropped ones, plus the added ones. Names are normalized
// with NormalizeCap; the result has no duplicates.
func ParseCapabilities(add, drop []string, privileged bool) ([]string, error) {
	if privileged {
		return grantable(AllCapabilities()), nil
	}
	capDrop, err := normalizeCaps(drop)
	if err != nil {
		return nil, err
	}
	capAdd, err := normalizeCaps(add)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(capAdd, capAll):
		for _, c := range grantable(AllCapabilities()) {
			if !slices.Contains(capDrop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(capDrop, capAll):
		for _, c := range capAdd {
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
	default:
		for _, c := range DefaultCapabilities() {
			if !slices.Contains(capDrop, c) {
				caps = append(caps, c)
			}
		}
		for _, c := range capAdd {
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
	}
	if caps == nil {
		caps = []string{}
	}
	return caps, nil
}
