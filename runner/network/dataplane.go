package network

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostNet is a route or address of the host, with the link it belongs to.
type hostNet struct {
	usedNet
	Link string
}

// dataplane is what the store does to the host: links, addresses, namespaces and packet
// filter rules. netlinkPlane is the real one; unit tests use a fake.
type dataplane interface {
	// hostNets lists the host's IPv4 routes (main table, default route excluded) and
	// addresses.
	hostNets() ([]hostNet, error)
	linkExists(name string) (bool, error)
	// createBridge creates n's bridge with the gateway address, MTU and alias tag, up. On
	// error nothing is left.
	createBridge(n *Network, tag string) error
	// deleteLink deletes a link; a missing link is not an error.
	deleteLink(name string) error
	// addEndpoint creates e's veth pair (setting e.HostIfName), one end in the namespace at
	// netnsPath named e.IfName, configured; on error nothing is left.
	addEndpoint(n *Network, e *Endpoint, netnsPath string, defaultRoute bool, tag string) error
	// taggedLinks lists the links whose alias is tag.
	taggedLinks(tag string) ([]string, error)
	// setupNAT and teardownNAT add and delete n's forwarding and NAT rules (idempotent).
	setupNAT(n *Network, tag string) error
	teardownNAT(n *Network, tag string) error
	// cleanupNAT deletes the rules tagged tag of bridges not in keep.
	cleanupNAT(tag string, keep map[string]bool) error
}

// netlinkPlane is the dataplane of the host: netlink in the host's namespace (the one the
// process runs in; no thread ever leaves it), netlink handles opened in container
// namespaces, and iptables.
type netlinkPlane struct{}

func (netlinkPlane) hostNets() ([]hostNet, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []hostNet
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.To4() == nil {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		dst := &net.IPNet{IP: r.Dst.IP.To4().Mask(r.Dst.Mask), Mask: r.Dst.Mask}
		what := "route " + dst.String()
		if name := names[r.LinkIndex]; name != "" {
			what += " dev " + name
		}
		out = append(out, hostNet{usedNet: usedNet{Net: dst, What: what}, Link: names[r.LinkIndex]})
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a.IPNet == nil || a.IP.To4() == nil {
			continue
		}
		n := &net.IPNet{IP: a.IP.To4().Mask(a.Mask), Mask: a.Mask}
		name := names[a.LinkIndex]
		out = append(out, hostNet{usedNet: usedNet{Net: n, What: fmt.Sprintf("address %s on %s", a.IPNet, name)}, Link: name})
	}
	return out, nil
}

func notFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV)
}

func (netlinkPlane) linkExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	if err == nil {
		return true, nil
	}
	if notFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("look up link %s: %w", name, err)
}

func (netlinkPlane) deleteLink(name string) error {
	if name == "" {
		return nil
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !notFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func (p netlinkPlane) createBridge(n *Network, tag string) (err error) {
	_, subnet, perr := net.ParseCIDR(n.Subnet)
	if perr != nil {
		return fmt.Errorf("network %s has no valid subnet: %w", n.Name, perr)
	}
	gw := net.ParseIP(n.Gateway).To4()
	if gw == nil {
		return fmt.Errorf("network %s has no valid gateway %q", n.Name, n.Gateway)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: n.MTU}}
	if err := netlink.LinkAdd(br); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			p.deleteLink(n.Bridge)
		}
	}()
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetAlias(link, tag); err != nil {
		return fmt.Errorf("set alias: %w", err)
	}
	if err := netlink.LinkSetMTU(link, n.MTU); err != nil {
		return fmt.Errorf("set MTU %d: %w", n.MTU, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: subnet.Mask}}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", addr.IPNet, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

func (netlinkPlane) taggedLinks(tag string) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if l.Attrs().Alias == tag {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

func (p netlinkPlane) addEndpoint(n *Network, e *Endpoint, netnsPath string, defaultRoute bool, tag string) (err error) {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in network namespace %s: %w", netnsPath, err)
	}
	defer h.Close()
	if _, err := h.LinkByName(e.IfName); err == nil {
		return newError(ErrConflict, fmt.Sprintf("interface %s already exists in the container's network namespace", e.IfName))
	}

	// The veth pair: the host end here, the container end created directly in the
	// container's namespace under its final name.
	var host string
	for try := 0; ; try++ {
		host = "veth" + randomHex(7)
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: host, MTU: n.MTU},
			PeerName:         e.IfName,
			PeerNamespace:    netlink.NsFd(int(ns)),
			PeerMTU:          uint32(n.MTU),
			PeerHardwareAddr: e.MAC,
		}
		err = netlink.LinkAdd(veth)
		if err == nil {
			break
		}
		if errors.Is(err, unix.EEXIST) && try < 5 {
			if exists, _ := p.linkExists(host); exists {
				continue // a host name taken: another random one
			}
		}
		return fmt.Errorf("create veth pair: %w", err)
	}
	e.HostIfName = host
	defer func() {
		if err != nil {
			p.deleteLink(host) // deletes the peer too
		}
	}()
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetAlias(hl, tag); err != nil {
		return fmt.Errorf("set alias of %s: %w", host, err)
	}
	if err := netlink.LinkSetMaster(hl, br); err != nil {
		return fmt.Errorf("add %s to bridge %s: %w", host, n.Bridge, err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return fmt.Errorf("set %s up: %w", host, err)
	}

	// Inside the container.
	cl, err := h.LinkByName(e.IfName)
	if err != nil {
		return fmt.Errorf("container interface %s: %w", e.IfName, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: e.IP, Mask: net.CIDRMask(e.PrefixLen, 32)}}
	if err := h.AddrAdd(cl, addr); err != nil {
		return fmt.Errorf("add address %s to %s: %w", addr.IPNet, e.IfName, err)
	}
	if err := h.LinkSetUp(cl); err != nil {
		return fmt.Errorf("set %s up: %w", e.IfName, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	if defaultRoute {
		r := &netlink.Route{LinkIndex: cl.Attrs().Index, Gw: e.Gateway, Scope: netlink.SCOPE_UNIVERSE}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", e.Gateway, err)
		}
	}
	return nil
}

// setupNAT, teardownNAT and cleanupNAT are in iptables.go and nft.go.

func (netlinkPlane) setupNAT(n *Network, tag string) error    { return setupNAT(n, tag) }
func (netlinkPlane) teardownNAT(n *Network, tag string) error { return teardownNAT(n, tag) }
func (netlinkPlane) cleanupNAT(tag string, keep map[string]bool) error {
	return cleanupNAT(tag, keep)
}
