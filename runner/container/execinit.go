package container

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsTypes are the namespaces Exec joins, with their /proc/<pid>/ns names. The mount
// namespace comes last when they are joined one by one (after it, /proc is the container's).
var nsTypes = []struct {
	name string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET},
	{"pid", unix.CLONE_NEWPID},
	{"mnt", unix.CLONE_NEWNS},
}

// joinNamespaces moves the calling thread into the namespaces flags of the process behind
// pidfd: with one setns(pidfd, flags) (Linux ≥ 5.8), else one setns per /proc/<pid>/ns
// file, all opened before the first setns.
func joinNamespaces(pidfd, pid, flags int) error {
	if flags == 0 {
		return nil
	}
	err := unix.Setns(pidfd, flags)
	if err == nil {
		return nil
	}
	if err != unix.EINVAL {
		return fmt.Errorf("setns(pidfd, %#x): %w", flags, err)
	}
	type nsfd struct {
		fd, flag int
		name     string
	}
	var fds []nsfd
	defer func() {
		for _, n := range fds {
			unix.Close(n.fd)
		}
	}()
	for _, t := range nsTypes {
		if flags&t.flag == 0 {
			continue
		}
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/"+t.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s namespace of %d: %w", t.name, pid, err)
		}
		fds = append(fds, nsfd{fd, t.flag, t.name})
	}
	// The pidfd still names the same process: the files are its namespaces.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return fmt.Errorf("container init %d: %w", pid, err)
	}
	for _, n := range fds {
		if err := unix.Setns(n.fd, n.flag); err != nil {
			return fmt.Errorf("setns %s: %w", n.name, err)
		}
	}
	return nil
}

// execInit is the exec helper: it joins the container, starts the command as its child
// and relays the command's exit status. It runs on the locked main thread, which alone
// enters the container (the other Go threads stay in the host's namespaces and never touch
// the container).
func execInit(sock int, cfg *initConfig) (int, error) {
	p := cfg.Process
	if p == nil || len(p.Args) == 0 {
		return 0, errors.New("no process to exec")
	}
	if cfg.InitPidfd < 0 {
		return 0, errors.New("no pidfd of the container's init")
	}
	scrubFDs(func(fd int) bool { return fd == sock || fd == cfg.InitPidfd })
	// Whatever is open now (or later: everything is opened close-on-exec) stays out of the
	// command. Done before joining the container, whose /proc does not show this process.
	if err := closeFromOnExec(3); err != nil {
		return 0, fmt.Errorf("close descriptors: %w", err)
	}
	last := lastCap()

	// setns(CLONE_NEWNS) needs a thread whose fs_struct (root, cwd, umask) is not shared
	// with the other threads of the process.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return 0, fmt.Errorf("unshare(CLONE_FS): %w", err)
	}
	// oom_score_adj is per process and inherited by the command; write it
	// through the host's /proc before this thread leaves the mount namespace.
	if err := setOOMScoreAdj(p.OOMScoreAdj); err != nil {
		return 0, err
	}
	if err := joinNamespaces(cfg.InitPidfd, cfg.InitPid, cfg.NSFlags); err != nil {
		return 0, err
	}
	unix.Close(cfg.InitPidfd)
	// This thread's root and cwd are now the container's root.
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	master, slave := -1, -1
	if p.Terminal {
		if master, slave, err = preparePty(p); err != nil {
			return 0, err
		}
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return 0, err
	}
	if err := enterCwd(root, p.Cwd, false); err != nil {
		return 0, err
	}
	unix.Close(root)
	setUmask(p.User)
	if err := applyCreds(p, last); err != nil {
		return 0, err
	}
	name, err := lookPath(p.Args[0], pathFromEnv(p.Env))
	if err != nil {
		return 0, &initFailure{code: execExitCode(err), msg: err.Error()}
	}

	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	files := []uintptr{0, 1, 2}
	sys := &syscall.SysProcAttr{Setsid: true}
	if slave >= 0 {
		files = []uintptr{uintptr(slave), uintptr(slave), uintptr(slave)}
		sys.Setctty, sys.Ctty = true, 0
	}
	pidfd := -1
	sys.PidFD = &pidfd
	// ForkExec clones this (locked) thread: the child has its namespaces, root, cwd,
	// credentials and pid namespace for children.
	child, err := syscall.ForkExec(name, p.Args, &syscall.ProcAttr{Env: p.Env, Files: files, Sys: sys})
	if slave >= 0 {
		unix.Close(slave)
	}
	if err != nil {
		if master >= 0 {
			unix.Close(master)
		}
		return 0, &initFailure{code: execExitCode(err), msg: execErrorMessage(p.Args[0], err)}
	}
	if len(cfg.ReturnCgroups) > 0 {
		leaveCgroup(cfg.ReturnCgroups)
	}
	started := &message{Type: msgStarted, Pid: child, Pidfd: pidfd >= 0, Console: master >= 0}
	var fds []int
	if pidfd >= 0 {
		fds = append(fds, pidfd)
	}
	if master >= 0 {
		fds = append(fds, master)
	}
	_ = writeFrame(sock, started, fds...)
	if master >= 0 {
		unix.Close(master)
	}
	// Our own stdio is the command's now: let go of it so that the caller sees EOF when the
	// command closes it.
	for i := 0; i < 3; i++ {
		unix.Close(i)
	}

	// Relay: forward signals sent to the helper, wait for the command.
	for s := range sigs {
		sig := s.(syscall.Signal)
		if sig != syscall.SIGCHLD {
			if pidfd >= 0 {
				_ = unix.PidfdSendSignal(pidfd, sig, nil, 0)
			} else {
				_ = unix.Kill(child, sig)
			}
			continue
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(child, &ws, unix.WNOHANG, nil)
		if err != nil && err != unix.EINTR && err != unix.ECHILD {
			return ExitRuntimeError, fmt.Errorf("wait: %w", err)
		}
		if pid != child {
			continue
		}
		st := ExitStatusOf(syscall.WaitStatus(ws))
		_ = writeFrame(sock, &message{Type: msgExit, Code: st.Code, Signal: int(st.Signal)})
		return st.Code, nil
	}
	return ExitRuntimeError, nil
}

// leaveCgroup moves the helper back into the caller's cgroups (dirs) once its command,
// forked while the helper was in the container's cgroup, is there. The write runs on
// another goroutine, hence another thread than the locked main one: a thread that is still
// in the host's mount namespace with the helper's original (root) credentials.
func leaveCgroup(dirs []string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pid := []byte(strconv.Itoa(os.Getpid()))
		for _, d := range dirs {
			_ = os.WriteFile(filepath.Join(d, "cgroup.procs"), pid, 0)
		}
	}()
	<-done
}
