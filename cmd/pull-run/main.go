// Command pull-run is Berth's daemonless agent: it pulls images from any OCI registry into a
// local store of shared, unpacked snapshots and runs containers from them, with Docker's
// command line:
//
//	pull-run pull busybox
//	pull-run images
//	pull-run rmi busybox
//	pull-run image prune -a
//	pull-run login -u USER registry.example.com
//
// Every command works on a state root (--root, default /var/lib/berth) and a runtime
// directory (--runroot, default /run/berth) with file locks, so several pull-run processes
// can run at once; there is no daemon. Exit codes follow Docker's CLI: 0 on success, 1 when
// an image command fails (pull-run's own errors in `run` are 125, the container's status
// otherwise).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/image"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"gopkg.in/yaml.v3"
)

func main() {
	// The container runtime re-executes this binary as the container's init and monitor:
	// that dispatch must come first, before flags, cobra or goroutines.
	if container.Main() {
		return
	}
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Defaults of the global flags.
const (
	defaultRoot    = "/var/lib/berth"
	defaultRunroot = "/run/berth"
)

// imageInUse tells the image store whether a container uses an image (rmi refuses, prune
// skips it). setup sets it to the container store's answer (containersUseImage).
var imageInUse func(imageID digest.Digest) (bool, error)

// app holds the global options and the standard streams of one invocation.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	root     string
	runroot  string
	insecure []string
	logLevel string
	config   string
}

// statusError is an error with the exit status to use (Docker's CLI conventions).
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// errSilent is returned after a command printed its own errors; only the status remains.
var errSilent = errors.New("")

// execute runs pull-run with args and returns the exit status.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var se *statusError
	if errors.As(err, &se) {
		code = se.code
	}
	if !errors.Is(err, errSilent) && err.Error() != "" {
		fmt.Fprintf(stderr, "Error: %s\n", err)
	}
	return code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "pull-run [OPTIONS] COMMAND",
		Short: "Pull images and run containers, without a daemon",
		Long: "pull-run pulls images from OCI registries into shared unpacked snapshots and runs\n" +
			"containers from them, with Docker's command line and no daemon.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help'.", err, cmd.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.root, "root", defaultRoot, "Root directory of persistent state (images, snapshots, containers)")
	pf.StringVar(&a.runroot, "runroot", defaultRunroot, "Root directory of runtime state")
	pf.StringArrayVar(&a.insecure, "insecure-registry", nil, "Registry reached over plain HTTP (host, host:port or CIDR; repeatable)")
	pf.StringVar(&a.logLevel, "log-level", "warn", `Log level ("debug", "info", "warn", "error")`)
	pf.StringVar(&a.config, "config", "", "YAML file with defaults for the global options (root, runroot, insecure-registries, log-level)")

	root.AddCommand(a.pullCommand(), a.imagesCommand(), a.rmiCommand(), a.imageCommand(),
		a.loginCommand(), a.logoutCommand())
	root.AddCommand(a.containerCommands()...)
	for _, build := range commandSets {
		root.AddCommand(build(a)...)
	}
	return root
}

// commandSets are the command groups files add in their init functions (network, volume,
// image transfer…), so that each group lives in its own file.
var commandSets []func(a *app) []*cobra.Command

// registerCommands adds a group of top-level commands (from an init function).
func registerCommands(build func(a *app) []*cobra.Command) {
	commandSets = append(commandSets, build)
}

// managementCommand is a command group such as `network COMMAND`: without a subcommand it
// prints its help. Its subcommands are subs, then those the init functions of other files
// registered in sets.
func (a *app) managementCommand(use, short string, sets []func(a *app) []*cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	for _, build := range sets {
		cmd.AddCommand(build(a)...)
	}
	return cmd
}

// fileConfig is the optional --config file.
type fileConfig struct {
	Root               string   `yaml:"root"`
	Runroot            string   `yaml:"runroot"`
	InsecureRegistries []string `yaml:"insecure-registries"`
	LogLevel           string   `yaml:"log-level"`
}

// setup applies the config file (below the flags given) and the log level.
func (a *app) setup(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if a.config != "" {
		b, err := os.ReadFile(a.config)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		var fc fileConfig
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: %w", a.config, err)
		}
		if fc.Root != "" && !flags.Changed("root") {
			a.root = fc.Root
		}
		if fc.Runroot != "" && !flags.Changed("runroot") {
			a.runroot = fc.Runroot
		}
		if fc.LogLevel != "" && !flags.Changed("log-level") {
			a.logLevel = fc.LogLevel
		}
		a.insecure = append(a.insecure, fc.InsecureRegistries...)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", a.logLevel)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl})))
	imageInUse = a.containersUseImage
	return nil
}

// openImages opens the image store of the state root.
func (a *app) openImages() (*image.Store, error) {
	return image.Open(a.root, image.Options{InUse: imageInUse})
}

// isTerminal reports whether w is a terminal, and its width.
func isTerminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	return true, width
}

// exactArgs, minArgs and maxArgs check the number of arguments with Docker's messages.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return argsError(cmd, fmt.Sprintf("exactly %d argument", n), n)
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return argsError(cmd, fmt.Sprintf("at least %d argument", n), n)
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return argsError(cmd, fmt.Sprintf("at most %d argument", n), n)
		}
		return nil
	}
}

func argsError(cmd *cobra.Command, what string, n int) error {
	if n != 1 {
		what += "s"
	}
	return fmt.Errorf("%q requires %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
		cmd.CommandPath(), what, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}
