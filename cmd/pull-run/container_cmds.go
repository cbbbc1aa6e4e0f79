package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berth-registry/berth/runner/container"
	"github.com/spf13/cobra"
)

// ---------------------------------------------------------------------------------------------
// start

func (a *app) startCommand() *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return errors.New("you cannot start and attach multiple containers at once")
				}
				return a.startAttached(cmd, m, args[0], interactive, detachKeys)
			}
			failed := []string{}
			for _, name := range args {
				if _, err := m.Start(cmd.Context(), name, container.StartOptions{}); err != nil {
					fmt.Fprintf(a.stderr, "Error: %s\n", err)
					failed = append(failed, name)
					continue
				}
				fmt.Fprintln(a.stdout, name)
			}
			if len(failed) > 0 {
				return fmt.Errorf("failed to start containers: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	f.BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	f.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// startAttached is start -a [-i]: the streams connected before the command runs, signals
// forwarded (without a tty), the container's exit status.
func (a *app) startAttached(cmd *cobra.Command, m *container.Manager, name string, interactive bool, detachKeys string) error {
	ctx := context.WithoutCancel(cmd.Context())
	info, err := m.Inspect(ctx, name)
	if err != nil {
		return err
	}
	tty := info.Config.Tty
	att := &container.AttachOptions{Stdout: a.stdout, Stderr: a.stderr, DetachKeys: detachKeys}
	if tty {
		att.ConsoleSize = consoleSize(a.stdout)
	}
	restore := func() {}
	if interactive {
		att.Stdin = a.stdin
		if tty {
			restore = setRawTerminal(a.stdin)
		}
	}
	s, err := m.Start(ctx, name, container.StartOptions{Attach: att})
	if err != nil {
		restore()
		return err
	}
	defer restore()
	if s == nil {
		return nil
	}
	return a.followStream(ctx, m, info.ID, s, true)
}

// followStream waits for an attached stream (run, start -a, attach): the window size
// follows the terminal's, signals go to the container without a tty (sigProxy), and the
// exit status is the container's (0 after a detach).
func (a *app) followStream(ctx context.Context, m *container.Manager, id string, s *container.Stream, sigProxy bool) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.TTY() {
		forwardResize(wctx, a.stdout, func(h, w uint16) { s.Resize(h, w) })
	} else if sigProxy {
		proxySignals(wctx, func(sig syscall.Signal) {
			go m.Kill(ctx, id, strconv.Itoa(int(sig)))
		})
	}
	code, err := s.Wait(ctx)
	if errors.Is(err, container.ErrDetached) {
		return nil
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &statusError{code: code, err: errSilent}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// attach

func (a *app) attachCommand() *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			ctx := context.WithoutCancel(cmd.Context())
			info, err := m.Inspect(ctx, args[0])
			if err != nil {
				return err
			}
			att := container.AttachOptions{Stdout: a.stdout, Stderr: a.stderr, DetachKeys: detachKeys}
			if info.Config.Tty {
				att.ConsoleSize = consoleSize(a.stdout)
			}
			restore := func() {}
			if !noStdin && info.Config.OpenStdin {
				att.Stdin = a.stdin
				if info.Config.Tty {
					restore = setRawTerminal(a.stdin)
				}
			}
			defer restore()
			s, err := m.Attach(ctx, args[0], att)
			if err != nil {
				return err
			}
			return a.followStream(ctx, m, info.ID, s, sigProxy)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	f.BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	f.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// ---------------------------------------------------------------------------------------------
// stop, kill, restart, pause, unpause

// timeoutFlag adds -t/--time (and --timeout) to cmd: seconds before SIGKILL.
func timeoutFlag(cmd *cobra.Command, v *int) {
	cmd.Flags().IntVarP(v, "time", "t", 0, "Seconds to wait before killing the container")
	cmd.Flags().IntVar(v, "timeout", 0, "Seconds to wait before killing the container")
	cmd.Flags().MarkHidden("timeout")
}

func stopOptions(cmd *cobra.Command, signal string, timeout int) container.StopOptions {
	o := container.StopOptions{Signal: signal}
	if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
		o.Timeout = &timeout
	}
	return o
}

// eachCommand builds a command that applies do to every container named on
// its command line, printing each name as Docker does (stop, kill, pause...).
func (a *app) eachCommand(use, short string, do func(ctx context.Context, m *container.Manager, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			return a.eachContainer(args, func(name string) error { return do(cmd.Context(), m, name) })
		},
	}
}

func (a *app) stopCommand() *cobra.Command {
	var timeout int
	var signal string
	var cmd *cobra.Command
	cmd = a.eachCommand("stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
		func(ctx context.Context, m *container.Manager, name string) error {
			return m.Stop(ctx, name, stopOptions(cmd, signal, timeout))
		})
	timeoutFlag(cmd, &timeout)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (a *app) restartCommand() *cobra.Command {
	var timeout int
	var signal string
	var cmd *cobra.Command
	cmd = a.eachCommand("restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
		func(ctx context.Context, m *container.Manager, name string) error {
			return m.Restart(ctx, name, stopOptions(cmd, signal, timeout))
		})
	timeoutFlag(cmd, &timeout)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (a *app) killCommand() *cobra.Command {
	var signal string
	cmd := a.eachCommand("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
		func(ctx context.Context, m *container.Manager, name string) error { return m.Kill(ctx, name, signal) })
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func (a *app) pauseCommand() *cobra.Command {
	return a.eachCommand("pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
		func(ctx context.Context, m *container.Manager, name string) error { return m.Pause(ctx, name) })
}

func (a *app) unpauseCommand() *cobra.Command {
	return a.eachCommand("unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
		func(ctx context.Context, m *container.Manager, name string) error { return m.Unpause(ctx, name) })
}

// ---------------------------------------------------------------------------------------------
// rm

func (a *app) rmCommand() *cobra.Command {
	var force, volumes, link bool
	cmd := &cobra.Command{
		Use:   "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Remove one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if link {
				return errors.New("links are not supported")
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			failed := false
			for _, name := range args {
				err := a.remove(ctx, m, name, force, volumes)
				switch {
				case err == nil:
					fmt.Fprintln(a.stdout, name)
				case force && errors.Is(err, container.ErrNotFound):
					// rm -f is idempotent (Docker's CLI): a container already gone is
					// reported, not a failure.
					fmt.Fprintf(a.stderr, "Error: %s\n", err)
				default:
					fmt.Fprintf(a.stderr, "Error: %s\n", err)
					failed = true
				}
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	f.BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	f.BoolVarP(&link, "link", "l", false, "Remove the specified link")
	return cmd
}

// remove is one rm. With force, a removal already in progress (another rm -f racing with
// this one) is waited for: both commands end with the container gone.
func (a *app) remove(ctx context.Context, m *container.Manager, name string, force, volumes bool) error {
	err := m.Remove(ctx, name, container.RemoveOptions{Force: force, Volumes: volumes})
	if !force || err == nil || !errors.Is(err, container.ErrConflict) || !strings.Contains(err.Error(), "already in progress") {
		return err
	}
	for {
		if _, rerr := m.Resolve(name); errors.Is(rerr, container.ErrNotFound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
		err = m.Remove(ctx, name, container.RemoveOptions{Force: true, Volumes: volumes})
		if err == nil || errors.Is(err, container.ErrNotFound) {
			return nil
		}
		if !errors.Is(err, container.ErrConflict) || !strings.Contains(err.Error(), "already in progress") {
			return err
		}
	}
}

// ---------------------------------------------------------------------------------------------
// wait, rename

func (a *app) waitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			failed := false
			for _, name := range args {
				code, err := m.Wait(cmd.Context(), name)
				if err != nil {
					fmt.Fprintf(a.stderr, "Error: %s\n", err)
					failed = true
					continue
				}
				fmt.Fprintln(a.stdout, code)
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
}

func (a *app) renameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			if strings.TrimSpace(args[1]) == "" {
				return errors.New("Neither old nor new names may be empty")
			}
			return m.Rename(cmd.Context(), args[0], args[1])
		},
	}
}

// ---------------------------------------------------------------------------------------------
// top

func (a *app) topCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return errors.New("ps options are not supported: the columns are ps -ef's (UID PID PPID C STIME TTY TIME CMD)")
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			r, err := m.Top(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 20, 1, 3, ' ', 0)
			fmt.Fprintln(w, strings.Join(r.Titles, "\t"))
			for _, p := range r.Processes {
				fmt.Fprintln(w, strings.Join(p, "\t"))
			}
			return w.Flush()
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// ---------------------------------------------------------------------------------------------
// container prune

func (a *app) containerPruneCommand() *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fm, err := parseFilters(filters)
			if err != nil {
				return err
			}
			if !force && !a.confirm("WARNING! This will remove all stopped containers.") {
				return nil
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			rep, err := m.Prune(cmd.Context(), fm)
			if err != nil {
				return err
			}
			a.printDeleted("Deleted Containers:", rep.ContainersDeleted)
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSizePrecision(float64(rep.SpaceReclaimed), 4))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

// parseFilters turns --filter key=value flags into the map the Manager takes.
func parseFilters(vals []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad format of filter (expected name=value)")
		}
		out[strings.ToLower(strings.TrimSpace(k))] = append(out[strings.ToLower(strings.TrimSpace(k))], val)
	}
	return out, nil
}
