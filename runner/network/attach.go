package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
)

// Attach connects a container to a network: it allocates an address (IPAM: never one in
// use, sequential after the last one allocated, wrapping around; req.IP when given), makes
// sure the network's bridge exists with its address, MTU and rules (the default network's
// bridge is created lazily, its subnet chosen on first use and kept while free), creates a
// veth pair with one end in the network namespace at netnsPath named ifName, configures
// address, MAC, MTU, lo and, when defaultRoute is true, the default route via the gateway,
// and records the endpoint. On error nothing is left behind.
func (s *Store) Attach(ctx context.Context, network string, req EndpointRequest, netnsPath, ifName string, defaultRoute bool) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.ContainerID == "" {
		return nil, newError(ErrInvalid, "attach: container ID is empty")
	}
	if ifName == "" || len(ifName) > 15 || strings.ContainsAny(ifName, "/: \t\n") {
		return nil, newError(ErrInvalid, fmt.Sprintf("invalid interface name %q", ifName))
	}
	var start uint64
	if req.OwnerPid > 0 {
		var err error
		if start, err = processStart(req.OwnerPid); err != nil {
			return nil, fmt.Errorf("attach: owner process %d: %w", req.OwnerPid, err)
		}
	}
	var out *Endpoint
	err := s.update(func(st *state) (bool, error) {
		sn, err := st.find(network)
		if err != nil {
			return false, err
		}
		n := sn.net()
		switch n.Driver {
		case DriverHost, DriverNull:
			return false, newError(ErrInvalid, fmt.Sprintf("container cannot be disconnected from host network or connected to %s network", n.Name))
		}
		if req.IP != "" && n.Default {
			return false, newError(ErrInvalid, "user specified IP address is supported on user defined networks only")
		}
		changed := false
		if e := sn.Endpoints[req.ContainerID]; e != nil {
			if e.alive() {
				return false, newError(ErrConflict, fmt.Sprintf("endpoint with name %s already exists in network %s", e.ContainerName, n.Name))
			}
			if err := s.dp.deleteLink(e.HostIfName); err != nil {
				return false, err
			}
			delete(sn.Endpoints, req.ContainerID)
			changed = true
		}

		// The bridge (and, for the default network, the subnet).
		madeBridge := false
		exists, err := s.dp.linkExists(n.Bridge)
		if err != nil {
			return changed, err
		}
		if !exists {
			err := s.withHostLock(func() error {
				if n.Default {
					if c, err := s.chooseDefaultSubnet(st, sn); err != nil {
						return err
					} else if c {
						changed = true
					}
				}
				return s.upBridge(n)
			})
			if err != nil {
				return changed, err
			}
			madeBridge = true
		}
		undoBridge := func() {
			if madeBridge && n.Default && len(sn.Endpoints) == 0 {
				s.withHostLock(func() error { return s.downBridge(n) })
			}
		}

		ip, err := s.allocateIP(sn, req.IP)
		if err != nil {
			undoBridge()
			return true, err // dead endpoints may have been freed
		}
		_, subnet, _ := net.ParseCIDR(n.Subnet)
		prefix, _ := subnet.Mask.Size()
		e := &Endpoint{
			NetworkID: n.ID, NetworkName: n.Name,
			ContainerID: req.ContainerID, ContainerName: strings.TrimPrefix(req.ContainerName, "/"),
			EndpointID: newID(), IP: ip, PrefixLen: prefix, Gateway: net.ParseIP(n.Gateway).To4(),
			MAC: macFor(ip), IfName: ifName, Aliases: slices.Clone(req.Aliases),
			OwnerPid: req.OwnerPid, OwnerStart: start, Created: now(),
		}
		if err := ctx.Err(); err != nil {
			undoBridge()
			return true, err
		}
		if err := s.dp.addEndpoint(n, e, netnsPath, defaultRoute, s.tag); err != nil {
			undoBridge()
			return true, fmt.Errorf("attach %s to network %s: %w", e.ContainerName, n.Name, err)
		}
		if sn.Endpoints == nil {
			sn.Endpoints = map[string]*Endpoint{}
		}
		sn.Endpoints[req.ContainerID] = e
		sn.LastIP = ip.String()
		c := *e
		out = &c
		return true, nil
	})
	if err != nil && out != nil {
		// The endpoint was made but the state could not be written: undo it.
		s.dp.deleteLink(out.HostIfName)
		return nil, err
	}
	return out, err
}

