package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/berth-registry/berth/runner/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The monitor
//
// Each started container has a monitor: the binary re-executed with argv[0]
// "berth-monitor" (dispatched by Main), in its own session, stdio on /dev/null, started by
// the command that starts the container and left behind when that command exits. It
//
//   - holds <runroot>/containers/<id>/monitor.lock (flock) for its whole life: commands
//     know a container has a live monitor by that lock, not by a pid that could be reused;
//   - creates the container's cgroup with the spec's limits and starts the container
//     (Start): the container's init is its child;
//   - records the run in state.json (running, Pid and its start time, StartedAt) and tells
//     the starting command (a reply on their handshake socket, handshake.go): Start waits
//     on that socket, with no polling;
//   - writes the container's stdout and stderr to the json-file log and to the attached
//     clients, forwards their stdin and window sizes (attach.go);
//   - waits for the init, records the exit (ExitCode, OOMKilled from the cgroup,
//     FinishedAt), destroys the cgroup, tells the clients, and applies the restart policy
//     with Docker's backoff (Status restarting in between), re-reading the state under the
//     container's lock before each restart, so that a stop or a rm in between wins;
//   - with AutoRemove, removes the container once the exit is recorded and sent.
//
// The first start runs under the container's lock, taken by the starting command and
// passed to the monitor (SCM_RIGHTS: the same open file description), so that the start
// is atomic for every other command; the monitor lets go of it once it has replied.
// Later state changes take the lock as any command does.
//
// The monitor runs from the binary on disk (/proc/self/exe), not from a sealed copy: it
// is not in the container, which cannot see it. The sealed copy the container's init needs
// (ExecutableMemfd) is made by the starting command and handed over, and the monitor lets
// go of it once the init runs: a monitor does not keep a copy of the binary in memory.
// Its steady state is a few MiB: the start's garbage is returned to the system and the
// executable's pages the start touched once are no longer mapped (trimWorkingSet).
//
// Killing the monitor (even with SIGKILL) leaves the container running: the init is
// reparented; state.json keeps its pid and start time, and commands go on with SignalPid,
// WaitPidExit and the cgroup. The container's output pipes then have no reader any more:
// nothing is logged, and a container that writes to stdout or stderr gets EPIPE (SIGPIPE).
// SIGUSR1 makes a monitor that waits to restart its container re-read the state at once
// (stop and rm send it).

const (
	monitorArgv0 = "berth-monitor"
	envMonitor   = "_BERTH_MONITOR"
)

type monitorArgs struct {
	Root    string `json:"root"`
	RunRoot string `json:"runroot"`
	ID      string `json:"id"`
	// Reset: a command starts the container (RestartCount 0, ManuallyStopped cleared).
	Reset  bool `json:"reset,omitempty"`
	Attach bool `json:"attach,omitempty"`
	// Console is the initial window size of the container's tty (start -a from a
	// terminal).
	Console *specs.Box `json:"console,omitempty"`
}

// startReply is the monitor's answer to the starting command.
type startReply struct {
	Pid int `json:"pid,omitempty"`
	// Error is why the start failed; with StartError set it is a *StartError's Msg and
	// Code its exit code.
	Error      string `json:"error,omitempty"`
	Code       int    `json:"code,omitempty"`
	StartError bool   `json:"startError,omitempty"`
}

// monitorMain runs the monitor when the environment marks this process as one (Main
// calls it when argv[0] is "berth-monitor"); it never returns then.
func monitorMain() bool {
	if os.Getenv(envMonitor) != "1" {
		return false
	}
	os.Unsetenv(envMonitor)
	os.Exit(runMonitor())
	return true
}

type monitor struct {
	s    *Store
	id   string
	c    *Container
	dir  string
	srv  *attachServer
	ln   *net.UnixListener
	log  *logWriter
	rm   restartManager
	wake chan os.Signal
	term chan os.Signal
	sync *os.File // the starting command's socket, until the reply
}

