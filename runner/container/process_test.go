package container

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/internal/testenv"
)

func TestParseStartTime(t *testing.T) {
	line := "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654321 1000 100 rest"
	got, err := parseStartTime(line)
	if err != nil || got != 987654321 {
		t.Errorf("got %d %v", got, err)
	}
	if _, err := parseStartTime("1 (x) S 1 2"); err == nil {
		t.Error("short line accepted")
	}
	if st, err := ProcessStartTime(os.Getpid()); err != nil || st == 0 {
		t.Errorf("own start time: %d %v", st, err)
	}
	if _, err := ProcessStartTime(1 << 30); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("missing pid: %v", err)
	}
}

func TestSignalPidChecksStartTime(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		testenv.SkipOrFailInCI(t, "no sleep: %v", err)
	}
	pid := cmd.Process.Pid
	st, err := ProcessStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// A stale start time (a recycled pid) is never signalled.
	if err := SignalPid(pid, st+1, syscall.SIGKILL); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("wrong start time: %v", err)
	}
	if err := SignalPid(pid, st, 0); err != nil {
		t.Errorf("signal 0: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := WaitPidExit(ctx, pid, st); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitPidExit of a running process: %v", err)
	}
	cancel()
	if err := SignalPid(pid, st, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The pidfd becomes readable when the process exits (before it is reaped).
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitPidExit(ctx, pid, st); err != nil {
		t.Errorf("WaitPidExit: %v", err)
	}
	cmd.Wait()
	if err := SignalPid(pid, st, syscall.SIGKILL); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("after exit: %v", err)
	}
	if err := WaitPidExit(context.Background(), pid, st); err != nil {
		t.Errorf("WaitPidExit of a gone process: %v", err)
	}
}
