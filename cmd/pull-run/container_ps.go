package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/berth-registry/berth/runner/container"
	"github.com/spf13/cobra"
)

// psRow is one line of `ps` (and its --format json object, Docker's keys).
type psRow struct {
	Command      string
	CreatedAt    string
	ID           string
	Image        string
	Labels       string
	LocalVolumes string
	Mounts       string
	Names        string
	Networks     string
	Ports        string
	RunningFor   string
	Size         string
	State        string
	Status       string

	labels map[string]string
}

// Label is Docker's {{.Label "key"}}.
func (r psRow) Label(key string) string { return r.labels[key] }

var psHeader = psRow{Command: "COMMAND", CreatedAt: "CREATED AT", ID: "CONTAINER ID", Image: "IMAGE",
	Labels: "LABELS", LocalVolumes: "LOCAL VOLUMES", Mounts: "MOUNTS", Names: "NAMES", Networks: "NETWORKS",
	Ports: "PORTS", RunningFor: "CREATED", Size: "SIZE", State: "STATE", Status: "STATUS"}

const psDefaultTable = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

type psOptions struct {
	all, quiet, noTrunc, latest bool
	last                        int
	filters                     []string
	format                      string
}

func (a *app) psCommand() *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPs(cmd, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&o.latest, "latest", "l", false, "Show the latest created container (includes all states)")
	f.IntVarP(&o.last, "last", "n", -1, "Show n last created containers (includes all states)")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided (status=, name=, label=, ancestor=, exited=, id=, before=, since=)")
	f.StringVar(&o.format, "format", "", "Format output using a custom template:\n'table':            Print output in table format with column headers (default)\n'table TEMPLATE':   Print output in table format using the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	return cmd
}

func (a *app) runPs(cmd *cobra.Command, o psOptions) error {
	filters, err := parseFilters(o.filters)
	if err != nil {
		return err
	}
	m, err := a.openContainers()
	if err != nil {
		return err
	}
	lo := container.ListOptions{All: o.all, Filters: filters, Latest: o.latest}
	if o.last > 0 {
		lo.Limit = o.last
	}
	list, err := m.List(cmd.Context(), lo)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := make([]psRow, 0, len(list))
	for _, s := range list {
		rows = append(rows, newPsRow(s, !o.noTrunc, now))
	}
	if o.quiet {
		for _, r := range rows {
			fmt.Fprintln(a.stdout, r.ID)
		}
		return nil
	}
	return formatRows(a.stdout, o.format, psDefaultTable, psHeader, rows)
}

func newPsRow(s container.Summary, trunc bool, now time.Time) psRow {
	r := psRow{
		ID:           s.ID,
		Image:        s.Image,
		CreatedAt:    createdAt(time.Unix(s.Created, 0)),
		RunningFor:   humanDuration(now.Sub(time.Unix(s.Created, 0))) + " ago",
		State:        s.State,
		Status:       s.Status,
		Networks:     s.HostConfig.NetworkMode,
		LocalVolumes: "0",
		Size:         "0B",
		labels:       s.Labels,
	}
	var names []string
	for _, n := range s.Names {
		names = append(names, strings.TrimPrefix(n, "/"))
	}
	r.Names = strings.Join(names, ",")
	command := s.Command
	if trunc {
		r.ID = s.ID[:min(12, len(s.ID))]
		if strings.HasPrefix(r.Image, "sha256:") && len(r.Image) > 19 {
			r.Image = r.Image[7:19]
		}
		command = ellipsis(command, 20)
	}
	r.Command = strconv.Quote(command)
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+s.Labels[k])
	}
	r.Labels = strings.Join(kv, ",")
	var mounts []string
	for _, mp := range s.Mounts {
		name := mp.Name
		if name == "" {
			name = mp.Source
		}
		if trunc {
			name = ellipsis(name, 15)
		}
		mounts = append(mounts, name)
	}
	r.Mounts = strings.Join(mounts, ",")
	r.Ports = formatSummaryPorts(s.Ports)
	return r
}

// formatSummaryPorts is ps's PORTS column: "0.0.0.0:8080->80/tcp, 53/udp".
func formatSummaryPorts(ps []container.SummaryPort) string {
	var out []string
	for _, p := range ps {
		if p.PublicPort == 0 {
			out = append(out, fmt.Sprintf("%d/%s", p.PrivatePort, p.Type))
			continue
		}
		out = append(out, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.IP, strconv.Itoa(p.PublicPort)), p.PrivatePort, p.Type))
	}
	return strings.Join(out, ", ")
}

// ellipsis cuts s to n characters, the last one "…", as Docker's table columns do.
func ellipsis(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