func runMonitor() int {
	// Two Ps are plenty for copying a container's output, whatever the host's size.
	runtime.GOMAXPROCS(min(2, runtime.NumCPU()))
	name := []byte(monitorArgv0 + "\x00")
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	// Caught and dropped rather than ignored: an ignored disposition would be
	// inherited through exec by the container's processes.
	sink := make(chan os.Signal, 1)
	signal.Notify(sink, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	go func() {
		for range sink {
		}
	}()

	syncf := os.NewFile(3, "monitor-sync")
	msg, fds, err := readHandshake(syncf, 0)
	if err != nil || msg.Type != "start" || msg.Args == nil || msg.Args.ID == "" || len(fds) == 0 {
		closeAll(fds)
		return 0 // the command went away without starting anything (its create failed)
	}
	a := *msg.Args
	borrowed := os.NewFile(uintptr(fds[0]), "container-lock")
	var attachf *os.File
	if a.Attach && len(fds) > 1 {
		attachf = os.NewFile(uintptr(fds[1]), "attach")
	}
	replied := false
	reply := func(r startReply) {
		if replied {
			return
		}
		replied = true
		writeHandshake(syncf, &handshakeMsg{Type: "reply", Reply: &r})
		syncf.Close()
		borrowed.Close() // the lock stays with the starting command
	}
	fail := func(err error) int {
		reply(startReply{Error: err.Error(), Code: ExitRuntimeError})
		return ExitRuntimeError
	}

	mon := &monitor{s: &Store{root: a.Root, runRoot: a.RunRoot}, id: a.ID, sync: syncf}
	mon.dir = mon.s.Dir(a.ID)
	if err := os.MkdirAll(mon.s.RunDir(a.ID), 0o700); err != nil {
		return fail(err)
	}
	ml, err := lockPath(mon.s.monitorLockPath(a.ID), true, true, false)
	if err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			err = fmt.Errorf("container %s already has a monitor", a.ID)
		}
		return fail(err)
	}
	defer ml.Unlock()
	if mon.c, err = mon.s.LoadConfig(a.ID); err != nil {
		return fail(err)
	}
	c := mon.c
	if a.Console != nil && c.Spec.Process != nil {
		c.Spec.Process.ConsoleSize = a.Console
	}
	mon.rm.policy = c.HostConfig.RestartPolicy
	limits, err := parseLogConfig(c.HostConfig.LogConfig)
	if err != nil {
		return fail(err)
	}
	if mon.log, err = openLogWriter(c.LogPath, limits); err != nil {
		return fail(err)
	}
	defer mon.log.Close()
	mon.srv = newAttachServer(c.Spec.Process.Terminal, c.Config.StdinOnce)
	if mon.ln, err = listenUnix(mon.s.attachPath(a.ID)); err != nil {
		return fail(fmt.Errorf("attach socket: %w", err))
	}
	defer func() {
		mon.ln.Close()
		os.Remove(mon.s.attachPath(a.ID))
	}()
	mon.wake = make(chan os.Signal, 1)
	signal.Notify(mon.wake, syscall.SIGUSR1)
	mon.term = make(chan os.Signal, 1)
	signal.Notify(mon.term, syscall.SIGTERM) // during the first start only: cancels it

	st, err := mon.s.LoadState(a.ID)
	if err != nil {
		return fail(err)
	}
	if a.Reset {
		st.RestartCount = 0
		st.ManuallyStopped = false
	}
	var lk *flock // nil while the lock is the starting command's
	accepting := false
	for first := true; ; first = false {
		r, err := mon.start()
		if err != nil {
			code := ExitRuntimeError
			var se *StartError
			if errors.As(err, &se) {
				code = se.Code
			}
			st.Pid, st.StartTime = 0, 0
			st.MonitorPid = os.Getpid()
			st.MonitorStartTime, _ = ProcessStartTime(st.MonitorPid)
			st.ExitCode, st.Error = code, err.Error()
			if first && st.StartedAt.IsZero() {
				st.Status = StatusCreated
			} else {
				st.Status = StatusExited
				st.FinishedAt = time.Now().UTC()
			}
			mon.s.saveState(a.ID, st)
			if first {
				if se != nil {
					reply(startReply{Error: se.Msg, Code: se.Code, StartError: true})
				} else {
					reply(startReply{Error: err.Error(), Code: code})
				}
				if attachf != nil {
					attachf.Close()
				}
			}
			lk.Unlock()
			mon.srv.exited(ExitInfo{ExitCode: code, Error: err.Error()})
			mon.srv.close()
			if c.HostConfig.AutoRemove {
				mon.autoRemove()
			}
			mon.srv.flush(10 * time.Second)
			return code
		}
		now := time.Now().UTC()
		st.Status = StatusRunning
		st.Pid, st.StartTime = r.proc.Pid, r.proc.StartTime
		st.MonitorPid = os.Getpid()
		st.MonitorStartTime, _ = ProcessStartTime(st.MonitorPid)
		st.StartedAt = now
		st.ExitCode, st.OOMKilled, st.Error, st.LastSignal = 0, false, "", 0
		saveErr := mon.s.saveState(a.ID, st)
		mon.srv.setRun(r.proc.Pid, r.stdin, r.ownsIn, r.console)
		if first {
			signal.Stop(mon.term)
			if saveErr != nil {
				r.proc.Signal(syscall.SIGKILL)
				r.proc.Wait()
				r.cg.Destroy()
				return fail(fmt.Errorf("record the start: %w", saveErr))
			}
			reply(startReply{Pid: r.proc.Pid})
			if attachf != nil {
				if conn, err := net.FileConn(attachf); err == nil {
					conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					typ, b, err := readAttachFrame(conn, nil)
					conn.SetReadDeadline(time.Time{})
					var req attachRequest
					if err == nil && typ == frameRequest && json.Unmarshal(b, &req) == nil {
						mon.srv.add(conn, req)
					} else {
						conn.Close()
					}
				}
				attachf.Close()
				attachf = nil
			}
		} else {
			lk.Unlock()
		}
		if !accepting {
			accepting = true
			go mon.srv.accept(mon.ln)
		}
		r.pump(mon)
		if first {
			// Once the container has run for a second, the monitor becomes a small, steady
			// process: the start's garbage (the spec, the configuration) goes back to the
			// system, the heap is kept small and the pages the start touched once are no
			// longer counted (a short run, `run --rm true`, is not slowed by that).
			time.AfterFunc(time.Second, func() {
				debug.SetGCPercent(20)
				debug.FreeOSMemory()
				trimWorkingSet()
			})
		}

		status, oom := r.wait(mon)
		restart, delay := mon.recordExit(st, r, status, oom)
		if !restart {
			break
		}
		lk, st = mon.waitRestart(delay)
		if lk == nil {
			break
		}
		if c2, err := mon.s.LoadConfig(a.ID); err == nil {
			c2.Spec.Process.ConsoleSize = c.Spec.Process.ConsoleSize
			mon.c, c = c2, c2 // renamed meanwhile, maybe
		}
	}
	// Nobody can attach any more; then the container goes if it asked to.
	mon.ln.Close()
	os.Remove(mon.s.attachPath(a.ID))
	mon.srv.close()
	if c.HostConfig.AutoRemove {
		mon.autoRemove()
	}
	mon.srv.flush(10 * time.Second)
	return 0
}

