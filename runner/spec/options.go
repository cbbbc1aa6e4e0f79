// Package spec turns an image configuration and `docker run` options into an
// opencontainers runtime-spec (*specs.Spec) with Docker's semantics: entrypoint and
// command, environment, user and groups resolved from the image's /etc/passwd and
// /etc/group (read safely inside the untrusted rootfs), working directory, hostname,
// Docker's default capabilities, mounts, masked and read-only paths, devices, cgroup
// resources and namespaces.
//
// The spec is the whole description of a container: the runtime (runner/container)
// executes it, and a bundle (config.json + rootfs/) written from it runs under runc for
// comparison. Generate only computes; it touches nothing on the host besides reading the
// image's user database and a few kernel facts (/proc/sys/kernel/cap_last_cap, the
// CPUs with a thermal_throttle directory for Docker's masked paths).
//
// Seams: volumes (runner/volume) hand their mounts in Options.Mounts, networks
// (runner/network) a network namespace path in Options.NetNSPath and the files behind
// /etc/resolv.conf, /etc/hostname and /etc/hosts; Generate only places them.
//
// What Docker has and Berth does not (yet): no seccomp profile (Linux.Seccomp is left
// nil, as with --security-opt seccomp=unconfined), no AppArmor or SELinux labels, no user
// namespaces, no cgroup namespace (Docker's cgroup v1 default is the host's).
package spec

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/runner/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Options are the `docker run` options that shape the runtime spec. The zero value runs
// the image as Docker would with no options (but needs an id passed to Generate).
type Options struct {
	// Entrypoint is --entrypoint: nil keeps the image's ENTRYPOINT. A non-nil value
	// replaces it and, when Cmd is empty, also drops the image's CMD (Docker's merge).
	// []string{""} is `--entrypoint ""`: no entrypoint at all, so only Cmd runs.
	// An empty non-nil slice (the API's "Entrypoint": []) clears the image's entrypoint
	// but keeps its CMD.
	Entrypoint *[]string
	// Cmd are the arguments after the image name; they replace the image's CMD.
	Cmd []string
	// Env are the -e values in order: "KEY=VALUE", or "KEY" to pass the caller's value
	// (looked up with LookupEnv; a KEY the caller does not have unsets KEY, as Docker
	// does).
	Env []string
	// EnvFile are the --env-file entries, already read with ParseEnvFile, in file
	// order. They come before Env, so -e wins over a file.
	EnvFile []string
	// LookupEnv looks up the caller's environment for bare -e KEY values; nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// WorkingDir is -w; "" keeps the image's WORKDIR ("/" when it has none). It must be
	// absolute.
	WorkingDir string
	// User is -u: "user", "uid", "user:group", "uid:gid" (names resolved from the
	// image's /etc/passwd and /etc/group); "" keeps the image's USER (root when unset).
	User string
	// GroupAdd are --group-add values: group names (from the image's /etc/group) or
	// numeric gids added to the supplementary groups.
	GroupAdd []string
	// Hostname is -h; "" gives the first 12 characters of the id (the host's name with
	// NetNSPath "host", as Docker does).
	Hostname string
	// Domainname is --domainname.
	Domainname string
	// TTY is -t: a terminal for the process (Process.Terminal) and TERM=xterm.
	TTY bool
	// OpenStdin is -i. It does not change the spec (Docker keeps it in the container's
	// config only); it is here so that one struct describes the run for the caller.
	OpenStdin bool
	// ReadOnly is --read-only: the rootfs and Docker's non-device default mounts are
	// read-only.
	ReadOnly bool
	// Privileged is --privileged: every capability the kernel knows, no masked or
	// read-only paths, /sys and the cgroup mount read-write, every device allowed in the
	// device cgroup. The host's device nodes are not listed in the spec: the annotation
	// AnnotationPrivileged tells the runtime to bind them.
	Privileged bool
	// CapAdd and CapDrop are --cap-add and --cap-drop: Docker's names with or without
	// the CAP_ prefix, any case, or "ALL".
	CapAdd  []string
	CapDrop []string
	// SecurityOpt are --security-opt values. Supported: "no-new-privileges" and
	// "no-new-privileges:true|false" (or "="). "seccomp=unconfined",
	// "apparmor=unconfined" and "label=disable" are accepted as they describe what Berth
	// does anyway; anything else is an error.
	SecurityOpt []string
	// Ulimits are the --ulimit values (ParseUlimit); the last one of a name wins. With
	// none the container inherits the caller's limits, as Docker does.
	Ulimits []Ulimit
	// Init is --init: the process runs under the caller's built-in reaper, whose path
	// inside the container is InitPath: args become InitPath, "--", command….
	Init     bool
	InitPath string
	// Labels are --label values; they are merged over the image's labels and carried as
	// annotations of the spec.
	Labels map[string]string
	// Sysctls are --sysctl values. Docker's rule: the IPC sysctls kernel.msgmax,
	// kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax,
	// kernel.shmmni, kernel.shm_rmid_forced, and the prefixes fs.mqueue. and net. (not
	// with the host's network namespace).
	Sysctls map[string]string
	// Tmpfs are --tmpfs values: "/path" or "/path:opt,opt" (for example
	// "/run:rw,size=64m,mode=1777"). Mounted nosuid, noexec, nodev unless the options say
	// otherwise, as Docker does.
	Tmpfs []string
	// Mounts are the volume layer's mounts (binds, volumes, tmpfs), with absolute
	// destinations inside the container. Generate places them after Docker's default
	// mounts (parents before children) and checks for duplicate destinations; it does
	// not resolve their sources.
	Mounts []specs.Mount
	// ResolvConfPath, HostnamePath and HostsPath are host files (written by the caller)
	// bind-mounted on /etc/resolv.conf, /etc/hostname and /etc/hosts; "" skips one, and
	// so does a Mounts entry with the same destination.
	ResolvConfPath string
	HostnamePath   string
	HostsPath      string
	// NetNSPath is the network namespace: "" a new one, "host" the caller's (no network
	// namespace entry), anything else the path of a namespace to join (for example
	// /proc/<pid>/ns/net of another container, or a bind-mounted netns file).
	NetNSPath string
	// Resources are the cgroup limits (-m, --cpus, …). nil sets none. Their Devices
	// rules replace the default device cgroup when non-nil.
	Resources *cgroups.Resources
	// CgroupParent is --cgroup-parent: the cgroup path is CgroupParent/<id>; "" means
	// "berth".
	CgroupParent string
	// Devices are the --device values (ParseDevice): host device nodes created in the
	// container and allowed in its device cgroup.
	Devices []DeviceMapping
	// ShmSize is --shm-size in bytes (cgroups.ParseSize); 0 means Docker's 64 MiB.
	ShmSize int64
	// StopSignal is --stop-signal ("SIGTERM", "TERM", "15", "SIGRTMIN+3"); "" keeps the
	// image's STOPSIGNAL, else SIGTERM. See StopSignal.
	StopSignal string
	// OomScoreAdj is --oom-score-adj, -1000..1000.
	OomScoreAdj int
}

