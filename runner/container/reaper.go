package container

import (
	"os"
	"os/signal"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// runReaper is the built-in init of Config.Reaper (docker run --init), as tini does it: it
// runs with the container's credentials (applied on this thread, which the fork copies),
// forks the command into its own process group (the terminal's foreground group when there
// is a terminal), forwards every catchable signal to that group, reaps every zombie and
// exits with the command's status (128+n after signal n). It returns only if the command
// could not be started.
func runReaper(sock int, name string, p *specs.Process, extra int) error {
	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs) // before the fork: no SIGCHLD is missed
	files := make([]uintptr, 3+extra)
	for i := range files {
		files[i] = uintptr(i)
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if p.Terminal {
		sys = &syscall.SysProcAttr{Foreground: true, Ctty: 0}
	}
	child, err := syscall.ForkExec(name, p.Args, &syscall.ProcAttr{Env: p.Env, Files: files, Sys: sys})
	if err != nil {
		signal.Reset()
		return &initFailure{code: execExitCode(err), msg: execErrorMessage(p.Args[0], err)}
	}
	// The command runs: the parent's Start sees EOF and returns.
	unix.Close(sock)
	// The reaper itself needs no capability any more (it signals processes of its own
	// user and waits): drop them on this thread, the one /proc/1/status shows.
	_ = capset(0, 0, 0)
	for i := 0; i < 3+extra; i++ {
		unix.Close(i)
	}

	for s := range sigs {
		sig := s.(syscall.Signal)
		if sig != syscall.SIGCHLD {
			if err := unix.Kill(-child, sig); err == unix.ESRCH {
				_ = unix.Kill(child, sig)
			}
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			if pid == child {
				os.Exit(ExitStatusOf(syscall.WaitStatus(ws)).Code)
			}
		}
	}
	return nil
}
