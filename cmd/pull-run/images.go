package main

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/image"
	"github.com/distribution/reference"
	"github.com/spf13/cobra"
)

// ---------------------------------------------------------------------------------------------
// pull

type pullOptions struct {
	quiet       bool
	platform    string
	concurrency int
}

func (a *app) pullCommand() *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPull(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress verbose output")
	f.StringVar(&o.platform, "platform", "", `Set platform if server is multi-platform capable (e.g. "linux/arm64")`)
	f.IntVar(&o.concurrency, "max-concurrent-downloads", image.DefaultConcurrency, "Maximum number of layers downloaded at once")
	return cmd
}

func (a *app) runPull(cmd *cobra.Command, arg string, o pullOptions) error {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(arg))
	if err != nil {
		return fmt.Errorf("invalid reference format: %s: %w", arg, err)
	}
	ref, err := client.ParseReference(arg)
	if err != nil {
		return err
	}
	if o.concurrency < 1 {
		return fmt.Errorf("invalid --max-concurrent-downloads %d: must be at least 1", o.concurrency)
	}
	opts := image.PullOptions{Concurrency: o.concurrency, Insecure: a.insecure}
	if o.platform != "" {
		p, err := image.ParsePlatform(o.platform)
		if err != nil {
			return err
		}
		opts.Platform = &p
	}
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()

	var printer *layerPrinter
	if !o.quiet {
		tty, width := isTerminal(a.stdout)
		if reference.IsNameOnly(named) {
			fmt.Fprintf(a.stdout, "Using default tag: %s\n", ref.Tag)
		}
		tagOrDigest := ref.Tag
		if ref.Digest != "" {
			tagOrDigest = ref.Digest.String()
		}
		fmt.Fprintf(a.stdout, "%s: Pulling from %s\n", tagOrDigest, ref.Repository)
		printer = newPullPrinter(a.stdout, tty, width)
		opts.Progress = printer
	}
	img, err := store.Pull(cmd.Context(), arg, opts)
	if printer != nil {
		printer.Flush()
	}
	if err != nil {
		return err
	}
	if !o.quiet {
		fmt.Fprintf(a.stdout, "Digest: %s\n", img.PullInfo.Digest)
		if img.PullInfo.Updated {
			fmt.Fprintf(a.stdout, "Status: Downloaded newer image for %s\n", ref.Familiar())
		} else {
			fmt.Fprintf(a.stdout, "Status: Image is up to date for %s\n", ref.Familiar())
		}
	}
	fmt.Fprintln(a.stdout, ref.String())
	return nil
}

// ---------------------------------------------------------------------------------------------
// images

type imagesOptions struct {
	all     bool
	quiet   bool
	digests bool
	noTrunc bool
	format  string
	filters []string
}

// imageRow is one line of `images` (and its --format json object, Docker's keys).
type imageRow struct {
	Containers   string
	CreatedAt    string
	CreatedSince string
	Digest       string
	ID           string
	Repository   string
	SharedSize   string
	Size         string
	Tag          string
	UniqueSize   string
	VirtualSize  string
}

var imageHeader = imageRow{Containers: "CONTAINERS", CreatedAt: "CREATED AT", CreatedSince: "CREATED", Digest: "DIGEST",
	ID: "IMAGE ID", Repository: "REPOSITORY", SharedSize: "SHARED SIZE", Size: "SIZE", Tag: "TAG",
	UniqueSize: "UNIQUE SIZE", VirtualSize: "VIRTUAL SIZE"}

func (a *app) imagesCommand() *cobra.Command {
	cmd := a.imageListCommand()
	cmd.Use = "images [OPTIONS] [REPOSITORY[:TAG]]"
	cmd.Aliases = nil
	return cmd
}

