package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/cgroups"
	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/image"
	"github.com/berth-registry/berth/runner/spec"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runOptions are the flags of run and create (Docker's names and meanings).
type runOptions struct {
	// run only
	detach     bool
	sigProxy   bool
	detachKeys string

	// pulling
	pull     string
	quiet    bool
	platform string

	rm          bool
	name        string
	interactive bool
	tty         bool
	env         []string
	envFile     []string
	workdir     string
	user        string
	entrypoint  string
	hostname    string
	domainname  string
	init        bool
	readOnly    bool
	privileged  bool
	capAdd      []string
	capDrop     []string
	securityOpt []string
	ulimits     []string
	labels      []string
	labelFiles  []string
	groupAdd    []string
	sysctls     []string
	devices     []string
	tmpfs       []string
	volumes     []string
	mounts      []string
	volumesFrom []string
	volPlan     *volumePlan // parsed by planVolumes

	memory            memBytes
	memorySwap        memSwapBytes
	memoryReservation memBytes
	cpuShares         int64
	cpus              nanoCPUs
	cpuPeriod         int64
	cpuQuota          int64
	cpusetCpus        string
	cpusetMems        string
	blkioWeight       uint16
	pidsLimit         int64
	oomKillDisable    bool
	oomScoreAdj       int
	shmSize           memBytes
	cgroupParent      string

	restart     string
	stopSignal  string
	stopTimeout int
	network     string
	publish     []string
	publishAll  bool
	expose      []string
	ip          string
	aliases     []string
	dns         []string
	dnsSearch   []string
	dnsOptions  []string
	addHosts    []string
	logDriver   string
	logOpts     []string
}

// defaultNetwork is the --network default: Docker's default bridge network.
const defaultNetwork = "default"

func addRunFlags(f *pflag.FlagSet, o *runOptions, run bool) {
	f.SetInterspersed(false)             // IMAGE [COMMAND] [ARG...]: flags after IMAGE are the command's
	f.Bool("help", false, "Print usage") // -h is --hostname, as in Docker
	if run {
		f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
		f.BoolVar(&o.sigProxy, "sig-proxy", true, "Proxy received signals to the process")
		f.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	}
	f.StringVar(&o.pull, "pull", "missing", `Pull image before running ("always", "missing", "never")`)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the pull output")
	f.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")

	f.BoolVar(&o.rm, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	f.StringVar(&o.name, "name", "", "Assign a name to the container")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFile, "env-file", nil, "Read in a file of environment variables")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	f.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	f.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	f.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	f.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "Add Linux capabilities")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	f.StringArrayVar(&o.securityOpt, "security-opt", nil, "Security Options")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "Ulimit options")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Set meta data on a container")
	f.StringArrayVar(&o.labelFiles, "label-file", nil, "Read in a line delimited file of labels")
	f.StringArrayVar(&o.groupAdd, "group-add", nil, "Add additional groups to join")
	f.StringArrayVar(&o.sysctls, "sysctl", nil, "Sysctl options")
	f.StringArrayVar(&o.devices, "device", nil, "Add a host device to the container")
	f.StringArrayVar(&o.tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume")
	f.StringArrayVar(&o.mounts, "mount", nil, "Attach a filesystem mount to the container")
	f.StringArrayVar(&o.volumesFrom, "volumes-from", nil, "Mount volumes from the specified container(s)")

	f.VarP(&o.memory, "memory", "m", "Memory limit")
	f.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	f.Var(&o.memoryReservation, "memory-reservation", "Memory soft limit")
	f.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Var(&o.cpus, "cpus", "Number of CPUs")
	f.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	f.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	f.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	f.Uint16Var(&o.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	f.BoolVar(&o.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	f.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	f.Var(&o.shmSize, "shm-size", "Size of /dev/shm")
	f.StringVar(&o.cgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")

	f.StringVar(&o.restart, "restart", container.RestartNo, "Restart policy to apply when a container exits")
	f.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	f.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	f.StringVar(&o.network, "network", defaultNetwork, `Connect a container to a network ("bridge", "none", "host", "container:<name|id>" or a network's name)`)
	f.StringVar(&o.network, "net", defaultNetwork, "Connect a container to a network")
	f.MarkHidden("net")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	f.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	f.StringArrayVar(&o.expose, "expose", nil, "Expose a port or a range of ports")
	f.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringArrayVar(&o.aliases, "network-alias", nil, "Add network-scoped alias for the container")
	f.StringArrayVar(&o.dns, "dns", nil, "Set custom DNS servers")
	f.StringArrayVar(&o.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	f.StringArrayVar(&o.dnsOptions, "dns-option", nil, "Set DNS options")
	f.StringArrayVar(&o.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	f.StringVar(&o.logDriver, "log-driver", "", `Logging driver for the container ("json-file" or "none")`)
	f.StringArrayVar(&o.logOpts, "log-opt", nil, "Log driver options (max-size, max-file)")
}

func (a *app) runCommand() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRun(cmd, o, args[0], args[1:], true)
		},
	}
	addRunFlags(cmd.Flags(), o, true)
	cmd.SetFlagErrorFunc(a.runFlagError)
	return cmd
}

func (a *app) createCommand() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRun(cmd, o, args[0], args[1:], false)
		},
	}
	addRunFlags(cmd.Flags(), o, false)
	cmd.SetFlagErrorFunc(a.runFlagError)
	return cmd
}

