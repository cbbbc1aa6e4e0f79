package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-registry/berth/runner/cgroups"
	"github.com/berth-registry/berth/runner/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The lifecycle layer, over the runtime (Start, Exec, SignalPid, …) of this package:
//
//	manager.go  Manager: start, stop, kill, restart, pause, rm, wait, attach, logs, exec,
//	            rename, prune, boot; locking and reconciling a container's state
//	create.go   Create: name, directories, /etc files, the runtime spec (runner/spec)
//	state.go    what is on disk: Container (config.json), State (state.json)
//	store.go    Store: the layout, atomic writes, flocks, names
//	monitor.go  the monitor: the process that runs, logs and restarts each container
//	attach.go   the monitor's stream protocol and the client (Stream)
//	logs.go     the json-file log: writer (monitor) and reader (logs)
//	restart.go  restart policies and Docker's backoff
//	inspect.go  inspect and ps; top.go: top and stats
//	hooks.go    the seam for networks and volumes (registered hooks)
//	errors.go   error kinds with Docker's messages

// Manager is the container lifecycle of pull-run (create, start, stop, kill, rm, ps,
// inspect, logs, attach, exec, …) over a Store, with Docker's semantics and messages.
// There is no daemon: every call reads the state from disk, corrects what is stale (a
// process or a monitor that is gone: see the monitor in monitor.go) and changes it under
// the container's flock, so concurrent pull-run commands never corrupt it.
type Manager struct {
	s *Store

	// What Run prepares for its Start while Create works (handshake.go).
	prepMu sync.Mutex
	exe    chan *os.File // a sealed copy of the binary being made
	mon    *monitorProc  // a monitor waiting for its container
}

// NewManager opens the container store of the state root and the runtime directory.
func NewManager(root, runRoot string) (*Manager, error) {
	s, err := OpenStore(root, runRoot)
	if err != nil {
		return nil, err
	}
	return &Manager{s: s}, nil
}

// Store is the manager's on-disk store.
func (m *Manager) Store() *Store { return m.s }

// entry is a container locked for a change, its state reconciled with the truth.
type entry struct {
	m  *Manager
	lk *flock
	c  *Container
	st *State
}

func (e *entry) save() error { return e.m.s.saveState(e.c.ID, e.st) }
func (e *entry) unlock()     { e.lk.Unlock() }

// lock resolves nameOrID, takes the container's lock and loads and reconciles it.
func (m *Manager) lock(nameOrID string) (*entry, error) {
	id, err := m.Resolve(nameOrID)
	if err != nil {
		return nil, err
	}
	lk, err := m.s.lockContainer(id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(nameOrID)
		}
		return nil, err
	}
	e := &entry{m: m, lk: lk}
	if e.c, err = m.s.LoadConfig(id); err == nil {
		e.st, err = m.s.LoadState(id)
	}
	if err != nil {
		lk.Unlock()
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(nameOrID)
		}
		return nil, err
	}
	removed, err := m.reconcile(e)
	if err != nil || removed {
		lk.Unlock()
		if removed {
			return nil, notFound(nameOrID)
		}
		return nil, err
	}
	return e, nil
}

// view returns the container and its state without a lock, unless the state may be
// stale (a run without a live monitor): then it is reconciled under the lock.
func (m *Manager) view(nameOrID string) (*Container, *State, error) {
	id, err := m.Resolve(nameOrID)
	if err != nil {
		return nil, nil, err
	}
	c, err := m.s.LoadConfig(id)
	if err != nil {
		return nil, nil, notFound(nameOrID)
	}
	st, err := m.s.LoadState(id)
	if err != nil {
		return nil, nil, notFound(nameOrID)
	}
	if (st.Status.Active() || st.Status == StatusRemoving) && !m.s.monitorAlive(id) {
		e, err := m.lock(id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, nil, notFound(nameOrID)
			}
			return nil, nil, err
		}
		defer e.unlock()
		return e.c, e.st, nil
	}
	return c, st, nil
}

