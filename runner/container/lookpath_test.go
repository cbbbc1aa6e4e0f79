package container

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	sbin := filepath.Join(dir, "sbin")
	os.Mkdir(bin, 0o755)
	os.Mkdir(sbin, 0o755)
	os.WriteFile(filepath.Join(bin, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(sbin, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "data"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(sbin, "data"), []byte("x"), 0o755)
	os.Mkdir(filepath.Join(bin, "adir"), 0o755)
	path := bin + ":" + sbin

	got, err := lookPath("tool", path)
	if err != nil || got != filepath.Join(bin, "tool") {
		t.Errorf("tool: %q %v", got, err)
	}
	// A non-executable file in PATH is skipped, as os/exec does.
	if got, err := lookPath("data", path); err != nil || got != filepath.Join(sbin, "data") {
		t.Errorf("data: %q %v", got, err)
	}

	for _, tc := range []struct {
		name string
		code int
		msg  string
	}{
		{"nope", 127, `exec: "nope": executable file not found in $PATH`},
		{"adir", 127, `exec: "adir": executable file not found in $PATH`},
		{"", 127, `exec: "": executable file not found in $PATH`},
		{filepath.Join(dir, "missing"), 127, `exec: "` + filepath.Join(dir, "missing") + `": stat ` + filepath.Join(dir, "missing") + `: no such file or directory`},
		{filepath.Join(bin, "data"), 126, `exec: "` + filepath.Join(bin, "data") + `": permission denied`},
		{filepath.Join(bin, "adir"), 126, `exec: "` + filepath.Join(bin, "adir") + `": is a directory`},
		{filepath.Join(bin, "data", "x"), 127, ""},
	} {
		_, err := lookPath(tc.name, path)
		if err == nil {
			t.Errorf("%q: found", tc.name)
			continue
		}
		if code := execExitCode(err); code != tc.code {
			t.Errorf("%q: exit code %d, want %d (%v)", tc.name, code, tc.code, err)
		}
		if tc.msg != "" && err.Error() != tc.msg {
			t.Errorf("%q: %q, want %q", tc.name, err, tc.msg)
		}
	}
}

func TestExecExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{syscall.ENOENT, 127},
		{syscall.ENOTDIR, 127},
		{&execError{"x", errNotFound}, 127},
		{syscall.EACCES, 126},
		{syscall.ENOEXEC, 126},
		{syscall.EISDIR, 126},
		{syscall.ETXTBSY, 126},
		{errors.New("other"), 126},
	} {
		if got := execExitCode(tc.err); got != tc.code {
			t.Errorf("%v → %d, want %d", tc.err, got, tc.code)
		}
	}
	if got := execErrorMessage("/bin/x", syscall.ENOEXEC); got != `exec: "/bin/x": exec format error` {
		t.Errorf("message %q", got)
	}
}

func TestPathFromEnv(t *testing.T) {
	if got := pathFromEnv([]string{"A=1"}); got != DefaultPath {
		t.Errorf("no PATH: %q", got)
	}
	if got := pathFromEnv([]string{"PATH=/a", "B=2", "PATH=/b:/c"}); got != "/b:/c" {
		t.Errorf("got %q", got)
	}
	if got := pathFromEnv([]string{"PATH="}); got != "" {
		t.Errorf("empty PATH: %q", got)
	}
}