// keyValues parses KEY=VALUE flags (a bare KEY gives an empty value when bareOK).
func keyValues(flag string, vals []string, bareOK bool) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if k == "" || !ok && !bareOK {
			return nil, fmt.Errorf("invalid argument %q for %q flag: must be KEY=VALUE", v, "--"+flag)
		}
		out[k] = val
	}
	return out, nil
}

// readLabelFile reads a --label-file: one label a line, # comments and blank lines skipped.
func readLabelFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// createPlan is what the flags decided, before the image is known.
type createPlan struct {
	create   container.CreateOptions
	spec     spec.Options
	netMode  string
	net      *netPlan
	warnings []string
	// userNetwork: the container is on a user-defined network (embedded DNS).
	userNetwork bool
}

// plan validates the flags and turns them into create options. It touches no store, so
// that bad values fail fast (before any pull), as the Docker daemon validates before it
// looks for the image.
func (a *app) plan(cmd *cobra.Command, o *runOptions, args []string, run bool) (*createPlan, error) {
	flags := cmd.Flags()
	p := &createPlan{}
	switch o.pull {
	case "missing", "always", "never":
	default:
		return nil, fmt.Errorf(`invalid pull option: '%s': must be one of "always", "missing" or "never"`, o.pull)
	}
	var err error
	if p.net, err = planNetworkFlags(o); err != nil {
		return nil, err
	}
	p.netMode = p.net.mode
	p.warnings = append(p.warnings, p.net.warnings...)
	restart, err := container.ParseRestartPolicy(o.restart)
	if err != nil {
		return nil, err
	}
	if o.rm && !restart.IsNone() {
		return nil, errors.New("Conflicting options: --restart and --rm")
	}
	if o.detachKeys != "" {
		if _, err := container.ParseDetachKeys(o.detachKeys); err != nil {
			return nil, fmt.Errorf("invalid detach keys (%s) provided: %v", o.detachKeys, err)
		}
	}

	so := &p.spec
	so.Cmd = args
	if flags.Changed("entrypoint") {
		ep := []string{o.entrypoint}
		so.Entrypoint = &ep
	}
	so.Env = o.env
	for _, path := range o.envFile {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		vals, err := spec.ParseEnvFile(f, os.LookupEnv)
		f.Close()
		if err != nil {
			return nil, err
		}
		so.EnvFile = append(so.EnvFile, vals...)
	}
	so.WorkingDir = o.workdir
	so.User = o.user
	so.GroupAdd = o.groupAdd
	so.Hostname = o.hostname
	so.Domainname = o.domainname
	so.TTY = o.tty
	so.OpenStdin = o.interactive
	so.ReadOnly = o.readOnly
	so.Privileged = o.privileged
	so.CapAdd, so.CapDrop = o.capAdd, o.capDrop
	if _, err := spec.ParseCapabilities(o.capAdd, o.capDrop, o.privileged); err != nil {
		return nil, err
	}
	so.SecurityOpt = o.securityOpt
	for _, u := range o.ulimits {
		ul, err := spec.ParseUlimit(u)
		if err != nil {
			return nil, err
		}
		so.Ulimits = append(so.Ulimits, ul)
	}
	labels := o.labels
	for _, path := range o.labelFiles {
		ls, err := readLabelFile(path)
		if err != nil {
			return nil, err
		}
		labels = append(ls, labels...)
	}
	if so.Labels, err = keyValues("label", labels, true); err != nil {
		return nil, err
	}
	if so.Sysctls, err = keyValues("sysctl", o.sysctls, false); err != nil {
		return nil, err
	}
	so.Tmpfs = o.tmpfs
	if err := planVolumes(o); err != nil {
		return nil, err
	}
	for _, d := range o.devices {
		dm, err := spec.ParseDevice(d)
		if err != nil {
			return nil, err
		}
		so.Devices = append(so.Devices, dm)
	}
	if o.shmSize < 0 {
		return nil, errors.New("SHM size can not be less than 0")
	}
	so.ShmSize = int64(o.shmSize)
	so.StopSignal = o.stopSignal
	if o.stopSignal != "" {
		if _, err := spec.ParseSignal(o.stopSignal); err != nil {
			return nil, err
		}
	}
	so.OomScoreAdj = o.oomScoreAdj
	if o.oomScoreAdj < -1000 || o.oomScoreAdj > 1000 {
		return nil, fmt.Errorf("Invalid value %d, range for oom score adj is [-1000, 1000]", o.oomScoreAdj)
	}
	so.CgroupParent = o.cgroupParent
	if p.netMode == "host" {
		so.NetNSPath = "host"
	}

	res := &cgroups.Resources{
		Memory:            int64(o.memory),
		MemorySwap:        int64(o.memorySwap),
		MemoryReservation: int64(o.memoryReservation),
		CPUShares:         o.cpuShares,
		CPUPeriod:         o.cpuPeriod,
		CPUQuota:          o.cpuQuota,
		NanoCPUs:          int64(o.cpus),
		CpusetCpus:        o.cpusetCpus,
		CpusetMems:        o.cpusetMems,
		BlkioWeight:       o.blkioWeight,
		PidsLimit:         o.pidsLimit,
		OomKillDisable:    o.oomKillDisable,
	}
	if err := res.Validate(); err != nil {
		return nil, err
	}
	// Limits this kernel cannot apply are discarded with Docker's warning, at create as
	// the daemon does (so inspect shows what is applied).
	if res.BlkioWeight != 0 && !blkioWeightSupported() {
		p.warnings = append(p.warnings, cgroups.WarnBlkioWeight)
		res.BlkioWeight = 0
	}
	if res.MemorySwap != 0 && res.Memory > 0 && !swapLimitSupported() {
		p.warnings = append(p.warnings, cgroups.WarnSwapLimit)
		res.MemorySwap = -1
	}
	so.Resources = res

	logCfg := container.LogConfig{Type: o.logDriver}
	if logCfg.Config, err = keyValues("log-opt", o.logOpts, false); err != nil {
		return nil, err
	}
	for _, h := range o.addHosts {
		if name, ip, ok := strings.Cut(h, ":"); !ok || name == "" || ip == "" {
			return nil, fmt.Errorf("bad format for add-host: %q", h)
		}
	}

	c := &p.create
	c.Name = o.name
	c.Spec = so
	c.Init = o.init
	foreground := !run || !o.detach
	c.AttachStdin = o.interactive && foreground
	c.AttachStdout, c.AttachStderr = foreground, foreground
	c.StdinOnce = c.AttachStdin
	c.RestartPolicy = restart
	c.AutoRemove = o.rm
	c.LogConfig = logCfg
	if flags.Changed("stop-timeout") {
		t := o.stopTimeout
		c.StopTimeout = &t
	}
	c.Network = container.NetworkOptions{Mode: p.netMode, DNS: o.dns, DNSSearch: o.dnsSearch,
		DNSOptions: o.dnsOptions, ExtraHosts: o.addHosts}
	return p, nil
}

