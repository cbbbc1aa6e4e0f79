package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/berth-registry/berth/runner/cgroups"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations Generate sets on the spec, besides the container's labels (copied as they
// are; a label cannot set one of these keys).
const (
	// AnnotationStopSignal is the signal `stop` sends first, by name ("SIGTERM"), as
	// the image-spec's conversion to a runtime config names it.
	AnnotationStopSignal = "org.opencontainers.image.stopSignal"
	// AnnotationExposedPorts lists the image's EXPOSEd ports, comma-separated and
	// sorted ("443/tcp,80/tcp"), for -P; absent when there are none.
	AnnotationExposedPorts = "org.opencontainers.image.exposedPorts"
	// AnnotationPrivileged is "true" for a --privileged container: the runtime must
	// make every host device available in its /dev.
	AnnotationPrivileged = "io.berth.privileged"
	// AnnotationInit is "true" with --init: Process.Args[0] is the built-in reaper.
	AnnotationInit = "io.berth.init"
)

// RootfsPlaceholder is Root.Path in a generated spec: the rootfs directory of a bundle;
// the runtime sets the real path of the overlay mount.
const RootfsPlaceholder = "rootfs"

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Generate builds the runtime spec of container id from the image config and the run
// options, with Docker's semantics, and returns the warnings Docker would print.
//
// rootfs is the container's root directory (the prepared overlay, or the image's
// unpacked layers): it is only read, through os.Root and ResolvePath, for the user and
// groups of -u in /etc/passwd and /etc/group. "" means an image without those files
// (numeric users only). img may be nil (an empty config); opts may be nil.
//
// Process: args are entrypoint + command as Docker merges them (see Options.Entrypoint;
// neither gives "No command specified"), wrapped by the reaper with --init; the
// environment is PATH (DefaultPathEnv unless the image sets it), HOSTNAME, TERM=xterm
// with -t, then --env-file and -e over the image's, and HOME from the user's passwd entry
// ("/" without one) unless set; cwd is -w or the image's WORKDIR ("/" by default; a
// relative one is Docker's error); capabilities per ParseCapabilities in the bounding,
// effective and permitted sets (inheritable and ambient empty); rlimits only with
// --ulimit; oomScoreAdj as given (0).
//
// Linux: new mount, network (see Options.NetNSPath), uts, pid and ipc namespaces;
// cgroups path "<CgroupParent or berth>/<id>"; resources from Options.Resources with
// the default device cgroup (cgroups.DefaultDeviceRules: Docker's rules with the ones runc
// adds implicitly) plus --device rules; DefaultDevices plus --device nodes; Docker's masked
// and read-only paths; sysctls; rootfs propagation rprivate (rslave or rshared when a
// mount asks for it). Seccomp is nil: Berth has no seccomp profile yet.
func Generate(img *ocispec.Image, rootfs string, id string, opts *Options) (*specs.Spec, []string, error) {
	if opts == nil {
		opts = &Options{}
	}
	var cfg ocispec.ImageConfig
	if img != nil {
		cfg = img.Config
	}
	if !validID.MatchString(id) {
		return nil, nil, fmt.Errorf("invalid container id %q", id)
	}
	var warnings []string

	args, err := command(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	if opts.Init {
		if opts.InitPath == "" {
			return nil, nil, fmt.Errorf("--init needs the path of the init binary in the container")
		}
		args = append([]string{opts.InitPath, "--"}, args...)
	}

	cwd := opts.WorkingDir
	if cwd == "" {
		cwd = cfg.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, nil, fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", cwd)
	}
	if strings.ContainsRune(cwd, 0) {
		return nil, nil, fmt.Errorf("the working directory %q is invalid", cwd)
	}
	cwd = path.Clean(cwd)

	hostname := opts.Hostname
	if hostname == "" {
		if opts.NetNSPath == "host" {
			if hostname, err = os.Hostname(); err != nil {
				return nil, nil, err
			}
		} else {
			hostname = id[:min(12, len(id))]
		}
	}
	if err := validateHostname("hostname", hostname); err != nil {
		return nil, nil, err
	}
	if err := validateHostname("domainname", opts.Domainname); err != nil {
		return nil, nil, err
	}

	var root *os.Root
	if rootfs != "" {
		if root, err = os.OpenRoot(rootfs); err != nil {
			return nil, nil, fmt.Errorf("opening the container's rootfs: %w", err)
		}
		defer root.Close()
	}
	userSpec := opts.User
	if userSpec == "" {
		userSpec = cfg.User
	}
	user, err := LookupUser(root, userSpec, opts.GroupAdd)
	if err != nil {
		return nil, nil, err
	}

	env, err := buildEnv(cfg, opts, hostname, user.Home)
	if err != nil {
		return nil, nil, err
	}

	caps, err := ParseCapabilities(opts.CapAdd, opts.CapDrop, opts.Privileged)
	if err != nil {
		return nil, nil, err
	}
	noNewPrivs, err := parseSecurityOpts(opts.SecurityOpt)
	if err != nil {
		return nil, nil, err
	}
	if opts.OomScoreAdj < -1000 || opts.OomScoreAdj > 1000 {
		return nil, nil, fmt.Errorf("Invalid value %d, range for oom score adj is [-1000, 1000]", opts.OomScoreAdj)
	}
	rlimits, err := rlimits(opts.Ulimits)
	if err != nil {
		return nil, nil, err
	}
	stop, err := StopSignal(img, opts)
	if err != nil {
		return nil, nil, err
	}

	mounts, propagation, err := buildMounts(opts)
	if err != nil {
		return nil, nil, err
	}
	namespaces, err := namespaces(opts.NetNSPath)
	if err != nil {
		return nil, nil, err
	}
	sysctls, err := sysctls(opts.Sysctls, opts.NetNSPath == "host")
	if err != nil {
		return nil, nil, err
	}
	cgroupsPath, err := cgroupPath(opts.CgroupParent, id)
	if err != nil {
		return nil, nil, err
	}

	resources, w, err := ConvertResources(opts.Resources)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)
	devices := DefaultDevices()
	switch {
	case opts.Privileged:
		resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	case resources.Devices == nil:
		resources.Devices = DeviceCgroupRules(cgroups.DefaultDeviceRules())
	}
	nodes, rules, err := hostDevices(opts.Devices)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range nodes {
		devices = slices.DeleteFunc(devices, func(d specs.LinuxDevice) bool { return d.Path == n.Path })
		devices = append(devices, n)
	}
	if !opts.Privileged {
		resources.Devices = append(resources.Devices, rules...)
	}

	var masked, readonly []string
	if !opts.Privileged {
		masked, readonly = DefaultMaskedPaths(), DefaultReadonlyPaths()
	}

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: opts.TTY,
			User: specs.User{
				UID:            user.UID,
				GID:            user.GID,
				AdditionalGids: user.AdditionalGids,
			},
			Args: args,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(caps),
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
			Rlimits:         rlimits,
			NoNewPrivileges: noNewPrivs,
			OOMScoreAdj:     ptr(opts.OomScoreAdj),
		},
		Root:        &specs.Root{Path: RootfsPlaceholder, Readonly: opts.ReadOnly},
		Hostname:    hostname,
		Domainname:  opts.Domainname,
		Mounts:      mounts,
		Annotations: annotations(cfg, opts, stop),
		Linux: &specs.Linux{
			Sysctl:            sysctls,
			Resources:         resources,
			CgroupsPath:       cgroupsPath,
			Namespaces:        namespaces,
			Devices:           devices,
			RootfsPropagation: propagation,
			MaskedPaths:       masked,
			ReadonlyPaths:     readonly,
		},
	}
	return s, warnings, nil
}