// Ulimit is one --ulimit: a resource name as Docker spells it ("nofile", "nproc", …) with
// its soft and hard limits; -1 means unlimited.
type Ulimit struct {
	Name string
	Soft int64
	Hard int64
}

// ulimitNames are the resource names --ulimit accepts (Docker's go-units list).
var ulimitNames = map[string]bool{
	"core": true, "cpu": true, "data": true, "fsize": true, "locks": true,
	"memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true,
	"rss": true, "rtprio": true, "rttime": true, "sigpending": true, "stack": true,
}

// ParseUlimit parses a --ulimit value, "name=soft[:hard]" (hard defaults to soft; -1 is
// unlimited), with Docker's checks and error messages: "nofile=1024:2048",
// "core=-1", "nproc=512".
func ParseUlimit(val string) (Ulimit, error) {
	name, limit, ok := strings.Cut(val, "=")
	if !ok {
		return Ulimit{}, fmt.Errorf("invalid ulimit argument: %s", val)
	}
	if !ulimitNames[name] {
		return Ulimit{}, fmt.Errorf("invalid ulimit type: %s", name)
	}
	parts := strings.Split(limit, ":")
	if len(parts) > 2 {
		return Ulimit{}, fmt.Errorf("too many limit value arguments - %s, can only have up to two, `soft[:hard]`", limit)
	}
	soft, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return Ulimit{}, fmt.Errorf("invalid ulimit value %q: %w", val, err)
	}
	hard := soft
	if len(parts) == 2 {
		if hard, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
			return Ulimit{}, fmt.Errorf("invalid ulimit value %q: %w", val, err)
		}
	}
	if soft < -1 || hard < -1 {
		return Ulimit{}, fmt.Errorf("invalid ulimit value %q: use -1 for unlimited", val)
	}
	if hard != -1 {
		if soft == -1 {
			return Ulimit{}, fmt.Errorf("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: %d", hard)
		}
		if soft > hard {
			return Ulimit{}, fmt.Errorf("ulimit soft limit must be less than or equal to hard limit: %d > %d", soft, hard)
		}
	}
	return Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}

