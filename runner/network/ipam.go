package network

import (
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
)

// ip4 converts an IPv4 address to a number (ok false for anything else).
func ip4(ip net.IP) (uint32, bool) {
	v4 := ip.To4()
	if v4 == nil {
		return 0, false
	}
	return binary.BigEndian.Uint32(v4), true
}

// fromU32 is the inverse of ip4.
func fromU32(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// bounds returns the first and last address of an IPv4 network.
func bounds(n *net.IPNet) (first, last uint32) {
	ones, bits := n.Mask.Size()
	first, _ = ip4(n.IP)
	if bits != 32 {
		return first, first
	}
	size := uint64(1) << uint(32-ones)
	return first, uint32(uint64(first) + size - 1)
}

// overlaps tells whether two IPv4 networks share an address.
func overlaps(a, b *net.IPNet) bool {
	af, al := bounds(a)
	bf, bl := bounds(b)
	return af <= bl && bf <= al
}

// parseSubnet parses an IPv4 CIDR that must be its network's address ("10.1.0.0/16").
func parseSubnet(s, what string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("invalid %s %q: not a CIDR address (e.g. 172.20.0.0/16)", what, s))
	}
	if ip.To4() == nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("invalid %s %s: only IPv4 is supported", what, s))
	}
	n.IP = n.IP.To4()
	if !ip.To4().Equal(n.IP) {
		return nil, newError(ErrInvalid, fmt.Sprintf("invalid %s %s: it should be %s", what, s, n))
	}
	return n, nil
}

// parseIP4 parses a dotted IPv4 address.
func parseIP4(s, what string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("invalid %s %q: not an IP address", what, s))
	}
	if ip.To4() == nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("invalid %s %s: only IPv4 is supported", what, s))
	}
	return ip.To4(), nil
}

// reserved tells whether v is the network or broadcast address of subnet (both usable only
// in /31 and /32 networks, which Berth does not create).
func reserved(subnet *net.IPNet, v uint32) bool {
	first, last := bounds(subnet)
	return v == first || v == last
}

// defaultPools are Docker's default address pools, in its order: 172.17-31.0.0/16, then
// 192.168.0-240.0/20.
func defaultPools() []*net.IPNet {
	var pools []*net.IPNet
	for b := 17; b <= 31; b++ {
		pools = append(pools, &net.IPNet{IP: net.IPv4(172, byte(b), 0, 0).To4(), Mask: net.CIDRMask(16, 32)})
	}
	for c := 0; c <= 240; c += 16 {
		pools = append(pools, &net.IPNet{IP: net.IPv4(192, 168, byte(c), 0).To4(), Mask: net.CIDRMask(20, 32)})
	}
	return pools
}

// usedNet is an address range taken on the host or by a network, with a description for
// error messages.
type usedNet struct {
	Net  *net.IPNet
	What string // `route 172.17.0.0/16 dev docker0`, `network "web" (172.18.0.0/16)`
}

// conflict returns the first used range n overlaps.
func conflict(n *net.IPNet, used []usedNet) (usedNet, bool) {
	for _, u := range used {
		if u.Net != nil && overlaps(n, u.Net) {
			return u, true
		}
	}
	return usedNet{}, false
}

// chooseSubnet returns the first default pool that overlaps nothing used.
func chooseSubnet(used []usedNet) (*net.IPNet, error) {
	for _, p := range defaultPools() {
		if _, bad := conflict(p, used); !bad {
			return p, nil
		}
	}
	return nil, newError(ErrConflict, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

// firstHost is the first host address of a subnet (the default gateway).
func firstHost(n *net.IPNet) net.IP {
	first, _ := bounds(n)
	return fromU32(first + 1)
}

// allocate picks the next free address of pool (within subnet) after last, wrapping around,
// skipping the subnet's network and broadcast addresses, the gateway and every address of
// used. ok is false when the pool is full.
func allocate(subnet, pool *net.IPNet, gateway uint32, used map[uint32]bool, last uint32) (uint32, bool) {
	first, end := bounds(pool)
	size := uint64(end) - uint64(first) + 1
	start := first
	if last >= first && last < end {
		start = last + 1
	}
	v := start
	for i := uint64(0); i < size; i++ {
		if !reserved(subnet, v) && v != gateway && !used[v] {
			return v, true
		}
		if v == end {
			v = first
		} else {
			v++
		}
	}
	return 0, false
}

// macFor is Docker's MAC address for an IPv4 address: 02:42 followed by the address.
func macFor(ip net.IP) net.HardwareAddr {
	v4 := ip.To4()
	return net.HardwareAddr{0x02, 0x42, v4[0], v4[1], v4[2], v4[3]}
}

// validName is Docker's rule for network names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
