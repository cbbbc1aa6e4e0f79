package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berth-registry/berth/runner/network"
	"github.com/spf13/cobra"
)

// The `network` command group: create, ls, inspect, rm, prune (connect and disconnect are
// added by run_network.go through registerNetworkCommands).

func init() {
	registerCommands(func(a *app) []*cobra.Command { return []*cobra.Command{a.networkCommand()} })
}

func (a *app) networkCommand() *cobra.Command {
	return a.managementCommand("network", "Manage networks", networkCommandSets,
		a.networkCreateCommand(), a.networkLsCommand(), a.networkInspectCommand(),
		a.networkRmCommand(), a.networkPruneCommand())
}

// openNetworkStore opens the network state of the state root.
func (a *app) openNetworkStore() (*network.Store, error) {
	return network.Open(a.root, a.runroot)
}

// parseKeyValues parses repeated k=v flags (--label, -o); a bare key has an empty value.
func parseKeyValues(vals []string) map[string]string {
	m := map[string]string{}
	for _, v := range vals {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return m
}

func (a *app) networkCreateCommand() *cobra.Command {
	var o network.CreateOptions
	var subnets, gateways, ranges, labels, opts []string
	var ipv6 bool
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ipv6 {
				return errors.New("IPv6 networks are not supported")
			}
			if len(subnets) > 1 || len(gateways) > 1 || len(ranges) > 1 {
				return errors.New("only one --subnet, --gateway and --ip-range per network are supported")
			}
			if len(gateways) > len(subnets) || len(ranges) > len(subnets) {
				return errors.New("every ip-range or gateway must have a corresponding subnet")
			}
			o.Name = args[0]
			if len(subnets) == 1 {
				o.Subnet = subnets[0]
			}
			if len(gateways) == 1 {
				o.Gateway = gateways[0]
			}
			if len(ranges) == 1 {
				o.IPRange = ranges[0]
			}
			o.Labels, o.Options = parseKeyValues(labels), parseKeyValues(opts)
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := s.Create(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, n.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Driver, "driver", "d", "bridge", "Driver to manage the Network")
	f.StringArrayVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	f.StringArrayVar(&gateways, "gateway", nil, "IPv4 Gateway for the master subnet")
	f.StringArrayVar(&ranges, "ip-range", nil, "Allocate container ip from a sub-range")
	f.BoolVar(&o.Internal, "internal", false, "Restrict external access to the network")
	f.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	f.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 networking (not supported)")
	return cmd
}

// networkRow is a row of `network ls` (Docker's --format fields).
type networkRow struct {
	ID        string
	Name      string
	Driver    string
	Scope     string
	IPv4      string
	IPv6      string
	Internal  string
	Labels    string
	CreatedAt string
}

func (a *app) networkLsCommand() *cobra.Command {
	var quiet, noTrunc bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fm, err := parseFilters(filters)
			if err != nil {
				return err
			}
			for k := range fm {
				switch k {
				case "name", "id", "driver", "label", "scope", "type", "dangling":
				default:
					return fmt.Errorf("invalid filter '%s'", k)
				}
			}
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			nets, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			var rows []networkRow
			for _, n := range nets {
				ok, err := networkMatches(n, fm)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				id := n.ID
				if !noTrunc {
					id = id[:12]
				}
				if quiet {
					fmt.Fprintln(a.stdout, id)
					continue
				}
				rows = append(rows, networkRow{
					ID: id, Name: n.Name, Driver: n.Driver, Scope: n.Scope(),
					IPv4: fmt.Sprint(n.Driver == network.DriverBridge), IPv6: "false",
					Internal: fmt.Sprint(n.Internal), Labels: labelString(n.Labels),
					CreatedAt: n.Created.Local().Format("2006-01-02 15:04:05.999999999 -0700 MST"),
				})
			}
			if quiet {
				return nil
			}
			header := networkRow{ID: "NETWORK ID", Name: "NAME", Driver: "DRIVER", Scope: "SCOPE",
				IPv4: "IPV4", IPv6: "IPV6", Internal: "INTERNAL", Labels: "LABELS", CreatedAt: "CREATED"}
			return formatRows(a.stdout, format, `{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}`, header, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	f.StringArrayVarP(&filters, "filter", "f", nil, `Provide filter values (e.g. "driver=bridge")`)
	f.StringVar(&format, "format", "", "Format output using a custom template:\n'table': Print output in table format with column headers (default)\n'table TEMPLATE': Print output in table format using the given Go template\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template")
	return cmd
}

// networkMatches applies `network ls` filters as Docker does: values of one key are ORed,
// keys are ANDed; name and id match substrings and prefixes.
func networkMatches(n *network.Network, fm map[string][]string) (bool, error) {
	matchAny := func(key string, match func(v string) bool) bool {
		vals, ok := fm[key]
		if !ok {
			return true
		}
		for _, v := range vals {
			if match(v) {
				return true
			}
		}
		return false
	}
	for _, v := range fm["type"] {
		if v != "custom" && v != "builtin" {
			return false, fmt.Errorf("invalid filter: 'type'='%s'", v)
		}
	}
	for _, v := range fm["dangling"] {
		if v != "true" && v != "false" && v != "1" && v != "0" {
			return false, fmt.Errorf("invalid filter 'dangling=%s'", v)
		}
	}
	return matchAny("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		matchAny("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		matchAny("driver", func(v string) bool { return n.Driver == v }) &&
		matchAny("scope", func(v string) bool { return v == n.Scope() }) &&
		matchAny("type", func(v string) bool { return (v == "builtin") == n.Predefined() }) &&
		matchAny("dangling", func(v string) bool {
			dangling := !n.Predefined() && len(n.Endpoints) == 0
			return dangling == (v == "true" || v == "1")
		}) &&
		matchAny("label", func(v string) bool {
			k, val, hasVal := strings.Cut(v, "=")
			got, ok := n.Labels[k]
			return ok && (!hasVal || got == val)
		}), nil
}

func (a *app) networkInspectCommand() *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			var found []any
			var errs []string
			for _, name := range args {
				n, err := s.Lookup(name)
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				found = append(found, n.Inspect())
			}
			if err := a.printInspect(found, format); err != nil {
				return err
			}
			return a.printErrors(errs)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics (no extra output: local networks only)")
	return cmd
}

func (a *app) networkRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			failed := false
			for _, name := range args {
				err := s.Remove(cmd.Context(), name)
				if err != nil && !(force && errors.Is(err, network.ErrNotFound)) {
					fmt.Fprintf(a.stderr, "Error: %s\n", err)
					failed = true
					continue
				}
				if err == nil {
					fmt.Fprintln(a.stdout, name)
				}
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func (a *app) networkPruneCommand() *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(filters) > 0 {
				return errors.New("network prune --filter is not supported")
			}
			if !force && !a.confirm("WARNING! This will remove all custom networks not used by at least one container.") {
				return nil
			}
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			removed, err := s.Prune(cmd.Context())
			a.printDeleted("Deleted Networks:", removed)
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}
