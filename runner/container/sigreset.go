package container

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigactionT is the kernel's struct sigaction on linux/amd64 and arm64.
type sigactionT struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// resetIgnoredSignals gives every ignored signal back its default action
// before the command is executed. exec keeps SIG_IGN dispositions (a handler
// becomes SIG_DFL, an ignore stays), so signals ignored by whoever started
// pull-run would otherwise reach the container's command ignored: a shell
// could not trap SIGINT, Ctrl-C could not stop it. Go's signal.Reset restores
// the inherited SIG_IGN, hence the raw rt_sigaction. It also clears this
// thread's signal mask, which exec keeps too.
func resetIgnoredSignals() {
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old sigactionT
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler != 1 { // SIG_IGN
			continue
		}
		dfl := sigactionT{} // SIG_DFL, no flags
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
	var empty unix.Sigset_t
	unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
}
