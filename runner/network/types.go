package network

import (
	"encoding/json"
	"net"
	"strconv"
	"time"
)

// Drivers of the networks List returns.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// Names of the pre-defined networks.
const (
	DefaultNetwork = "bridge"
	HostNetwork    = "host"
	NoneNetwork    = "none"
)

// Docker's option names that Berth understands.
const (
	OptionBridgeName = "com.docker.network.bridge.name"
	OptionMTU        = "com.docker.network.driver.mtu"
)

// CreateOptions are the options of `network create`.
type CreateOptions struct {
	Name    string
	Driver  string // "" or "bridge" (the only driver)
	Subnet  string // "" picks a free /16 from Docker's pools
	Gateway string // "" is the first host address of Subnet
	IPRange string // optional pool of container addresses, within Subnet
	MTU     int    // 0 is 1500 (or the com.docker.network.driver.mtu option)
	// Internal networks have no NAT and no traffic out of the bridge.
	Internal bool
	Labels   map[string]string
	Options  map[string]string
}

// Network is one network of a state root. Its JSON encoding (MarshalJSON) is what
// `docker network inspect` prints.
type Network struct {
	ID, Name, Driver string
	// Subnet and Gateway in CIDR and dotted form; empty for host/none and for the default
	// network before its first endpoint.
	Subnet, Gateway string
	IPRange         string
	Bridge          string // Linux interface name of the bridge
	MTU             int
	Internal        bool
	Default         bool // the default "bridge" network
	Created         time.Time
	Labels, Options map[string]string

	// Endpoints are the live endpoints (filled by Lookup and List, not stored).
	Endpoints []*Endpoint `json:"-"`
}

// Predefined tells whether the network is one of bridge, host and none.
func (n *Network) Predefined() bool {
	return n.Default || n.Driver == DriverHost || n.Driver == DriverNull
}

// Scope is Docker's scope of the network: always "local".
func (n *Network) Scope() string { return "local" }

// EndpointRequest is what Attach needs to know of the container.
type EndpointRequest struct {
	ContainerID, ContainerName string
	// Aliases are --network-alias values (the container name and short ID resolve too).
	Aliases []string
	// IP is --ip: a fixed address (user-defined networks only).
	IP string
	// OwnerPid is the container's init pid: the endpoint is live while it lives.
	OwnerPid int
}

// Endpoint is a container's attachment to a network.
type Endpoint struct {
	NetworkID, NetworkName, ContainerID, ContainerName string
	EndpointID                                         string // random 64 hex
	IP                                                 net.IP
	PrefixLen                                          int
	Gateway                                            net.IP
	MAC                                                net.HardwareAddr // 02:42 + the IPv4 address
	HostIfName                                         string           // host side of the veth pair
	IfName                                             string           // interface name in the container
	Aliases                                            []string
	OwnerPid                                           int
	OwnerStart                                         uint64 // start time of OwnerPid (clock ticks since boot)
	Created                                            time.Time
}

// CIDR is the endpoint's address with its prefix length ("172.18.0.2/16").
func (e *Endpoint) CIDR() string {
	if e.IP == nil {
		return ""
	}
	return e.IP.String() + "/" + strconv.Itoa(e.PrefixLen)
}

// endpointJSON is the stored form of an Endpoint (MAC as text).
type endpointJSON struct {
	NetworkID, NetworkName, ContainerID, ContainerName string
	EndpointID                                         string
	IP                                                 string
	PrefixLen                                          int
	Gateway                                            string
	MAC                                                string
	HostIfName, IfName                                 string
	Aliases                                            []string `json:",omitempty"`
	OwnerPid                                           int
	OwnerStart                                         uint64
	Created                                            time.Time
}

