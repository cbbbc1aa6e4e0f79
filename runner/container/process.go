package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Process is a container process started by Start (the container's PID 1) or Exec (an
// additional process), owned by the caller: Wait must be called once it is no longer
// needed, to release it.
type Process struct {
	// Pid is the host pid of the process (Start: the container's init; Exec: the command).
	Pid int
	// StartTime is the process' start time (field 22 of /proc/<pid>/stat), for SignalPid
	// and WaitPidExit from other processes.
	StartTime uint64
	// Console is the pty master when the process has a terminal (Spec.Process.Terminal),
	// else nil. The caller copies to and from it and closes it.
	Console *os.File

	proc *os.Process // the direct child: the init (Start) or the exec helper (Exec)

	// Exec only.
	pidfd  int // pidfd of the command (-1: none)
	sock   int // sync socket with the helper, read for the exit frame
	exitCh chan *message

	waitOnce sync.Once
	status   ExitStatus
	waitErr  error
}

// Wait waits for the process to end and returns its status. It may be called more than
// once (and concurrently): every call returns the same result.
func (p *Process) Wait() (ExitStatus, error) {
	p.waitOnce.Do(func() {
		ps, err := p.proc.Wait()
		if err != nil {
			p.waitErr = err
			return
		}
		p.status = ExitStatusOf(ps.Sys().(syscall.WaitStatus))
		if p.exitCh != nil {
			// The helper relays the command's status; without it (helper killed), the
			// helper's own status is the best we know.
			if m := <-p.exitCh; m != nil {
				p.status = ExitStatus{Code: m.Code, Signal: syscall.Signal(m.Signal)}
			}
			unix.Close(p.sock)
		}
		if p.pidfd >= 0 {
			unix.Close(p.pidfd)
			p.pidfd = -1
		}
	})
	return p.status, p.waitErr
}

// Signal sends sig to the process. It is safe against pid reuse (pidfd): once the process
// has ended, it returns os.ErrProcessDone.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.exitCh == nil {
		return p.proc.Signal(sig)
	}
	if p.pidfd < 0 {
		return os.ErrProcessDone
	}
	err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	if err == unix.ESRCH {
		return os.ErrProcessDone
	}
	return err
}

// ProcessStartTime returns the start time of pid (field 22 of /proc/<pid>/stat, in clock
// ticks since boot): with the pid, it names a process uniquely.
func ProcessStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// ESRCH: the process is being torn down (a zombie being reaped).
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return 0, os.ErrProcessDone
		}
		return 0, err
	}
	return parseStartTime(string(b))
}

func parseStartTime(stat string) (uint64, error) {
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc stat line %q", stat)
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("bad /proc stat line %q", stat)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// openPid returns a pidfd of pid if pid still is the process that started at starttime
// (starttime 0: any), else os.ErrProcessDone.
func openPid(pid int, starttime uint64) (int, error) {
	if pid <= 0 {
		return -1, fmt.Errorf("invalid pid %d", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return -1, os.ErrProcessDone
	}
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	if starttime != 0 {
		// The pidfd was opened first: if pid has the expected start time now, the pidfd
		// names that process (it was alive from before the pidfd_open until now).
		st, err := ProcessStartTime(pid)
		if err != nil || st != starttime {
			unix.Close(fd)
			if err != nil && !errors.Is(err, os.ErrProcessDone) {
				return -1, err
			}
			return -1, os.ErrProcessDone
		}
	}
	return fd, nil
}

// SignalPid sends sig to pid, for a process this process did not start (a container whose
// monitor is another process): it is sent only if pid still is the process that started at
// starttime (ProcessStartTime; saved in the container's state), through a pidfd, so a
// recycled pid is never signalled. A process that is gone gives os.ErrProcessDone.
func SignalPid(pid int, starttime uint64, sig syscall.Signal) error {
	fd, err := openPid(pid, starttime)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return os.ErrProcessDone
		}
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

// WaitPidExit waits until pid, the process that started at starttime, has ended (it need
// not be a child of this process: the pidfd becomes readable when it exits). It returns nil
// at once if the process is already gone, and ctx's error if ctx ends first.
func WaitPidExit(ctx context.Context, pid int, starttime uint64) error {
	fd, err := openPid(pid, starttime)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd of %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
	}
}
