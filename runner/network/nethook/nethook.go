// Package nethook connects containers to networks: the container hook (runner/container
// RegisterHook) that the monitor of a container runs at each start and stop.
//
// At each start (Prestart, with the container's init in its new network namespace) the hook
// attaches the container to each of its networks (runner/network: an address, a veth pair,
// eth0, eth1… inside, the default route on the first), adds the container's addresses to its
// /etc/hosts, serves the embedded DNS (runner/network/dns) on 127.0.0.11 inside the namespace
// for user-defined networks, and publishes its ports with the userland proxy
// (runner/network/portmap). The DNS server and the proxy are goroutines of the monitor: they
// live exactly as long as the run. At each stop (Poststop) and at removal everything is
// undone; Detach is idempotent, so a hook run twice after a crash is harmless, and endpoints
// whose container died with its monitor are found by network.Store.Cleanup.
package nethook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/network"
	"github.com/berth-registry/berth/runner/network/dns"
	"github.com/berth-registry/berth/runner/network/portmap"
)

// HookName is the name the hook is registered under.
const HookName = "network"

// Attachment is one network a container is connected to.
type Attachment struct {
	// Network is the network's ID; Name its name (inspect's key).
	Network string `json:"network"`
	Name    string `json:"name"`
	// Aliases are --network-alias values; IP is --ip ("" any free address).
	Aliases []string `json:"aliases,omitempty"`
	IP      string   `json:"ip,omitempty"`
}

// Data is the hook's data in a container's config.
type Data struct {
	// StateRoot and RunRoot are pull-run's --root and --runroot.
	StateRoot string `json:"stateRoot"`
	RunRoot   string `json:"runRoot"`
	// Networks are the container's networks; the first one has the default route.
	Networks []Attachment `json:"networks"`
	// Ports are the ports to publish (-p, -P) on the first network's address.
	Ports []portmap.Mapping `json:"ports,omitempty"`
	// DNS serves the embedded DNS server on 127.0.0.11 (user-defined networks), forwarding
	// to Upstream ("ip:port").
	DNS      bool     `json:"dns,omitempty"`
	Upstream []string `json:"upstream,omitempty"`
	// Hosts adds the container's own addresses to its /etc/hosts (the file "hosts" of its
	// directory) under its hostname (the file "hostname"), qualified by Domainname.
	Hosts      bool   `json:"hosts,omitempty"`
	Domainname string `json:"domainname,omitempty"`
}

// Marshal encodes the hook data.
func (d *Data) Marshal() (json.RawMessage, error) { return json.Marshal(d) }

// Parse decodes the hook data.
func Parse(raw json.RawMessage) (*Data, error) {
	var d Data
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("network hook data: %w", err)
	}
	return &d, nil
}

func init() {
	container.RegisterHook(HookName, container.Hook{
		Prestart: prestart,
		Poststop: poststop,
		Remove:   remove,
		Inspect:  inspect,
		Summary:  summary,
	})
}

// live is what a run of a container keeps in its monitor.
type live struct {
	store *network.Store
	dns   *dns.Server
	proxy *portmap.Proxy
}

var runs = struct {
	sync.Mutex
	m map[string]*live
}{m: map[string]*live{}}

// hookTimeout bounds a hook's network work.
const hookTimeout = 30 * time.Second

// portsFile is where a run's bound ports are kept (in the container's directory).
const portsFile = "ports.json"

