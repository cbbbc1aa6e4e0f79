package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/network"
	"github.com/berth-registry/berth/runner/network/nethook"
	"github.com/berth-registry/berth/runner/network/portmap"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

// netPlan is what the network flags decided before any store is opened.
type netPlan struct {
	// mode is HostConfig.NetworkMode: "none", "host", "bridge", "container:<name|id>" or a
	// user-defined network's name.
	mode     string
	ports    []portmap.Mapping
	warnings []string
}

// bridged tells whether the container gets its own interfaces on a Berth network.
func (n *netPlan) bridged() bool {
	return n.mode != "none" && n.mode != "host" && !strings.HasPrefix(n.mode, "container:")
}

// planNetworkFlags checks --network, -p, -P, --expose, --ip and --network-alias with
// Docker's rules and messages.
func planNetworkFlags(o *runOptions) (*netPlan, error) {
	n := &netPlan{mode: o.network}
	if n.mode == defaultNetwork || n.mode == "" {
		n.mode = "bridge"
	}
	if c, ok := strings.CutPrefix(n.mode, "container:"); ok && c == "" {
		return nil, errors.New("invalid container format container:<name|id>")
	}
	for _, e := range o.expose {
		if _, err := parseExpose(e); err != nil {
			return nil, err
		}
	}
	var err error
	if n.ports, err = portmap.Parse(o.publish); err != nil {
		return nil, err
	}
	joined := strings.HasPrefix(n.mode, "container:")
	switch {
	case joined && (len(o.publish) > 0 || o.publishAll):
		return nil, errors.New("conflicting options: port publishing and the container type network mode")
	case joined && o.hostname != "":
		return nil, errors.New("conflicting options: hostname and the network mode")
	case joined && (len(o.dns) > 0 || len(o.addHosts) > 0):
		return nil, errors.New("conflicting options: dns and the network mode")
	case n.mode == "host" && (len(o.publish) > 0 || o.publishAll):
		n.warnings = append(n.warnings, "Published ports are discarded when using host network mode")
		n.ports = nil
	}
	if o.ip != "" {
		if ip := net.ParseIP(o.ip); ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("invalid IPv4 address: %s", o.ip)
		}
	}
	if !n.bridged() || n.mode == "bridge" {
		if o.ip != "" {
			return nil, errors.New("user specified IP address is supported on user defined networks only")
		}
		if len(o.aliases) > 0 {
			return nil, errors.New("network-scoped alias is supported only for containers in user defined networks")
		}
	}
	return n, nil
}

// parseExpose parses an --expose value ("80", "80/udp", "8000-8010/tcp") into port keys.
func parseExpose(v string) ([]string, error) {
	port, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.Atoi(lo)
	if err != nil || start < 1 || start > 65535 {
		return nil, fmt.Errorf("invalid range format for --expose: %s, error: invalid port %q", v, lo)
	}
	end := start
	if isRange {
		if end, err = strconv.Atoi(hi); err != nil || end < start || end > 65535 {
			return nil, fmt.Errorf("invalid range format for --expose: %s", v)
		}
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, strconv.Itoa(p)+"/"+proto)
	}
	return out, nil
}

// resolveNetwork completes the create options with what needs the stores: the network to
// join (it must exist), the container whose namespace to join (it must run), -P's ports
// from the image, and the network hook.
func (a *app) resolveNetwork(ctx context.Context, m *container.Manager, p *createPlan, o *runOptions, img *ocispec.Image) error {
	n := p.net
	so := &p.spec
	if other, ok := strings.CutPrefix(n.mode, "container:"); ok {
		id, _, pid, err := m.HookData(other, nethook.HookName)
		if err != nil {
			return err
		}
		if pid == 0 {
			return fmt.Errorf("cannot join network namespace of a non running container: %s", other)
		}
		info, err := m.Inspect(ctx, id)
		if err != nil {
			return err
		}
		if info.HostConfig.NetworkMode == "host" {
			so.NetNSPath = "host"
		} else {
			so.NetNSPath = "/proc/" + strconv.Itoa(pid) + "/ns/net"
		}
		// The container shares the other one's name resolution, as in Docker.
		so.HostsPath, so.ResolvConfPath, so.HostnamePath = info.HostsPath, info.ResolvConfPath, info.HostnamePath
		p.create.Network.Mode = "container:" + id
		return nil
	}
	if !n.bridged() {
		return nil
	}
	exposed := map[string]struct{}{}
	if img != nil {
		for k := range img.Config.ExposedPorts {
			exposed[k] = struct{}{}
		}
	}
	for _, e := range o.expose {
		keys, _ := parseExpose(e)
		for _, k := range keys {
			exposed[k] = struct{}{}
		}
	}
	ports := n.ports
	if o.publishAll {
		more, err := portmap.Exposed(exposed)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, pm := range ports {
			have[strconv.Itoa(pm.ContainerPort)+"/"+pm.Proto] = true
		}
		for _, pm := range more {
			if !have[strconv.Itoa(pm.ContainerPort)+"/"+pm.Proto] {
				ports = append(ports, pm)
			}
		}
	}
	s, err := a.openNetworkStore()
	if err != nil {
		return err
	}
	defer s.Close()
	nw, err := s.Lookup(n.mode)
	if err != nil {
		return err
	}
	data := &nethook.Data{
		StateRoot:  a.root,
		RunRoot:    a.runroot,
		Networks:   []nethook.Attachment{{Network: nw.ID, Name: nw.Name, Aliases: o.aliases, IP: o.ip}},
		Ports:      ports,
		Hosts:      true,
		Domainname: o.domainname,
	}
	if !nw.Default {
		data.DNS = true
		data.Upstream = upstreamResolvers(o.dns)
	}
	raw, err := data.Marshal()
	if err != nil {
		return err
	}
	p.create.Hooks = append(p.create.Hooks, container.HookRef{Name: nethook.HookName, Data: raw})
	p.create.Network.Mode = nw.Name
	p.userNetwork = !nw.Default
	return nil
}

