package container

import (
	"syscall"
	"testing"
)

func TestExitStatusOf(t *testing.T) {
	for _, tc := range []struct {
		ws   syscall.WaitStatus
		want ExitStatus
	}{
		{0, ExitStatus{Code: 0}},
		{3 << 8, ExitStatus{Code: 3}},
		{255 << 8, ExitStatus{Code: 255}},
		{syscall.WaitStatus(syscall.SIGKILL), ExitStatus{Code: 137, Signal: syscall.SIGKILL}},
		{syscall.WaitStatus(syscall.SIGTERM), ExitStatus{Code: 143, Signal: syscall.SIGTERM}},
		{syscall.WaitStatus(syscall.SIGSEGV) | 0x80, ExitStatus{Code: 139, Signal: syscall.SIGSEGV}}, // core dumped
	} {
		if got := ExitStatusOf(tc.ws); got != tc.want {
			t.Errorf("%#x → %+v, want %+v", int(tc.ws), got, tc.want)
		}
	}
	if s := (ExitStatus{Code: 137, Signal: syscall.SIGKILL}).String(); s != "exit code 137 (SIGKILL)" {
		t.Errorf("String %q", s)
	}
	e := &StartError{ID: "c", Code: 127, Msg: `exec: "x": executable file not found in $PATH`}
	if e.Error() != `unable to start container process: exec: "x": executable file not found in $PATH` {
		t.Errorf("Error %q", e.Error())
	}
}
