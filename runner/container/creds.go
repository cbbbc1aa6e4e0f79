package container

import (
	"fmt"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The credential changes below are made with raw system calls on the calling thread only
// (Linux credentials are per thread): the init and the exec helper run them on their locked
// main thread and then execve (which keeps that thread's credentials) or fork from that
// thread (the child copies the thread's credentials). Go's own Setuid would change every
// thread, and needs AllThreadsSyscall, which cgo forbids; capset has no all-threads variant.

// applyCreds gives the calling thread the process' user, groups and capabilities, in runc's
// order: no_new_privs, bounding set, keep-caps across the uid change, groups, gid, uid,
// effective/permitted/inheritable, ambient.
func applyCreds(p *specs.Process, last int) error {
	caps, err := parseCaps(p.Capabilities)
	if err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if err := dropBounding(caps.bounding, last); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keep-caps: %w", err)
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keep-caps: %w", err)
	}
	if err := capset(caps.effective, caps.permitted, caps.inheritable); err != nil {
		return err
	}
	return raiseAmbient(caps.ambient, last)
}

// setUser sets the calling thread's supplementary groups, gid and uid.
func setUser(u specs.User) error {
	gids := make([]uint32, len(u.AdditionalGids))
	copy(gids, u.AdditionalGids)
	var p unsafe.Pointer
	if len(gids) > 0 {
		p = unsafe.Pointer(&gids[0])
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups %v: %w", u.AdditionalGids, e)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	return nil
}