// releaseExecutableMemfd drops the cached sealed copy of the executable (ExecutableMemfd):
// the monitor runs from the binary on disk and needs the copy only to start the init.
// Only the monitor's main goroutine calls Start, so nothing uses the copy concurrently.
func releaseExecutableMemfd() {
	if f := selfMemfd.f; f != nil {
		go f.Close() // freeing the copy's pages takes a few milliseconds: not now
	}
	selfMemfd.f, selfMemfd.err = nil, nil
	selfMemfd.once = sync.Once{}
}

// run is one run of the container.
type run struct {
	proc    *Process
	cg      cgroups.Manager
	outR    *os.File
	errR    *os.File
	stdin   *os.File // written by the monitor for the attached clients (pipe or console)
	ownsIn  bool
	console *os.File
	pumps   sync.WaitGroup
	outLog  *lineLogger
	errLog  *lineLogger
}

// cgroupPath is the container's cgroup path (relative to each hierarchy).
func (c *Container) cgroupPath() string {
	if c.Spec != nil && c.Spec.Linux != nil && c.Spec.Linux.CgroupsPath != "" {
		return c.Spec.Linux.CgroupsPath
	}
	return "berth/" + c.ID
}

func (c *Container) cgroup() (cgroups.Manager, error) {
	return cgroups.New(c.cgroupPath())
}