// reconcile corrects a locked state that claims a run that is over with nobody to record
// it (the monitor was killed, or the machine rebooted): the exit is recorded (its code
// unknown: 128 + the last signal a command sent, or 255), the cgroup and the hooks'
// resources are released, and an AutoRemove container is removed (removed is then true).
// A run still going without its monitor stays running (paused per the freezer).
func (m *Manager) reconcile(e *entry) (removed bool, err error) {
	c, st := e.c, e.st
	if !st.Status.Active() || m.s.monitorAlive(c.ID) {
		return false, nil
	}
	if st.Status != StatusRestarting && alive(st.Pid, st.StartTime) {
		want := StatusRunning
		if cg, err := c.cgroup(); err == nil {
			if fz, _ := cg.State(); fz == cgroups.Frozen || fz == cgroups.Freezing {
				want = StatusPaused
			}
		}
		if st.Status != want {
			st.Status = want
			return false, e.save()
		}
		return false, nil
	}
	if st.Status != StatusRestarting {
		code := 255
		if st.LastSignal > 0 {
			code = 128 + st.LastSignal
		}
		if cg, err := c.cgroup(); err == nil {
			if oom, _ := cg.OOMKilled(); oom {
				code, st.OOMKilled = 137, true
			}
		}
		if st.LastSignal == 0 && !st.OOMKilled {
			st.Error = "the container's monitor is gone: exit status unknown"
		}
		st.ExitCode = code
		st.FinishedAt = time.Now().UTC()
	}
	m.cleanupRun(c)
	st.Status = StatusExited
	st.Pid, st.StartTime, st.MonitorPid, st.MonitorStartTime = 0, 0, 0, 0
	if err := e.save(); err != nil {
		return false, err
	}
	if c.HostConfig.AutoRemove {
		st.Status = StatusRemoving
		e.save()
		return true, m.s.finishRemove(c, true)
	}
	return false, nil
}

// cleanupRun releases what a run leaves when nobody saw it end.
func (m *Manager) cleanupRun(c *Container) {
	if cg, err := c.cgroup(); err == nil {
		cg.Destroy()
	}
	c.runPoststop(m.s.Dir(c.ID))
	os.Remove(m.s.attachPath(c.ID))
}

// finishRemove removes a container whose state is "removing" (the caller holds its lock):
// its cgroup, the Remove hooks, its name and its directories.
func (s *Store) finishRemove(c *Container, volumes bool) error {
	if cg, err := c.cgroup(); err == nil {
		if err := cg.Destroy(); err != nil {
			s.markDead(c.ID, err)
			return fmt.Errorf("unable to remove container %s: %w", c.ID, err)
		}
	}
	hookErr := c.runRemoveHooks(s.Dir(c.ID), volumes)
	lk, err := s.lockStore()
	if err != nil {
		return err
	}
	s.releaseName(c.Name, c.ID)
	err = s.removeDirs(c.ID)
	lk.Unlock()
	if err != nil {
		s.markDead(c.ID, err)
		return fmt.Errorf("unable to remove container %s: %w", c.ID, err)
	}
	return hookErr
}

func (s *Store) markDead(id string, cause error) {
	if st, err := s.LoadState(id); err == nil {
		st.Status = StatusDead
		st.Error = cause.Error()
		s.saveState(id, st)
	}
}

// Resolve finds a container by full id, name (with or without Docker's leading "/") or
// unique id prefix, as Docker does.
func (m *Manager) Resolve(nameOrID string) (string, error) {
	if nameOrID == "" {
		return "", notFound(nameOrID)
	}
	if validIDRe.MatchString(nameOrID) {
		if _, err := os.Stat(m.s.statePath(nameOrID)); err == nil {
			return nameOrID, nil
		}
	}
	name := strings.TrimPrefix(nameOrID, "/")
	if validNameRe.MatchString(name) {
		if owner, err := m.s.nameOwner(name); err == nil && owner != "" {
			return owner, nil
		}
	}
	if strings.Trim(nameOrID, "0123456789abcdef") != "" {
		return "", notFound(nameOrID)
	}
	ids, err := m.s.IDs()
	if err != nil {
		return "", err
	}
	found := ""
	for _, id := range ids {
		if !strings.HasPrefix(id, nameOrID) {
			continue
		}
		if _, err := os.Stat(m.s.statePath(id)); err != nil {
			continue
		}
		if found != "" {
			return "", invalidf("Multiple IDs found with provided prefix: %s", nameOrID)
		}
		found = id
	}
	if found == "" {
		return "", notFound(nameOrID)
	}
	return found, nil
}

// StartOptions are start's options.
type StartOptions struct {
	// Attach, when set, connects the streams before the command runs (docker start -a,
	// docker run without -d): Start then returns a Stream.
	Attach *AttachOptions
}

