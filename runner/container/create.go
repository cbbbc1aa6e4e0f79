package container

import (
	"bufio"
	"context"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-registry/berth/runner/cgroups"
	"github.com/berth-registry/berth/runner/snapshot"
	"github.com/berth-registry/berth/runner/spec"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ImageInfo is the image a container is created from.
type ImageInfo struct {
	// ID is the image ID (sha256:<config digest>); Ref the reference as the user gave it.
	ID  string
	Ref string
	// Config is the image's configuration (nil: an empty one).
	Config *ocispec.Image
}

// NetworkOptions are what the network layer decided, for the container's /etc files and
// inspect. The namespace itself is Spec.NetNSPath; setup at each start is a hook.
type NetworkOptions struct {
	// Mode is HostConfig.NetworkMode: "none", "host", "bridge", "container:<id>", a name.
	Mode string
	// DNS, DNSSearch and DNSOptions are --dns, --dns-search and --dns-option.
	DNS, DNSSearch, DNSOptions []string
	// ExtraHosts are --add-host values ("name:ip").
	ExtraHosts []string
	// HostsEntries are more /etc/hosts lines ("172.17.0.2\tname").
	HostsEntries []string
}

// CreateOptions describe a container to create (docker create).
type CreateOptions struct {
	// Name is --name ("" generates one: adjective_surname).
	Name string
	// Image is the image; Lower its snapshot directories, top layer first (the overlay's
	// lower layers).
	Image ImageInfo
	Lower []string
	// Spec are the run options that shape the runtime spec (runner/spec). Create fills in
	// the paths of the container's hostname, hosts and resolv.conf files when they are
	// empty. nil: no options.
	Spec *spec.Options
	// Init is --init: Berth's built-in reaper is the container's PID 1.
	Init bool
	// AttachStdin, AttachStdout, AttachStderr and StdinOnce as in Docker's Config
	// (docker run without -d attaches; run -i sets StdinOnce: the container's stdin is
	// closed when the attached client's input ends).
	AttachStdin, AttachStdout, AttachStderr, StdinOnce bool
	// RestartPolicy is --restart; AutoRemove --rm (the two exclude each other).
	RestartPolicy RestartPolicy
	AutoRemove    bool
	// LogConfig is --log-driver and --log-opt.
	LogConfig LogConfig
	// StopTimeout is --stop-timeout in seconds (nil: 10).
	StopTimeout *int
	// Network is the network layer's part (see NetworkOptions).
	Network NetworkOptions
	// Hooks are registered hooks (RegisterHook) to run at each start, stop and removal.
	Hooks []HookRef
	// Binds are the -v values as given (HostConfig.Binds); Mounts the volumes and binds
	// as inspect shows them (nil: derived from Spec.Mounts).
	Binds  []string
	Mounts []MountPoint
	// Volumes are the targets of -v's anonymous volumes (`-v /path`): Config.Volumes shows
	// them with the image's VOLUMEs, as Docker's does. HostMounts are the --mount values
	// (HostConfig.Mounts).
	Volumes    []string
	HostMounts []Mount
}

// Create creates a container: its name, its directories (the overlay's upper and work
// directories, the /etc files), its runtime spec and its state ("created").
func (m *Manager) Create(ctx context.Context, o CreateOptions) (*Container, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(o.Lower) == 0 {
		return nil, invalidf("no image layers to create the container from")
	}
	if err := o.RestartPolicy.Validate(); err != nil {
		return nil, err
	}
	if o.AutoRemove && !o.RestartPolicy.IsNone() {
		return nil, invalidf("can't create 'AutoRemove' container with restart policy")
	}
	logCfg := o.LogConfig
	if logCfg.Type == "" {
		logCfg.Type = LogDriverJSONFile
	}
	if logCfg.Config == nil {
		logCfg.Config = map[string]string{}
	}
	if _, err := parseLogConfig(logCfg); err != nil {
		return nil, err
	}
	if err := checkHooks(o.Hooks); err != nil {
		return nil, err
	}
	var so spec.Options
	if o.Spec != nil {
		so = *o.Spec
	}
	if so.Init {
		return nil, invalidf("use CreateOptions.Init for --init (Berth's built-in reaper)")
	}
	name := strings.TrimPrefix(o.Name, "/")
	if name != "" {
		if err := validateName(name); err != nil {
			return nil, err
		}
	}

	id := newID()
	dir := m.s.Dir(id)
	lk, err := m.s.lockStore()
	if err != nil {
		return nil, err
	}
	if name == "" {
		for retry := 0; ; retry++ {
			name = randomName(retry)
			if owner, err := m.s.nameOwner(name); err == nil && owner == "" {
				break
			}
		}
	}
	err = m.s.reserveName(name, id)
	if err == nil {
		err = os.Mkdir(dir, 0o700)
	}
	lk.Unlock()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			if lk, err := m.s.lockStore(); err == nil {
				m.s.releaseName(name, id)
				lk.Unlock()
			}
			os.RemoveAll(dir)
		}
	}()

	rootfs := Rootfs{
		Path:  filepath.Join(dir, "rootfs"),
		Lower: slices.Clone(o.Lower),
		Upper: filepath.Join(dir, "upper"),
		Work:  filepath.Join(dir, "work"),
	}
	for _, d := range []string{rootfs.Path, rootfs.Upper, rootfs.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	c := &Container{
		ID:       id,
		Name:     name,
		Created:  time.Now().UTC(),
		Image:    o.Image.ID,
		ImageRef: o.Image.Ref,
		Rootfs:   rootfs,
		Reaper:   o.Init,
		Hooks:    o.Hooks,
		LogPath:  m.s.LogPath(id),
	}
	if so.HostnamePath == "" {
		so.HostnamePath = filepath.Join(dir, "hostname")
		c.HostnamePath = so.HostnamePath
	}
	if so.HostsPath == "" {
		so.HostsPath = filepath.Join(dir, "hosts")
		c.HostsPath = so.HostsPath
	}
	if so.ResolvConfPath == "" {
		so.ResolvConfPath = filepath.Join(dir, "resolv.conf")
		c.ResolvConfPath = so.ResolvConfPath
	}
	sp, warnings, err := generateSpec(o.Image.Config, rootfs, id, &so)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	sp.Root.Path = rootfs.Path
	c.Spec = sp
	c.StopSignal = sp.Annotations[spec.AnnotationStopSignal]
	if c.StopSignal == "" {
		c.StopSignal = "SIGTERM"
	}
	c.StopTimeout = o.StopTimeout
	c.Warnings = warnings
	if hasLimits(so.Resources) {
		// Docker checks the limits against the kernel at create: a limit the kernel
		// cannot apply is discarded with a warning (blkio weight on this kernel), a bad
		// one (cpuset of missing CPUs) is an error now rather than at start.
		w, err := probeCgroup(c)
		if err != nil {
			return nil, invalidf("%v", err)
		}
		c.Warnings = append(c.Warnings, w...)
	}

	// The /etc files are written plainly: the container does not exist (no state.json)
	// until they are all there, and a create killed halfway leaves only garbage.
	hostMode := so.NetNSPath == "host"
	if c.HostnamePath != "" {
		if err := os.WriteFile(c.HostnamePath, []byte(sp.Hostname+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	if c.HostsPath != "" {
		if err := os.WriteFile(c.HostsPath, hostsFile(hostMode, o.Network), 0o644); err != nil {
			return nil, err
		}
	}
	if c.ResolvConfPath != "" {
		if err := os.WriteFile(c.ResolvConfPath, resolvConf(hostMode, o.Network), 0o644); err != nil {
			return nil, err
		}
	}
	c.Config = dockerConfig(&o, &so, sp)
	c.HostConfig = hostConfig(&o, &so, logCfg)
	c.Mounts = o.Mounts
	if c.Mounts == nil {
		c.Mounts = mountPoints(so.Mounts)
	}
	if err := m.s.saveConfig(c, false); err != nil {
		return nil, err
	}
	if err := writeJSONAtomic(m.s.statePath(id), &State{Status: StatusCreated}, true); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func hasLimits(r *cgroups.Resources) bool {
	return r != nil && (r.Memory != 0 || r.MemorySwap != 0 || r.MemoryReservation != 0 || r.CPUShares != 0 ||
		r.CPUPeriod != 0 || r.CPUQuota != 0 || r.NanoCPUs != 0 || r.CpusetCpus != "" || r.CpusetMems != "" ||
		r.BlkioWeight != 0 || r.PidsLimit != 0 || r.OomKillDisable)
}

// probeCgroup creates the container's cgroup with its limits and removes it again,
// returning the warnings of the limits the kernel could not apply.
func probeCgroup(c *Container) ([]string, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	var res *specs.LinuxResources
	if c.Spec.Linux != nil {
		res = c.Spec.Linux.Resources
	}
	if err := cg.Create(resourcesFromSpec(res)); err != nil {
		return nil, err
	}
	w := cg.Warnings()
	return w, cg.Destroy()
}

// generateSpec runs spec.Generate with the image's files readable for the user lookup:
// the one layer itself, or a read-only overlay of the layers mounted in a mount namespace
// of a single thread (gone with the thread: nothing is ever mounted on the host).
func generateSpec(img *ocispec.Image, r Rootfs, id string, so *spec.Options) (*specs.Spec, []string, error) {
	var sp *specs.Spec
	var warnings []string
	err := snapshot.WithReadOnlyOverlay(r.Lower, r.Path, func(root string) error {
		var err error
		sp, warnings, err = spec.Generate(img, root, id, so)
		return err
	})
	return sp, warnings, err
}

func hostsFile(hostMode bool, n NetworkOptions) []byte {
	var b strings.Builder
	if hostMode {
		if h, err := os.ReadFile("/etc/hosts"); err == nil {
			b.Write(h)
			if len(h) > 0 && h[len(h)-1] != '\n' {
				b.WriteByte('\n')
			}
		}
	} else {
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	}
	for _, h := range n.ExtraHosts {
		if name, ip, ok := strings.Cut(h, ":"); ok {
			b.WriteString(ip + "\t" + name + "\n")
		}
	}
	for _, e := range n.HostsEntries {
		b.WriteString(e + "\n")
	}
	return []byte(b.String())
}

// resolvConf is the host's resolv.conf as Docker adapts it: with the host's network as it
// is; otherwise without the loopback name servers (unreachable from a network namespace),
// Google's public DNS when none is left; --dns, --dns-search and --dns-option replace the
// host's values.
func resolvConf(hostMode bool, n NetworkOptions) []byte {
	host, _ := os.ReadFile("/etc/resolv.conf")
	var ns, search, opts, other []string
	sc := bufio.NewScanner(strings.NewReader(string(host)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 || line[0] == '#' || line[0] == ';' {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 && (hostMode || !isLoopback(f[1])) {
				ns = append(ns, f[1])
			}
		case "search", "domain":
			search = f[1:]
		case "options":
			opts = append(opts, f[1:]...)
		default:
			other = append(other, line)
		}
	}
	if len(n.DNS) > 0 {
		ns = n.DNS
	}
	if len(n.DNSSearch) > 0 {
		search = n.DNSSearch
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
	}
	if len(n.DNSOptions) > 0 {
		opts = n.DNSOptions
	}
	if len(ns) == 0 && !hostMode {
		ns = []string{"8.8.8.8", "8.8.4.4"}
	}
	var b strings.Builder
	for _, s := range ns {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	if len(opts) > 0 {
		b.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	for _, l := range other {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

// dockerConfig is Docker's Config of the container.
func dockerConfig(o *CreateOptions, so *spec.Options, sp *specs.Spec) DockerConfig {
	var ic ocispec.ImageConfig
	if o.Image.Config != nil {
		ic = o.Image.Config.Config
	}
	entrypoint, cmd := ic.Entrypoint, ic.Cmd
	if so.Entrypoint != nil {
		entrypoint = *so.Entrypoint
		if len(entrypoint) == 1 && entrypoint[0] == "" {
			entrypoint = nil
		}
		cmd = nil
	}
	if len(so.Cmd) > 0 {
		cmd = so.Cmd
	}
	user := so.User
	if user == "" {
		user = ic.User
	}
	wd := so.WorkingDir
	if wd == "" {
		wd = ic.WorkingDir
	}
	labels := map[string]string{}
	for k, v := range ic.Labels {
		labels[k] = v
	}
	for k, v := range so.Labels {
		labels[k] = v
	}
	stop := so.StopSignal
	if stop == "" {
		stop = ic.StopSignal
	}
	vols := ic.Volumes
	if len(o.Volumes) > 0 {
		vols = maps.Clone(ic.Volumes)
		if vols == nil {
			vols = map[string]struct{}{}
		}
		for _, v := range o.Volumes {
			vols[v] = struct{}{}
		}
	}
	return DockerConfig{
		Hostname:     sp.Hostname,
		Domainname:   sp.Domainname,
		User:         user,
		AttachStdin:  o.AttachStdin,
		AttachStdout: o.AttachStdout,
		AttachStderr: o.AttachStderr,
		ExposedPorts: ic.ExposedPorts,
		Tty:          so.TTY,
		OpenStdin:    so.OpenStdin,
		StdinOnce:    o.StdinOnce,
		Env:          slices.Clone(sp.Process.Env),
		Cmd:          slices.Clone(cmd),
		Image:        o.Image.Ref,
		Volumes:      vols,
		WorkingDir:   wd,
		Entrypoint:   slices.Clone(entrypoint),
		Labels:       labels,
		StopSignal:   stop,
		StopTimeout:  o.StopTimeout,
	}
}

// hostConfig is Docker's HostConfig of the container.
func hostConfig(o *CreateOptions, so *spec.Options, logCfg LogConfig) HostConfig {
	rp := o.RestartPolicy
	if rp.Name == "" {
		rp.Name = RestartNo
	}
	mode := o.Network.Mode
	if mode == "" {
		switch so.NetNSPath {
		case "":
			mode = "none"
		case "host":
			mode = "host"
		default:
			mode = "container:" + so.NetNSPath
		}
	}
	shm := so.ShmSize
	if shm == 0 {
		shm = spec.DefaultShmSize
	}
	hc := HostConfig{
		Binds:          o.Binds,
		Mounts:         o.HostMounts,
		LogConfig:      logCfg,
		NetworkMode:    mode,
		RestartPolicy:  rp,
		AutoRemove:     o.AutoRemove,
		CapAdd:         so.CapAdd,
		CapDrop:        so.CapDrop,
		DNS:            o.Network.DNS,
		DNSOptions:     o.Network.DNSOptions,
		DNSSearch:      o.Network.DNSSearch,
		ExtraHosts:     o.Network.ExtraHosts,
		GroupAdd:       so.GroupAdd,
		IpcMode:        "private",
		OomScoreAdj:    so.OomScoreAdj,
		Privileged:     so.Privileged,
		ReadonlyRootfs: so.ReadOnly,
		SecurityOpt:    so.SecurityOpt,
		ShmSize:        shm,
		Sysctls:        so.Sysctls,
		Runtime:        "berth",
		CgroupParent:   so.CgroupParent,
		Init:           o.Init,
	}
	if len(so.Tmpfs) > 0 {
		hc.Tmpfs = map[string]string{}
		for _, t := range so.Tmpfs {
			p, opt, _ := strings.Cut(t, ":")
			hc.Tmpfs[p] = opt
		}
	}
	for _, u := range so.Ulimits {
		hc.Ulimits = append(hc.Ulimits, Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if r := so.Resources; r != nil {
		hc.Memory, hc.MemorySwap, hc.MemoryReservation = r.Memory, r.MemorySwap, r.MemoryReservation
		if r.Memory > 0 && r.MemorySwap == 0 {
			hc.MemorySwap = 2 * r.Memory
		}
		hc.CPUShares, hc.NanoCPUs, hc.CPUPeriod, hc.CPUQuota = r.CPUShares, r.NanoCPUs, r.CPUPeriod, r.CPUQuota
		hc.CpusetCpus, hc.CpusetMems, hc.BlkioWeight = r.CpusetCpus, r.CpusetMems, r.BlkioWeight
		hc.OomKillDisable = r.OomKillDisable
		if r.PidsLimit != 0 {
			l := r.PidsLimit
			if l < 0 {
				l = -1
			}
			hc.PidsLimit = &l
		}
	}
	return hc
}

// mountPoints derives inspect's Mounts from the spec's user mounts.
func mountPoints(ms []specs.Mount) []MountPoint {
	out := []MountPoint{}
	for _, mt := range ms {
		mp := MountPoint{Source: mt.Source, Destination: mt.Destination, RW: true, Propagation: "rprivate"}
		switch {
		case mt.Type == "tmpfs":
			mp.Type = "tmpfs"
			mp.Propagation = ""
		default:
			mp.Type = "bind"
		}
		for _, opt := range mt.Options {
			switch opt {
			case "ro":
				mp.RW = false
				mp.Mode = "ro"
			case "private", "rprivate", "slave", "rslave", "shared", "rshared":
				mp.Propagation = opt
			}
		}
		out = append(out, mp)
	}
	return out
}
