package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
)

type execOptions struct {
	interactive, tty, detach, privileged bool
	env, envFile                         []string
	user, workdir, detachKeys            string
}

func (a *app) execCommand() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runExec(cmd, o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: run command in the background")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to the command")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFile, "env-file", nil, "Read in a file of environment variables")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container (not used: exec has no detach)")
	return cmd
}

// execEnv resolves exec's -e and --env-file values: a bare KEY takes this process' value
// (and is dropped when it has none).
func execEnv(o execOptions) ([]string, error) {
	var out []string
	for _, path := range o.envFile {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		vals, err := spec.ParseEnvFile(f, os.LookupEnv)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	for _, e := range o.env {
		if _, _, ok := strings.Cut(e, "="); ok {
			out = append(out, e)
		} else if v, ok := os.LookupEnv(e); ok {
			out = append(out, e+"="+v)
		}
	}
	return out, nil
}

// runExec is docker exec: the command's status is the exit status (126/127 when it
// cannot be run); with -t its terminal follows ours, raw with -i.
func (a *app) runExec(cmd *cobra.Command, o execOptions, name string, args []string) error {
	env, err := execEnv(o)
	if err != nil {
		return err
	}
	if o.tty && o.interactive && !o.detach {
		if _, ok := terminalFd(a.stdin); !ok {
			return errors.New("the input device is not a TTY")
		}
	}
	m, err := a.openContainers()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	eo := container.ExecOptions{Cmd: args, Env: env, User: o.user, WorkingDir: o.workdir, Tty: o.tty, Privileged: o.privileged}
	if o.tty {
		if h, w, ok := terminalSize(a.stdout); ok {
			eo.ConsoleSize = &specs.Box{Height: uint(h), Width: uint(w)}
		}
	}

	// The process' standard streams: ours when they are files, pipes copied otherwise.
	var copies []chan struct{}
	var closeAfterStart []io.Closer
	if !o.detach && !o.tty {
		if o.interactive {
			if f, ok := a.stdin.(*os.File); ok {
				eo.Stdin = f
			} else {
				r, w, err := os.Pipe()
				if err != nil {
					return err
				}
				eo.Stdin = r
				closeAfterStart = append(closeAfterStart, r)
				go func() { io.Copy(w, a.stdin); w.Close() }()
			}
		}
		outFile := func(dst io.Writer) (*os.File, error) {
			if f, ok := dst.(*os.File); ok {
				return f, nil
			}
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			done := make(chan struct{})
			copies = append(copies, done)
			closeAfterStart = append(closeAfterStart, w)
			go copyOut(dst, r, done)
			return w, nil
		}
		if eo.Stdout, err = outFile(a.stdout); err != nil {
			return err
		}
		if eo.Stderr, err = outFile(a.stderr); err != nil {
			return err
		}
	}
	p, err := m.Exec(ctx, name, eo)
	for _, c := range closeAfterStart {
		c.Close()
	}
	if err != nil {
		var se *container.StartError
		if errors.As(err, &se) {
			fmt.Fprintf(a.stderr, "Error: %s\n", err)
			return &statusError{code: se.Code, err: errSilent}
		}
		return err
	}
	if o.detach {
		if p.Console != nil {
			p.Console.Close()
		}
		return nil
	}
	// Interrupting exec leaves the command running (Docker's exec has no signal proxy).
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var consoleDone chan struct{}
	if p.Console != nil {
		restore := func() {}
		if o.interactive {
			restore = setRawTerminal(a.stdin)
			go io.Copy(p.Console, a.stdin)
		}
		defer restore()
		forwardResize(wctx, a.stdout, func(h, w uint16) { container.SetConsoleSize(p.Console, h, w) })
		consoleDone = make(chan struct{})
		go copyOut(a.stdout, p.Console, consoleDone)
	}
	waited := make(chan struct{})
	var status container.ExitStatus
	var werr error
	go func() {
		status, werr = p.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return &statusError{code: 130, err: errSilent}
	}
	if consoleDone != nil {
		// The pty's output ends when every holder of the slave is gone; a background
		// process of the command may keep it: do not wait for that one.
		select {
		case <-consoleDone:
		case <-time.After(500 * time.Millisecond):
		}
		p.Console.Close()
	}
	for _, done := range copies {
		<-done
	}
	if werr != nil {
		return werr
	}
	if status.Code != 0 {
		return &statusError{code: status.Code, err: errSilent}
	}
	return nil
}