// Start starts a created or stopped container (docker start): it spawns the container's
// monitor and returns once the command runs, or with the start's error (a *StartError
// with Docker's exit code 127 or 126 when the command cannot be found or run). Starting a
// running container does nothing (with Attach, it attaches).
func (m *Manager) Start(ctx context.Context, nameOrID string, o StartOptions) (*Stream, error) {
	m.prepareExecutable() // while the container is locked and its monitor spawned
	spawned := false
	defer func() {
		if !spawned {
			m.dropPrepared()
		}
	}()
	e, err := m.lock(nameOrID)
	if err != nil {
		return nil, err
	}
	unlocked := false
	defer func() {
		if !unlocked {
			e.unlock()
		}
	}()
	c, st := e.c, e.st
	switch st.Status {
	case StatusRunning, StatusRestarting:
		if o.Attach != nil {
			e.unlock()
			unlocked = true
			return m.Attach(ctx, c.ID, *o.Attach)
		}
		return nil, nil
	case StatusPaused:
		return nil, conflictf("cannot start a paused container, try unpause instead")
	case StatusRemoving, StatusDead:
		return nil, conflictf("container is marked for removal and cannot be started")
	}
	// A monitor may still be finishing the previous run.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = m.s.waitMonitorGone(wctx, c.ID, st.MonitorPid, st.MonitorStartTime)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("container %s: the previous monitor has not exited: %w", c.ID, err)
	}
	if err := os.MkdirAll(m.s.RunDir(c.ID), 0o700); err != nil {
		return nil, err
	}

	var stream *Stream
	var childAttach *os.File
	if o.Attach != nil {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		parent := os.NewFile(uintptr(pair[0]), "attach")
		childAttach = os.NewFile(uintptr(pair[1]), "attach")
		defer childAttach.Close()
		conn, err := net.FileConn(parent)
		parent.Close()
		if err != nil {
			return nil, err
		}
		req := attachRequest{
			Stdin:  o.Attach.Stdin != nil && c.Config.OpenStdin,
			Stdout: o.Attach.Stdout != nil,
			Stderr: o.Attach.Stderr != nil,
		}
		if stream, err = m.newStream(ctx, c.ID, conn, req, *o.Attach, false); err != nil {
			return nil, err
		}
	}
	var console *specs.Box
	if o.Attach != nil && c.Spec.Process.Terminal {
		console = o.Attach.ConsoleSize
	}
	args := &monitorArgs{Root: m.s.root, RunRoot: m.s.runRoot, ID: c.ID, Reset: true, Attach: childAttach != nil, Console: console}
	mp, err := m.takeMonitor()
	if err == nil {
		if err = mp.start(args, e.lk, childAttach); err != nil {
			// A prepared monitor that died meanwhile: a new one.
			mp.discard()
			if mp, err = spawnMonitor(); err == nil {
				err = mp.start(args, e.lk, childAttach)
			}
		}
	}
	if err != nil {
		if stream != nil {
			stream.Close()
		}
		return nil, err
	}
	spawned = true
	go mp.sendExecutable(m.takeExecutable())
	reply, err := mp.readReply(ctx)
	if err == nil && reply.Error != "" {
		if reply.StartError {
			err = &StartError{ID: c.ID, Code: reply.Code, Msg: reply.Error}
		} else {
			err = errors.New(reply.Error)
		}
	}
	if err != nil {
		if stream != nil {
			stream.Close()
		}
		// The monitor recorded the failure, or died: make the state true again.
		if cur, lerr := m.s.LoadState(c.ID); lerr == nil {
			e.st = cur
			m.reconcile(e)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return stream, nil
}

// Run creates and starts a container (docker run): Create then Start, with what the start
// needs (the monitor process, the sealed copy of the binary for the container's init)
// prepared while Create works. On a start failure the created container stays (as
// Docker's does), unless it is an AutoRemove one.
func (m *Manager) Run(ctx context.Context, co CreateOptions, so StartOptions) (*Container, *Stream, error) {
	m.prepareExecutable()
	m.prepareMonitor()
	c, err := m.Create(ctx, co)
	if err != nil {
		m.dropPrepared()
		return nil, nil, err
	}
	s, err := m.Start(ctx, c.ID, so)
	return c, s, err
}

// StopOptions are stop's (and restart's) options.
type StopOptions struct {
	// Signal replaces the container's stop signal ("" keeps it).
	Signal string
	// Timeout is how many seconds to wait before SIGKILL (nil: the container's
	// --stop-timeout, else 10; negative: wait forever).
	Timeout *int
}

func (c *Container) stopSignal(override string) (syscall.Signal, error) {
	s := override
	if s == "" {
		s = c.StopSignal
	}
	if s == "" {
		return syscall.SIGTERM, nil
	}
	sig, err := spec.ParseSignal(s)
	if err != nil {
		return 0, invalidf("%v", err)
	}
	return sig, nil
}

func (c *Container) stopTimeout(o *int) time.Duration {
	t := 10
	if c.StopTimeout != nil {
		t = *c.StopTimeout
	}
	if o != nil {
		t = *o
	}
	if t < 0 {
		return -1
	}
	return time.Duration(t) * time.Second
}

// Stop stops the container (docker stop): the stop signal, then SIGKILL after the
// timeout. The restart policy does not bring it back (unless-stopped stays down at boot).
// Stopping a container that is not running does nothing.
func (m *Manager) Stop(ctx context.Context, nameOrID string, o StopOptions) error {
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	c, st := e.c, e.st
	sig, err := c.stopSignal(o.Signal)
	if err != nil {
		e.unlock()
		return err
	}
	switch st.Status {
	case StatusRestarting:
		return m.cancelRestart(ctx, e)
	case StatusRunning, StatusPaused:
	default:
		e.unlock()
		return nil
	}
	st.ManuallyStopped = true
	st.LastSignal = int(sig)
	if err := e.save(); err != nil {
		e.unlock()
		return err
	}
	r := *st
	e.unlock()
	return m.stopRun(ctx, c, &r, sig, c.stopTimeout(o.Timeout))
}

// cancelRestart stops a container waiting to be restarted (its lock held; released).
func (m *Manager) cancelRestart(ctx context.Context, e *entry) error {
	st := e.st
	st.ManuallyStopped = true
	st.Status = StatusExited
	err := e.save()
	mpid, mstart := st.MonitorPid, st.MonitorStartTime
	e.unlock()
	if err != nil {
		return err
	}
	if mpid > 0 {
		signalPid(mpid, mstart, syscall.SIGUSR1)
	}
	return m.s.waitMonitorGone(ctx, e.c.ID, mpid, mstart)
}

// stopRun signals the run r, escalates to SIGKILL after timeout (negative: never) and
// waits until the exit is recorded.
func (m *Manager) stopRun(ctx context.Context, c *Container, r *State, sig syscall.Signal, timeout time.Duration) error {
	if err := signalPid(r.Pid, r.StartTime, sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if r.Status == StatusPaused {
		if cg, err := c.cgroup(); err == nil {
			cg.Thaw() // a frozen process gets no signal
		}
	}
	if timeout >= 0 {
		tctx, cancel := context.WithTimeout(ctx, timeout)
		err := waitPidExit(tctx, r.Pid, r.StartTime)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.noteSignal(c.ID, r.Pid, syscall.SIGKILL)
			if err := signalPid(r.Pid, r.StartTime, syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
				return err
			}
		}
	}
	if err := waitPidExit(ctx, r.Pid, r.StartTime); err != nil {
		return err
	}
	return m.awaitRecorded(ctx, c.ID, r.Pid)
}

// noteSignal records that a command sent sig to the run pid.
func (m *Manager) noteSignal(id string, pid int, sig syscall.Signal) {
	lk, err := m.s.lockContainer(id)
	if err != nil {
		return
	}
	defer lk.Unlock()
	if st, err := m.s.LoadState(id); err == nil && st.Pid == pid {
		st.LastSignal = int(sig)
		m.s.saveState(id, st)
	}
}

// awaitRecorded waits until the state no longer shows the run pid (which has ended) as
// running: the monitor records it within milliseconds; without a monitor, reconciling
// does.
func (m *Manager) awaitRecorded(ctx context.Context, id string, pid int) error {
	for {
		st, err := m.s.LoadState(id)
		if err != nil {
			return nil // removed
		}
		if st.Pid != pid || !st.Status.Active() {
			return nil
		}
		if !m.s.monitorAlive(id) {
			e, err := m.lock(id)
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					return nil
				}
				return err
			}
			e.unlock()
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// Kill sends a signal (default SIGKILL) to the container's init (docker kill). SIGKILL
// and the stop signal keep the restart policy from bringing it back; after SIGKILL, Kill
// returns once the exit is recorded.
func (m *Manager) Kill(ctx context.Context, nameOrID string, signal string) error {
	sig := syscall.SIGKILL
	if signal != "" {
		s, err := spec.ParseSignal(signal)
		if err != nil {
			return invalidf("%v", err)
		}
		sig = s
	}
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	c, st := e.c, e.st
	stopSig, _ := c.stopSignal("")
	manual := sig == syscall.SIGKILL || sig == stopSig
	switch st.Status {
	case StatusRestarting:
		if manual {
			return m.cancelRestart(ctx, e)
		}
		e.unlock()
		return nil
	case StatusRunning, StatusPaused:
	default:
		e.unlock()
		return conflictf("Cannot kill container: %s: Container %s is not running", nameOrID, c.ID)
	}
	if manual {
		st.ManuallyStopped = true
	}
	st.LastSignal = int(sig)
	err = e.save()
	r := *st
	e.unlock()
	if err != nil {
		return err
	}
	if err := signalPid(r.Pid, r.StartTime, sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return m.awaitRecorded(ctx, c.ID, r.Pid)
		}
		return err
	}
	if sig != syscall.SIGKILL {
		return nil
	}
	if r.Status == StatusPaused {
		if cg, err := c.cgroup(); err == nil {
			cg.Thaw()
		}
	}
	if err := waitPidExit(ctx, r.Pid, r.StartTime); err != nil {
		return err
	}
	return m.awaitRecorded(ctx, c.ID, r.Pid)
}

// Restart stops the container (as Stop) and starts it again.
func (m *Manager) Restart(ctx context.Context, nameOrID string, o StopOptions) error {
	id, err := m.Resolve(nameOrID)
	if err != nil {
		return err
	}
	if err := m.Stop(ctx, id, o); err != nil {
		return err
	}
	_, err = m.Start(ctx, id, StartOptions{})
	if errors.Is(err, ErrNotFound) {
		return notFound(nameOrID)
	}
	return err
}

// Pause freezes every process of the container (cgroup freezer).
func (m *Manager) Pause(ctx context.Context, nameOrID string) error {
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	defer e.unlock()
	switch e.st.Status {
	case StatusPaused:
		return conflictf("Container %s is already paused", e.c.ID)
	case StatusRestarting:
		return conflictf("Container %s is restarting, wait until the container is running", e.c.ID)
	case StatusRunning:
	default:
		return errNotRunning(e.c.ID)
	}
	cg, err := e.c.cgroup()
	if err != nil {
		return err
	}
	if err := cg.Freeze(); err != nil {
		return fmt.Errorf("Cannot pause container %s: %w", e.c.ID, err)
	}
	e.st.Status = StatusPaused
	return e.save()
}

// Unpause thaws a paused container.
func (m *Manager) Unpause(ctx context.Context, nameOrID string) error {
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	defer e.unlock()
	if e.st.Status != StatusPaused {
		return conflictf("Container %s is not paused", e.c.ID)
	}
	cg, err := e.c.cgroup()
	if err != nil {
		return err
	}
	if err := cg.Thaw(); err != nil {
		return fmt.Errorf("Cannot unpause container %s: %w", e.c.ID, err)
	}
	e.st.Status = StatusRunning
	return e.save()
}

// RemoveOptions are rm's options.
type RemoveOptions struct {
	// Force kills a running container first (rm -f).
	Force bool
	// Volumes removes its anonymous volumes (rm -v; the Remove hooks are told).
	Volumes bool
}

// Remove removes the container (docker rm): nothing of it is left (process, cgroup,
// directories, name). A running container is refused without Force.
func (m *Manager) Remove(ctx context.Context, nameOrID string, o RemoveOptions) error {
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	c, st := e.c, e.st
	switch st.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		if !o.Force {
			e.unlock()
			switch st.Status {
			case StatusPaused:
				return conflictf("You cannot remove a paused container %s. Unpause and then stop the container before attempting removal or force remove", c.ID)
			case StatusRestarting:
				return conflictf("You cannot remove a restarting container %s. Stop the container before attempting removal or force remove", c.ID)
			}
			return conflictf("You cannot remove a running container %s. Stop the container before attempting removal or force remove", c.ID)
		}
		prev := *st
		st.Status = StatusRemoving
		st.ManuallyStopped = true
		if prev.Status != StatusRestarting {
			st.LastSignal = int(syscall.SIGKILL)
		}
		if err := e.save(); err != nil {
			e.unlock()
			return err
		}
		e.unlock()
		if prev.Status == StatusRestarting {
			signalPid(prev.MonitorPid, prev.MonitorStartTime, syscall.SIGUSR1)
		} else {
			signalPid(prev.Pid, prev.StartTime, syscall.SIGKILL)
			if cg, err := c.cgroup(); err == nil {
				cg.KillAll() // a frozen container, processes the init left behind
			}
			if err := waitPidExit(ctx, prev.Pid, prev.StartTime); err != nil {
				return err
			}
		}
		if err := m.s.waitMonitorGone(ctx, c.ID, prev.MonitorPid, prev.MonitorStartTime); err != nil {
			return err
		}
		lk, err := m.s.lockContainer(c.ID)
		if err != nil {
			return nil // removed meanwhile
		}
		e.lk = lk
		if e.st, err = m.s.LoadState(c.ID); err != nil {
			lk.Unlock()
			return nil
		}
		if e.st.Status != StatusRemoving {
			lk.Unlock()
			return conflictf("container %s changed state during its removal", c.ID)
		}
	case StatusRemoving:
		if m.s.monitorAlive(c.ID) || alive(st.Pid, st.StartTime) {
			e.unlock()
			return conflictf("removal of container %s is already in progress", c.ID)
		}
	default:
		st.Status = StatusRemoving
		if err := e.save(); err != nil {
			e.unlock()
			return err
		}
	}
	defer e.unlock()
	return m.s.finishRemove(c, o.Volumes)
}

