package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// sealsRequired are the seals of the memfd the init is executed from: nothing can change
// its contents or size, and no seal can be removed or added.
const sealsRequired = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

var selfMemfd struct {
	once sync.Once
	f    *os.File
	err  error
}

// ExecutableMemfd returns a sealed memfd holding a copy of the running executable, made on
// the first call and cached for the life of the process (CVE-2019-5736: the container's
// init is executed from it, so nothing inside a container can reach the binary on disk
// through /proc/<pid>/exe, and the copy itself cannot be written). When the process already
// runs from such a sealed memfd (a re-executed monitor), that file is reused without a copy.
// The descriptor is close-on-exec; the caller must not close it.
func ExecutableMemfd() (*os.File, error) {
	selfMemfd.once.Do(func() {
		selfMemfd.f, selfMemfd.err = executableMemfd()
	})
	return selfMemfd.f, selfMemfd.err
}

func executableMemfd() (*os.File, error) {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("open own executable: %w", err)
	}
	if CheckSealed(exe) == nil {
		return exe, nil
	}
	defer exe.Close()
	return SealedMemfd("berth-init", exe)
}

// SealedMemfd copies src (from its start) into a new memfd named name and seals it with
// F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_WRITE (and F_SEAL_EXEC where the kernel
// has it). The returned file is close-on-exec, read-only in effect and executable through
// /proc/self/fd/N.
func SealedMemfd(name string, src *os.File) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL { // kernel < 6.3: no MFD_EXEC
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "memfd:"+name)
	ok := false
	defer func() {
		if !ok {
			mem.Close()
		}
	}()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	if err := copyInto(mem, src, st.Size()); err != nil {
		return nil, fmt.Errorf("copy %s into memfd: %w", src.Name(), err)
	}
	if err := addSeals(fd, sealsRequired|unix.F_SEAL_EXEC); err == unix.EINVAL {
		err = addSeals(fd, sealsRequired) // kernel < 6.3: no F_SEAL_EXEC
		if err != nil {
			return nil, fmt.Errorf("seal memfd: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	ok = true
	return mem, nil
}

func addSeals(fd, seals int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
	return err
}

// copyInto copies size bytes of src (from offset 0) to dst: copy_file_range, else sendfile,
// else read/write.
func copyInto(dst, src *os.File, size int64) error {
	var off int64
	useCFR := true
	for off < size {
		n := size - off
		if n > 1<<30 {
			n = 1 << 30
		}
		var w int
		var err error
		if useCFR {
			roff := off
			w, err = unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), nil, int(n), 0)
			if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
				useCFR = false
				continue
			}
		} else {
			roff := off
			w, err = unix.Sendfile(int(dst.Fd()), int(src.Fd()), &roff, int(n))
			if err == unix.EINVAL || err == unix.ENOSYS {
				if _, err := src.Seek(off, io.SeekStart); err != nil {
					return err
				}
				_, err = io.Copy(dst, io.LimitReader(src, size-off))
				return err
			}
		}
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return err
		}
		if w == 0 {
			return io.ErrUnexpectedEOF
		}
		off += int64(w)
	}
	return nil
}

// ErrNotSealed is returned by CheckSealed for a file that is not a memfd with all the
// required seals.
var ErrNotSealed = errors.New("not a sealed memfd")

// CheckSealed returns nil when f is a memfd carrying F_SEAL_SEAL, F_SEAL_SHRINK,
// F_SEAL_GROW and F_SEAL_WRITE, so that its contents can never change.
func CheckSealed(f *os.File) error {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("%w: %s: F_GET_SEALS: %v", ErrNotSealed, f.Name(), err)
	}
	if seals&sealsRequired != sealsRequired {
		return fmt.Errorf("%w: %s has seals %#x, want %#x", ErrNotSealed, f.Name(), seals, sealsRequired)
	}
	return nil
}
