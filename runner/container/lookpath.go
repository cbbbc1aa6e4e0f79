package container

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH Docker gives a container whose environment has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// errNotFound is os/exec's ErrNotFound wording, which Docker maps to exit code 127.
var errNotFound = errors.New("executable file not found in $PATH")

// execError is os/exec's Error wording: `exec: "name": reason`.
type execError struct {
	Name string
	Err  error
}

func (e *execError) Error() string { return "exec: " + strconv.Quote(e.Name) + ": " + e.Err.Error() }
func (e *execError) Unwrap() error { return e.Err }

// execExitCode maps a failure to find or execute the command to Docker's exit code: 127 when
// it does not exist, 126 when it exists but cannot be executed.
func execExitCode(err error) int {
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOENT),
		errors.Is(err, syscall.ENOTDIR):
		return ExitNotFound
	}
	return ExitCannotInvoke
}

// pathFromEnv returns the PATH of an environment list, or DefaultPath.
func pathFromEnv(env []string) string {
	path, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path, found = v, true // the last one wins, as in getenv of the exec'd libc
		}
	}
	if !found {
		return DefaultPath
	}
	return path
}

// lookPath resolves the command name as os/exec.LookPath does (and so as runc does), in the
// calling thread's root and working directory and with its credentials: a name with a slash
// is used as is, otherwise the PATH directories are searched (an empty entry is the working
// directory). The errors carry os/exec's wording.
func lookPath(name, path string) (string, error) {
	if name == "" {
		return "", &execError{Name: name, Err: errNotFound}
	}
	if strings.Contains(name, "/") {
		if err := findExecutable(name); err != nil {
			return "", &execError{Name: name, Err: err}
		}
		return name, nil
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if findExecutable(p) == nil {
			return p, nil
		}
	}
	return "", &execError{Name: name, Err: errNotFound}
}

// findExecutable is os/exec's check: a file that is not a directory and that the caller may
// execute.
func findExecutable(file string) error {
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return syscall.EISDIR
	}
	err = unix.Faccessat(unix.AT_FDCWD, file, unix.X_OK, unix.AT_EACCESS)
	if err == nil || (err != unix.ENOSYS && err != unix.EPERM) {
		return err
	}
	if st.Mode()&0o111 != 0 {
		return nil
	}
	return fs.ErrPermission
}

// execErrorMessage describes an execve failure of path as runc does.
func execErrorMessage(name string, err error) string {
	var ee *execError
	if errors.As(err, &ee) {
		return ee.Error()
	}
	if errno, ok := err.(syscall.Errno); ok {
		return (&execError{Name: name, Err: errno}).Error()
	}
	return "exec " + name + ": " + err.Error()
}