// Wait waits until the container's run ends and returns its exit code (docker wait);
// for a container that is not running, at once.
func (m *Manager) Wait(ctx context.Context, nameOrID string) (int, error) {
	id, err := m.Resolve(nameOrID)
	if err != nil {
		return -1, err
	}
	return m.waitExit(ctx, id, 0)
}

// waitExit waits for the end of the run pid (0: the current one).
func (m *Manager) waitExit(ctx context.Context, id string, pid int) (int, error) {
	for {
		_, st, err := m.view(id)
		if err != nil {
			return -1, err
		}
		if st.Status != StatusRunning && st.Status != StatusPaused || pid != 0 && st.Pid != pid {
			return st.ExitCode, nil
		}
		if conn, err := dialUnix(m.s.attachPath(id)); err == nil {
			s, err := m.newStream(ctx, id, conn, attachRequest{Wait: true, Pid: st.Pid}, AttachOptions{}, true)
			if err == nil {
				select {
				case <-s.done:
				case <-ctx.Done():
					s.Close()
					return -1, ctx.Err()
				}
				if s.exit != nil {
					return s.exit.ExitCode, nil
				}
			}
		}
		// No monitor to ask (or it went away): wait for the process, then reconcile.
		if err := waitPidExit(ctx, st.Pid, st.StartTime); err != nil {
			return -1, err
		}
		if err := m.awaitRecorded(ctx, id, st.Pid); err != nil {
			return -1, err
		}
		pid = st.Pid
	}
}