// chooseDefaultSubnet gives the default network a subnet when it has none, or a new one
// when the one it had now overlaps a host route or another network (its bridge being gone).
// Called under the host lock.
func (s *Store) chooseDefaultSubnet(st *state, sn *storedNetwork) (bool, error) {
	used, err := s.usedNets(st, sn)
	if err != nil {
		return false, err
	}
	if sn.Network.Subnet != "" {
		if _, cur, err := net.ParseCIDR(sn.Network.Subnet); err == nil {
			if _, bad := conflict(cur, used); !bad {
				return false, nil
			}
			slog.Info("network: the default network's subnet is now taken on the host; choosing another", "subnet", cur)
		}
	}
	subnet, err := chooseSubnet(used)
	if err != nil {
		return false, err
	}
	sn.Network.Subnet, sn.Network.Gateway, sn.LastIP = subnet.String(), firstHost(subnet).String(), ""
	return true, nil
}

// allocateIP reserves an address on the network: want when given, else the next free one.
// A full pool frees dead endpoints and tries again.
func (s *Store) allocateIP(sn *storedNetwork, want string) (net.IP, error) {
	n := sn.net()
	_, subnet, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return nil, fmt.Errorf("network %s has no valid subnet (%q): %w", n.Name, n.Subnet, err)
	}
	pool := subnet
	if n.IPRange != "" {
		if _, r, err := net.ParseCIDR(n.IPRange); err == nil {
			pool = r
		}
	}
	gw, _ := ip4(net.ParseIP(n.Gateway))
	used := func() map[uint32]bool {
		m := map[uint32]bool{}
		for _, e := range sn.Endpoints {
			if v, ok := ip4(e.IP); ok {
				m[v] = true
			}
		}
		return m
	}
	if want != "" {
		ip, err := parseIP4(want, "IP address")
		if err != nil {
			return nil, err
		}
		v, _ := ip4(ip)
		if !subnet.Contains(ip) {
			return nil, newError(ErrInvalid, fmt.Sprintf("no configured subnet or ip-range contain the IP address %s", ip))
		}
		if reserved(subnet, v) || v == gw {
			return nil, newError(ErrInvalid, fmt.Sprintf("invalid IP address %s: the network, broadcast or gateway address of %s", ip, n.Name))
		}
		if used()[v] {
			s.freeDead(sn)
			if used()[v] {
				return nil, newError(ErrConflict, fmt.Sprintf("Address already in use: %s on network %s", ip, n.Name))
			}
		}
		return ip, nil
	}
	last, _ := ip4(net.ParseIP(sn.LastIP))
	v, ok := allocate(subnet, pool, gw, used(), last)
	if !ok {
		s.freeDead(sn)
		if v, ok = allocate(subnet, pool, gw, used(), last); !ok {
			return nil, newError(ErrConflict, fmt.Sprintf("no available IPv4 addresses on network %s (%s)", n.Name, pool))
		}
	}
	return fromU32(v), nil
}

// Detach removes the container's endpoint (container full ID or name) from the network:
// deletes the host veth if it is still there, frees the address, and deletes the default
// bridge and its rules after its last endpoint. No endpoint is not an error; an unknown
// network is ErrNotFound.
func (s *Store) Detach(ctx context.Context, network, containerID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update(func(st *state) (bool, error) {
		sn, err := st.find(network)
		if err != nil {
			return false, err
		}
		return s.detach(sn, containerID)
	})
}

// DetachAll detaches the container from every network it has an endpoint on.
func (s *Store) DetachAll(ctx context.Context, containerID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update(func(st *state) (bool, error) {
		changed := false
		var errs []error
		for _, sn := range st.Networks {
			c, err := s.detach(sn, containerID)
			changed = changed || c
			errs = append(errs, err)
		}
		return changed, errors.Join(errs...)
	})
}

func (s *Store) detach(sn *storedNetwork, container string) (bool, error) {
	e := sn.endpointOf(container)
	if e == nil {
		return false, nil
	}
	if err := s.dp.deleteLink(e.HostIfName); err != nil {
		return false, fmt.Errorf("detach %s from network %s: %w", e.ContainerName, sn.Network.Name, err)
	}
	delete(sn.Endpoints, e.ContainerID)
	if sn.Network.Default && len(sn.Endpoints) == 0 {
		n := sn.net()
		if err := s.withHostLock(func() error { return s.downBridge(n) }); err != nil {
			return true, fmt.Errorf("remove the default bridge %s: %w", n.Bridge, err)
		}
	}
	return true, nil
}
