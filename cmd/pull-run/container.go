package main

// The container commands (run, create, start, ps, logs, exec, attach, stop, kill, restart,
// pause, unpause, rm, inspect, wait, top, stats, rename, container prune, system boot) over
// runner/container's Manager, with Docker's flags, output and exit codes.
//
// Exit codes: `run` and `create` exit 125 for pull-run's own errors (bad flag values, an
// unknown image, a name in use) with "pull-run: MESSAGE." on stderr, 126/127 when the
// command cannot be invoked or found, and the container's own status otherwise. The other
// commands print "Error: MESSAGE" and exit 1, as `docker stop`, `docker rm`… do; `exec`
// exits with the command's status (126/127 when it cannot be run), `wait` prints the
// status and exits 0.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-registry/berth/runner/container"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

// openContainers opens the container store of the state root and the runtime directory.
func (a *app) openContainers() (*container.Manager, error) {
	return container.NewManager(a.root, a.runroot)
}

// containersUseImage is the image store's InUse hook (rmi refuses, prune skips an image a
// container uses). A state root without containers opens nothing.
func (a *app) containersUseImage(id digest.Digest) (bool, error) {
	if _, err := os.Stat(filepath.Join(a.root, "containers")); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	m, err := a.openContainers()
	if err != nil {
		return false, err
	}
	used, err := m.ImagesInUse()
	if err != nil {
		return false, err
	}
	return len(used[id.String()]) > 0, nil
}

// failRun prints err the way `docker run` does ("pull-run: MESSAGE.", with a pointer to
// the help for flag errors) and returns exit status code.
func (a *app) failRun(cmd *cobra.Command, code int, err error, withHelp bool) error {
	msg := strings.TrimSuffix(strings.TrimSpace(err.Error()), ".") + "."
	if withHelp {
		msg += "\nSee '" + cmd.CommandPath() + " --help'."
	}
	fmt.Fprintln(a.stderr, "pull-run:", msg)
	return &statusError{code: code, err: errSilent}
}

// runFlagError makes flag errors of run and create exit 125, as Docker's.
func (a *app) runFlagError(cmd *cobra.Command, err error) error {
	return a.failRun(cmd, container.ExitRuntimeError, err, true)
}

// eachContainer runs f for every argument, prints the argument on success (Docker's
// stop, kill, rm, pause…) and the errors on stderr; it fails (exit 1) if any failed.
func (a *app) eachContainer(args []string, f func(name string) error) error {
	failed := false
	for _, name := range args {
		if err := f(name); err != nil {
			fmt.Fprintf(a.stderr, "Error: %s\n", err)
			failed = true
			continue
		}
		fmt.Fprintln(a.stdout, name)
	}
	if failed {
		return errSilent
	}
	return nil
}

// containerCommand is `container COMMAND`: the container commands under their management
// command, with Docker's aliases (ls/ps/list, rm/remove).
func (a *app) containerCommand() *cobra.Command {
	ls := a.psCommand()
	ls.Use = "ls [OPTIONS]"
	ls.Aliases = []string{"ps", "list"}
	rm := a.rmCommand()
	rm.Aliases = []string{"remove"}
	return a.managementCommand("container COMMAND", "Manage containers", containerCommandSets,
		a.runCommand(), a.createCommand(), a.startCommand(), ls, a.logsCommand(),
		a.execCommand(), a.attachCommand(), a.stopCommand(), a.killCommand(), a.restartCommand(),
		a.pauseCommand(), a.unpauseCommand(), rm, a.containerInspectCommand(), a.waitCommand(),
		a.topCommand(), a.statsCommand(), a.renameCommand(), a.containerPruneCommand())
}

// containerCommands are the top-level container commands.
func (a *app) containerCommands() []*cobra.Command {
	return []*cobra.Command{
		a.runCommand(), a.createCommand(), a.startCommand(), a.psCommand(), a.logsCommand(),
		a.execCommand(), a.attachCommand(), a.stopCommand(), a.killCommand(), a.restartCommand(),
		a.pauseCommand(), a.unpauseCommand(), a.rmCommand(), a.inspectCommand(), a.waitCommand(),
		a.topCommand(), a.statsCommand(), a.renameCommand(), a.containerCommand(), a.systemCommand(),
	}
}

// containerCommandSets are `container` subcommands other files add in their init functions
// (cp, diff, export, commit, port live next to their top-level forms).
var containerCommandSets []func(a *app) []*cobra.Command

// registerContainerCommands adds `container` subcommands (from an init function).
func registerContainerCommands(build func(a *app) []*cobra.Command) {
	containerCommandSets = append(containerCommandSets, build)
}

// systemCommand is `system boot`.
func (a *app) systemCommand() *cobra.Command {
	boot := &cobra.Command{
		Use:   "boot",
		Short: "Start the containers whose restart policy asks for it (at machine start)",
		Long: "Start, at machine start, the containers whose restart policy asks for it, as the\n" +
			"Docker daemon does when it starts: always, unless-stopped (unless stopped by hand),\n" +
			"on-failure (after a failure). Runs that ended with the machine are recorded first,\n" +
			"and what networks of runs that ended left (addresses, links, rules) is cleaned up.\n" +
			"contrib/systemd/pull-run-boot.service runs it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			if err := a.cleanupNetworks(cmd.Context()); err != nil {
				fmt.Fprintf(a.stderr, "WARNING: network clean-up: %v\n", err)
			}
			started, err := m.Boot(cmd.Context())
			for _, id := range started {
				fmt.Fprintln(a.stdout, id)
			}
			return err
		},
	}
	return a.managementCommand("system COMMAND", "Manage pull-run", nil, boot)
}

// copyOut copies r to w until r ends; done is closed then.
func copyOut(w io.Writer, r io.Reader, done chan<- struct{}) {
	io.Copy(w, r)
	close(done)
}
