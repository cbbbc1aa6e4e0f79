package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var nsFlagOf = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
}

type nsJoin struct {
	path string
	flag int
}

// namespaces splits the spec's namespaces into clone flags (new ones) and namespaces to
// join by path; netns, if set, replaces the spec's network namespace.
func namespaces(spec *specs.Spec, netns string) (flags int, joins []nsJoin, err error) {
	var nss []specs.LinuxNamespace
	if spec.Linux != nil {
		nss = spec.Linux.Namespaces
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range nss {
		if seen[ns.Type] {
			return 0, nil, fmt.Errorf("namespace %q given twice", ns.Type)
		}
		seen[ns.Type] = true
		flag, ok := nsFlagOf[ns.Type]
		if !ok {
			return 0, nil, fmt.Errorf("namespace %q is not supported", ns.Type)
		}
		if ns.Type == specs.NetworkNamespace && netns != "" {
			continue
		}
		if ns.Path == "" {
			flags |= flag
			continue
		}
		if ns.Type == specs.MountNamespace {
			return 0, nil, errors.New("joining an existing mount namespace is not supported")
		}
		joins = append(joins, nsJoin{ns.Path, flag})
	}
	if netns != "" {
		joins = append(joins, nsJoin{netns, unix.CLONE_NEWNET})
	}
	if flags&unix.CLONE_NEWNS == 0 {
		return 0, nil, errors.New("the spec must ask for a new mount namespace")
	}
	return flags, joins, nil
}

var nsFileOf = map[int]string{
	unix.CLONE_NEWNET: "net", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWUTS: "uts",
	unix.CLONE_NEWPID: "pid_for_children", unix.CLONE_NEWCGROUP: "cgroup",
}

// inNamespaces runs fn on a locked thread that has joined the namespaces: a process it
// starts (clone from that thread) is born in them. The thread then goes back to its own
// namespaces and is unlocked; if it cannot, it stays locked, and Go discards it when the
// goroutine ends (or parks it for good, if it is the main thread: it never runs Go code
// again either way).
func inNamespaces(joins []nsJoin, fn func() error) error {
	fds := make([]int, 0, len(joins))
	defer func() { closeAll(fds) }()
	for _, j := range joins {
		fd, err := unix.Open(j.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open namespace %s: %w", j.path, err)
		}
		fds = append(fds, fd)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var orig []int // this thread's own namespaces, to go back to
		defer func() { closeAll(orig) }()
		for _, j := range joins {
			fd, err := unix.Open("/proc/thread-self/ns/"+nsFileOf[j.flag], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("open own namespace: %w", err)
				runtime.UnlockOSThread()
				return
			}
			orig = append(orig, fd)
		}
		restore := func() {
			for i, j := range joins {
				if err := unix.Setns(orig[i], j.flag); err != nil {
					return // stay locked: the thread is thrown away
				}
			}
			runtime.UnlockOSThread()
		}
		for i, j := range joins {
			if err := unix.Setns(fds[i], j.flag); err != nil {
				restore()
				errc <- fmt.Errorf("join namespace %s: %w", j.path, err)
				return
			}
		}
		err := fn()
		restore()
		errc <- err
	}()
	return <-errc
}

// stdioFiles returns the three stdio files, /dev/null for the nil ones, and the files it
// opened (to close after the start).
func stdioFiles(in, out, errf *os.File, terminal bool) ([]*os.File, []*os.File, error) {
	files := []*os.File{in, out, errf}
	if terminal {
		files = []*os.File{nil, nil, nil}
	}
	var opened []*os.File
	for i, f := range files {
		if f != nil {
			continue
		}
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return nil, nil, err
		}
		opened = append(opened, null)
		files[i] = null
	}
	return files, opened, nil
}

// spawnInit starts the re-executed binary with the sync socket as descriptor
// 3+len(extra), in a new session, with the clone flags.
func spawnInit(stdio, extra []*os.File, cloneflags int, joins []nsJoin) (*os.Process, int, error) {
	exe, err := ExecutableMemfd()
	if err != nil {
		return nil, -1, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("socketpair: %w", err)
	}
	childEnd := os.NewFile(uintptr(pair[1]), "berth-init-sync")
	defer childEnd.Close()
	files := append(append(append([]*os.File{}, stdio...), extra...), childEnd)
	attr := &os.ProcAttr{
		Env: []string{
			envInitFD + "=" + strconv.Itoa(3+len(extra)),
			// No asynchronous preemption signals (SIGURG) in a process that forwards
			// every signal it gets.
			"GODEBUG=asyncpreemptoff=1",
		},
		Files: files,
		Sys:   &syscall.SysProcAttr{Cloneflags: uintptr(cloneflags), Setsid: true},
	}
	exePath := "/proc/self/fd/" + strconv.Itoa(int(exe.Fd()))
	var proc *os.Process
	start := func() (err error) {
		proc, err = os.StartProcess(exePath, []string{initArgv0}, attr)
		return err
	}
	if len(joins) > 0 {
		err = inNamespaces(joins, start)
	} else {
		err = start()
	}
	if err != nil {
		unix.Close(pair[0])
		return nil, -1, fmt.Errorf("start container init: %w", err)
	}
	return proc, pair[0], nil
}

