package container

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// openPty opens a new pty pair from the /dev/ptmx visible to the calling thread (the
// container's devpts instance, so that the slave is /dev/pts/N inside the container).
func openPty() (master, slave int, err error) {
	master, err = unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(master)
		return -1, -1, fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER opens the slave from the master, with no path lookup.
	r, _, e := syscall.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if e == 0 {
		return master, int(r), nil
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		unix.Close(master)
		return -1, -1, fmt.Errorf("pty number: %w", err)
	}
	slave, err = unix.Open("/dev/pts/"+strconv.Itoa(n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(master)
		return -1, -1, fmt.Errorf("open pty slave: %w", err)
	}
	return master, slave, nil
}

// preparePty opens a pty for the process p: the window size of p.ConsoleSize and the
// slave owned by p's user.
func preparePty(p *specs.Process) (master, slave int, err error) {
	master, slave, err = openPty()
	if err != nil {
		return -1, -1, err
	}
	if p.ConsoleSize != nil {
		ws := unix.Winsize{Row: uint16(p.ConsoleSize.Height), Col: uint16(p.ConsoleSize.Width)}
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &ws); err != nil {
			unix.Close(master)
			unix.Close(slave)
			return -1, -1, fmt.Errorf("set console size: %w", err)
		}
	}
	if err := unix.Fchown(slave, int(p.User.UID), -1); err != nil {
		unix.Close(master)
		unix.Close(slave)
		return -1, -1, fmt.Errorf("chown pty: %w", err)
	}
	return master, slave, nil
}

// setupConsole makes a pty the init's stdio and controlling terminal, binds it onto
// /dev/console and returns the master (Start).
func setupConsole(root int, p *specs.Process) (int, error) {
	master, slave, err := preparePty(p)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		unix.Close(master)
		unix.Close(slave)
		return -1, err
	}
	if fd, err := createFileInRoot(root, "dev/console"); err == nil {
		tree, err := unix.OpenTree(slave, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
		if err == nil {
			err = attach(tree, fd, mountOptions{})
			unix.Close(tree)
		}
		unix.Close(fd)
		if err != nil && err != unix.ENOSYS {
			return fail(fmt.Errorf("bind console: %w", err))
		}
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fail(fmt.Errorf("set controlling terminal: %w", err))
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(slave, i, 0); err != nil {
			return fail(fmt.Errorf("dup pty: %w", err))
		}
	}
	unix.Close(slave)
	return master, nil
}

// SetConsoleSize sets the window size of a container's terminal through its pty master
// (Process.Console), as docker does on SIGWINCH.
func SetConsoleSize(console *os.File, height, width uint16) error {
	rc, err := console.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
	})
	if err != nil {
		return err
	}
	return ierr
}