// String gives the ulimit as --ulimit takes it: "nofile=1024:2048".
func (u Ulimit) String() string {
	return fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard)
}

// rlimit converts the ulimit to the spec's form; -1 becomes RLIM_INFINITY.
func (u Ulimit) rlimit() specs.POSIXRlimit {
	lim := func(v int64) uint64 {
		if v < 0 {
			return ^uint64(0)
		}
		return uint64(v)
	}
	return specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: lim(u.Soft), Hard: lim(u.Hard)}
}

// DeviceMapping is one --device: a host device node, its path in the container and the
// device-cgroup permissions ("r", "w", "m" combined).
type DeviceMapping struct {
	PathOnHost        string
	PathInContainer   string
	CgroupPermissions string
}

// ParseDevice parses a --device value as Docker does: "/dev/host[:/dev/ctr][:perms]",
// where a second field made only of r, w and m is the permissions (default "rwm").
func ParseDevice(val string) (DeviceMapping, error) {
	arr := strings.SplitN(val, ":", 4)
	d := DeviceMapping{CgroupPermissions: "rwm"}
	switch len(arr) {
	case 3:
		d.CgroupPermissions = arr[2]
		d.PathInContainer = arr[1]
	case 2:
		if validDeviceMode(arr[1]) {
			d.CgroupPermissions = arr[1]
		} else {
			d.PathInContainer = arr[1]
		}
	case 1:
	default:
		return DeviceMapping{}, fmt.Errorf("invalid device specification: %s", val)
	}
	d.PathOnHost = arr[0]
	if d.PathInContainer == "" {
		d.PathInContainer = d.PathOnHost
	}
	if !validDeviceMode(d.CgroupPermissions) {
		return DeviceMapping{}, fmt.Errorf("invalid device mode: %s", d.CgroupPermissions)
	}
	if !strings.HasPrefix(d.PathOnHost, "/") {
		return DeviceMapping{}, fmt.Errorf("invalid device specification: %s: the host path must be absolute", val)
	}
	if !strings.HasPrefix(d.PathInContainer, "/") {
		return DeviceMapping{}, fmt.Errorf("%s is not an absolute path", d.PathInContainer)
	}
	return d, nil
}

func validDeviceMode(mode string) bool {
	if mode == "" || len(mode) > 3 {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// parseSecurityOpts applies the --security-opt values: the result is NoNewPrivileges.
func parseSecurityOpts(opts []string) (bool, error) {
	nnp := false
	for _, opt := range opts {
		if opt == "no-new-privileges" {
			nnp = true
			continue
		}
		var k, v string
		var ok bool
		if strings.Contains(opt, "=") {
			k, v, ok = strings.Cut(opt, "=")
		} else if strings.Contains(opt, ":") {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			return false, fmt.Errorf("invalid --security-opt 1: %q", opt)
		}
		switch {
		case k == "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
			nnp = b
		case k == "seccomp" && v == "unconfined", k == "apparmor" && v == "unconfined", k == "label" && v == "disable":
			// What Berth does anyway: no seccomp filter, no LSM profile.
		case k == "seccomp", k == "apparmor", k == "label", k == "systempaths", k == "writable-cgroups", k == "mask", k == "unmask":
			return false, fmt.Errorf("unsupported --security-opt: %q", opt)
		default:
			return false, fmt.Errorf("unsupported --security-opt: %q: unknown option %q", opt, k)
		}
	}
	return nnp, nil
}

// lookupEnv is o.LookupEnv or os.LookupEnv.
func (o *Options) lookupEnv() func(string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv
	}
	return os.LookupEnv
}

// errNoCommand is Docker's error for a container with neither entrypoint nor command.
var errNoCommand = errors.New("No command specified")
