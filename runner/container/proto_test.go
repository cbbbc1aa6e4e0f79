package container

import (
	"io"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestFrames(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	r, w, _ := os.Pipe()
	defer r.Close()
	big := strings.Repeat("E=x", 500000) // larger than a socket buffer
	done := make(chan error, 1)
	go func() {
		err := writeFrame(pair[1], &message{Type: msgConfig, Config: &initConfig{Mode: modeStart, Spec: &specs.Spec{Hostname: big}}})
		if err == nil {
			err = writeFrame(pair[1], &message{Type: msgReady, Console: true}, int(w.Fd()))
		}
		unix.Close(pair[1])
		done <- err
	}()
	msg, fds, err := readFrame(pair[0])
	if err != nil || msg.Type != msgConfig || msg.Config.Spec.Hostname != big || len(fds) != 0 {
		t.Fatalf("first frame: %v %v", err, fds)
	}
	msg, fds, err = expectFrame(pair[0], msgReady)
	if err != nil || !msg.Console || len(fds) != 1 {
		t.Fatalf("second frame: %+v %v %v", msg, fds, err)
	}
	if fl, _ := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("received descriptor is not close-on-exec")
	}
	unix.Write(fds[0], []byte("through the passed fd"))
	unix.Close(fds[0])
	w.Close()
	if b, _ := io.ReadAll(r); string(b) != "through the passed fd" {
		t.Errorf("pipe got %q", b)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, err := readFrame(pair[0]); err != io.EOF {
		t.Errorf("after close: %v, want EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	pair, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(pair[0])
	unix.Write(pair[1], []byte{0, 0, 0, 5, '{', '"'}) // truncated
	unix.Close(pair[1])
	if _, _, err := readFrame(pair[0]); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v", err)
	}
	pair, _ = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(pair[0])
	unix.Write(pair[1], []byte{0xff, 0, 0, 0})
	if _, _, err := readFrame(pair[0]); err == nil {
		t.Error("huge frame accepted")
	}
	unix.Close(pair[1])
	pair, _ = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(pair[0])
	writeFrame(pair[1], &message{Type: msgGo})
	if _, _, err := expectFrame(pair[0], msgReady); err == nil {
		t.Error("wrong type accepted")
	}
	unix.Close(pair[1])
}