// command merges the image's ENTRYPOINT and CMD with --entrypoint and the arguments as
// the Docker daemon does (merge, then mergeAndVerifyConfig).
func command(cfg ocispec.ImageConfig, opts *Options) ([]string, error) {
	var entrypoint []string
	if opts.Entrypoint != nil {
		entrypoint = *opts.Entrypoint
	}
	cmd := opts.Cmd
	if len(entrypoint) == 0 {
		if len(cmd) == 0 {
			cmd = cfg.Cmd
		}
		if opts.Entrypoint == nil {
			entrypoint = cfg.Entrypoint
		}
	}
	if len(entrypoint) == 1 && entrypoint[0] == "" {
		entrypoint = nil
	}
	if len(entrypoint) == 0 && len(cmd) == 0 {
		return nil, errNoCommand
	}
	args := make([]string, 0, len(entrypoint)+len(cmd))
	args = append(append(args, entrypoint...), cmd...)
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("invalid argument %q: contains a NUL byte", a)
		}
	}
	return args, nil
}

// buildEnv is Docker's CreateDaemonEnvironment over the merged Env, plus HOME.
func buildEnv(cfg ocispec.ImageConfig, opts *Options, hostname, home string) ([]string, error) {
	cli, err := resolveCLIEnv(opts.Env, opts.lookupEnv())
	if err != nil {
		return nil, err
	}
	file, err := resolveCLIEnv(opts.EnvFile, opts.lookupEnv())
	if err != nil {
		return nil, err
	}
	defaults := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=" + hostname}
	if opts.TTY {
		defaults = append(defaults, "TERM=xterm")
	}
	env := replaceOrAppendEnv(defaults, mergeImageEnv(append(file, cli...), cfg.Env))
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	return env, nil
}

