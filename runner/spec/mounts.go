package spec

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// tmpfsFlagGroups maps each mount flag a tmpfs accepts to the group of flags it
// conflicts with (the later one of a group wins), as moby/sys/mount.MergeTmpfsOptions.
var tmpfsFlagGroups = map[string]string{
	"ro": "ro", "rw": "ro",
	"suid": "suid", "nosuid": "suid",
	"dev": "dev", "nodev": "dev",
	"exec": "exec", "noexec": "exec",
	"sync": "sync", "async": "sync",
	"dirsync": "dirsync",
	"mand":    "mand", "nomand": "mand",
	"atime": "atime", "noatime": "atime",
	"diratime": "diratime", "nodiratime": "diratime",
	"relatime": "relatime", "norelatime": "relatime",
	"strictatime": "strictatime", "nostrictatime": "strictatime",
	"private": "propagation", "rprivate": "propagation",
	"shared": "propagation", "rshared": "propagation",
	"slave": "propagation", "rslave": "propagation",
	"unbindable": "propagation", "runbindable": "propagation",
}

// tmpfsDataOptions are the key=value options of a tmpfs.
var tmpfsDataOptions = map[string]bool{
	"size": true, "mode": true, "uid": true, "gid": true,
	"nr_inodes": true, "nr_blocks": true, "mpol": true,
}

// mergeTmpfsOptions keeps the last of each conflicting flag and of each data key, in the
// order of their last occurrence, as Docker's MergeTmpfsOptions.
func mergeTmpfsOptions(options []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for i := len(options) - 1; i >= 0; i-- {
		o := options[i]
		if o == "defaults" || o == "" {
			continue
		}
		key, ok := tmpfsFlagGroups[o]
		if !ok {
			k, _, hasValue := strings.Cut(o, "=")
			if !hasValue || !tmpfsDataOptions[k] {
				return nil, fmt.Errorf("invalid tmpfs option %q", o)
			}
			key = "=" + k
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, o)
		}
	}
	slices.Reverse(out)
	return out, nil
}

// parseTmpfs parses a --tmpfs value, "/path[:options]", into a mount with Docker's
// defaults (noexec, nosuid, nodev, rprivate) merged with the options.
func parseTmpfs(val string) (specs.Mount, error) {
	dest, data, _ := strings.Cut(val, ":")
	if err := validateDestination(dest); err != nil {
		return specs.Mount{}, fmt.Errorf("invalid --tmpfs %q: %w", val, err)
	}
	options := []string{"noexec", "nosuid", "nodev", "rprivate"}
	if data != "" {
		options = append(options, strings.Split(data, ",")...)
	}
	merged, err := mergeTmpfsOptions(options)
	if err != nil {
		return specs.Mount{}, fmt.Errorf("invalid --tmpfs %q: %w", val, err)
	}
	return specs.Mount{Destination: path.Clean(dest), Type: "tmpfs", Source: "tmpfs", Options: merged}, nil
}

func validateDestination(dest string) error {
	switch {
	case strings.ContainsRune(dest, 0):
		return fmt.Errorf("invalid mount path %q", dest)
	case !path.IsAbs(dest):
		return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", dest)
	case path.Clean(dest) == "/":
		return fmt.Errorf("invalid specification: destination can't be '/'")
	}
	return nil
}

// depth is the number of path elements of a clean absolute path, for ordering mounts
// parents first (Docker's mounts sort).
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// buildMounts places the mounts as Docker does: its default mounts, less those a user
// mount replaces (a user /dev replaces every default below /dev), then the network files
// and the user and tmpfs mounts sorted parents first (a stable sort, so equal depths keep
// their order: resolv.conf, hostname, hosts, Mounts, Tmpfs). --read-only adds "ro" to the
// default mounts but the /proc and /dev ones; --privileged makes /sys and the cgroup mount
// read-write. It also returns the rootfs propagation the user mounts need.
func buildMounts(opts *Options) ([]specs.Mount, string, error) {
	if opts.ShmSize < 0 {
		return nil, "", fmt.Errorf("SHM size can not be less than 0")
	}
	var user []specs.Mount
	userDest := map[string]bool{}
	add := func(m specs.Mount) error {
		if userDest[m.Destination] {
			return fmt.Errorf("Duplicate mount point: %s", m.Destination)
		}
		userDest[m.Destination] = true
		user = append(user, m)
		return nil
	}
	for _, m := range opts.Mounts {
		if err := validateDestination(m.Destination); err != nil {
			return nil, "", err
		}
		m.Destination = path.Clean(m.Destination)
		m.Options = slices.Clone(m.Options)
		if err := add(m); err != nil {
			return nil, "", err
		}
	}
	for _, t := range opts.Tmpfs {
		m, err := parseTmpfs(t)
		if err != nil {
			return nil, "", err
		}
		if err := add(m); err != nil {
			return nil, "", err
		}
	}

	var extra []specs.Mount
	for _, f := range []struct{ src, dest string }{
		{opts.ResolvConfPath, "/etc/resolv.conf"},
		{opts.HostnamePath, "/etc/hostname"},
		{opts.HostsPath, "/etc/hosts"},
	} {
		if f.src == "" || userDest[f.dest] {
			continue
		}
		o := []string{"rbind"}
		if opts.ReadOnly {
			o = append(o, "ro")
		}
		o = append(o, "rprivate")
		extra = append(extra, specs.Mount{Destination: f.dest, Type: "bind", Source: f.src, Options: o})
	}
	extra = append(extra, user...)
	sort.SliceStable(extra, func(i, j int) bool { return depth(extra[i].Destination) < depth(extra[j].Destination) })

	var mounts []specs.Mount
	for _, m := range DefaultMounts(opts.ShmSize) {
		if userDest[m.Destination] || (userDest["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		if opts.ReadOnly {
			switch m.Destination {
			case "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue":
			default:
				if !slices.Contains(m.Options, "ro") {
					m.Options = append(m.Options, "ro")
				}
			}
		}
		if opts.Privileged && (m.Destination == "/sys" || m.Type == "cgroup") {
			m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "ro" })
		}
		mounts = append(mounts, m)
	}
	mounts = append(mounts, extra...)

	propagation := "rprivate"
	for _, m := range user {
		for _, o := range m.Options {
			switch o {
			case "shared", "rshared":
				propagation = "rshared"
			case "slave", "rslave":
				if propagation != "rshared" {
					propagation = "rslave"
				}
			}
		}
	}
	return mounts, propagation, nil
}

// hostDevices turns the --device mappings into device nodes and their device-cgroup
// rules; the host paths must be character or block devices.
func hostDevices(devs []DeviceMapping) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var nodes []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, d := range devs {
		if !path.IsAbs(d.PathOnHost) || !path.IsAbs(d.PathInContainer) {
			return nil, nil, fmt.Errorf("invalid device %s:%s: paths must be absolute", d.PathOnHost, d.PathInContainer)
		}
		perms := d.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		if !validDeviceMode(perms) {
			return nil, nil, fmt.Errorf("invalid device mode: %s", perms)
		}
		var st unix.Stat_t
		if err := unix.Stat(d.PathOnHost, &st); err != nil {
			return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %w", d.PathOnHost, err)
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: not a device node", d.PathOnHost)
		}
		major, minor := int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
		nodes = append(nodes, specs.LinuxDevice{
			Path: path.Clean(d.PathInContainer), Type: typ, Major: major, Minor: minor,
			FileMode: ptr(fileMode(st.Mode)), UID: ptr(st.Uid), GID: ptr(st.Gid),
		})
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: ptr(major), Minor: ptr(minor), Access: perms})
	}
	return nodes, rules, nil
}
