package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/berth-registry/berth/runner/volume"
	"github.com/spf13/cobra"
)

func init() {
	registerCommands(func(a *app) []*cobra.Command { return []*cobra.Command{a.volumeCommand()} })
}

// volumeCommand is `volume create|ls|inspect|rm|prune`.
func (a *app) volumeCommand() *cobra.Command {
	return a.managementCommand("volume COMMAND", "Manage volumes", nil,
		a.volumeCreateCommand(), a.volumeListCommand(), a.volumeInspectCommand(),
		a.volumeRemoveCommand(), a.volumePruneCommand())
}

func (a *app) openVolumes() (*volume.Store, error) {
	return volume.Open(a.root)
}

func (a *app) volumeCreateCommand() *cobra.Command {
	var driver string
	var labels []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			lm, err := keyValues("label", labels, true)
			if err != nil {
				return err
			}
			s, err := a.openVolumes()
			if err != nil {
				return err
			}
			v, err := s.Create(cmd.Context(), name, volume.CreateOptions{Driver: driver, Labels: lm})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, v.Name)
			return nil
		},
	}
	cmd.Flags().StringVarP(&driver, "driver", "d", volume.DriverLocal, "Specify volume driver name")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	return cmd
}

// volumeRow is a line of volume ls (and its --format json object, as Docker's).
type volumeRow struct {
	Availability string `json:"Availability"`
	Driver       string `json:"Driver"`
	Group        string `json:"Group"`
	Labels       string `json:"Labels"`
	Links        string `json:"Links"`
	Mountpoint   string `json:"Mountpoint"`
	Name         string `json:"Name"`
	Scope        string `json:"Scope"`
	Size         string `json:"Size"`
	Status       string `json:"Status"`
}

// volumeFilter parses the --filter flags of volume ls and prune.
func volumeFilter(filters []string) (volume.Filter, error) {
	fm, err := parseFilters(filters)
	if err != nil {
		return nil, err
	}
	f := volume.Filter(fm)
	if err := volume.ParseFilter(f); err != nil {
		return nil, err
	}
	return f, nil
}

func (a *app) volumeListCommand() *cobra.Command {
	var quiet bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := volumeFilter(filters)
			if err != nil {
				return err
			}
			s, err := a.openVolumes()
			if err != nil {
				return err
			}
			vols, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			var rows []volumeRow
			for _, v := range vols {
				if !f.Match(v) {
					continue
				}
				if quiet {
					fmt.Fprintln(a.stdout, v.Name)
					continue
				}
				rows = append(rows, volumeRow{Availability: "N/A", Driver: v.Driver, Group: "N/A",
					Labels: labelString(v.Labels), Links: fmt.Sprint(len(v.Refs)), Mountpoint: v.Mountpoint,
					Name: v.Name, Scope: "local", Size: "N/A", Status: "N/A"})
			}
			if quiet {
				return nil
			}
			header := volumeRow{Availability: "AVAILABILITY", Driver: "DRIVER", Group: "GROUP", Labels: "LABELS",
				Links: "LINKS", Mountpoint: "MOUNTPOINT", Name: "VOLUME NAME", Scope: "SCOPE", Size: "SIZE", Status: "STATUS"}
			return formatRows(a.stdout, format, "{{.Driver}}\t{{.Name}}", header, rows)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template ('table', 'json' or a Go template)")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Provide filter values (e.g. \"dangling=true\")")
	return cmd
}

// volumeInspect is docker volume inspect's object.
type volumeInspect struct {
	CreatedAt  string            `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
}

func (a *app) volumeInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openVolumes()
			if err != nil {
				return err
			}
			var found []any
			var errs []string
			for _, name := range args {
				v, err := s.Get(cmd.Context(), name)
				if err != nil {
					errs = append(errs, volumeError(name, err))
					continue
				}
				found = append(found, volumeInspect{CreatedAt: v.CreatedAt.Local().Format(time.RFC3339),
					Driver: v.Driver, Labels: v.Labels, Mountpoint: v.Mountpoint, Name: v.Name,
					Options: v.Options, Scope: "local"})
			}
			if err := a.printInspect(found, format); err != nil {
				return err
			}
			return a.printErrors(errs)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template ('json' or a Go template)")
	return cmd
}

// volumeError is Docker's wording for a volume that is not there.
func volumeError(name string, err error) string {
	if errors.Is(err, volume.ErrNotFound) {
		return "No such volume: " + name
	}
	return err.Error()
}

func (a *app) volumeRemoveCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openVolumes()
			if err != nil {
				return err
			}
			return a.eachContainer(args, func(name string) error {
				return s.Remove(cmd.Context(), name, force)
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func (a *app) volumePruneCommand() *cobra.Command {
	var force, all bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := volumeFilter(filters)
			if err != nil {
				return err
			}
			warning := "WARNING! This will remove anonymous local volumes not used by at least one container."
			if all {
				warning = "WARNING! This will remove all local volumes not used by at least one container."
			}
			if !force && !a.confirm(warning) {
				return nil
			}
			s, err := a.openVolumes()
			if err != nil {
				return err
			}
			rep, err := s.Prune(cmd.Context(), all, f)
			a.printDeleted("Deleted Volumes:", rep.VolumesDeleted)
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "label=<label>")`)
	return cmd
}