func prestart(env container.HookEnv) (err error) {
	d, err := Parse(env.Data)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
	defer cancel()
	s, err := network.Open(d.StateRoot, d.RunRoot)
	if err != nil {
		return err
	}
	l := &live{store: s}
	defer func() {
		if err != nil {
			l.close()
			if derr := errors.Join(s.Unpublish(context.WithoutCancel(ctx), env.ID), s.DetachAll(context.WithoutCancel(ctx), env.ID)); derr != nil {
				slog.Warn("network: undo a failed start", "container", env.ID, "err", derr)
			}
			os.Remove(filepath.Join(env.Dir, portsFile))
			s.Close()
		}
	}()
	netns := "/proc/" + strconv.Itoa(env.Pid) + "/ns/net"
	var first *network.Endpoint
	var ips []string
	for i, a := range d.Networks {
		ep, err := s.Attach(ctx, a.Network, network.EndpointRequest{
			ContainerID: env.ID, ContainerName: env.Name, Aliases: a.Aliases, IP: a.IP, OwnerPid: env.Pid,
		}, netns, "eth"+strconv.Itoa(i), i == 0)
		if err != nil {
			return fmt.Errorf("failed to set up container networking on network %s: %w", a.Name, err)
		}
		if first == nil {
			first = ep
		}
		ips = append(ips, ep.IP.String())
	}
	if d.Hosts && len(ips) > 0 {
		hn, err := os.ReadFile(filepath.Join(env.Dir, "hostname"))
		if err != nil {
			return fmt.Errorf("container hostname: %w", err)
		}
		names := strings.TrimSpace(string(hn))
		if d.Domainname != "" {
			names = names + "." + d.Domainname + "\t" + names
		}
		if err := writeHosts(env.Dir, filepath.Join(env.Dir, "hosts"), ips, names); err != nil {
			return err
		}
	}
	if d.DNS {
		// A container connected to a user-defined network after its creation (network
		// connect) gets the embedded server as its name server from this start on.
		if err := useEmbeddedResolver(filepath.Join(env.Dir, "resolv.conf")); err != nil {
			return err
		}
		id := env.ID
		resolve := func(name string) []net.IP {
			eps, err := s.ContainerEndpoints(id)
			if err != nil {
				return nil
			}
			for _, ep := range eps {
				if ips := s.Resolve(ep.NetworkID, name); len(ips) > 0 {
					return ips
				}
			}
			return nil
		}
		if l.dns, err = dns.ServeInNetNS(context.WithoutCancel(ctx), netns, dns.Options{
			Resolver: dns.ResolverFunc(resolve), Upstream: d.Upstream,
		}); err != nil {
			return fmt.Errorf("embedded DNS server: %w", err)
		}
	}
	if len(d.Ports) > 0 && first != nil {
		if l.proxy, err = portmap.Start(context.WithoutCancel(ctx), first.IP, d.Ports); err != nil {
			return err
		}
		bound := l.proxy.Bound()
		// The kernel carries host and outside traffic to the container (DNAT); the proxy,
		// which holds the ports, serves what the rules leave to it (other containers,
		// IPv6, hosts without iptables or nft).
		pps := make([]network.PublishedPort, 0, len(bound))
		for _, m := range bound {
			pps = append(pps, network.PublishedPort{HostIP: m.HostIP, HostPort: m.HostPort, ContainerPort: m.ContainerPort, Proto: m.Proto})
		}
		if err := s.Publish(ctx, env.ID, first, pps); err != nil {
			slog.Warn("network: no kernel forwarding for published ports, the userland proxy serves them", "container", env.ID, "err", err)
		}
		b, err := json.Marshal(bound)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(env.Dir, portsFile), b, 0o644); err != nil {
			return err
		}
	}
	runs.Lock()
	if old := runs.m[env.ID]; old != nil {
		old.close()
	}
	runs.m[env.ID] = l
	runs.Unlock()
	return nil
}

func (l *live) close() {
	if l.proxy != nil {
		l.proxy.Close()
		l.proxy = nil
	}
	if l.dns != nil {
		l.dns.Close()
		l.dns = nil
	}
}

func poststop(env container.HookEnv) error {
	runs.Lock()
	l := runs.m[env.ID]
	delete(runs.m, env.ID)
	runs.Unlock()
	if l != nil {
		l.close()
		defer l.store.Close()
	}
	return detachAll(env)
}

func remove(env container.HookEnv, _ bool) error { return poststop(env) }

// detachAll takes the container off every network and forgets its bound ports.
func detachAll(env container.HookEnv) error {
	os.Remove(filepath.Join(env.Dir, portsFile))
	d, err := Parse(env.Data)
	if err != nil {
		return err
	}
	s, err := network.Open(d.StateRoot, d.RunRoot)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
	defer cancel()
	return errors.Join(s.Unpublish(ctx, env.ID), s.DetachAll(ctx, env.ID))
}

