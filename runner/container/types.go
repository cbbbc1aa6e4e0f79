package container

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/berth-registry/berth/runner/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config describes a container to Start.
type Config struct {
	// ID names the container in errors.
	ID string
	// Spec is the runtime-spec of the container. Spec.Process (Args, Env, Cwd, User,
	// Capabilities, Rlimits, NoNewPrivileges, Terminal, ConsoleSize, OOMScoreAdj),
	// Spec.Hostname, Spec.Domainname, Spec.Mounts, Spec.Root.Readonly and Spec.Linux
	// (Namespaces, Devices, Sysctl, MaskedPaths, ReadonlyPaths, RootfsPropagation) are
	// applied. A new mount namespace is required; a user namespace is not supported.
	// Spec.Linux.Resources and CgroupsPath are not read: the limits are Cgroup's. Not
	// applied either (yet): seccomp, AppArmor, SELinux, personality, scheduler and I/O
	// priority settings, and the spec's OCI hooks (see Hooks).
	//
	// A nil Spec.Process.Capabilities gives Docker's default 14 capabilities (never "all").
	Spec *specs.Spec
	// Rootfs is the root file system. When its Path is empty, Spec.Root.Path is used.
	Rootfs Rootfs
	// Cgroup, if not nil, is the container's cgroup, created by the caller with its limits.
	// The init joins it (Apply) before it does anything, so everything the container does
	// is accounted and limited, and before the user command runs.
	Cgroup cgroups.Manager
	// Stdin, Stdout and Stderr become the container process' descriptors 0, 1 and 2 (nil:
	// /dev/null). They are ignored when Spec.Process.Terminal is set: a pty is then made
	// inside the container (its slave is the process' stdio and controlling terminal; its
	// master is Process.Console).
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles are given to the container process as descriptors 3, 4, ... (none by
	// default). Every other descriptor is closed before the user command runs.
	ExtraFiles []*os.File
	// NetNS, if set, is the path of a network namespace (such as /run/netns/x or
	// /proc/<pid>/ns/net) that the container joins instead of the spec's network namespace.
	NetNS string
	// Hooks run in the caller, in order, when the init is in its namespaces with its rootfs
	// set up and before the user command runs, with the host pid of the init (for network
	// setup: move a veth into /proc/<pid>/ns/net). An error aborts the start.
	Hooks []func(pid int) error
	// Reaper runs a built-in init as the container's PID 1 (docker run --init): it forks the
	// command, forwards every catchable signal to the command's process group, reaps
	// zombies and exits with the command's status (128+n after signal n).
	Reaper bool
	// NoPivotRoot enters the rootfs with MS_MOVE and chroot instead of pivot_root (which the
	// init also falls back to when pivot_root is impossible, e.g. a rootfs on ramfs).
	NoPivotRoot bool
}

// Rootfs is a container's root file system: either an existing directory (Lower empty), or
// an overlay that the container's init mounts at Path inside its own mount namespace: the
// mount is never visible on the host and disappears with the container.
type Rootfs struct {
	// Path is the rootfs directory, or the (existing, usually empty) directory the overlay
	// is mounted on inside the container's mount namespace.
	Path string `json:"path"`
	// Lower are the overlay's lower directories, top layer first (lowerdir order). Without
	// Upper the overlay is read-only.
	Lower []string `json:"lower,omitempty"`
	// Upper and Work are the overlay's upperdir and workdir (same file system).
	Upper string `json:"upper,omitempty"`
	Work  string `json:"work,omitempty"`
}

// ExecConfig describes a process to run in a running container (docker exec).
type ExecConfig struct {
	// ID names the container in errors.
	ID string
	// InitPid is the host pid of the container's PID 1 (Process.Pid of Start).
	InitPid int
	// InitStartTime, when not zero, is InitPid's start time (ProcessStartTime): Exec fails
	// if InitPid now belongs to another process.
	InitStartTime uint64
	// Process is what to run: Args (resolved in the container's PATH from Env), Env, Cwd
	// (must exist; resolved inside the container's root), User, Capabilities (nil: Docker's
	// default 14), Rlimits, NoNewPrivileges, Terminal and ConsoleSize.
	Process *specs.Process
	// Cgroup, if not nil, is the container's cgroup: the process joins it before the
	// command runs. With nil the command stays in the caller's cgroups.
	Cgroup cgroups.Manager
	// Stdin, Stdout and Stderr as in Config (ignored with Process.Terminal).
	Stdin, Stdout, Stderr *os.File
}

// ExitStatus is how a container process ended, with Docker's exit code conventions.
type ExitStatus struct {
	// Code is the exit code: the process' own, or 128+n when it was killed by signal n
	// (137 after SIGKILL, also when the OOM killer struck: ask the cgroup which).
	Code int
	// Signal is the signal that killed the process, 0 if it exited. With Config.Reaper the
	// reaper exits with 128+n and Signal stays 0.
	Signal syscall.Signal
}

// String describes the status like a shell would.
func (s ExitStatus) String() string {
	if s.Signal != 0 {
		name := unix.SignalName(s.Signal)
		if name == "" {
			name = "signal " + strconv.Itoa(int(s.Signal))
		}
		return fmt.Sprintf("exit code %d (%s)", s.Code, name)
	}
	return fmt.Sprintf("exit code %d", s.Code)
}

// ExitStatusOf converts a wait status into Docker's exit code conventions.
func ExitStatusOf(ws syscall.WaitStatus) ExitStatus {
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus()}
	case ws.Signaled():
		return ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
	}
	return ExitStatus{Code: 255}
}

// Exit codes of failed starts, as Docker's: the command was found but could not be invoked
// (126), the command was not found (127), anything else (125).
const (
	ExitCannotInvoke = 126
	ExitNotFound     = 127
	ExitRuntimeError = 125
)

// StartError is a failure of Start or Exec reported by the container side before the user
// command ran (the init's setup, or the exec of the command).
type StartError struct {
	// ID is the container's ID.
	ID string
	// Code is the exit code Docker uses: 127 when the command was not found, 126 when it
	// could not be executed, 125 for any other failure.
	Code int
	// Msg is runc's wording, such as `exec: "x": executable file not found in $PATH`.
	Msg string
}

// Error is "unable to start container process: " + Msg, as runc says it.
func (e *StartError) Error() string {
	return "unable to start container process: " + e.Msg
}
