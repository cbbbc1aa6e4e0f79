package container

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The parent and the init talk over a SOCK_STREAM unix socketpair (the child's end is an
// inherited descriptor named by the environment marker). Each message is a frame: a 4-byte
// big-endian length and a JSON body; descriptors (the pty master, a pidfd) travel with a
// frame as SCM_RIGHTS. The init's end is close-on-exec, so the parent reads EOF once the
// user command has been executed.
//
//	parent → init   config          (after Apply of the cgroup)
//	init → parent   ready [+pty]    (setup done; Start only)
//	parent → init   go              (after the hooks)
//	init → parent   error           (setup or exec failure, with the exit code)
//	init → parent   started [+pidfd, +pty]   (exec mode: the command runs)
//	init → parent   exit            (exec mode: how the command ended)

const (
	msgConfig  = "config"
	msgReady   = "ready"
	msgGo      = "go"
	msgError   = "error"
	msgStarted = "started"
	msgExit    = "exit"
)

const maxFrame = 64 << 20

// Modes of the re-executed init.
const (
	modeStart = "start"
	modeExec  = "exec"
)

type message struct {
	Type   string      `json:"type"`
	Config *initConfig `json:"config,omitempty"`
	// Error and Code: msgError.
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
	// Pid: msgStarted (host pid of the exec'd command).
	Pid int `json:"pid,omitempty"`
	// Signal: msgExit.
	Signal int `json:"signal,omitempty"`
	// Console: a pty master is attached (ready, started).
	Console bool `json:"console,omitempty"`
	// Pidfd: a pidfd of the exec'd command is attached (started).
	Pidfd bool `json:"pidfd,omitempty"`
}

// initConfig is what the parent sends to the re-executed init.
type initConfig struct {
	Mode string `json:"mode"`
	ID   string `json:"id,omitempty"`

	// Start mode.
	Spec        *specs.Spec `json:"spec,omitempty"`
	Rootfs      Rootfs      `json:"rootfs"`
	Reaper      bool        `json:"reaper,omitempty"`
	NoPivotRoot bool        `json:"noPivotRoot,omitempty"`
	NewNetNS    bool        `json:"newNetNS,omitempty"`
	NewUTSNS    bool        `json:"newUTSNS,omitempty"`
	NewCgroupNS bool        `json:"newCgroupNS,omitempty"`
	ExtraFiles  int         `json:"extraFiles,omitempty"`

	// Exec mode.
	Process *specs.Process `json:"process,omitempty"`
	NSFlags int            `json:"nsFlags,omitempty"`
	InitPid int            `json:"initPid,omitempty"`
	// ReturnCgroups are the caller's cgroup directories: once the command is forked (and
	// so in the container's cgroup), the helper moves back to them, so that it counts
	// neither in the container's pids nor in its memory.
	ReturnCgroups []string `json:"returnCgroups,omitempty"`
	// InitPidfd is the pidfd of InitPid in the exec helper (it travels as SCM_RIGHTS
	// with the configuration).
	InitPidfd int `json:"-"`
}

// writeFrame sends msg with optional descriptors in one sendmsg (then the rest, if the
// kernel took only part of it).
func writeFrame(fd int, msg *message, fds ...int) error {
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
	for len(buf) > 0 {
		n, err := unix.SendmsgN(fd, buf, oob, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		buf = buf[n:]
		oob = nil
	}
	return nil
}

// readFrame reads one message and the descriptors sent with it (close-on-exec). It returns
// io.EOF when the other end is closed between frames.
func readFrame(fd int) (*message, []int, error) {
	body, fds, err := readFrameBody(fd, maxFrame, "sync socket")
	if err != nil {
		return nil, nil, err
	}
	var msg message
	if err := json.Unmarshal(body, &msg); err != nil {
		closeAll(fds)
		return nil, nil, fmt.Errorf("sync socket: bad message: %w", err)
	}
	return &msg, fds, nil
}

// readFrameBody reads one length-prefixed frame (a big-endian uint32 size,
// then the body) and the descriptors that came with it, close-on-exec. It
// returns io.EOF when the other end closed between frames; what names the
// channel in errors.
func readFrameBody(fd int, max uint32, what string) ([]byte, []int, error) {
	var hdr [4]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	var fds []int
	for got := 0; got < len(hdr); {
		n, oobn, _, _, err := unix.Recvmsg(fd, hdr[got:], oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			closeAll(fds)
			return nil, nil, err
		}
		if oobn > 0 {
			more, err := parseRights(oob[:oobn])
			fds = append(fds, more...)
			if err != nil {
				closeAll(fds)
				return nil, nil, err
			}
		}
		if n == 0 {
			closeAll(fds)
			if got == 0 {
				return nil, nil, io.EOF
			}
			return nil, nil, io.ErrUnexpectedEOF
		}
		got += n
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > max {
		closeAll(fds)
		return nil, nil, fmt.Errorf("%s: frame of %d bytes", what, size)
	}
	body := make([]byte, size)
	for got := 0; got < len(body); {
		n, err := unix.Read(fd, body[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			closeAll(fds)
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		got += n
	}
	return body, fds, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// expectFrame reads a frame of type want.
func expectFrame(fd int, want string) (*message, []int, error) {
	msg, fds, err := readFrame(fd)
	if err != nil {
		return nil, nil, err
	}
	if msg.Type != want {
		closeAll(fds)
		return nil, nil, errors.New("sync socket: got " + msg.Type + ", want " + want)
	}
	return msg, fds, nil
}
