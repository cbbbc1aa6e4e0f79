package container

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSealedMemfd(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	content := bytes.Repeat([]byte("berth"), 100000)
	os.WriteFile(src, content, 0o644)
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := SealedMemfd("test", f)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := CheckSealed(m); err != nil {
		t.Fatal(err)
	}
	seals, err := unix.FcntlInt(m.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&sealsRequired != sealsRequired {
		t.Fatalf("seals %#x %v", seals, err)
	}
	fdflags, _ := unix.FcntlInt(m.Fd(), unix.F_GETFD, 0)
	if fdflags&unix.FD_CLOEXEC == 0 {
		t.Error("memfd is not close-on-exec")
	}
	got, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", m.Fd()))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("contents differ (%d bytes, %v)", len(got), err)
	}
	// Every way of changing it fails.
	if _, err := unix.Pwrite(int(m.Fd()), []byte("x"), 0); err != unix.EPERM && err != unix.EBADF {
		t.Errorf("pwrite: %v, want EPERM", err)
	}
	w, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", m.Fd()), os.O_WRONLY, 0)
	if err == nil {
		if _, err := w.Write([]byte("x")); err != unix.EPERM && !isErrno(err, unix.EPERM) {
			t.Errorf("write through a new descriptor: %v, want EPERM", err)
		}
		if err := w.Truncate(1); !isErrno(err, unix.EPERM) {
			t.Errorf("truncate: %v, want EPERM", err)
		}
		w.Close()
	}
	if err := unix.Ftruncate(int(m.Fd()), 0); err != unix.EPERM && err != unix.EINVAL {
		t.Errorf("ftruncate: %v", err)
	}
	if _, err := unix.FcntlInt(m.Fd(), unix.F_ADD_SEALS, 0); err == nil {
		// F_SEAL_SEAL: no seal may be added or removed, and adding none... must still fail.
		t.Error("F_ADD_SEALS after F_SEAL_SEAL succeeded")
	}
	if _, err := unix.Mmap(int(m.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		t.Error("writable shared mapping of the sealed memfd")
	}

	// A file that is not a memfd is not sealed.
	if err := CheckSealed(f); err == nil {
		t.Error("a regular file passes CheckSealed")
	}
}

func isErrno(err error, e unix.Errno) bool {
	for err != nil {
		if x, ok := err.(unix.Errno); ok {
			return x == e
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestExecutableMemfd(t *testing.T) {
	m, err := ExecutableMemfd()
	if err != nil {
		t.Fatal(err)
	}
	if m2, _ := ExecutableMemfd(); m2 != m {
		t.Error("not cached")
	}
	if err := CheckSealed(m); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Stat("/proc/self/exe")
	st, _ := m.Stat()
	if st.Size() != self.Size() {
		t.Errorf("memfd %d bytes, executable %d", st.Size(), self.Size())
	}
	// It runs: the test binary, from the memfd, with no test selected.
	out, err := exec.Command(fmt.Sprintf("/proc/self/fd/%d", m.Fd()), "-test.run=^$").CombinedOutput()
	if err != nil {
		t.Fatalf("exec the memfd: %v\n%s", err, out)
	}
}

// TestExecutableMemfdReuse: a process already running from a sealed memfd (a monitor
// re-executed by pull-run) reuses it instead of copying itself again.
func TestExecutableMemfdReuse(t *testing.T) {
	if os.Getenv("BERTH_MEMFD_CHILD") == "1" {
		m, err := ExecutableMemfd()
		if err != nil {
			t.Fatal(err)
		}
		var a, b unix.Stat_t
		unix.Fstat(int(m.Fd()), &a)
		unix.Stat("/proc/self/exe", &b)
		if a.Ino == b.Ino && a.Dev == b.Dev {
			fmt.Println("REUSED")
		}
		return
	}
	m, err := ExecutableMemfd()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", m.Fd()), "-test.run=^TestExecutableMemfdReuse$", "-test.v")
	cmd.Env = append(os.Environ(), "BERTH_MEMFD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("REUSED\n")) {
		t.Errorf("child: %v\n%s", err, out)
	}
}