// upstreamResolvers are the name servers the embedded DNS forwards to: --dns, else the
// host's (from the host's namespace, where loopback resolvers are reachable too).
func upstreamResolvers(dns []string) []string {
	servers := dns
	if len(servers) == 0 {
		f, err := os.Open("/etc/resolv.conf")
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == "nameserver" {
					servers = append(servers, fs[1])
				}
			}
			f.Close()
		}
	}
	var out []string
	for _, s := range servers {
		if ip := net.ParseIP(s); ip != nil {
			out = append(out, net.JoinHostPort(ip.String(), "53"))
		}
	}
	return out
}

// embeddedResolvConf is the resolv.conf of a container on a user-defined network: the
// embedded DNS server, with the search domains and options of the host or the flags.
func embeddedResolvConf(search, options []string) []byte {
	if len(search) == 0 || len(options) == 0 {
		if f, err := os.Open("/etc/resolv.conf"); err == nil {
			sc := bufio.NewScanner(f)
			var hs, ho []string
			for sc.Scan() {
				fs := strings.Fields(sc.Text())
				if len(fs) >= 2 && (fs[0] == "search" || fs[0] == "domain") {
					hs = fs[1:]
				}
				if len(fs) >= 2 && fs[0] == "options" {
					ho = append(ho, fs[1:]...)
				}
			}
			f.Close()
			if len(search) == 0 {
				search = hs
			}
			if len(options) == 0 {
				options = ho
			}
		}
	}
	b := "nameserver 127.0.0.11\n"
	if len(search) > 0 {
		b += "search " + strings.Join(search, " ") + "\n"
	}
	opts := append([]string{"ndots:0"}, options...)
	b += "options " + strings.Join(opts, " ") + "\n"
	return []byte(b)
}

func init() {
	registerCommands(func(a *app) []*cobra.Command { return []*cobra.Command{a.portCommand()} })
	registerContainerCommands(func(a *app) []*cobra.Command { return []*cobra.Command{a.portCommand()} })
	registerNetworkCommands(func(a *app) []*cobra.Command {
		return []*cobra.Command{a.networkConnectCommand(), a.networkDisconnectCommand()}
	})
}

// networkCommandSets are `network` subcommands other files add (connect and disconnect
// need containers, and live here).
var networkCommandSets []func(a *app) []*cobra.Command

// registerNetworkCommands adds `network` subcommands (from an init function).
func registerNetworkCommands(build func(a *app) []*cobra.Command) {
	networkCommandSets = append(networkCommandSets, build)
}

// portCommand is `port CONTAINER [PRIVATE_PORT[/PROTO]]`.
func (a *app) portCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args: func(cmd *cobra.Command, args []string) error {
			if err := minArgs(1)(cmd, args); err != nil {
				return err
			}
			return maxArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			info, err := m.Inspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			keys := make([]string, 0, len(info.NetworkSettings.Ports))
			for k := range info.NetworkSettings.Ports {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool {
				pi, _ := strconv.Atoi(strings.Split(keys[i], "/")[0])
				pj, _ := strconv.Atoi(strings.Split(keys[j], "/")[0])
				return pi < pj || pi == pj && keys[i] < keys[j]
			})
			if len(args) == 2 {
				want := args[1]
				if !strings.Contains(want, "/") {
					want += "/tcp"
				}
				bs, ok := info.NetworkSettings.Ports[want]
				if !ok || len(bs) == 0 {
					return fmt.Errorf("No public port '%s' published for %s", want, args[0])
				}
				for _, b := range bs {
					fmt.Fprintln(a.stdout, net.JoinHostPort(b.HostIP, b.HostPort))
				}
				return nil
			}
			for _, k := range keys {
				for _, b := range info.NetworkSettings.Ports[k] {
					fmt.Fprintf(a.stdout, "%s -> %s\n", k, net.JoinHostPort(b.HostIP, b.HostPort))
				}
			}
			return nil
		},
	}
}

