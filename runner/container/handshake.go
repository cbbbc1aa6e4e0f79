package container

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The handshake between a starting command and the monitor, on a socketpair whose
// monitor end is the monitor's descriptor 3. Each message is a 4-byte big-endian length
// and a JSON handshakeMsg, sent with its descriptors (SCM_RIGHTS) in one sendmsg:
//
//	command → monitor   start [container lock, attach socket]   what to start
//	command → monitor   exe [sealed copy of the binary]          for the container's init
//	monitor → command   reply                                    running (pid) or the error
//
// The monitor may be spawned before the container exists (Run spawns it while Create
// works): it waits for "start", and exits when the command goes away without sending it.

type handshakeMsg struct {
	Type  string       `json:"type"` // start, exe, reply
	Args  *monitorArgs `json:"args,omitempty"`
	Reply *startReply  `json:"reply,omitempty"`
}

const maxHandshakeMsg = 1 << 20

func writeHandshake(f *os.File, msg *handshakeMsg, fds ...int) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for len(buf) > 0 {
			var n int
			n, werr = unix.SendmsgN(int(fd), buf, oob, nil, unix.MSG_NOSIGNAL)
			if werr == unix.EINTR {
				continue
			}
			if werr == unix.EAGAIN {
				return false
			}
			if werr != nil {
				return true
			}
			buf, oob = buf[n:], nil
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}

// readHandshake reads one message and its descriptors (close-on-exec). With a timeout
// (> 0) it gives up after that long. io.EOF: the other end is gone.
func readHandshake(f *os.File, timeout time.Duration) (*handshakeMsg, []int, error) {
	fd := int(f.Fd())
	if timeout > 0 {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, int(timeout/time.Millisecond))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			if n == 0 {
				return nil, nil, errors.New("handshake: timed out")
			}
			break
		}
	}
	body, fds, err := readFrameBody(fd, maxHandshakeMsg, "handshake")
	if err != nil {
		return nil, nil, err
	}
	var msg handshakeMsg
	if err := json.Unmarshal(body, &msg); err != nil {
		closeAll(fds)
		return nil, nil, fmt.Errorf("handshake: bad message: %w", err)
	}
	return &msg, fds, nil
}

// monitorProc is a spawned monitor and the command's end of its handshake socket.
type monitorProc struct {
	proc *os.Process
	sync *os.File
}

// spawnMonitor starts a monitor process (the binary re-executed with argv[0]
// "berth-monitor", in its own session, stdio on /dev/null). It waits for "start".
func spawnMonitor() (*monitorProc, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(pair[0]), "monitor-sync")
	child := os.NewFile(uintptr(pair[1]), "monitor-sync")
	defer child.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		parent.Close()
		return nil, err
	}
	defer null.Close()
	path := os.Getenv("PATH")
	if path == "" {
		path = DefaultPath
	}
	proc, err := os.StartProcess("/proc/self/exe", []string{monitorArgv0}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{envMonitor + "=1", "PATH=" + path},
		Files: []*os.File{null, null, null, child},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start the container's monitor: %w", err)
	}
	// The monitor outlives this process; while this one lives, reap it when it ends.
	go proc.Wait()
	return &monitorProc{proc: proc, sync: parent}, nil
}

// discard lets an unused monitor go (it reads EOF and exits).
func (mp *monitorProc) discard() {
	mp.sync.Close()
}

// start sends the monitor what to start, with the container's lock (held by the caller:
// the monitor shares it until it replies) and the attach socket.
func (mp *monitorProc) start(args *monitorArgs, lock *flock, attach *os.File) error {
	fds := []int{int(lock.f.Fd())}
	if attach != nil {
		fds = append(fds, int(attach.Fd()))
	}
	return writeHandshake(mp.sync, &handshakeMsg{Type: "start", Args: args}, fds...)
}

