// Package portmap publishes container ports on the host: Docker's -p/-P syntax (Parse,
// Exposed), a userland proxy that listens on the host and forwards TCP connections and UDP
// flows to the container's address (Start), and the shapes `docker port` and inspect print
// them in (FormatPorts, PortMap).
package portmap

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Mapping is one published port: -p [ip:][hostPort[-end]:]containerPort[-end][/tcp|udp].
type Mapping struct {
	// HostIP is the host address listened on; "" is all IPv4 addresses (0.0.0.0).
	HostIP string
	// HostPort is the host port; 0 = a random one chosen by the kernel, or, with
	// HostPortEnd, the first of a range the port is taken from.
	HostPort int
	// HostPortEnd is the last port of a host port range to choose one free port from
	// (-p 8000-8010:80); 0 when HostPort is the port.
	HostPortEnd int
	// ContainerPort is the port in the container.
	ContainerPort int
	// Proto is "tcp" or "udp".
	Proto string
}

// Key is the mapping's container port as Docker's maps key it: "80/tcp".
func (m Mapping) Key() string { return strconv.Itoa(m.ContainerPort) + "/" + m.Proto }

// Parse parses -p values (Docker's syntax and error messages) into mappings, one per
// port: "80", "8080:80", "127.0.0.1:8080:80", "127.0.0.1::80", "8080-8081:80-81",
// "8000-8010:80" (one free port of the range), "[::1]:80:80", "53:53/udp".
func Parse(specs []string) ([]Mapping, error) {
	var out []Mapping
	for _, spec := range specs {
		ms, err := parseOne(spec)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func parseOne(raw string) ([]Mapping, error) {
	ip, hostPort, containerPort := splitParts(raw)
	proto, containerPort := splitProtoPort(containerPort)

	if ip != "" && ip[0] == '[' {
		// [::1]: strip the brackets.
		host, _, err := net.SplitHostPort(ip + ":")
		if err != nil {
			return nil, fmt.Errorf("Invalid ip address: %s", ip) //nolint:staticcheck // Docker's wording
		}
		ip = host
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("Invalid ip address: %s", ip) //nolint:staticcheck // Docker's wording
	}
	if containerPort == "" {
		return nil, fmt.Errorf("no port specified: %s<empty>", raw)
	}
	start, end, err := parsePortRange(containerPort)
	if err != nil || start == 0 {
		return nil, fmt.Errorf("invalid containerPort: %s", containerPort)
	}
	var hostStart, hostEnd int
	if hostPort != "" {
		hostStart, hostEnd, err = parsePortRange(hostPort)
		if err != nil {
			return nil, fmt.Errorf("Invalid hostPort: %s", hostPort) //nolint:staticcheck // Docker's wording
		}
		if hostStart == 0 && hostEnd != 0 {
			return nil, fmt.Errorf("Invalid hostPort: %s", hostPort) //nolint:staticcheck // Docker's wording
		}
	}
	if hostPort != "" && end-start != hostEnd-hostStart && end != start {
		// A host range with a single container port is where to pick a port from;
		// two ranges must have the same length.
		return nil, fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", containerPort, hostPort)
	}
	switch strings.ToLower(proto) {
	case "tcp", "udp":
		proto = strings.ToLower(proto)
	case "sctp":
		return nil, fmt.Errorf("invalid proto: %s: only tcp and udp ports can be published", proto)
	default:
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}

	out := make([]Mapping, 0, end-start+1)
	for i := 0; i <= end-start; i++ {
		m := Mapping{HostIP: ip, ContainerPort: start + i, Proto: proto}
		switch {
		case hostPort == "":
		case start == end && hostStart != hostEnd:
			m.HostPort, m.HostPortEnd = hostStart, hostEnd
		default:
			m.HostPort = hostStart + i
		}
		out = append(out, m)
	}
	return out, nil
}

// splitParts splits [ip:][hostPort:]containerPort, the IP possibly an IPv6 address with
// colons (as Docker's, which takes everything before the last two parts as the IP).
func splitParts(raw string) (ip, hostPort, containerPort string) {
	parts := strings.Split(raw, ":")
	n := len(parts)
	containerPort = parts[n-1]
	switch n {
	case 1:
		return "", "", containerPort
	case 2:
		return "", parts[0], containerPort
	case 3:
		return parts[0], parts[1], containerPort
	default:
		return strings.Join(parts[:n-2], ":"), parts[n-2], containerPort
	}
}

// splitProtoPort splits "80/udp" into "udp" and "80"; the protocol defaults to tcp.
func splitProtoPort(raw string) (proto, port string) {
	port, proto, ok := strings.Cut(raw, "/")
	if !ok {
		return "tcp", port
	}
	if proto == "" {
		proto = "tcp"
	}
	return proto, port
}

// parsePortRange parses "80" or "8000-8010" (ports 0 to 65535, start ≤ end).
func parsePortRange(s string) (start, end int, err error) {
	if s == "" {
		return 0, 0, errors.New("empty string specified for ports")
	}
	lo, hi, isRange := strings.Cut(s, "-")
	start, err = parsePort(lo)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return start, start, nil
	}
	end, err = parsePort(hi)
	if err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, fmt.Errorf("invalid range specified for port: %s", s)
	}
	return start, end, nil
}

func parsePort(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port: %q", s)
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid port: %q", s)
	}
	return int(p), nil
}

// Exposed returns the mappings -P makes for an image config's ExposedPorts ("80/tcp",
// "53/udp", "8000-8001/tcp" keys): every exposed port on a random host port of all
// addresses, in port then protocol order.
func Exposed(exposed map[string]struct{}) ([]Mapping, error) {
	keys := make([]string, 0, len(exposed))
	for k := range exposed {
		keys = append(keys, k)
	}
	var out []Mapping
	for _, k := range keys {
		proto, port := splitProtoPort(k)
		start, end, err := parsePortRange(port)
		if err != nil || start == 0 {
			return nil, fmt.Errorf("invalid exposed port %q: invalid containerPort: %s", k, port)
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" {
			if proto == "sctp" {
				// Exposed but not publishable here, as with a userland proxy.
				continue
			}
			return nil, fmt.Errorf("invalid exposed port %q: invalid proto: %s", k, proto)
		}
		for p := start; p <= end; p++ {
			out = append(out, Mapping{ContainerPort: p, Proto: proto})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerPort != out[j].ContainerPort {
			return out[i].ContainerPort < out[j].ContainerPort
		}
		return out[i].Proto < out[j].Proto
	})
	// "80" and "80/tcp" are the same port.
	uniq := out[:0]
	for i, m := range out {
		if i == 0 || m != out[i-1] {
			uniq = append(uniq, m)
		}
	}
	return uniq, nil
}