// cleanupNetworks frees what networks of ended runs left: addresses of dead endpoints,
// links and rules no state names (after a crash or a reboot).
func (a *app) cleanupNetworks(ctx context.Context) error {
	s, err := a.openNetworkStore()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Cleanup(ctx)
}

// networkConnectCommand is `network connect [--alias] [--ip] NETWORK CONTAINER`: the
// container is attached now if it runs, and at each of its next starts.
func (a *app) networkConnectCommand() *cobra.Command {
	var aliases []string
	var ip string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ip != "" {
				if p := net.ParseIP(ip); p == nil || p.To4() == nil {
					return fmt.Errorf("invalid IPv4 address: %s", ip)
				}
			}
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			nw, err := s.Lookup(args[0])
			if err != nil {
				return err
			}
			if nw.Default && (ip != "" || len(aliases) > 0) {
				return errors.New("user specified IP address and aliases are supported on user defined networks only")
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			return m.UpdateHook(ctx, args[1], nethook.HookName, func(raw json.RawMessage, pid int) (json.RawMessage, error) {
				if raw == nil {
					return nil, fmt.Errorf("container %s has no network of its own (its network mode is none, host or container:)", args[1])
				}
				d, err := nethook.Parse(raw)
				if err != nil {
					return nil, err
				}
				for _, at := range d.Networks {
					if at.Network == nw.ID {
						return nil, fmt.Errorf("endpoint with name %s already exists in network %s", args[1], nw.Name)
					}
				}
				at := nethook.Attachment{Network: nw.ID, Name: nw.Name, Aliases: aliases, IP: ip}
				if pid != 0 {
					id, err := m.Resolve(args[1])
					if err != nil {
						return nil, err
					}
					name := strings.TrimPrefix(mustName(ctx, m, id), "/")
					if _, err := s.Attach(ctx, nw.ID, network.EndpointRequest{
						ContainerID: id, ContainerName: name, Aliases: aliases, IP: ip, OwnerPid: pid,
					}, "/proc/"+strconv.Itoa(pid)+"/ns/net", "eth"+strconv.Itoa(len(d.Networks)), false); err != nil {
						return nil, err
					}
				}
				if !nw.Default && !d.DNS {
					// Resolution by name starts with the next start: the container's
					// resolv.conf names the embedded server from then on.
					d.DNS = true
					d.Upstream = upstreamResolvers(nil)
				}
				d.Networks = append(d.Networks, at)
				return d.Marshal()
			})
		},
	}
	cmd.Flags().StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	return cmd
}

// mustName is the container's name ("" when it cannot be read).
func mustName(ctx context.Context, m *container.Manager, id string) string {
	info, err := m.Inspect(ctx, id)
	if err != nil {
		return ""
	}
	return info.Name
}

// networkDisconnectCommand is `network disconnect [-f] NETWORK CONTAINER`.
func (a *app) networkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := a.openNetworkStore()
			if err != nil {
				return err
			}
			defer s.Close()
			nw, err := s.Lookup(args[0])
			if err != nil {
				return err
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			id, err := m.Resolve(args[1])
			if err != nil {
				if force {
					// -f: forget an endpoint of a container that no longer exists.
					return s.Detach(ctx, nw.ID, args[1])
				}
				return err
			}
			return m.UpdateHook(ctx, id, nethook.HookName, func(raw json.RawMessage, pid int) (json.RawMessage, error) {
				if raw == nil {
					return nil, fmt.Errorf("container %s is not connected to network %s", args[1], nw.Name)
				}
				d, err := nethook.Parse(raw)
				if err != nil {
					return nil, err
				}
				idx := -1
				for i, at := range d.Networks {
					if at.Network == nw.ID {
						idx = i
					}
				}
				if idx < 0 {
					return nil, fmt.Errorf("container %s is not connected to network %s", args[1], nw.Name)
				}
				if err := s.Detach(ctx, nw.ID, id); err != nil {
					return nil, err
				}
				d.Networks = append(d.Networks[:idx:idx], d.Networks[idx+1:]...)
				if len(d.Networks) == 0 {
					d.Ports = nil
				}
				return d.Marshal()
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}
