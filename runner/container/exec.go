package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// execNSFlags returns the namespaces of pid that differ from ours (those Exec must join).
func execNSFlags(pid int) (int, error) {
	flags := 0
	self, err := os.Readlink("/proc/self/ns/user")
	if err == nil {
		theirs, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/user")
		if err == nil && theirs != self {
			return 0, errors.New("containers in a user namespace are not supported")
		}
	}
	for _, t := range nsTypes {
		theirs, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + t.name)
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat("/proc/" + strconv.Itoa(pid)); serr != nil {
				return 0, os.ErrProcessDone
			}
			continue // a namespace type this kernel does not have
		}
		if err != nil {
			return 0, err
		}
		self, err := os.Readlink("/proc/self/ns/" + t.name)
		if err != nil {
			return 0, err
		}
		if theirs != self {
			flags |= t.flag
		}
	}
	return flags, nil
}

// Exec starts c.Process in the running container whose init is c.InitPid: in all of the
// init's namespaces (mount, pid, uts, ipc, net, cgroup), in c.Cgroup, with the process'
// user, capabilities, working directory (which must exist) and environment. It returns
// once the command runs; Process.Pid is the command's host pid. A command that cannot be
// found or executed gives a *StartError with Code 127 or 126. See the package
// documentation for how the namespaces are joined.
func Exec(ctx context.Context, c *ExecConfig) (*Process, error) {
	if c == nil || c.Process == nil || len(c.Process.Args) == 0 {
		return nil, errors.New("container: Exec needs a process with args")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	initfd, err := openPid(c.InitPid, c.InitStartTime)
	if errors.Is(err, os.ErrProcessDone) {
		return nil, fmt.Errorf("container %s is not running (init %d is gone)", c.ID, c.InitPid)
	}
	if err != nil {
		return nil, err
	}
	initFile := os.NewFile(uintptr(initfd), "pidfd")
	defer initFile.Close()
	flags, err := execNSFlags(c.InitPid)
	if err == nil && unix.PidfdSendSignal(initfd, 0, nil, 0) == unix.ESRCH {
		err = os.ErrProcessDone // the links read were maybe another process'
	}
	if errors.Is(err, os.ErrProcessDone) {
		return nil, fmt.Errorf("container %s is not running (init %d is gone)", c.ID, c.InitPid)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}

	stdio, opened, err := stdioFiles(c.Stdin, c.Stdout, c.Stderr, c.Process.Terminal)
	if err != nil {
		return nil, err
	}
	// The helper is not in any namespace of the container yet: it joins them itself.
	proc, sock, err := spawnInit(stdio, nil, 0, nil)
	for _, f := range opened {
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	p := &Process{proc: proc, pidfd: -1, sock: -1}
	stop := context.AfterFunc(ctx, func() { proc.Kill() })
	fail := func(err error) (*Process, error) {
		stop()
		proc.Kill()
		proc.Wait()
		if sock >= 0 {
			unix.Close(sock)
		}
		if p.Console != nil {
			p.Console.Close()
		}
		if p.pidfd >= 0 {
			unix.Close(p.pidfd)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if c.Cgroup != nil {
		if err := c.Cgroup.Apply(proc.Pid); err != nil {
			return fail(fmt.Errorf("container %s: join cgroup: %w", c.ID, err))
		}
	}
	cfg := &initConfig{
		Mode:    modeExec,
		ID:      c.ID,
		Process: c.Process,
		NSFlags: flags,
		InitPid: c.InitPid,
	}
	if c.Cgroup != nil {
		cfg.ReturnCgroups, _ = selfCgroupDirs() // best effort: else the helper stays
	}
	// The init's pidfd travels with the configuration.
	if err := writeFrame(sock, &message{Type: msgConfig, Config: cfg}, initfd); err != nil {
		return fail(fmt.Errorf("container %s: send configuration to exec helper: %w", c.ID, err))
	}
	msg, fds, err := readFrame(sock)
	if err != nil {
		if err == io.EOF {
			err = errors.New("exec helper exited")
		}
		return fail(fmt.Errorf("container %s: %w", c.ID, err))
	}
	switch msg.Type {
	case msgStarted:
	case msgError:
		closeAll(fds)
		code := msg.Code
		if code == 0 {
			code = ExitRuntimeError
		}
		return fail(&StartError{ID: c.ID, Code: code, Msg: msg.Error})
	default:
		closeAll(fds)
		return fail(fmt.Errorf("container %s: unexpected message %q from exec helper", c.ID, msg.Type))
	}
	if msg.Pidfd && len(fds) > 0 {
		p.pidfd, fds = fds[0], fds[1:]
	}
	if msg.Console && len(fds) > 0 {
		p.Console, fds = os.NewFile(uintptr(fds[0]), "console"), fds[1:]
	}
	closeAll(fds)
	if !stop() {
		return fail(ctx.Err())
	}
	p.Pid = msg.Pid
	p.StartTime, _ = ProcessStartTime(p.Pid)
	p.sock = sock
	p.exitCh = make(chan *message, 1)
	go func() {
		m, fds, err := readFrame(sock)
		closeAll(fds)
		if err != nil || m.Type != msgExit {
			m = nil
		}
		p.exitCh <- m
	}()
	return p, nil
}