// writeHosts writes the container's /etc/hosts: the file as Create wrote it (kept aside
// the first time) and a line for the container's addresses. The file is rewritten in place:
// it is bind-mounted into the container, and a rename would leave the mount on the old file.
func writeHosts(dir, path string, ips []string, names string) error {
	base := filepath.Join(dir, "hosts.base")
	b, err := os.ReadFile(base)
	if errors.Is(err, os.ErrNotExist) {
		if b, err = os.ReadFile(path); err == nil {
			err = os.WriteFile(base, b, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("container hosts file: %w", err)
	}
	var sb strings.Builder
	sb.Write(b)
	if names != "" {
		for _, ip := range ips {
			sb.WriteString(ip + "\t" + names + "\n")
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("container hosts file: %w", err)
	}
	_, err = f.WriteString(sb.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// embeddedResolver is the embedded DNS server's address in every container's namespace.
const embeddedResolver = "127.0.0.11"

// useEmbeddedResolver makes the container's resolv.conf (its file on the host, bind-mounted
// into it) name the embedded DNS server only, keeping its search and options lines. The
// file is rewritten in place (a rename would leave the bind mount on the old file), and only
// when it names other servers. A missing file (the container shares another one's) is left.
func useEmbeddedResolver(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("container resolv.conf: %w", err)
	}
	var out []string
	changed := false
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			if f[1] != embeddedResolver {
				changed = true
			}
			continue
		}
		out = append(out, l)
	}
	if !changed {
		return nil
	}
	body := "nameserver " + embeddedResolver + "\n" + strings.Join(out, "\n") + "\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("container resolv.conf: %w", err)
	}
	_, err = f.WriteString(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// BoundPorts returns the ports a running container published (nil when none or stopped).
func BoundPorts(containerDir string) ([]portmap.Mapping, error) {
	b, err := os.ReadFile(filepath.Join(containerDir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ms []portmap.Mapping
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("%s: %w", portsFile, err)
	}
	return ms, nil
}

func inspect(env container.HookEnv, running bool, r *container.InspectResult) {
	d, err := Parse(env.Data)
	if err != nil {
		return
	}
	ns := &r.NetworkSettings
	var eps []*network.Endpoint
	if running {
		if s, err := network.Open(d.StateRoot, d.RunRoot); err == nil {
			eps, _ = s.ContainerEndpoints(env.ID)
			s.Close()
		}
	}
	byNet := map[string]*network.Endpoint{}
	for _, ep := range eps {
		byNet[ep.NetworkID] = ep
	}
	for _, a := range d.Networks {
		es := &container.EndpointSettings{NetworkID: a.Network, Aliases: a.Aliases}
		if a.IP != "" {
			es.IPAMConfig = &container.EndpointIPAMConfig{IPv4Address: a.IP}
		}
		if ep := byNet[a.Network]; ep != nil {
			es.EndpointID = ep.EndpointID
			es.IPAddress = ep.IP.String()
			es.IPPrefixLen = ep.PrefixLen
			es.Gateway = ep.Gateway.String()
			es.MacAddress = ep.MAC.String()
			if a.Name != "bridge" {
				es.DNSNames = append([]string{env.Name}, a.Aliases...)
				es.DNSNames = append(es.DNSNames, env.ID[:12])
			}
			if a.Name == "bridge" {
				ns.EndpointID, ns.IPAddress, ns.IPPrefixLen = es.EndpointID, es.IPAddress, es.IPPrefixLen
				ns.Gateway, ns.MacAddress = es.Gateway, es.MacAddress
			}
		}
		ns.Networks[a.Name] = es
	}
	if running {
		ms, _ := BoundPorts(env.Dir)
		for _, m := range ms {
			key := strconv.Itoa(m.ContainerPort) + "/" + m.Proto
			ns.Ports[key] = append(ns.Ports[key], container.PortBinding{HostIP: m.HostIP, HostPort: strconv.Itoa(m.HostPort)})
		}
	}
}

func summary(env container.HookEnv, running bool, s *container.Summary) {
	if !running {
		return
	}
	ms, _ := BoundPorts(env.Dir)
	for _, m := range ms {
		s.Ports = append(s.Ports, container.SummaryPort{IP: m.HostIP, PrivatePort: m.ContainerPort, PublicPort: m.HostPort, Type: m.Proto})
	}
	sort.Slice(s.Ports, func(i, j int) bool { return s.Ports[i].PrivatePort < s.Ports[j].PrivatePort })
}