// readReply reads the monitor's reply; when ctx ends first the monitor is asked (SIGTERM)
// to cancel the start, and is killed if it does not answer.
func (mp *monitorProc) readReply(ctx context.Context) (*startReply, error) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			mp.proc.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				mp.proc.Kill()
			}
		case <-done:
		}
	}()
	msg, fds, err := readHandshake(mp.sync, 0)
	close(done)
	closeAll(fds)
	mp.sync.Close()
	if err == io.EOF {
		return nil, errors.New("the container's monitor exited before it started the container")
	}
	if err != nil {
		return nil, fmt.Errorf("container monitor: %w", err)
	}
	if msg.Type != "reply" || msg.Reply == nil {
		return nil, fmt.Errorf("container monitor: unexpected %q message", msg.Type)
	}
	return msg.Reply, nil
}

// The sealed copy of the executable that the container's init is run from (see
// ExecutableMemfd) costs milliseconds per megabyte of binary to make, and again to free:
// after the runtime's own work it is the most expensive step of a start. The starting
// command makes it while it prepares the container and while the monitor execs and reads
// its configuration, and hands it to the monitor, which frees it in the background once
// the container runs; neither the command nor the monitor keeps it.

// prepareExecutable starts making a sealed copy of the executable for the next Start of
// this process, if none is being made.
func (m *Manager) prepareExecutable() {
	m.prepMu.Lock()
	defer m.prepMu.Unlock()
	if m.exe != nil {
		return
	}
	ch := make(chan *os.File, 1)
	m.exe = ch
	go func() { ch <- copyExecutable() }()
}

// takeExecutable returns the copy prepareExecutable made (or makes one); nil if it cannot.
func (m *Manager) takeExecutable() *os.File {
	m.prepMu.Lock()
	ch := m.exe
	m.exe = nil
	m.prepMu.Unlock()
	if ch == nil {
		return copyExecutable()
	}
	return <-ch
}

// prepareMonitor spawns a monitor for the next Start of this process.
func (m *Manager) prepareMonitor() {
	m.prepMu.Lock()
	defer m.prepMu.Unlock()
	if m.mon == nil {
		m.mon, _ = spawnMonitor()
	}
}

// takeMonitor returns the prepared monitor, or spawns one.
func (m *Manager) takeMonitor() (*monitorProc, error) {
	m.prepMu.Lock()
	mp := m.mon
	m.mon = nil
	m.prepMu.Unlock()
	if mp != nil {
		return mp, nil
	}
	return spawnMonitor()
}

// dropPrepared lets go of what was prepared and not used (Run's create failed).
func (m *Manager) dropPrepared() {
	m.prepMu.Lock()
	mp, ch := m.mon, m.exe
	m.mon, m.exe = nil, nil
	m.prepMu.Unlock()
	if mp != nil {
		mp.discard()
	}
	if ch != nil {
		go func() {
			if f := <-ch; f != nil {
				f.Close()
			}
		}()
	}
}

func copyExecutable() *os.File {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil
	}
	if CheckSealed(exe) == nil {
		return exe
	}
	defer exe.Close()
	f, err := SealedMemfd("berth-init", exe)
	if err != nil {
		return nil
	}
	return f
}

// sendExecutable sends the copy (nil: none, the monitor makes its own) to the monitor and
// closes the command's reference.
func (mp *monitorProc) sendExecutable(f *os.File) {
	if f == nil {
		writeHandshake(mp.sync, &handshakeMsg{Type: "exe"})
		return
	}
	writeHandshake(mp.sync, &handshakeMsg{Type: "exe"}, int(f.Fd()))
	f.Close()
}

// receiveExecutable takes the starting command's sealed copy of the executable as this
// process' ExecutableMemfd, if it comes within 5 s and is sealed.
func receiveExecutable(sync *os.File) {
	msg, fds, err := readHandshake(sync, 5*time.Second)
	if err != nil || msg.Type != "exe" || len(fds) == 0 {
		closeAll(fds)
		return
	}
	closeAll(fds[1:])
	f := os.NewFile(uintptr(fds[0]), "memfd:berth-init")
	if CheckSealed(f) != nil {
		f.Close()
		return
	}
	installed := false
	selfMemfd.once.Do(func() {
		selfMemfd.f = f
		installed = true
	})
	if !installed {
		f.Close()
	}
}