func (a *app) imageListCommand() *cobra.Command {
	var o imagesOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			return a.runImages(pattern, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all images (there are no intermediate images: same as without)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&o.digests, "digests", false, "Show digests")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringVar(&o.format, "format", "", "Format output using a custom template:\n'table':            Print output in table format with column headers (default)\n'table TEMPLATE':   Print output in table format using the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, `Filter output based on conditions provided ("dangling=true|false", "reference=PATTERN")`)
	return cmd
}

// refParts splits a normalised reference into its familiar repository and tag or digest.
func refParts(ref string) (repo, tag, dgst string) {
	r, err := client.ParseReference(ref)
	if err != nil {
		return ref, "<none>", "<none>"
	}
	repo = r.Repo().Familiar()
	tag, dgst = "<none>", "<none>"
	if r.Tag != "" {
		tag = r.Tag
	}
	if r.Digest != "" {
		dgst = r.Digest.String()
	}
	return repo, tag, dgst
}

// refMatcher matches references against `images REPOSITORY[:TAG]` (globs allowed), as
// Docker's reference filter: the familiar name or the full name.
type refMatcher struct {
	repo, tag string
}

func newRefMatcher(pattern string) refMatcher {
	m := refMatcher{repo: pattern}
	if i := strings.LastIndexByte(pattern, ':'); i > strings.LastIndexByte(pattern, '/') {
		m.repo, m.tag = pattern[:i], pattern[i+1:]
	}
	return m
}

func (m refMatcher) match(repo, tag string) bool {
	full := repo
	if r, err := client.ParseRepository(repo); err == nil {
		full = r.Name()
	}
	ok1, _ := path.Match(m.repo, repo)
	ok2, _ := path.Match(m.repo, full)
	if !ok1 && !ok2 {
		return false
	}
	if m.tag == "" {
		return true
	}
	ok, _ := path.Match(m.tag, tag)
	return ok
}

func (a *app) runImages(pattern string, o imagesOptions) error {
	var matchers []refMatcher
	if pattern != "" {
		matchers = append(matchers, newRefMatcher(pattern))
	}
	dangling := ""
	for _, f := range o.filters {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case ok && k == "dangling" && (v == "true" || v == "false" || v == "1" || v == "0"):
			dangling = map[string]string{"1": "true", "0": "false"}[v]
			if dangling == "" {
				dangling = v
			}
		case ok && k == "reference":
			matchers = append(matchers, newRefMatcher(v))
		default:
			return fmt.Errorf("invalid filter %q: supported are dangling=true|false and reference=PATTERN", f)
		}
	}
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()
	imgs, err := store.Images()
	if err != nil {
		return err
	}
	now := time.Now()
	var rows []imageRow
	for _, img := range imgs {
		isDangling := len(img.RepoTags) == 0
		if dangling == "true" && !isDangling || dangling == "false" && isDangling {
			continue
		}
		base := imageRow{Containers: "N/A", SharedSize: "N/A", UniqueSize: "N/A",
			ID: img.ShortID(), Size: humanSize(img.Size), VirtualSize: humanSize(img.Size),
			CreatedSince: createdSince(img.Created, now), CreatedAt: createdAt(img.Created)}
		if o.noTrunc {
			base.ID = img.ID.String()
		}
		// One row per tag; digest references show in the DIGEST column of their
		// repository's tags, or as rows of their own when the repository has no tag.
		digestOf := map[string]string{}
		for _, d := range img.RepoDigests {
			repo, _, dg := refParts(d)
			if _, ok := digestOf[repo]; !ok {
				digestOf[repo] = dg
			}
		}
		var imgRows []imageRow
		tagged := map[string]bool{}
		for _, t := range img.RepoTags {
			repo, tag, _ := refParts(t)
			r := base
			r.Repository, r.Tag, r.Digest = repo, tag, "<none>"
			if d, ok := digestOf[repo]; ok {
				r.Digest = d
			}
			tagged[repo] = true
			imgRows = append(imgRows, r)
		}
		for _, d := range img.RepoDigests {
			repo, _, dg := refParts(d)
			if tagged[repo] {
				continue
			}
			r := base
			r.Repository, r.Tag, r.Digest = repo, "<none>", dg
			imgRows = append(imgRows, r)
			if !o.digests {
				tagged[repo] = true // one <none> row per repository without --digests
			}
		}
		if len(imgRows) == 0 {
			r := base
			r.Repository, r.Tag, r.Digest = "<none>", "<none>", "<none>"
			imgRows = append(imgRows, r)
		}
		for _, r := range imgRows {
			if len(matchers) > 0 && !slices.ContainsFunc(matchers, func(m refMatcher) bool { return m.match(r.Repository, r.Tag) }) {
				continue
			}
			rows = append(rows, r)
		}
	}
	if o.quiet {
		for _, r := range rows {
			fmt.Fprintln(a.stdout, r.ID)
		}
		return nil
	}
	def := "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	if o.digests {
		def = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	}
	return formatRows(a.stdout, o.format, def, imageHeader, rows)
}