// start creates the cgroup and starts the container.
func (mon *monitor) start() (*run, error) {
	c := mon.c
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
	r := &run{cg: cg}
	var stdin, stdout, stderr *os.File
	closeChild := func() {
		for _, f := range []*os.File{stdin, stdout, stderr} {
			if f != nil {
				f.Close()
			}
		}
	}
	fail := func(err error) (*run, error) {
		closeChild()
		for _, f := range []*os.File{r.outR, r.errR, r.stdin} {
			if f != nil {
				f.Close()
			}
		}
		cg.Destroy()
		c.runPoststop(mon.dir)
		return nil, err
	}
	tty := c.Spec.Process.Terminal
	if !tty {
		if r.outR, stdout, err = os.Pipe(); err != nil {
			return fail(err)
		}
		if r.errR, stderr, err = os.Pipe(); err != nil {
			return fail(err)
		}
		if c.Config.OpenStdin {
			if stdin, r.stdin, err = os.Pipe(); err != nil {
				return fail(err)
			}
			r.ownsIn = true
		}
	}
	hooks, err := c.prestartHooks(mon.dir)
	if err != nil {
		return fail(err)
	}
	if mon.sync != nil {
		// The first start uses the sealed copy of the binary the starting command made
		// while the monitor got ready.
		receiveExecutable(mon.sync)
		mon.sync = nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopTerm := make(chan struct{})
	defer close(stopTerm)
	go func() {
		select {
		case <-mon.term:
			cancel()
		case <-stopTerm:
		}
	}()
	p, err := Start(ctx, &Config{
		ID:     c.ID,
		Spec:   c.Spec,
		Rootfs: c.Rootfs,
		Cgroup: cg,
		Stdin:  stdin, Stdout: stdout, Stderr: stderr,
		Hooks:  hooks,
		Reaper: c.Reaper,
	})
	// A long-lived monitor keeps no copy of the binary: the next start makes a new one.
	releaseExecutableMemfd()
	if err != nil {
		return fail(err)
	}
	closeChild()
	r.proc = p
	if tty {
		r.console = p.Console
		if c.Config.OpenStdin {
			r.stdin = p.Console
		}
	}
	return r, nil
}

// pump copies the container's output to the log and the clients.
func (r *run) pump(mon *monitor) {
	copyOut := func(src *os.File, stream byte, ll *lineLogger) {
		defer r.pumps.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				ll.Write(buf[:n])
				mon.srv.broadcast(stream, buf[:n])
			}
			if err != nil {
				break
			}
		}
		ll.flush()
	}
	if r.console != nil {
		r.outLog = &lineLogger{w: mon.log, stream: "stdout"}
		r.pumps.Add(1)
		go copyOut(r.console, frameStdout, r.outLog)
		return
	}
	r.outLog = &lineLogger{w: mon.log, stream: "stdout"}
	r.errLog = &lineLogger{w: mon.log, stream: "stderr"}
	r.pumps.Add(2)
	go copyOut(r.outR, frameStdout, r.outLog)
	go copyOut(r.errR, frameStderr, r.errLog)
}