// WaitRemoved waits until an AutoRemove container whose run ended has been removed by
// its monitor (docker run --rm waits for that before it exits).
func (m *Manager) WaitRemoved(ctx context.Context, nameOrID string) error {
	id, err := m.Resolve(nameOrID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := m.s.LoadState(id)
	if err != nil {
		return nil
	}
	if err := m.s.waitMonitorGone(ctx, id, st.MonitorPid, st.MonitorStartTime); err != nil {
		return err
	}
	if _, _, err := m.view(id); errors.Is(err, ErrNotFound) {
		return nil
	}
	return nil
}

// Attach attaches streams to a running container (docker attach).
func (m *Manager) Attach(ctx context.Context, nameOrID string, o AttachOptions) (*Stream, error) {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case StatusRunning:
	case StatusPaused:
		return nil, conflictf("You cannot attach to a paused container, unpause it first")
	case StatusRestarting:
		return nil, conflictf("You cannot attach to a restarting container, wait until it is running")
	default:
		return nil, conflictf("You cannot attach to a stopped container, start it first")
	}
	if o.DetachKeys != "" {
		if _, err := ParseDetachKeys(o.DetachKeys); err != nil {
			return nil, err
		}
	}
	if o.Logs {
		if err := m.Logs(ctx, c.ID, LogsOptions{Tail: -1}, o.Stdout, o.Stderr); err != nil {
			return nil, err
		}
	}
	conn, err := dialUnix(m.s.attachPath(c.ID))
	if err != nil {
		return nil, conflictf("container %s has no monitor to attach to (it was killed): %v", c.ID, err)
	}
	req := attachRequest{Stdin: o.Stdin != nil && c.Config.OpenStdin, Stdout: o.Stdout != nil, Stderr: o.Stderr != nil}
	s, err := m.newStream(ctx, c.ID, conn, req, o, true)
	if err == nil && o.ConsoleSize != nil && s.tty {
		s.Resize(uint16(o.ConsoleSize.Height), uint16(o.ConsoleSize.Width))
	}
	return s, err
}

