package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	// initArgv0 is argv[0] of the re-executed init.
	initArgv0 = "berth-init"
	// envInitFD names the init's end of the sync socket. Only Start and Exec set it.
	envInitFD = "_BERTH_INIT_FD"
)

// Main must be the first call of the program's main function (before flag parsing, cobra,
// or any goroutine). When the process was started by Start or Exec as a container's init
// (argv[0] "berth-init" and the package's environment marker, both set only by this
// package), Main runs the init on the locked main thread and never returns: it execs the
// container's command, becomes the reaper, or exits with a status. Otherwise it returns
// false at once.
func Main() bool {
	if len(os.Args) > 0 && os.Args[0] == monitorArgv0 {
		return monitorMain() // a container's monitor (monitor.go): never returns
	}
	if len(os.Args) == 0 || os.Args[0] != initArgv0 {
		return false
	}
	v, ok := os.LookupEnv(envInitFD)
	if !ok {
		return false
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return false
	}
	runtime.LockOSThread() // never unlocked: credentials and namespaces are per thread
	os.Exit(initMain(fd))
	return true
}

// initFailure is an error with the exit code to report (126/127 for exec failures).
type initFailure struct {
	code int
	msg  string
}

func (e *initFailure) Error() string { return e.msg }

func initMain(sock int) int {
	// Not dumpable: no process of the container may ptrace the init or open its
	// /proc/<pid>/{mem,exe,fd,cwd} while it holds host resources. execve resets it.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Executed as /proc/self/fd/N, the process would be named "N".
	name := []byte(initArgv0 + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	msg, fds, err := expectFrame(sock, msgConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-init:", err)
		return ExitRuntimeError
	}
	cfg := msg.Config
	if cfg == nil {
		fmt.Fprintln(os.Stderr, "berth-init: no configuration")
		return ExitRuntimeError
	}
	cfg.InitPidfd = -1
	if len(fds) > 0 { // exec: the pidfd of the container's init
		cfg.InitPidfd = fds[0]
		closeAll(fds[1:])
	}
	var code int
	switch cfg.Mode {
	case modeStart:
		err = startInit(sock, cfg)
	case modeExec:
		code, err = execInit(sock, cfg)
	default:
		err = fmt.Errorf("unknown init mode %q", cfg.Mode)
	}
	if err == nil {
		return code
	}
	code = ExitRuntimeError
	var f *initFailure
	if errors.As(err, &f) {
		code = f.code
	}
	if werr := writeFrame(sock, &message{Type: msgError, Error: err.Error(), Code: code}); werr != nil {
		// The parent is gone: say it on stderr, which may be a log.
		fmt.Fprintln(os.Stderr, "berth-init:", err)
	}
	return code
}

// scrubFDs closes every inherited descriptor ≥ 3 that is not close-on-exec and that keep
// does not want: a descriptor leaked by the parent (a host directory, CVE-2024-21626) must
// not be usable by anything the init does. The Go runtime's own descriptors are all
// close-on-exec.
func scrubFDs(keep func(fd int) bool) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 || keep(fd) {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

// closeFromOnExec marks every descriptor ≥ from close-on-exec, so that the exec'd command
// gets none of them.
func closeFromOnExec(from int) error {
	err := unix.CloseRange(uint(from), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err != unix.ENOSYS && err != unix.EINVAL {
		return err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= from {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// enterCwd makes cwd (absolute, inside the container) the calling thread's working
// directory: resolved with openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS from root (so no
// symlink and no /proc/self/fd/N link leads outside), entered with fchdir, and checked with
// getcwd, which reports a directory outside the root as unreachable (CVE-2024-21626).
func enterCwd(root int, cwd string, create bool) error {
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return fmt.Errorf("cwd %q is not an absolute path", cwd)
	}
	var fd int
	var err error
	if create {
		fd, err = mkdirAllInRoot(root, cwd, 0o755)
	} else {
		fd, err = openInRoot(root, cleanRel(cwd), unix.O_PATH|unix.O_DIRECTORY, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			err = fmt.Errorf("%w (the path leads through a /proc magic link or out of the container)", err)
		}
		return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", cwd, err)
	}
	err = unix.Fchdir(fd)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", cwd, err)
	}
	wd, err := unix.Getwd()
	if err != nil || len(wd) == 0 || wd[0] != '/' {
		return fmt.Errorf("current working directory for cwd %q is outside of the container's root -- possible container breakout detected", cwd)
	}
	return nil
}

// startInit is the container's init (Start): it sets up the container and execs the
// command. It returns only on failure.
func startInit(sock int, cfg *initConfig) error {
	spec := cfg.Spec
	if spec == nil || spec.Process == nil || len(spec.Process.Args) == 0 {
		return errors.New("no process in the spec")
	}
	proc := spec.Process
	extra := cfg.ExtraFiles
	scrubFDs(func(fd int) bool { return fd == sock || fd < 3+extra })
	unix.Umask(0)
	last := lastCap()

	if err := prepareRootfs(cfg); err != nil {
		return err
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	console := -1
	if proc.Terminal {
		if console, err = setupConsole(root, proc); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		if !cfg.NewUTSNS {
			return errors.New("unable to set hostname without a private UTS namespace")
		}
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if !cfg.NewUTSNS {
			return errors.New("unable to set domainname without a private UTS namespace")
		}
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	if l := spec.Linux; l != nil {
		for k, v := range l.Sysctl {
			if err := writeSysctl(root, k, v); err != nil {
				return err
			}
		}
		for _, p := range l.ReadonlyPaths {
			if err := readonlyPath(root, p); err != nil {
				return err
			}
		}
		for _, p := range l.MaskedPaths {
			if err := maskPath(root, p); err != nil {
				return err
			}
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		if err := readonlyRoot(); err != nil {
			return err
		}
	}
	if err := setRlimits(proc.Rlimits); err != nil {
		return err
	}
	if err := setOOMScoreAdj(proc.OOMScoreAdj); err != nil {
		return err
	}
	if err := enterCwd(root, proc.Cwd, true); err != nil {
		return err
	}
	unix.Close(root)
	setUmask(proc.User)
	if err := applyCreds(proc, last); err != nil {
		return err
	}

	ready := &message{Type: msgReady, Console: console >= 0}
	if console >= 0 {
		err = writeFrame(sock, ready, console)
		unix.Close(console)
	} else {
		err = writeFrame(sock, ready)
	}
	if err != nil {
		return err
	}
	if _, _, err := expectFrame(sock, msgGo); err != nil {
		return fmt.Errorf("waiting for the parent: %w", err)
	}
	if err := closeFromOnExec(3 + extra); err != nil {
		return fmt.Errorf("close descriptors: %w", err)
	}
	name, err := lookPath(proc.Args[0], pathFromEnv(proc.Env))
	if err != nil {
		return &initFailure{code: execExitCode(err), msg: err.Error()}
	}
	if cfg.Reaper {
		return runReaper(sock, name, proc, extra)
	}
	resetIgnoredSignals()
	err = syscall.Exec(name, proc.Args, proc.Env)
	return &initFailure{code: execExitCode(err), msg: execErrorMessage(proc.Args[0], err)}
}

func setUmask(u specs.User) {
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	} else {
		unix.Umask(0o022)
	}
}
