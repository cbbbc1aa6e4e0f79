// Package container is Berth's low-level container runtime (the part runc's libcontainer
// plays for Docker): it starts a container's process from an opencontainers runtime-spec in
// new namespaces on an overlay (or already prepared) rootfs, runs additional processes in a
// running container (exec), signals and waits for them. It is pure Go (golang.org/x/sys/unix),
// with no cgo and no runc.
//
// # The re-exec init
//
// The binary that imports this package is also the container's init: its main function must
// call Main first, before flags, cobra or goroutines:
//
//	func main() {
//		if container.Main() {
//			return // not reached: the init path exits itself
//		}
//		// ... the normal program
//	}
//
// Start and Exec re-execute the running binary with argv[0] "berth-init" and a marker in the
// environment (set only by this package), from a sealed memfd copy of the executable
// (ExecutableMemfd) and never from /proc/self/exe on disk, so a container process can never
// overwrite the host binary through /proc/<pid>/exe (CVE-2019-5736). The copy is made once
// per process and cached. Main recognises the marker, runs the init path on the locked main
// thread and never returns.
//
// # Start: lifecycle of a container process
//
//  1. The caller prepares a *specs.Spec (runner/spec), the rootfs (a directory, or overlay
//     layers that the init mounts inside the container's own mount namespace, so the mount
//     vanishes with the container), and optionally a cgroups.Manager already Created with
//     the limits.
//  2. Start clones the init with the spec's new namespaces (mount, pid, uts, ipc, net,
//     cgroup); namespaces given by path (and Config.NetNS) are joined by a locked parent
//     thread before the clone. The init gets its own session (it outlives the caller: there
//     is no parent-death signal).
//  3. The parent puts the init into the cgroup (Manager.Apply) before the init does anything
//     else, then sends it the configuration (JSON on an inherited socket).
//  4. The init sets up the container: private mount propagation, the overlay or bind rootfs,
//     the spec's mounts with every target resolved inside the rootfs (openat2
//     RESOLVE_IN_ROOT; mounts are attached to the resolved file descriptor, never to a
//     string path), /dev with the default devices and symlinks, pivot_root, the pty (when
//     spec.Process.Terminal), hostname, sysctls, read-only and masked paths, read-only root,
//     rlimits, the working directory (resolved inside the root and verified: CVE-2024-21626),
//     user, capabilities and no_new_privs; then it reports "ready".
//  5. The parent runs Config.Hooks (network setup: the init is in its namespaces, the user
//     command has not started) and tells the init to go.
//  6. The init marks every descriptor ≥ 3 close-on-exec, resolves the command in the
//     container's PATH and execs it (or, with Config.Reaper, forks it and stays PID 1 as a
//     reaper that forwards signals). A command that is not found or not executable is
//     reported back: Start returns a *StartError with Docker's exit code (127/126) and
//     message.
//  7. Start returns a *Process: Pid (host pid of the container's PID 1), Console (the pty
//     master, when a terminal was asked), Signal (pidfd based, safe against pid reuse) and
//     Wait, which returns the exit status with Docker's conventions (128+n after a signal,
//     137 after SIGKILL). The container's namespaces and mounts die with its PID 1.
//
// Another process (a later `pull-run kill`, or a monitor that did not start the container)
// uses SignalPid and WaitPidExit with the pid and its start time (ProcessStartTime), saved in
// the state, so that a recycled pid is never signalled.
//
// # Exec
//
// Exec runs an additional process in a running container: the parent starts the re-exec'd
// binary in "exec" mode (in the container's cgroup: Apply before it proceeds) and passes it a
// pidfd of the container's init. That helper locks its main thread, gives the thread a
// private fs_struct (unshare(CLONE_FS), which setns into a mount namespace requires in a
// multi-threaded process), joins every namespace of the init that differs from its own with
// setns(pidfd, flags), opens the pty inside the container, resolves the working directory
// inside the container root, drops to the process' user and capabilities on that thread and
// forks the command from it (syscall.ForkExec clones the calling thread, so the child
// inherits the thread's namespaces, root, cwd and credentials; setns(CLONE_NEWPID) applies to
// children only, so a fork is needed anyway). The helper stays in the host pid namespace as
// the command's parent, relays its exit status and hands a pidfd of the command to the caller
// for signals. The helper is in the container's cgroup when it forks (so the command is
// there before it runs) and moves back to the caller's cgroup right after, so that it counts
// neither in the container's pids nor in its memory. No cgo is needed.
//
// Exec into a paused (frozen) container blocks until it is thawed: check the freezer first,
// as Docker does ("container is paused").
package container
