package portmap

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// PortBinding is one host address of a published port, as inspect's
// NetworkSettings.Ports and HostConfig.PortBindings show it.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// sorted returns maps ordered by container port, protocol, host address and host port.
func sorted(maps []Mapping) []Mapping {
	out := append([]Mapping(nil), maps...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort < b.ContainerPort
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.HostIP != b.HostIP {
			return a.HostIP < b.HostIP
		}
		return a.HostPort < b.HostPort
	})
	return out
}

func hostIP(m Mapping) string {
	if m.HostIP == "" {
		return "0.0.0.0"
	}
	return m.HostIP
}

// HostAddr is the mapping's host address as `docker port` prints it: "0.0.0.0:8080",
// "[::1]:8080".
func (m Mapping) HostAddr() string {
	return net.JoinHostPort(hostIP(m), strconv.Itoa(m.HostPort))
}

// FormatPorts formats bound mappings the way `docker port CONTAINER` prints them, one line
// each, in container port order: "80/tcp -> 0.0.0.0:8080".
func FormatPorts(maps []Mapping) []string {
	out := make([]string, 0, len(maps))
	for _, m := range sorted(maps) {
		out = append(out, m.Key()+" -> "+m.HostAddr())
	}
	return out
}

// PortMap is inspect's NetworkSettings.Ports: map["80/tcp"] -> [{HostIp, HostPort}] for
// the bound mappings, and a nil list for each exposed port ("80/tcp" keys, a port without
// protocol being tcp) that is not published, as Docker shows them.
func PortMap(maps []Mapping, exposed map[string]struct{}) map[string][]PortBinding {
	out := map[string][]PortBinding{}
	for k := range exposed {
		proto, port := splitProtoPort(k)
		out[port+"/"+proto] = nil
	}
	for _, m := range sorted(maps) {
		out[m.Key()] = append(out[m.Key()], PortBinding{HostIP: hostIP(m), HostPort: strconv.Itoa(m.HostPort)})
	}
	return out
}

// Filter returns the mappings of one container port for `docker port CONTAINER PORT`
// ("80", "80/udp"); when none is, the error is Docker's "No public port '80/tcp' published",
// which the caller completes with " for NAME".
func Filter(maps []Mapping, privatePort string) ([]Mapping, error) {
	proto, port := splitProtoPort(privatePort)
	p, err := parsePort(port)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("invalid port: %s", privatePort)
	}
	var out []Mapping
	for _, m := range sorted(maps) {
		if m.ContainerPort == p && m.Proto == strings.ToLower(proto) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("No public port '%d/%s' published", p, strings.ToLower(proto)) //nolint:staticcheck // Docker's wording
	}
	return out, nil
}