// runRun is run (run true) and create.
func (a *app) runRun(cmd *cobra.Command, o *runOptions, imageArg string, args []string, run bool) error {
	ctx := cmd.Context()
	p, err := a.plan(cmd, o, args, run)
	if err != nil {
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	if run && !o.detach && o.tty && o.interactive {
		if _, ok := terminalFd(a.stdin); !ok {
			return a.failRun(cmd, 1, errors.New("the input device is not a TTY"), false)
		}
	}
	store, err := a.openImages()
	if err != nil {
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	img, err := a.imageForRun(ctx, store, imageArg, o)
	if err != nil {
		store.Close()
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	cfg, _, err := store.ConfigOf(img)
	if err == nil {
		p.create.Lower, err = store.LowerPaths(img)
	}
	store.Close()
	if err != nil {
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	p.create.Image = container.ImageInfo{ID: img.ID.String(), Ref: imageArg, Config: cfg}

	m, err := a.openContainers()
	if err != nil {
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	if err := a.resolveNetwork(ctx, m, p, o, cfg); err != nil {
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	c, err := a.createContainer(ctx, m, p, o)
	if err != nil {
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	for _, w := range append(p.warnings, c.Warnings...) {
		fmt.Fprintf(a.stderr, "WARNING: %s\n", w)
	}
	if err := writeEtcFiles(c, p); err != nil {
		m.Remove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	if !run {
		fmt.Fprintln(a.stdout, c.ID)
		return nil
	}
	if o.detach {
		if _, err := m.Start(ctx, c.ID, container.StartOptions{}); err != nil {
			return a.startFailed(cmd, m, c, o, err)
		}
		fmt.Fprintln(a.stdout, c.ID)
		return nil
	}
	return a.runAttached(cmd, m, c, o)
}

// startFailed reports a failed start of run: Docker's 126/127 when the command cannot be
// invoked or found, 125 otherwise. An --rm container is removed by its monitor: wait
// for that.
func (a *app) startFailed(cmd *cobra.Command, m *container.Manager, c *container.Container, o *runOptions, err error) error {
	code := container.ExitRuntimeError
	var se *container.StartError
	if errors.As(err, &se) {
		code = se.Code
	}
	if o.rm {
		m.WaitRemoved(context.WithoutCancel(cmd.Context()), c.ID)
	}
	return a.failRun(cmd, code, err, false)
}

// runAttached is run without -d: the streams are connected before the command starts,
// signals are forwarded (--sig-proxy, without a tty), and the exit status is the
// container's; with --rm, once the container is removed.
func (a *app) runAttached(cmd *cobra.Command, m *container.Manager, c *container.Container, o *runOptions) error {
	// From here on, SIGINT and SIGTERM are the container's: they do not cancel us.
	ctx := context.WithoutCancel(cmd.Context())
	att := &container.AttachOptions{Stdout: a.stdout, Stderr: a.stderr, DetachKeys: o.detachKeys}
	if o.interactive {
		att.Stdin = a.stdin
	}
	if o.tty {
		att.ConsoleSize = consoleSize(a.stdout) // before the command runs
	}
	restore := func() {}
	if o.tty && o.interactive {
		restore = setRawTerminal(a.stdin)
	}
	s, err := m.Start(ctx, c.ID, container.StartOptions{Attach: att})
	if err != nil {
		restore()
		return a.startFailed(cmd, m, c, o, err)
	}
	defer restore()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.tty {
		forwardResize(wctx, a.stdout, func(h, w uint16) { s.Resize(h, w) })
	} else if o.sigProxy {
		proxySignals(wctx, func(sig syscall.Signal) {
			go m.Kill(ctx, c.ID, strconv.Itoa(int(sig)))
		})
	}
	code, err := s.Wait(ctx)
	cancel()
	if errors.Is(err, container.ErrDetached) {
		return nil
	}
	if err != nil {
		restore()
		return a.failRun(cmd, container.ExitRuntimeError, err, false)
	}
	if o.rm {
		if err := m.WaitRemoved(ctx, c.ID); err != nil {
			restore()
			return a.failRun(cmd, container.ExitRuntimeError, err, false)
		}
	}
	if code != 0 {
		return &statusError{code: code, err: errSilent}
	}
	return nil
}

// imageForRun finds the image as --pull asks: pulled when missing (the default), always,
// or never.
func (a *app) imageForRun(ctx context.Context, store *image.Store, ref string, o *runOptions) (*image.Image, error) {
	if o.pull != "always" {
		img, err := store.Lookup(ref)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, image.ErrNotFound) {
			return nil, err
		}
		if o.pull == "never" {
			return nil, errors.New(imageError(ref, err))
		}
		r, perr := client.ParseReference(ref)
		if perr != nil {
			return nil, fmt.Errorf("invalid reference format: %s", ref)
		}
		if !o.quiet {
			fmt.Fprintf(a.stderr, "Unable to find image '%s' locally\n", r.Familiar())
		}
	}
	return a.pullQuietly(ctx, store, ref, o)
}

// pullQuietly pulls ref with `docker run`'s progress on stderr (nothing with -q).
func (a *app) pullQuietly(ctx context.Context, store *image.Store, ref string, o *runOptions) (*image.Image, error) {
	r, err := client.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format: %s", ref)
	}
	opts := image.PullOptions{Insecure: a.insecure}
	if o.platform != "" {
		pl, err := image.ParsePlatform(o.platform)
		if err != nil {
			return nil, err
		}
		opts.Platform = &pl
	}
	var printer *layerPrinter
	if !o.quiet {
		tty, width := isTerminal(a.stderr)
		tagOrDigest := r.Tag
		if r.Digest != "" {
			tagOrDigest = r.Digest.String()
		}
		fmt.Fprintf(a.stderr, "%s: Pulling from %s\n", tagOrDigest, r.Repository)
		printer = newPullPrinter(a.stderr, tty, width)
		opts.Progress = printer
	}
	img, err := store.Pull(ctx, ref, opts)
	if printer != nil {
		printer.Flush()
	}
	if err != nil {
		return nil, err
	}
	if !o.quiet {
		fmt.Fprintf(a.stderr, "Digest: %s\n", img.PullInfo.Digest)
		if img.PullInfo.Updated {
			fmt.Fprintf(a.stderr, "Status: Downloaded newer image for %s\n", r.Familiar())
		} else {
			fmt.Fprintf(a.stderr, "Status: Image is up to date for %s\n", r.Familiar())
		}
	}
	return img, nil
}

// writeEtcFiles completes the container's /etc/hosts and /etc/resolv.conf (written by
// Create, bind-mounted at each start) for a container without the host's network. With no
// network (--network none) its hostname resolves to the loopback address and there are no
// name servers unless --dns gave some; on a Berth network the network hook adds its address
// at each start, and on a user-defined network the embedded DNS server is its name server.
func writeEtcFiles(c *container.Container, p *createPlan) error {
	if p.netMode == "host" || c.Spec == nil {
		return nil
	}
	if c.HostsPath != "" && p.netMode == "none" {
		name := c.Spec.Hostname
		if c.Spec.Domainname != "" {
			name = c.Spec.Hostname + "." + c.Spec.Domainname + "\t" + c.Spec.Hostname
		}
		f, err := os.OpenFile(c.HostsPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "127.0.0.1\t%s\n", name)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if c.ResolvConfPath == "" {
		return nil
	}
	switch {
	case p.netMode == "none" && len(p.create.Network.DNS) == 0:
		body := "# pull-run: this container has no network (--network none): no name servers.\n"
		if s := p.create.Network.DNSSearch; len(s) > 0 {
			body += "search " + strings.Join(s, " ") + "\n"
		}
		return writeFileReplace(c.ResolvConfPath, []byte(body))
	case p.userNetwork:
		return writeFileReplace(c.ResolvConfPath, embeddedResolvConf(p.create.Network.DNSSearch, p.create.Network.DNSOptions))
	}
	return nil
}

// writeFileReplace replaces path's content atomically (temporary file and rename).
func writeFileReplace(path string, b []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