// Logs writes the container's log (docker logs); with Follow, until the container stops.
func (m *Manager) Logs(ctx context.Context, nameOrID string, o LogsOptions, stdout, stderr io.Writer) error {
	c, _, err := m.view(nameOrID)
	if err != nil {
		return err
	}
	limits, err := parseLogConfig(c.HostConfig.LogConfig)
	if err != nil {
		return err
	}
	if limits.driver == LogDriverNone {
		return invalidf("configured logging driver does not support reading")
	}
	r := &logReader{path: c.LogPath, maxFile: limits.maxFile, opts: o, stdout: stdout, stderr: stderr}
	running := func() bool {
		st, err := m.s.LoadState(c.ID)
		if err != nil || st.Status != StatusRunning && st.Status != StatusPaused {
			return false
		}
		return m.s.monitorAlive(c.ID) // without its monitor nothing is logged any more
	}
	return r.read(ctx, running)
}

// Rename renames the container (docker rename).
func (m *Manager) Rename(ctx context.Context, nameOrID, newName string) error {
	newName = strings.TrimPrefix(newName, "/")
	if err := validateName(newName); err != nil {
		return invalidf("Error when allocating new name: %v", err)
	}
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	defer e.unlock()
	c := e.c
	if c.Name == newName {
		return invalidf("Renaming a container with the same name as its current name")
	}
	lk, err := m.s.lockStore()
	if err != nil {
		return err
	}
	defer lk.Unlock()
	if err := m.s.reserveName(newName, c.ID); err != nil {
		return &Error{Kind: ErrConflict, Msg: "Error when allocating new name: " + err.Error()}
	}
	old := c.Name
	c.Name = newName
	if err := m.s.saveConfig(c, false); err != nil {
		m.s.releaseName(newName, c.ID)
		return err
	}
	m.s.releaseName(old, c.ID)
	return nil
}