// MarshalJSON stores addresses as text.
func (e *Endpoint) MarshalJSON() ([]byte, error) {
	j := endpointJSON{
		NetworkID: e.NetworkID, NetworkName: e.NetworkName, ContainerID: e.ContainerID,
		ContainerName: e.ContainerName, EndpointID: e.EndpointID, PrefixLen: e.PrefixLen,
		HostIfName: e.HostIfName, IfName: e.IfName, Aliases: e.Aliases,
		OwnerPid: e.OwnerPid, OwnerStart: e.OwnerStart, Created: e.Created,
	}
	if e.IP != nil {
		j.IP = e.IP.String()
	}
	if e.Gateway != nil {
		j.Gateway = e.Gateway.String()
	}
	if e.MAC != nil {
		j.MAC = e.MAC.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *Endpoint) UnmarshalJSON(b []byte) error {
	var j endpointJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Endpoint{
		NetworkID: j.NetworkID, NetworkName: j.NetworkName, ContainerID: j.ContainerID,
		ContainerName: j.ContainerName, EndpointID: j.EndpointID, PrefixLen: j.PrefixLen,
		HostIfName: j.HostIfName, IfName: j.IfName, Aliases: j.Aliases,
		OwnerPid: j.OwnerPid, OwnerStart: j.OwnerStart, Created: j.Created,
		IP: net.ParseIP(j.IP).To4(), Gateway: net.ParseIP(j.Gateway).To4(),
	}
	if j.MAC != "" {
		mac, err := net.ParseMAC(j.MAC)
		if err != nil {
			return err
		}
		e.MAC = mac
	}
	return nil
}

// InspectIPAMConfig is one entry of IPAM.Config in `network inspect`.
type InspectIPAMConfig struct {
	Subnet  string `json:"Subnet,omitempty"`
	IPRange string `json:"IPRange,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

// InspectIPAM is IPAM in `network inspect`.
type InspectIPAM struct {
	Driver  string              `json:"Driver"`
	Options map[string]string   `json:"Options"`
	Config  []InspectIPAMConfig `json:"Config"`
}

// InspectContainer is one entry of Containers in `network inspect`.
type InspectContainer struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// Inspect is a network in Docker's `network inspect` shape.
type Inspect struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    time.Time                   `json:"Created"`
	Scope      string                      `json:"Scope"`
	Driver     string                      `json:"Driver"`
	EnableIPv4 bool                        `json:"EnableIPv4"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       InspectIPAM                 `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	ConfigFrom struct{ Network string }    `json:"ConfigFrom"`
	ConfigOnly bool                        `json:"ConfigOnly"`
	Containers map[string]InspectContainer `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
}

// Inspect returns the network in Docker's `network inspect` shape, with its Endpoints as
// Containers.
func (n *Network) Inspect() Inspect {
	in := Inspect{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: n.Scope(), Driver: n.Driver,
		EnableIPv4: n.Driver == DriverBridge,
		IPAM:       InspectIPAM{Driver: "default", Config: []InspectIPAMConfig{}},
		Internal:   n.Internal,
		Containers: map[string]InspectContainer{},
		Options:    map[string]string{},
		Labels:     map[string]string{},
	}
	if n.Subnet != "" {
		in.IPAM.Config = append(in.IPAM.Config, InspectIPAMConfig{Subnet: n.Subnet, IPRange: n.IPRange, Gateway: n.Gateway})
	}
	for k, v := range n.Options {
		in.Options[k] = v
	}
	if n.Driver == DriverBridge {
		in.Options[OptionBridgeName] = n.Bridge
		if n.Default {
			in.Options["com.docker.network.bridge.default_bridge"] = "true"
			in.Options["com.docker.network.bridge.enable_icc"] = "true"
			in.Options["com.docker.network.bridge.enable_ip_masquerade"] = "true"
			in.Options["com.docker.network.bridge.host_binding_ipv4"] = "0.0.0.0"
			in.Options[OptionMTU] = strconv.Itoa(n.MTU)
		}
	}
	for k, v := range n.Labels {
		in.Labels[k] = v
	}
	for _, e := range n.Endpoints {
		c := InspectContainer{Name: e.ContainerName, EndpointID: e.EndpointID, IPv4Address: e.CIDR()}
		if e.MAC != nil {
			c.MacAddress = e.MAC.String()
		}
		in.Containers[e.ContainerID] = c
	}
	return in
}

// MarshalJSON encodes the network as `docker network inspect` prints it.
func (n *Network) MarshalJSON() ([]byte, error) { return json.Marshal(n.Inspect()) }
