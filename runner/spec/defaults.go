package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-registry/berth/runner/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultShmSize is the size of /dev/shm when --shm-size is not given: 64 MiB, Docker's.
const DefaultShmSize = 64 << 20

// DefaultCgroupParent is the parent of every container's cgroup ("berth/<id>").
const DefaultCgroupParent = "berth"

// sysfsRoot is where the host's sysfs is read for the per-CPU masked paths. Tests replace
// it with a fake tree.
var sysfsRoot = "/sys"

// DefaultMaskedPaths returns Docker's masked paths (moby daemon/pkg/oci/defaults.go):
// files and directories of /proc and /sys hidden from an unprivileged container (a
// directory gets an empty read-only tmpfs, a file /dev/null), including the
// thermal_throttle directory of each possible CPU the host has one for
// (GHSA-6fw5-f8r9-fgfm).
func DefaultMaskedPaths() []string {
	paths := []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/sys/devices/virtual/powercap",
		"/sys/firmware",
	}
	b, err := os.ReadFile(filepath.Join(sysfsRoot, "devices/system/cpu/possible"))
	if err != nil {
		return paths
	}
	cpus, err := cgroups.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return paths
	}
	for _, cpu := range cpus {
		rel := fmt.Sprintf("devices/system/cpu/cpu%d/thermal_throttle", cpu)
		if _, err := os.Stat(filepath.Join(sysfsRoot, rel)); err == nil {
			paths = append(paths, "/sys/"+rel)
		}
	}
	return paths
}

// DefaultReadonlyPaths returns Docker's read-only paths of /proc.
func DefaultReadonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// DefaultMounts returns Docker's default mounts, in Docker's order, with /dev/shm of
// shmSize bytes (DefaultShmSize when 0): /proc, /dev, /dev/pts, /sys (read-only),
// /sys/fs/cgroup (read-only), /dev/mqueue, /dev/shm.
//
// /sys/fs/cgroup is a "cgroup" mount as in Docker's spec: on a cgroup v2 host a cgroup2
// mount; on a v1 (or hybrid) host runc, and so Berth's runtime, builds a read-only tmpfs
// holding a read-only bind of the container's own directory of each hierarchy.
func DefaultMounts(shmSize int64) []specs.Mount {
	if shmSize <= 0 {
		shmSize = DefaultShmSize
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", fmt.Sprintf("size=%d", shmSize)}},
	}
}

// DefaultDevices returns the device nodes every container gets: /dev/null, zero, full,
// random, urandom and tty (the runtime-spec's default devices, which Docker leaves
// implicit). The other defaults are not nodes: /dev/ptmx is a symbolic link to pts/ptmx,
// /dev/console the bind mount of the terminal's pts slave when Process.Terminal is set,
// and /dev/fd, stdin, stdout, stderr links into /proc/self/fd.
func DefaultDevices() []specs.LinuxDevice {
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor,
			FileMode: ptr(os.FileMode(0o666)), UID: ptr(uint32(0)), GID: ptr(uint32(0))}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3),
		dev("/dev/zero", 1, 5),
		dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8),
		dev("/dev/urandom", 1, 9),
		dev("/dev/tty", 5, 0),
	}
}
