package main

// The container file system commands: commit, diff, export, cp (top-level and under
// `container`), with Docker's flags, output and messages. Errors exit 1, as docker's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/image"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() {
	build := func(a *app) []*cobra.Command {
		return []*cobra.Command{a.commitCommand(), a.diffCommand(), a.exportCommand(), a.cpCommand()}
	}
	registerCommands(build)
	registerContainerCommands(build)
}

// ---------------------------------------------------------------------------------------------
// commit

type commitOptions struct {
	author  string
	changes []string
	message string
	pause   bool
}

func (a *app) commitCommand() *cobra.Command {
	var o commitOptions
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  func(cmd *cobra.Command, args []string) error { return checkArgRange(cmd, args, 1, 2) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			return a.runCommit(cmd.Context(), args[0], ref, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	f.StringArrayVarP(&o.changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	f.StringVarP(&o.message, "message", "m", "", "Commit message")
	f.BoolVarP(&o.pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

// checkArgRange checks that between min and max arguments were given, in Docker's words.
func checkArgRange(cmd *cobra.Command, args []string, min, max int) error {
	if len(args) < min {
		return minArgs(min)(cmd, args)
	}
	if len(args) > max {
		return maxArgs(max)(cmd, args)
	}
	return nil
}

func (a *app) runCommit(ctx context.Context, name, ref string, o commitOptions) error {
	if ref != "" {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return fmt.Errorf("invalid reference format: %s", ref)
		}
		if _, ok := named.(reference.Digested); ok {
			return errors.New("refusing to create a tag with a digest reference")
		}
		ref = reference.TagNameOnly(named).String()
	}
	m, err := a.openContainers()
	if err != nil {
		return err
	}
	c, st, err := m.Get(name)
	if err != nil {
		return err
	}
	if st.Status == container.StatusRemoving || st.Status == container.StatusDead {
		return fmt.Errorf("cannot commit container %s: it is %s", c.ID, st.Status)
	}
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()
	base, err := store.Lookup(c.Image)
	if err != nil {
		return fmt.Errorf("image %s of container %s: %w", c.Image, name, err)
	}
	baseCfg, _, err := store.ConfigOf(base)
	if err != nil {
		return err
	}
	cfg := commitConfig(baseCfg, c)
	if err := image.ApplyChanges(&cfg.Config, o.changes); err != nil {
		return err
	}

	// Pause a running container while its changes are read (a paused one stays paused).
	var unpause func()
	if o.pause && st.Status == container.StatusRunning {
		if err := m.Pause(ctx, c.ID); err != nil {
			return err
		}
		var once sync.Once
		unpause = func() {
			once.Do(func() {
				if err := m.Unpause(context.WithoutCancel(ctx), c.ID); err != nil {
					fmt.Fprintf(a.stderr, "Error: unpause %s: %s\n", c.ID, err)
				}
			})
		}
		defer unpause()
	}
	diff, err := c.Diff(ctx)
	if err != nil {
		return err
	}
	has := !diff.Empty()
	now := time.Now().UTC()
	cfg.Created = &now
	cfg.Author = o.author
	cfg.History = append(cfg.History, ocispec.History{
		Created:    &now,
		CreatedBy:  strings.Join(c.Config.Cmd, " "),
		Author:     o.author,
		Comment:    o.message,
		EmptyLayer: !has,
	})
	opts := image.CreateOptions{Base: base, Config: cfg, Ref: ref, AllowDevices: true}
	var pr *io.PipeReader
	if has {
		var pw *io.PipeWriter
		pr, pw = io.Pipe()
		go func() {
			err := diff.WriteLayer(ctx, pw)
			if unpause != nil {
				unpause()
			}
			pw.CloseWithError(err)
		}()
		opts.Layers = []io.Reader{pr}
	} else if unpause != nil {
		unpause()
	}
	img, err := store.Create(ctx, opts)
	if pr != nil {
		pr.CloseWithError(errors.New("commit ended"))
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, img.ID.String())
	return nil
}

// commitConfig is the new image's config: the base image's, with the container's
// configuration (Docker's: Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts,
// Volumes, StopSignal) as its runtime config.
func commitConfig(base *ocispec.Image, c *container.Container) ocispec.Image {
	cfg := *base
	cfg.History = append([]ocispec.History(nil), base.History...)
	cc := c.Config
	ic := cfg.Config
	ic.User = cc.User
	ic.Env = append([]string(nil), cc.Env...)
	ic.Cmd = append([]string(nil), cc.Cmd...)
	ic.Entrypoint = append([]string(nil), cc.Entrypoint...)
	ic.WorkingDir = cc.WorkingDir
	ic.StopSignal = cc.StopSignal
	ic.ExposedPorts = copySet(cc.ExposedPorts)
	ic.Volumes = copySet(cc.Volumes)
	ic.Labels = nil
	if len(cc.Labels) > 0 {
		ic.Labels = map[string]string{}
		for k, v := range cc.Labels {
			ic.Labels[k] = v
		}
	}
	if len(ic.Cmd) == 0 {
		ic.Cmd = nil
	}
	if len(ic.Entrypoint) == 0 {
		ic.Entrypoint = nil
	}
	cfg.Config = ic
	return cfg
}

func copySet(m map[string]struct{}) map[string]struct{} {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// diff

func (a *app) diffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			chs, err := m.Changes(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, c := range chs {
				fmt.Fprintln(a.stdout, c.String())
			}
			return nil
		},
	}
}

// ---------------------------------------------------------------------------------------------
// export

func (a *app) exportCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				if tty, _ := isTerminal(a.stdout); tty {
					return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
				}
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			return writeOutput(output, a.stdout, func(w io.Writer) error {
				return m.Export(cmd.Context(), args[0], w)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

// writeOutput runs write to stdout, or (with a file name) to a temporary file next to it
// that is renamed over it on success, as Docker's CLI does.
func writeOutput(file string, stdout io.Writer, write func(io.Writer) error) error {
	if file == "" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(file), ".pull-run-output-")
	if err != nil {
		return fmt.Errorf("failed to create a temporary file: %w", err)
	}
	tmp := f.Name()
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to save to %s: %w", file, err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// cp

type cpOptions struct {
	archive, follow, quiet bool
}

func (a *app) cpCommand() *cobra.Command {
	var o cpOptions
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tpull-run cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: "Copy files/folders between a container and the local filesystem\n\n" +
			"Use '-' as the source to read a tar archive from stdin\n" +
			"and extract it to a directory destination in a container.\n" +
			"Use '-' as the destination to stream a tar archive of a\n" +
			"container source to stdout.",
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runCp(cmd.Context(), args[0], args[1], o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	f.BoolVarP(&o.follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached")
	return cmd
}

// splitCpArg splits "CONTAINER:PATH"; a local path (absolute, or starting with ".") has no
// container even with a colon in it, as Docker's.
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ctr, p
}

// hasTrailingSep reports whether p names a directory by its form ("dir/", "dir/.").
func hasTrailingSep(p string) bool {
	return strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || p == "."
}

func (a *app) runCp(ctx context.Context, src, dst string, o cpOptions) error {
	srcCtr, srcPath := splitCpArg(src)
	dstCtr, dstPath := splitCpArg(dst)
	switch {
	case srcCtr != "" && dstCtr != "":
		return errors.New("copying between containers is not supported")
	case srcCtr == "" && dstCtr == "":
		return errors.New("must specify at least one container source")
	}
	m, err := a.openContainers()
	if err != nil {
		return err
	}
	if srcCtr != "" {
		return a.copyFromContainer(ctx, m, srcCtr, srcPath, dstPath, o)
	}
	return a.copyToContainer(ctx, m, srcPath, dstCtr, dstPath, o)
}

// countingWriter counts what passes.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// copied prints Docker's "Successfully copied" line, on a terminal only.
func (a *app) copied(o cpOptions, n int64, to string) {
	if tty, _ := isTerminal(a.stderr); tty && !o.quiet {
		fmt.Fprintf(a.stderr, "Successfully copied %s to %s\n", humanSize(n), to)
	}
}

func notFoundIn(err error, p, ctr string) error {
	if errors.Is(err, container.ErrPathNotFound) {
		return fmt.Errorf("Could not find the file %s in container %s", p, ctr)
	}
	return err
}

func (a *app) copyFromContainer(ctx context.Context, m *container.Manager, ctr, srcPath, dst string, o cpOptions) error {
	if srcPath == "" {
		return errors.New("source path cannot be empty")
	}
	if dst == "" {
		return errors.New("destination path cannot be empty")
	}
	follow := o.follow || hasTrailingSep(srcPath)
	st, err := m.StatPath(ctx, ctr, srcPath, follow)
	if err != nil {
		return notFoundIn(err, srcPath, ctr)
	}
	if hasTrailingSep(srcPath) && !st.IsDir() {
		return fmt.Errorf("%s: not a directory", srcPath)
	}
	srcBase := path.Base(path.Clean("/" + srcPath))
	if srcBase == "/" {
		srcBase = "."
	}
	contents := st.IsDir() && (strings.HasSuffix(srcPath, "/.") || srcPath == ".")
	if dst == "-" {
		name := srcBase
		if contents {
			name = "."
		}
		return m.ArchivePath(ctx, ctr, srcPath, follow, name, a.stdout)
	}

	// The host destination: never written through a symlink it does not name as a
	// directory ("dst/"), and nothing in the copied tree is followed.
	if lst, err := os.Lstat(dst); err == nil && lst.Mode()&fs.ModeSymlink != 0 && !strings.HasSuffix(dst, "/") {
		return fmt.Errorf("destination %q is a symbolic link: pull-run does not copy through it (name the directory it points to, or write %q to copy into it)", dst, dst+"/")
	}
	var dstDir, name string
	dstSt, err := os.Stat(dst)
	switch {
	case err == nil && dstSt.IsDir():
		dstDir, name = dst, srcBase
		if contents {
			name = "."
		}
	case err == nil:
		if st.IsDir() {
			return fmt.Errorf("cannot overwrite non-directory %q with directory %q", dst, srcPath)
		}
		if hasTrailingSep(dst) {
			return fmt.Errorf("%s: not a directory", dst)
		}
		dstDir, name = filepath.Dir(dst), filepath.Base(dst)
	case errors.Is(err, fs.ErrNotExist):
		if !st.IsDir() && hasTrailingSep(dst) {
			return fmt.Errorf("destination directory %q must exist: no such directory", dst)
		}
		dstDir, name = filepath.Dir(filepath.Clean(dst)), filepath.Base(filepath.Clean(dst))
	default:
		return err
	}
	dfd, err := unix.Open(dstDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("destination directory %q: %w", dstDir, err)
	}
	defer unix.Close(dfd)
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw}
	go func() {
		pw.CloseWithError(m.ArchivePath(ctx, ctr, srcPath, follow, name, cw))
	}()
	skipped := 0
	err = container.Extract(ctx, pr, dfd, container.ExtractOptions{Owner: container.OwnerCaller, NoDevices: true,
		Skipped: func(string) { skipped++ }})
	pr.CloseWithError(errors.New("copy ended"))
	if skipped > 0 {
		fmt.Fprintf(a.stderr, "pull-run: %d device node(s) not copied: pull-run does not create devices on the host\n", skipped)
	}
	if err != nil {
		return notFoundIn(err, srcPath, ctr)
	}
	a.copied(o, cw.n, dst)
	return nil
}

func (a *app) copyToContainer(ctx context.Context, m *container.Manager, src, ctr, dstPath string, o cpOptions) error {
	if src == "" {
		return errors.New("source path cannot be empty")
	}
	if dstPath == "" {
		return errors.New("destination path cannot be empty")
	}
	owner := container.OwnerRoot
	if o.archive {
		owner = container.OwnerArchive
	}
	dstSt, err := m.StatPath(ctx, ctr, dstPath, true)
	if err != nil && !errors.Is(err, container.ErrPathNotFound) {
		return err
	}
	if src == "-" {
		if err != nil {
			return notFoundIn(err, dstPath, ctr)
		}
		if !dstSt.IsDir() {
			return fmt.Errorf("destination \"%s:%s\" must be a directory", ctr, dstPath)
		}
		return m.ExtractToDir(ctx, ctr, dstSt.Path, a.stdin, container.ExtractOptions{Owner: owner})
	}

	// The host source: its final symlink is followed with -L (or a trailing "/").
	srcAbs, aerr := filepath.Abs(src)
	if aerr != nil {
		return aerr
	}
	lst, lerr := os.Lstat(srcAbs)
	if lerr != nil {
		return lerr
	}
	srcIsDir := lst.IsDir()
	if o.follow || hasTrailingSep(src) {
		if srcAbs, err = filepath.EvalSymlinks(srcAbs); err != nil {
			return err
		}
		st, err := os.Stat(srcAbs)
		if err != nil {
			return err
		}
		srcIsDir = st.IsDir()
	}
	if hasTrailingSep(src) && !srcIsDir {
		return fmt.Errorf("%s: not a directory", src)
	}
	srcBase := filepath.Base(filepath.Clean(src))
	if filepath.Clean(src) == "/" {
		srcBase = "."
	}
	contents := srcIsDir && (strings.HasSuffix(src, "/.") || src == ".")

	var dstDir, name string
	switch {
	case err == nil && dstSt.IsDir():
		dstDir, name = dstSt.Path, srcBase
		if contents {
			name = "."
		}
	case err == nil:
		if srcIsDir {
			return fmt.Errorf("cannot overwrite non-directory \"%s:%s\" with directory %q", ctr, dstPath, src)
		}
		dstDir, name = path.Dir(dstSt.Path), path.Base(dstSt.Path)
	default:
		if !srcIsDir && hasTrailingSep(dstPath) {
			return fmt.Errorf("destination directory \"%s:%s\" must exist: no such directory", ctr, dstPath)
		}
		clean := path.Clean("/" + dstPath)
		dstDir, name = path.Dir(clean), path.Base(clean)
	}
	parent, base := filepath.Dir(srcAbs), filepath.Base(srcAbs)
	if srcAbs == "/" {
		parent, base = "/", "."
	}
	pfd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", parent, err)
	}
	defer unix.Close(pfd)
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw}
	go func() {
		pw.CloseWithError(container.WriteTree(ctx, cw, pfd, base, name))
	}()
	err = m.ExtractToDir(ctx, ctr, dstDir, pr, container.ExtractOptions{Owner: owner})
	pr.CloseWithError(errors.New("copy ended"))
	if err != nil {
		return notFoundIn(err, dstDir, ctr)
	}
	a.copied(o, cw.n, ctr+":"+dstPath)
	return nil
}