// wait waits for the run's end: the init's exit, then its output (every process of the
// container is gone with the init, so the pipes end; a pty ends with EIO), then the cgroup
// (OOM kill count, removal) and the Poststop hooks.
func (r *run) wait(mon *monitor) (ExitStatus, bool) {
	status, err := r.proc.Wait()
	if err != nil {
		status = ExitStatus{Code: 255}
	}
	drained := make(chan struct{})
	go func() { r.pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		// Something outside the container holds the pipes: stop reading.
		for _, f := range []*os.File{r.outR, r.errR, r.console} {
			if f != nil {
				f.Close()
			}
		}
		<-drained
	}
	for _, f := range []*os.File{r.outR, r.errR, r.console} {
		if f != nil {
			f.Close()
		}
	}
	if r.stdin != nil && r.stdin != r.console {
		r.stdin.Close()
	}
	oom, _ := r.cg.OOMKilled()
	r.cg.Destroy()
	mon.c.runPoststop(mon.dir)
	return status, oom
}

// recordExit records the exit under the container's lock and decides on a restart.
func (mon *monitor) recordExit(st *State, r *run, status ExitStatus, oom bool) (bool, time.Duration) {
	now := time.Now().UTC()
	info := ExitInfo{ExitCode: status.Code, OOMKilled: oom, Pid: r.proc.Pid}
	defer mon.srv.exited(info)
	lk, err := mon.s.lockContainer(mon.id)
	if err != nil {
		return false, 0 // removed under us
	}
	defer lk.Unlock()
	cur, err := mon.s.LoadState(mon.id)
	if err != nil {
		return false, 0
	}
	*st = *cur
	st.ExitCode, st.OOMKilled, st.FinishedAt = status.Code, oom, now
	st.Pid, st.StartTime = 0, 0
	if st.Status == StatusRemoving {
		mon.s.saveState(mon.id, st)
		return false, 0
	}
	restart, delay := mon.rm.shouldRestart(st.ExitCode, st.ManuallyStopped, st.RestartCount, now.Sub(st.StartedAt))
	if mon.c.HostConfig.AutoRemove {
		restart = false
	}
	if restart {
		st.Status = StatusRestarting
		st.RestartCount++
	} else {
		st.Status = StatusExited
	}
	mon.s.saveState(mon.id, st)
	return restart, delay
}

// waitRestart sleeps the restart delay (SIGUSR1 makes it look at the state at once) and
// returns with the container's lock held and the state, or nil when the container is not
// to be restarted any more (stopped, removed).
func (mon *monitor) waitRestart(delay time.Duration) (*flock, *State) {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-mon.wake:
			if st, err := mon.s.LoadState(mon.id); err == nil && st.Status == StatusRestarting && !st.ManuallyStopped {
				continue
			}
		}
		lk, err := mon.s.lockContainer(mon.id)
		if err != nil {
			return nil, nil
		}
		st, err := mon.s.LoadState(mon.id)
		if err != nil || st.Status != StatusRestarting || st.ManuallyStopped {
			if err == nil && st.Status == StatusRestarting {
				st.Status = StatusExited
				mon.s.saveState(mon.id, st)
			}
			lk.Unlock()
			return nil, nil
		}
		return lk, st
	}
}

// autoRemove removes the container after its exit (--rm).
func (mon *monitor) autoRemove() {
	lk, err := mon.s.lockContainer(mon.id)
	if err != nil {
		return
	}
	defer lk.Unlock()
	st, err := mon.s.LoadState(mon.id)
	if err != nil || st.Status.Active() {
		return // started again meanwhile: not ours to remove
	}
	// No "removing" state on the way: the lock keeps every command out until the
	// directory is renamed away, and an exited AutoRemove container left by a crash in
	// between is removed by the next boot.
	mon.s.finishRemove(mon.c, true)
}