// createdAt is Docker's CreatedAt: "2006-01-02 15:04:05 -0700 MST" in local time.
func createdAt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return time.Unix(t.Unix(), 0).String()
}

// ---------------------------------------------------------------------------------------------
// rmi

func (a *app) rmiCommand() *cobra.Command {
	cmd := a.imageRemoveCommand()
	cmd.Use = "rmi [OPTIONS] IMAGE [IMAGE...]"
	cmd.Aliases = nil
	return cmd
}

func (a *app) imageRemoveCommand() *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] IMAGE [IMAGE...]",
		Aliases: []string{"rmi", "remove"},
		Short:   "Remove one or more images",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRmi(args, force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Accepted for compatibility (snapshots no image uses are always freed)")
	return cmd
}

func (a *app) runRmi(args []string, force bool) error {
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()
	failed := false
	for _, arg := range args {
		items, err := store.Remove(arg, force)
		for _, it := range items {
			if it.Untagged != "" {
				fmt.Fprintf(a.stdout, "Untagged: %s\n", it.Untagged)
			}
			if it.Deleted != "" {
				fmt.Fprintf(a.stdout, "Deleted: %s\n", it.Deleted)
			}
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "Error: %s\n", imageError(arg, err))
			failed = true
		}
	}
	if failed {
		return errSilent
	}
	return nil
}

// imageError words an image store error as Docker does ("No such image: busybox:latest").
func imageError(arg string, err error) string {
	if errors.Is(err, image.ErrNotFound) {
		name := arg
		if !strings.HasPrefix(arg, "sha256:") {
			if r, perr := client.ParseReference(arg); perr == nil {
				name = r.Familiar()
			}
		}
		return "No such image: " + name
	}
	return err.Error()
}

// ---------------------------------------------------------------------------------------------
// image (management command)

func (a *app) imageCommand() *cobra.Command {
	return a.managementCommand("image COMMAND", "Manage images", imageCommandSets,
		a.imageListCommand(), a.imageRemoveCommand(), a.pullCommand(), a.imagePruneCommand(), a.imageInspectCommand())
}

// imageCommandSets are `image` subcommands other files add in their init functions
// (tag, push, save, load, import live next to their top-level forms).
var imageCommandSets []func(a *app) []*cobra.Command

// registerImageCommands adds `image` subcommands (from an init function).
func registerImageCommands(build func(a *app) []*cobra.Command) {
	imageCommandSets = append(imageCommandSets, build)
}

func (a *app) imagePruneCommand() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPrune(all, force)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

func (a *app) runPrune(all, force bool) error {
	warning := "WARNING! This will remove all dangling images."
	if all {
		warning = "WARNING! This will remove all images without at least one container associated to them."
	}
	if !force && !a.confirm(warning) {
		return nil
	}
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := store.Prune(all)
	var lines []string
	for _, it := range rep.ImagesDeleted {
		if it.Untagged != "" {
			lines = append(lines, "untagged: "+it.Untagged)
		}
		if it.Deleted != "" {
			lines = append(lines, "deleted: "+it.Deleted)
		}
	}
	a.printDeleted("Deleted Images:", lines)
	fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(rep.SpaceReclaimed))
	return err
}

func (a *app) imageInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runImageInspect(args, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template ('json' or a Go template)")
	return cmd
}

func (a *app) runImageInspect(args []string, format string) error {
	store, err := a.openImages()
	if err != nil {
		return err
	}
	defer store.Close()
	var found []any
	var errs []string
	for _, arg := range args {
		r, err := store.Inspect(arg)
		if err != nil {
			errs = append(errs, imageError(arg, err))
			continue
		}
		found = append(found, r)
	}
	if err := a.printInspect(found, format); err != nil {
		return err
	}
	return a.printErrors(errs)
}