// validateHostname checks what the kernel and the files built from it need: at most 64
// bytes (HOST_NAME_MAX), no whitespace, control characters or '/'.
func validateHostname(what, name string) error {
	if len(name) > 64 {
		return fmt.Errorf("invalid %s %q: longer than 64 characters", what, name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '/' {
			return fmt.Errorf("invalid %s format: %q", what, name)
		}
	}
	return nil
}

// rlimits converts the ulimits, the last of each name winning in the place of its first.
func rlimits(ulimits []Ulimit) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	index := map[string]int{}
	for _, u := range ulimits {
		if !ulimitNames[u.Name] {
			return nil, fmt.Errorf("invalid ulimit type: %s", u.Name)
		}
		if u.Soft < -1 || u.Hard < -1 || (u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard)) {
			return nil, fmt.Errorf("invalid ulimit %s: soft limit must be less than or equal to hard limit", u)
		}
		if i, ok := index[u.Name]; ok {
			out[i] = u.rlimit()
			continue
		}
		index[u.Name] = len(out)
		out = append(out, u.rlimit())
	}
	return out, nil
}

// namespaces are Docker's, in its order; netns "" is a new network namespace, "host" none,
// a path one to join.
func namespaces(netns string) ([]specs.LinuxNamespace, error) {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	switch {
	case netns == "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	case netns == "host":
	case path.IsAbs(netns) && !strings.ContainsRune(netns, 0):
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path.Clean(netns)})
	default:
		return nil, fmt.Errorf("invalid network namespace %q: want \"\", \"host\" or an absolute path", netns)
	}
	return append(ns,
		specs.LinuxNamespace{Type: specs.UTSNamespace},
		specs.LinuxNamespace{Type: specs.PIDNamespace},
		specs.LinuxNamespace{Type: specs.IPCNamespace},
	), nil
}

// namespacedSysctls are the kernel.* sysctls of the IPC namespace Docker allows.
var namespacedSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// sysctls validates the --sysctl values with Docker's rule (ValidateSysctl): the
// namespaced IPC kernel.* keys, fs.mqueue.* and net.* (not with the host's network
// namespace). Keys must be dotted names: no '/', no empty element, so that the runtime's
// /proc/sys/<a>/<b> path stays under /proc/sys.
func sysctls(in map[string]string, hostNet bool) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		elems := strings.Split(k, ".")
		if strings.ContainsAny(k, "/\x00 \t\n") || slices.Contains(elems, "") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("sysctl '%s=%s' is not allowed", k, v)
		}
		switch {
		case namespacedSysctls[k], strings.HasPrefix(k, "fs.mqueue."):
		case strings.HasPrefix(k, "net."):
			if hostNet {
				return nil, fmt.Errorf("sysctl %q is not allowed in host network namespace", k)
			}
		default:
			return nil, fmt.Errorf("sysctl '%s=%s' is not allowed", k, v)
		}
		out[k] = v
	}
	return out, nil
}

// cgroupPath is parent/id, relative to each hierarchy's root, as runner/cgroups takes it.
func cgroupPath(parent, id string) (string, error) {
	if parent == "" {
		parent = DefaultCgroupParent
	}
	p := strings.Trim(path.Clean("/"+parent), "/")
	if strings.ContainsRune(parent, 0) || slices.Contains(strings.Split(parent, "/"), "..") {
		return "", fmt.Errorf("invalid cgroup parent %q", parent)
	}
	if p == "" {
		return id, nil
	}
	return p + "/" + id, nil
}

// annotations are the labels (image's, then --label) and Berth's keys; a label cannot
// set one of Berth's keys.
func annotations(cfg ocispec.ImageConfig, opts *Options, stop syscall.Signal) map[string]string {
	a := map[string]string{}
	for k, v := range cfg.Labels {
		a[k] = v
	}
	for k, v := range opts.Labels {
		a[k] = v
	}
	for _, k := range []string{AnnotationExposedPorts, AnnotationPrivileged, AnnotationInit} {
		delete(a, k)
	}
	a[AnnotationStopSignal] = SignalName(stop)
	if len(cfg.ExposedPorts) > 0 {
		ports := make([]string, 0, len(cfg.ExposedPorts))
		for p := range cfg.ExposedPorts {
			ports = append(ports, p)
		}
		sort.Strings(ports)
		a[AnnotationExposedPorts] = strings.Join(ports, ",")
	}
	if opts.Privileged {
		a[AnnotationPrivileged] = "true"
	}
	if opts.Init {
		a[AnnotationInit] = "true"
	}
	return a
}

// fileMode converts a stat mode to an fs.FileMode's permission and special bits.
func fileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
