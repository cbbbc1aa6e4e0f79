package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/image"
	"github.com/distribution/reference"
	"github.com/spf13/cobra"
)

// The image transfer commands: tag, push, save, load, import (top-level and under `image`).
func init() {
	build := func(a *app) []*cobra.Command {
		return []*cobra.Command{a.tagCommand(), a.pushCommand(), a.saveCommand(), a.loadCommand(), a.importCommand()}
	}
	registerCommands(build)
	registerImageCommands(build)
}

// ---------------------------------------------------------------------------------------------
// tag

func (a *app) tagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := reference.ParseNormalizedNamed(args[1]); err != nil {
				return fmt.Errorf("invalid reference format: %s", args[1])
			}
			store, err := a.openImages()
			if err != nil {
				return err
			}
			defer store.Close()
			if err := store.Tag(args[0], args[1]); err != nil {
				if errors.Is(err, image.ErrNotFound) {
					return fmt.Errorf("No such image: %s", args[0])
				}
				return err
			}
			return nil
		},
	}
}

// ---------------------------------------------------------------------------------------------
// push

type pushOptions struct {
	allTags bool
	quiet   bool
}

func (a *app) pushCommand() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPush(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.allTags, "all-tags", "a", false, "Push all tags of an image to the repository")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress verbose output")
	return cmd
}

func (a *app) runPush(cmd *cobra.Command, arg string, o pushOptions) error {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(arg))
	if err != nil {
		return fmt.Errorf("invalid reference format: %s", arg)
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("cannot push a digest reference")
	}
	_, tagged := named.(reference.Tagged)
	if o.allTags && tagged {
		return errors.New("tag can't be used with --all-tags/-a")
	}
	repo, err := client.ParseRepository(reference.TrimNamed(named).String())
	if err != nil {
		return err
	}
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()

	var refs []string
	switch {
	case o.allTags:
		if refs, err = store.TagsOf(repo.Name()); err != nil {
			return err
		}
		if len(refs) == 0 {
			return fmt.Errorf("An image does not exist locally with the tag: %s", reference.FamiliarString(named))
		}
	default:
		if !tagged && !o.quiet {
			fmt.Fprintln(a.stdout, "Using default tag: latest")
		}
		refs = []string{reference.TagNameOnly(named).String()}
	}
	if !o.quiet {
		fmt.Fprintf(a.stdout, "The push refers to repository [%s]\n", repo.Name())
	}
	c := client.New(client.Options{Credentials: client.DefaultCredentials(store.AuthFile()), Insecure: a.insecure})
	for _, ref := range refs {
		if _, err := store.Lookup(ref); err != nil {
			if errors.Is(err, image.ErrNotFound) {
				return fmt.Errorf("An image does not exist locally with the tag: %s", image.Familiar(ref))
			}
			return err
		}
		opts := image.PushOptions{Client: c}
		var printer *layerPrinter
		if !o.quiet {
			tty, width := isTerminal(a.stdout)
			printer = newPushPrinter(a.stdout, tty, width)
			opts.Progress = printer
		}
		res, err := store.Push(cmd.Context(), ref, opts)
		if printer != nil {
			printer.Flush()
		}
		if err != nil {
			return err
		}
		if o.quiet {
			fmt.Fprintln(a.stdout, res.Reference)
		} else {
			fmt.Fprintf(a.stdout, "%s: digest: %s size: %d\n", res.Tag, res.Digest, res.Size)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// save

func (a *app) saveCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runSave(cmd, args, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func (a *app) runSave(cmd *cobra.Command, args []string, output string) error {
	var w io.Writer = a.stdout
	var tmp *os.File
	if output == "" || output == "-" {
		if f, ok := a.stdout.(*os.File); ok && isTTY(f) {
			return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
	} else {
		// Written next to the target and renamed at the end: no half-written archive.
		abs, err := filepath.Abs(output)
		if err != nil {
			return err
		}
		tmp, err = os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-*")
		if err != nil {
			return fmt.Errorf("failed to save image: %w", err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		w = tmp
	}
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Save(cmd.Context(), w, args, image.SaveOptions{Insecure: a.insecure}); err != nil {
		if errors.Is(err, image.ErrNotFound) {
			return fmt.Errorf("failed to save image: %w", err)
		}
		return err
	}
	if tmp != nil {
		if err := tmp.Chmod(0o644); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		abs, _ := filepath.Abs(output)
		if err := os.Rename(tmp.Name(), abs); err != nil {
			return err
		}
		tmp = nil
	}
	return nil
}

func isTTY(f *os.File) bool {
	tty, _ := isTerminal(f)
	return tty
}

// ---------------------------------------------------------------------------------------------
// load

func (a *app) loadCommand() *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = a.stdin
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			} else if f, ok := a.stdin.(*os.File); ok && isTTY(f) {
				return errors.New("requested load from stdin, but stdin is empty")
			}
			store, err := a.openImages()
			if err != nil {
				return err
			}
			defer store.Close()
			loaded, err := store.Load(cmd.Context(), r)
			for _, li := range loaded {
				if len(li.Tags) == 0 {
					fmt.Fprintf(a.stdout, "Loaded image ID: %s\n", li.ID)
				}
				for _, t := range li.Tags {
					fmt.Fprintf(a.stdout, "Loaded image: %s\n", image.Familiar(t))
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	// docker load -q hides the progress bars only; load shows none, so it is accepted and
	// changes nothing.
	f.BoolP("quiet", "q", false, "Suppress the load output")
	return cmd
}

// ---------------------------------------------------------------------------------------------
// import

func (a *app) importCommand() *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|-|URL [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  func(cmd *cobra.Command, args []string) error { return rangeArgs(cmd, args, 1, 2) },
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := image.ImportOptions{Changes: changes, Message: message, Source: args[0]}
			if len(args) == 2 {
				if _, err := reference.ParseNormalizedNamed(args[1]); err != nil {
					return fmt.Errorf("invalid reference format: %s", args[1])
				}
				opts.Ref = args[1]
			}
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return err
				}
				opts.Platform = &p
			}
			var r io.Reader = a.stdin
			if args[0] != "-" {
				if strings.Contains(args[0], "://") {
					return fmt.Errorf("importing from a URL is not supported: %s", args[0])
				}
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			store, err := a.openImages()
			if err != nil {
				return err
			}
			defer store.Close()
			img, err := store.Import(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, img.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	f.StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	f.StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

// rangeArgs checks min ≤ len(args) ≤ max with Docker's messages.
func rangeArgs(cmd *cobra.Command, args []string, lo, hi int) error {
	if err := minArgs(lo)(cmd, args); err != nil {
		return err
	}
	return maxArgs(hi)(cmd, args)
}
