package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/term"
)

// terminalFd returns the descriptor of r or w when it is a terminal.
func terminalFd(v any) (int, bool) {
	f, ok := v.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return -1, false
	}
	return int(f.Fd()), true
}

// setRawTerminal puts the terminal r (stdin) in raw mode, as `docker run -it` does, and
// returns the function that restores it (a no-op when r is not a terminal).
func setRawTerminal(r io.Reader) func() {
	fd, ok := terminalFd(r)
	if !ok {
		return func() {}
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}
	}
	return func() { term.Restore(fd, old) }
}

// terminalSize is the window size of the terminal w (stdout), if it is one.
func terminalSize(w io.Writer) (height, width uint16, ok bool) {
	fd, ok := terminalFd(w)
	if !ok {
		return 0, 0, false
	}
	cols, rows, err := term.GetSize(fd)
	if err != nil || rows <= 0 || cols <= 0 {
		return 0, 0, false
	}
	return uint16(rows), uint16(cols), true
}

// consoleSize is the window size of the terminal w for a container's tty (nil when w is
// not a terminal).
func consoleSize(w io.Writer) *specs.Box {
	h, wd, ok := terminalSize(w)
	if !ok {
		return nil
	}
	return &specs.Box{Height: uint(h), Width: uint(wd)}
}

// forwardResize gives the container's terminal the size of the terminal out now and after
// every SIGWINCH, until ctx ends.
func forwardResize(ctx context.Context, out io.Writer, resize func(height, width uint16)) {
	if _, ok := terminalFd(out); !ok {
		return
	}
	if h, w, ok := terminalSize(out); ok {
		resize(h, w)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ch:
				if h, w, ok := terminalSize(out); ok {
					resize(h, w)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
}

// proxiedSignals are the signals `run` and `attach` forward to the container (Docker's
// --sig-proxy; SIGCHLD, SIGPIPE, SIGURG and SIGWINCH stay here, SIGKILL and SIGSTOP cannot
// be caught).
var proxiedSignals = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1,
	syscall.SIGUSR2, syscall.SIGALRM,
}

// proxySignals forwards the signals this process gets to the container with send, until
// ctx ends.
func proxySignals(ctx context.Context, send func(sig syscall.Signal)) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, proxiedSignals...)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case s := <-ch:
				if sig, ok := s.(syscall.Signal); ok {
					send(sig)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
}