// resourcesFromSpec converts the spec's cgroup resources (already with Docker's create
// defaults, see spec.ConvertResources) back to the cgroup manager's.
func resourcesFromSpec(r *specs.LinuxResources) *cgroups.Resources {
	out := &cgroups.Resources{}
	if r == nil {
		return out
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			out.Memory = *m.Limit
		}
		if m.Swap != nil {
			out.MemorySwap = *m.Swap
		}
		if m.Reservation != nil {
			out.MemoryReservation = *m.Reservation
		}
		if m.DisableOOMKiller != nil {
			out.OomKillDisable = *m.DisableOOMKiller
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			out.CPUShares = int64(*c.Shares)
		}
		if c.Quota != nil {
			out.CPUQuota = *c.Quota
		}
		if c.Period != nil {
			out.CPUPeriod = int64(*c.Period)
		}
		out.CpusetCpus, out.CpusetMems = c.Cpus, c.Mems
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		out.PidsLimit = *r.Pids.Limit
	}
	if r.BlockIO != nil && r.BlockIO.Weight != nil {
		out.BlkioWeight = *r.BlockIO.Weight
	}
	if r.Devices != nil {
		out.Devices = make([]cgroups.DeviceRule, 0, len(r.Devices))
		for _, d := range r.Devices {
			rule := cgroups.DeviceRule{Allow: d.Allow, Type: 'a', Major: -1, Minor: -1, Access: d.Access}
			if d.Type != "" {
				rule.Type = d.Type[0]
			}
			if d.Major != nil {
				rule.Major = *d.Major
			}
			if d.Minor != nil {
				rule.Minor = *d.Minor
			}
			if rule.Access == "" {
				rule.Access = "rwm"
			}
			out.Devices = append(out.Devices, rule)
		}
	}
	return out
}

// alive reports whether pid is the process that started at start (0: any) and has not
// ended (a zombie has ended).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	state, st, ok := parseStat(string(b))
	if !ok || state == 'Z' || state == 'X' {
		return false
	}
	return start == 0 || st == start
}

// parseStat returns the state (field 3) and start time (field 22) of a /proc stat line.
func parseStat(s string) (byte, uint64, bool) {
	i := lastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, false
	}
	state := s[i+2]
	st, err := parseStartTime(s)
	if err != nil {
		return 0, 0, false
	}
	return state, st, true
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// monitorAlive reports whether container id has a live monitor (its lock is held).
func (s *Store) monitorAlive(id string) bool {
	l, err := lockPath(s.monitorLockPath(id), false, false, false)
	if err == nil {
		l.Unlock()
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}

// waitMonitorGone waits until container id has no live monitor (ctx bounds it).
func (s *Store) waitMonitorGone(ctx context.Context, id string, pid int, start uint64) error {
	if pid > 0 && start > 0 {
		if err := waitPidExit(ctx, pid, start); err != nil {
			return err
		}
	}
	// The pid is gone (or unknown): the lock goes with the process; a short wait covers
	// the exit in progress.
	for i := 0; s.monitorAlive(id); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// trimWorkingSet drops this process' page-table references to the clean pages of its
// read-only file mappings (the executable's text and read-only data, the C library's):
// what the start touched once (package initialisation, the spec's decoding) is no longer
// counted in the monitor's RSS; what it keeps using faults back in from the page cache,
// which shares those pages with every other process of the binary. Only mappings with no
// private copy of any page (smaps: Anonymous 0 kB) are trimmed, so nothing is lost.
func trimWorkingSet() {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return
	}
	var start, end uint64
	candidate := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && len(f) >= 5 && !strings.HasSuffix(f[0], ":") {
			r := strings.SplitN(f[0], "-", 2)
			s, err1 := strconv.ParseUint(r[0], 16, 64)
			e, err2 := strconv.ParseUint(r[1], 16, 64)
			perms := f[1]
			// Private, not writable, backed by a file (an inode).
			candidate = err1 == nil && err2 == nil && len(perms) == 4 && perms[1] == '-' && perms[3] == 'p' && f[4] != "0" && len(f) >= 6 && strings.HasPrefix(f[5], "/")
			start, end = s, e
			continue
		}
		if candidate && f[0] == "Anonymous:" {
			if f[1] == "0" {
				unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
			}
			candidate = false
		}
	}
}

// signalPid is SignalPid, with a process caught exiting (/proc/<pid>/stat answers ESRCH
// while the process is being torn down) taken as gone.
func signalPid(pid int, start uint64, sig syscall.Signal) error {
	err := SignalPid(pid, start, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// waitPidExit is WaitPidExit, with a process caught exiting taken as gone.
func waitPidExit(ctx context.Context, pid int, start uint64) error {
	err := WaitPidExit(ctx, pid, start)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