// PruneReport is what Prune removed.
type PruneReport struct {
	ContainersDeleted []string
	SpaceReclaimed    uint64
}

// Prune removes every stopped container (docker container prune); filters: until
// (a time or a duration), label (key or key=value), label! .
func (m *Manager) Prune(ctx context.Context, filters map[string][]string) (*PruneReport, error) {
	for k := range filters {
		if k != "until" && k != "label" && k != "label!" {
			return nil, invalidf("invalid filter '%s'", k)
		}
	}
	var until time.Time
	for _, v := range filters["until"] {
		t, err := parseTimeFilter(v)
		if err != nil {
			return nil, err
		}
		until = t
	}
	m.s.cleanTrash()
	ids, err := m.s.IDs()
	if err != nil {
		return nil, err
	}
	rep := &PruneReport{ContainersDeleted: []string{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		c, st, err := m.view(id)
		if err != nil {
			continue
		}
		if st.Status != StatusCreated && st.Status != StatusExited && st.Status != StatusDead {
			continue
		}
		if !until.IsZero() && !c.Created.Before(until) {
			continue
		}
		if !matchLabels(c.Config.Labels, filters["label"], true) || !matchLabels(c.Config.Labels, filters["label!"], false) {
			continue
		}
		size := dirSize(m.s.Dir(id))
		if err := m.Remove(ctx, id, RemoveOptions{}); err != nil {
			continue
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, id)
		rep.SpaceReclaimed += size
	}
	return rep, nil
}

func dirSize(dir string) uint64 {
	var n uint64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// Boot restarts, at machine start (pull-run system boot), the containers whose restart
// policy asks for it, as the Docker daemon does when it starts: always (even one stopped
// by hand: that is what sets it apart from unless-stopped), unless-stopped unless it was
// stopped by hand, on-failure after a failure (not after a stop). Runs that ended with the
// machine are recorded first (exit code 255); AutoRemove containers whose run ended so
// are removed. Containers that already run are left alone. It returns the ids started.
func (m *Manager) Boot(ctx context.Context) ([]string, error) {
	m.s.cleanTrash()
	ids, err := m.s.IDs()
	if err != nil {
		return nil, err
	}
	var started []string
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return started, err
		}
		e, err := m.lock(id)
		if err != nil {
			continue
		}
		c, st := e.c, e.st
		if (st.Status == StatusRemoving || st.Status == StatusExited && c.HostConfig.AutoRemove) && !m.s.monitorAlive(id) {
			m.s.finishRemove(c, true) // a removal (or an --rm) interrupted by the crash
			e.unlock()
			continue
		}
		do := (st.Status == StatusExited || st.Status == StatusCreated && !st.StartedAt.IsZero()) && bootRestart(c.HostConfig.RestartPolicy, st)
		e.unlock()
		if !do {
			continue
		}
		if _, err := m.Start(ctx, id, StartOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", id, err))
			continue
		}
		started = append(started, id)
	}
	return started, errors.Join(errs...)
}

