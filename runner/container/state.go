package container

import (
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Status is a container's state as Docker names it.
type Status string

// Container statuses (Docker's).
const (
	StatusCreated    Status = "created"
	StatusRunning    Status = "running"
	StatusPaused     Status = "paused"
	StatusRestarting Status = "restarting"
	StatusRemoving   Status = "removing"
	StatusExited     Status = "exited"
	StatusDead       Status = "dead"
)

// Active reports whether a process of the container may exist (or is about to, for
// restarting): the statuses a monitor owns.
func (s Status) Active() bool {
	return s == StatusRunning || s == StatusPaused || s == StatusRestarting
}

// State is a container's runtime state, <root>/containers/<id>/state.json. It is written
// atomically under the container's lock by the commands and by the monitor, and corrected
// by any command that finds it stale (a process or a monitor that is gone).
type State struct {
	Status Status `json:"Status"`
	// Pid is the host pid of the container's init while it runs (0 otherwise), and
	// StartTime its start time (ProcessStartTime), so that a recycled pid is never taken
	// for the container.
	Pid       int    `json:"Pid,omitempty"`
	StartTime uint64 `json:"StartTime,omitempty"`
	// MonitorPid and MonitorStartTime name the container's last monitor (which may be
	// gone: a live monitor holds its lock, see Store.monitorAlive).
	MonitorPid       int    `json:"MonitorPid,omitempty"`
	MonitorStartTime uint64 `json:"MonitorStartTime,omitempty"`
	// ExitCode, OOMKilled and Error describe the last run (Error: why it could not start
	// or what went wrong around it).
	ExitCode  int    `json:"ExitCode"`
	OOMKilled bool   `json:"OOMKilled,omitempty"`
	Error     string `json:"Error,omitempty"`
	// StartedAt and FinishedAt are the times of the last start and exit (zero: never).
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
	// RestartCount is how many times the restart policy restarted the container since it
	// was last started by a command.
	RestartCount int `json:"RestartCount"`
	// ManuallyStopped is Docker's HasBeenManuallyStopped: a stop (or a kill with SIGKILL or
	// the stop signal) asked for the container to stay down, so the restart policy does
	// not bring it back (and unless-stopped stays down at boot).
	ManuallyStopped bool `json:"ManuallyStopped,omitempty"`
	// LastSignal is the last signal a command sent to the init: when the monitor is gone
	// and nobody could see the exit status, the exit code is taken to be 128+LastSignal.
	LastSignal int `json:"LastSignal,omitempty"`
}

// RestartPolicy is --restart: Name is "no" (or ""), "always", "unless-stopped" or
// "on-failure", MaximumRetryCount the N of on-failure:N (0: no limit).
type RestartPolicy struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// LogConfig is --log-driver/--log-opt. Only "json-file" (the default) is supported, with
// the options max-size (default 20m; "-1" for no cap) and max-file (default 3).
type LogConfig struct {
	Type   string            `json:"Type"`
	Config map[string]string `json:"Config"`
}

// Container is a container's configuration, <root>/containers/<id>/config.json: what
// Create decided, fixed for the container's life (except Name, which rename changes).
type Container struct {
	ID      string    `json:"ID"`
	Name    string    `json:"Name"` // without Docker's leading "/"
	Created time.Time `json:"Created"`
	// Image is the image ID (sha256:…), ImageRef the reference the user gave.
	Image    string `json:"Image"`
	ImageRef string `json:"ImageRef"`
	// Spec is the runtime spec: everything the monitor needs to start the container.
	Spec *specs.Spec `json:"Spec"`
	// Rootfs is the overlay: the image's snapshots as lower layers, an upper and a work
	// directory and the (empty) mount point, all under the container's directory. The
	// overlay is mounted by the container's init inside its own mount namespace only.
	Rootfs Rootfs `json:"Rootfs"`
	// Reaper is --init: the built-in reaper is the container's PID 1.
	Reaper bool `json:"Reaper,omitempty"`
	// NetNS is a network namespace to join (a path), when the network layer made one.
	NetNS string `json:"NetNS,omitempty"`
	// Hooks are the registered hooks (RegisterHook) the container uses, with their data.
	Hooks []HookRef `json:"Hooks,omitempty"`
	// StopSignal is the signal stop sends first (a name, "SIGTERM"); StopTimeout the
	// seconds stop waits before SIGKILL (nil: 10).
	StopSignal  string `json:"StopSignal"`
	StopTimeout *int   `json:"StopTimeout,omitempty"`
	// Files the container has of its own, bind-mounted by the spec.
	LogPath        string `json:"LogPath"`
	ResolvConfPath string `json:"ResolvConfPath,omitempty"`
	HostnamePath   string `json:"HostnamePath,omitempty"`
	HostsPath      string `json:"HostsPath,omitempty"`
	// Config and HostConfig are Docker's views of the options (inspect shows them).
	Config     DockerConfig `json:"Config"`
	HostConfig HostConfig   `json:"HostConfig"`
	// Mounts are the volumes and binds, as inspect shows them.
	Mounts []MountPoint `json:"Mounts"`

	// Warnings are Create's warnings (not stored).
	Warnings []string `json:"-"`
}

// DockerConfig is the "Config" of docker inspect.
type DockerConfig struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	OnBuild      []string            `json:"OnBuild"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
}

// HostConfig is the "HostConfig" of docker inspect (the fields Berth has).
type HostConfig struct {
	Binds             []string          `json:"Binds"`
	LogConfig         LogConfig         `json:"LogConfig"`
	NetworkMode       string            `json:"NetworkMode"`
	RestartPolicy     RestartPolicy     `json:"RestartPolicy"`
	AutoRemove        bool              `json:"AutoRemove"`
	CapAdd            []string          `json:"CapAdd"`
	CapDrop           []string          `json:"CapDrop"`
	DNS               []string          `json:"Dns"`
	DNSOptions        []string          `json:"DnsOptions"`
	DNSSearch         []string          `json:"DnsSearch"`
	ExtraHosts        []string          `json:"ExtraHosts"`
	GroupAdd          []string          `json:"GroupAdd"`
	IpcMode           string            `json:"IpcMode"`
	OomScoreAdj       int               `json:"OomScoreAdj"`
	PidMode           string            `json:"PidMode"`
	Privileged        bool              `json:"Privileged"`
	ReadonlyRootfs    bool              `json:"ReadonlyRootfs"`
	SecurityOpt       []string          `json:"SecurityOpt"`
	Tmpfs             map[string]string `json:"Tmpfs,omitempty"`
	UTSMode           string            `json:"UTSMode"`
	ShmSize           int64             `json:"ShmSize"`
	Sysctls           map[string]string `json:"Sysctls,omitempty"`
	Runtime           string            `json:"Runtime"`
	CgroupParent      string            `json:"CgroupParent"`
	BlkioWeight       uint16            `json:"BlkioWeight"`
	CPUShares         int64             `json:"CpuShares"`
	Memory            int64             `json:"Memory"`
	NanoCPUs          int64             `json:"NanoCpus"`
	CPUPeriod         int64             `json:"CpuPeriod"`
	CPUQuota          int64             `json:"CpuQuota"`
	CpusetCpus        string            `json:"CpusetCpus"`
	CpusetMems        string            `json:"CpusetMems"`
	MemoryReservation int64             `json:"MemoryReservation"`
	MemorySwap        int64             `json:"MemorySwap"`
	OomKillDisable    bool              `json:"OomKillDisable"`
	PidsLimit         *int64            `json:"PidsLimit"`
	Ulimits           []Ulimit          `json:"Ulimits"`
	Init              bool              `json:"Init"`
	// Mounts are the --mount values, in the API's shape (not -v: see Binds).
	Mounts []Mount `json:"Mounts,omitempty"`
}

// Mount is one entry of HostConfig.Mounts: a --mount value as Docker's API has it (the
// Source as given: a volume name, "" for an anonymous volume or a tmpfs, a host path).
type Mount struct {
	Type          string         `json:"Type,omitempty"`
	Source        string         `json:"Source,omitempty"`
	Target        string         `json:"Target,omitempty"`
	ReadOnly      bool           `json:"ReadOnly,omitempty"`
	BindOptions   *BindOptions   `json:"BindOptions,omitempty"`
	VolumeOptions *VolumeOptions `json:"VolumeOptions,omitempty"`
	TmpfsOptions  *TmpfsOptions  `json:"TmpfsOptions,omitempty"`
}

// BindOptions are a bind Mount's options.
type BindOptions struct {
	Propagation string `json:"Propagation,omitempty"`
}

// VolumeOptions are a volume Mount's options.
type VolumeOptions struct {
	NoCopy bool              `json:"NoCopy,omitempty"`
	Labels map[string]string `json:"Labels,omitempty"`
}

// TmpfsOptions are a tmpfs Mount's options.
type TmpfsOptions struct {
	SizeBytes int64       `json:"SizeBytes,omitempty"`
	Mode      os.FileMode `json:"Mode,omitempty"`
}

// Ulimit is one entry of HostConfig.Ulimits.
type Ulimit struct {
	Name string `json:"Name"`
	Soft int64  `json:"Soft"`
	Hard int64  `json:"Hard"`
}

// MountPoint is one entry of docker inspect's "Mounts".
type MountPoint struct {
	Type        string `json:"Type"` // bind, volume, tmpfs
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}