// Start starts the container described by c and returns once its command runs (see the
// package documentation for the sequence). On failure nothing of the container is left
// running; the caller removes the cgroup and the rootfs it made. A command that cannot be
// found or executed gives a *StartError with Code 127 or 126. ctx bounds the start only:
// cancelling it later does not affect the container.
func Start(ctx context.Context, c *Config) (*Process, error) {
	if c == nil || c.Spec == nil || c.Spec.Process == nil || len(c.Spec.Process.Args) == 0 {
		return nil, errors.New("container: Start needs a spec with process args")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rootfs := c.Rootfs
	if rootfs.Path == "" && c.Spec.Root != nil {
		rootfs.Path = c.Spec.Root.Path
	}
	if rootfs.Path == "" {
		return nil, errors.New("container: no rootfs")
	}
	abs, err := filepath.Abs(rootfs.Path)
	if err != nil {
		return nil, err
	}
	rootfs.Path = abs
	flags, joins, err := namespaces(c.Spec, c.NetNS)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	stdio, opened, err := stdioFiles(c.Stdin, c.Stdout, c.Stderr, c.Spec.Process.Terminal)
	if err != nil {
		return nil, err
	}
	proc, sock, err := spawnInit(stdio, c.ExtraFiles, flags, joins)
	for _, f := range opened {
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	p := &Process{Pid: proc.Pid, proc: proc, pidfd: -1, sock: -1}
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
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if c.Cgroup != nil {
		if err := c.Cgroup.Apply(p.Pid); err != nil {
			return fail(fmt.Errorf("container %s: join cgroup: %w", c.ID, err))
		}
	}
	cfg := &initConfig{
		Mode:        modeStart,
		ID:          c.ID,
		Spec:        c.Spec,
		Rootfs:      rootfs,
		Reaper:      c.Reaper,
		NoPivotRoot: c.NoPivotRoot,
		NewNetNS:    flags&unix.CLONE_NEWNET != 0,
		NewUTSNS:    flags&unix.CLONE_NEWUTS != 0,
		NewCgroupNS: flags&unix.CLONE_NEWCGROUP != 0,
		ExtraFiles:  len(c.ExtraFiles),
	}
	if err := writeFrame(sock, &message{Type: msgConfig, Config: cfg}); err != nil {
		return fail(fmt.Errorf("container %s: send configuration to init: %w", c.ID, err))
	}
	ready := false
	for {
		msg, fds, err := readFrame(sock)
		if err == io.EOF && ready {
			break // the init executed the command (its end of the socket was close-on-exec)
		}
		if err != nil {
			if err == io.EOF {
				err = errors.New("container init exited during setup")
			}
			proc.Kill()
			if ps, werr := proc.Wait(); werr == nil {
				err = fmt.Errorf("%w (%v)", err, ExitStatusOf(ps.Sys().(syscall.WaitStatus)))
			}
			return fail(fmt.Errorf("container %s: %w", c.ID, err))
		}
		switch msg.Type {
		case msgReady:
			if msg.Console && len(fds) > 0 {
				p.Console = os.NewFile(uintptr(fds[0]), "console")
				fds = fds[1:]
			}
			closeAll(fds)
			for _, h := range c.Hooks {
				if err := h(p.Pid); err != nil {
					return fail(fmt.Errorf("container %s: hook: %w", c.ID, err))
				}
			}
			if err := writeFrame(sock, &message{Type: msgGo}); err != nil {
				return fail(fmt.Errorf("container %s: %w", c.ID, err))
			}
			ready = true
		case msgError:
			closeAll(fds)
			code := msg.Code
			if code == 0 {
				code = ExitRuntimeError
			}
			return fail(&StartError{ID: c.ID, Code: code, Msg: msg.Error})
		default:
			closeAll(fds)
			return fail(fmt.Errorf("container %s: unexpected message %q from init", c.ID, msg.Type))
		}
	}
	unix.Close(sock)
	sock = -1
	if !stop() {
		// ctx ended just now and its kill may have hit the container.
		return fail(ctx.Err())
	}
	p.StartTime, _ = ProcessStartTime(p.Pid)
	return p, nil
}