// ExecOptions are exec's options.
type ExecOptions struct {
	// Cmd is the command and its arguments (resolved in the container's PATH).
	Cmd []string
	// Env are more KEY=VALUE variables over the container's.
	Env []string
	// User is -u (resolved in the container's /etc/passwd); "" is the container's user.
	User string
	// WorkingDir is -w; "" is the container's working directory.
	WorkingDir string
	// Tty gives the process a terminal (Process.Console), of ConsoleSize.
	Tty         bool
	ConsoleSize *specs.Box
	// Privileged gives the process every capability.
	Privileged bool
	// Stdin, Stdout and Stderr are the process' (nil: /dev/null; ignored with Tty).
	Stdin, Stdout, Stderr *os.File
}

// Exec runs a process in the running container (docker exec), in all its namespaces and
// its cgroup. The caller waits for the returned process (and copies its Console with Tty).
func (m *Manager) Exec(ctx context.Context, nameOrID string, o ExecOptions) (*Process, error) {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case StatusRunning:
	case StatusPaused:
		return nil, conflictf("Container %s is paused, unpause the container before exec", c.ID)
	case StatusRestarting:
		return nil, conflictf("Container %s is restarting, wait until the container is running", c.ID)
	default:
		return nil, errNotRunning(c.ID)
	}
	if len(o.Cmd) == 0 {
		return nil, invalidf("No exec command specified")
	}
	base := c.Spec.Process
	p := &specs.Process{
		Terminal:        o.Tty,
		ConsoleSize:     o.ConsoleSize,
		User:            base.User,
		Args:            slices.Clone(o.Cmd),
		Env:             mergeEnv(base.Env, o.Env),
		Cwd:             base.Cwd,
		Capabilities:    base.Capabilities,
		Rlimits:         base.Rlimits,
		NoNewPrivileges: base.NoNewPrivileges,
		// Not OOMScoreAdj: the exec helper cannot set it (it is not in the container's
		// pid namespace, so the container's /proc has no /proc/self for it); the process
		// gets the caller's score.
	}
	if o.Tty && !hasEnvKey(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if o.WorkingDir != "" {
		p.Cwd = o.WorkingDir
	}
	if o.Privileged {
		all := spec.AllCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	if o.User != "" {
		root, err := os.OpenRoot("/proc/" + strconv.Itoa(st.Pid) + "/root")
		if err != nil {
			return nil, errNotRunning(c.ID)
		}
		u, err := spec.LookupUser(root, o.User, nil)
		root.Close()
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}
		if !hasEnvKey(o.Env, "HOME") {
			p.Env = mergeEnv(p.Env, []string{"HOME=" + u.Home})
		}
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return Exec(ctx, &ExecConfig{
		ID:            c.ID,
		InitPid:       st.Pid,
		InitStartTime: st.StartTime,
		Process:       p,
		Cgroup:        cg,
		Stdin:         o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
	})
}

func hasEnvKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// mergeEnv replaces or appends the KEY=VALUE entries of over in base.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i] = kv
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// ImagesInUse maps the image IDs that containers of the store use to those containers'
// ids (rmi must refuse them, as Docker does).
func (m *Manager) ImagesInUse() (map[string][]string, error) {
	ids, err := m.s.IDs()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, id := range ids {
		if c, err := m.s.LoadConfig(id); err == nil {
			out[c.Image] = append(out[c.Image], id)
		}
	}
	return out, nil
}
