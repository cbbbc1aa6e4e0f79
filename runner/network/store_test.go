package network

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// deadPid returns the pid of a process that has exited (and been reaped).
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// livePid starts a process that lives until the test ends.
func livePid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func mustCreate(t *testing.T, s *Store, o CreateOptions) *Network {
	t.Helper()
	n, err := s.Create(context.Background(), o)
	if err != nil {
		t.Fatalf("create %s: %v", o.Name, err)
	}
	return n
}

func attach(t *testing.T, s *Store, network, id, ip string) (*Endpoint, error) {
	t.Helper()
	return s.Attach(context.Background(), network,
		EndpointRequest{ContainerID: id, ContainerName: "c-" + id, IP: ip, OwnerPid: os.Getpid()},
		"/proc/self/ns/net", "eth0", true)
}

func TestCreateSubnetChoice(t *testing.T) {
	f := newFakePlane("172.17.0.0/16", "172.19.0.0/24", "10.200.0.0/16")
	s := openFake(t, f)
	a := mustCreate(t, s, CreateOptions{Name: "a"})
	if a.Subnet != "172.18.0.0/16" || a.Gateway != "172.18.0.1" || a.MTU != 1500 || a.Bridge != "br-"+a.ID[:12] {
		t.Errorf("first network: %+v", a)
	}
	b := mustCreate(t, s, CreateOptions{Name: "b"}) // 172.19/16 overlaps the host's 172.19.0.0/24
	if b.Subnet != "172.20.0.0/16" {
		t.Errorf("second network got %s, want 172.20.0.0/16", b.Subnet)
	}
	if f.links[a.Bridge] != s.tag || f.rules[a.Bridge] != s.tag {
		t.Errorf("bridge or rules of a not made: links %v rules %v", f.links, f.rules)
	}

	// Explicit overlapping subnets: with a network of this root, with a host route.
	_, err := s.Create(context.Background(), CreateOptions{Name: "c", Subnet: "172.18.5.0/24"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "Pool overlaps with other one on this address space") ||
		!strings.Contains(err.Error(), `network "a" (172.18.0.0/16)`) {
		t.Errorf("overlap with a network: %v", err)
	}
	_, err = s.Create(context.Background(), CreateOptions{Name: "c", Subnet: "10.200.1.0/24"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "10.200.1.0/24 overlaps route 10.200.0.0/16 dev eth9") {
		t.Errorf("overlap with a route: %v", err)
	}
	c := mustCreate(t, s, CreateOptions{Name: "c", Subnet: "10.7.0.0/24", Gateway: "10.7.0.254", IPRange: "10.7.0.128/25",
		Options: map[string]string{OptionMTU: "1400"}, Labels: map[string]string{"k": "v"}})
	if c.Gateway != "10.7.0.254" || c.IPRange != "10.7.0.128/25" || c.MTU != 1400 || c.Labels["k"] != "v" {
		t.Errorf("explicit network: %+v", c)
	}
	if _, err := s.Create(context.Background(), CreateOptions{Name: "a"}); !errors.Is(err, ErrConflict) || err.Error() != "network with name a already exists" {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := s.Create(context.Background(), CreateOptions{Name: "bridge"}); !errors.Is(err, ErrConflict) {
		t.Errorf("name bridge: %v", err)
	}
	if len(f.links) != 3 || len(f.rules) != 3 {
		t.Errorf("failed creates left links or rules: %v %v", f.links, f.rules)
	}
}

func TestCreateTwoRootsShareTheHost(t *testing.T) {
	f := newFakePlane("172.17.0.0/16")
	dir := t.TempDir()
	s1, err := open(dir+"/r1", "", f, dir+"/host.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := open(dir+"/r2", "", f, dir+"/host.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	a := mustCreate(t, s1, CreateOptions{Name: "x"})
	b := mustCreate(t, s2, CreateOptions{Name: "x"}) // same name: another root
	if a.Subnet == b.Subnet {
		t.Errorf("two roots took the same subnet %s", a.Subnet)
	}
	if s1.DefaultBridge() == s2.DefaultBridge() || !strings.HasPrefix(s1.DefaultBridge(), "berth-") {
		t.Errorf("default bridges %s and %s", s1.DefaultBridge(), s2.DefaultBridge())
	}
	if _, err := s2.Lookup(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("root 2 sees root 1's network: %v", err)
	}
	// Cleanup of root 2 leaves root 1's bridge alone.
	if err := s2.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.links[a.Bridge]; !ok {
		t.Error("cleanup of another root deleted the bridge")
	}
}

func TestCreateInvalid(t *testing.T) {
	s := openFake(t, newFakePlane())
	for _, c := range []struct {
		o    CreateOptions
		want string
	}{
		{CreateOptions{Name: ""}, "network name is empty"},
		{CreateOptions{Name: "-x"}, "invalid network name"},
		{CreateOptions{Name: "x", Driver: "overlay"}, `network driver "overlay" is not supported`},
		{CreateOptions{Name: "x", Subnet: "10.0.0.0"}, "not a CIDR"},
		{CreateOptions{Name: "x", Subnet: "300.1.0.0/16"}, "not a CIDR"},
		{CreateOptions{Name: "x", Subnet: "10.1.2.3/16"}, "it should be 10.1.0.0/16"},
		{CreateOptions{Name: "x", Subnet: "fd00::/64"}, "only IPv4"},
		{CreateOptions{Name: "x", Subnet: "10.1.0.0/31"}, "/30 or shorter"},
		{CreateOptions{Name: "x", Subnet: "10.1.0.0/16", Gateway: "10.2.0.1"}, "not within subnet 10.1.0.0/16"},
		{CreateOptions{Name: "x", Subnet: "10.1.0.0/16", Gateway: "10.1.255.255"}, "broadcast"},
		{CreateOptions{Name: "x", Subnet: "10.1.0.0/16", Gateway: "nope"}, "not an IP address"},
		{CreateOptions{Name: "x", Gateway: "10.1.0.1"}, "must have a corresponding subnet"},
		{CreateOptions{Name: "x", Subnet: "10.1.0.0/16", IPRange: "10.2.0.0/24"}, "not within subnet"},
		{CreateOptions{Name: "x", MTU: 20}, "invalid MTU"},
		{CreateOptions{Name: "x", Options: map[string]string{OptionMTU: "big"}}, "not a number"},
	} {
		_, err := s.Create(context.Background(), c.o)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %+v: %v, want ErrInvalid with %q", c.o, err, c.want)
		}
	}
	nets, err := s.List(context.Background())
	if err != nil || len(nets) != 3 {
		t.Errorf("after invalid creates: %d networks, %v", len(nets), err)
	}
}

func TestLookupAndList(t *testing.T) {
	s := openFake(t, newFakePlane())
	a := mustCreate(t, s, CreateOptions{Name: "alpha"})
	nets, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nets {
		names = append(names, n.Name+":"+n.Driver)
	}
	if strings.Join(names, ",") != "alpha:bridge,bridge:bridge,host:host,none:null" {
		t.Errorf("list: %v", names)
	}
	for _, q := range []string{"alpha", a.ID, a.ID[:5]} {
		if n, err := s.Lookup(q); err != nil || n.ID != a.ID {
			t.Errorf("lookup %q: %v %v", q, n, err)
		}
	}
	def, err := s.Lookup("bridge")
	if err != nil || !def.Default || def.Bridge != s.DefaultBridge() || !def.Predefined() {
		t.Errorf("lookup bridge: %+v %v", def, err)
	}
	again, _ := s.Lookup("bridge")
	if again.ID != def.ID {
		t.Error("the default network's ID changed")
	}
	if _, err := s.Lookup("nosuch"); !errors.Is(err, ErrNotFound) || err.Error() != "network nosuch not found" {
		t.Errorf("lookup nosuch: %v", err)
	}
	// A name that is also another network's ID prefix: the name wins.
	b := mustCreate(t, s, CreateOptions{Name: a.ID[:4]})
	if n, err := s.Lookup(a.ID[:4]); err != nil || n.ID != b.ID {
		t.Errorf("name vs prefix: %v %v", n, err)
	}
}

func TestAttachIPAM(t *testing.T) {
	f := newFakePlane()
	s := openFake(t, f)
	mustCreate(t, s, CreateOptions{Name: "n", Subnet: "10.9.0.0/29"}) // hosts .1-.6; .1 gateway
	var got []string
	for _, id := range []string{"a", "b", "c"} {
		e, err := attach(t, s, "n", id, "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.CIDR())
		if e.MAC.String() != net.HardwareAddr(macFor(e.IP)).String() || len(e.EndpointID) != 64 || e.HostIfName == "" {
			t.Errorf("endpoint %+v", e)
		}
	}
	if strings.Join(got, " ") != "10.9.0.2/29 10.9.0.3/29 10.9.0.4/29" {
		t.Errorf("addresses %v", got)
	}
	// Sequential after the last one, not the lowest free one.
	if err := s.Detach(context.Background(), "n", "a"); err != nil {
		t.Fatal(err)
	}
	if e, _ := attach(t, s, "n", "d", ""); e == nil || e.IP.String() != "10.9.0.5" {
		t.Errorf("after detach: %v", e)
	}
	// --ip: taken, reserved, outside; then a free one.
	for ip, want := range map[string]error{"10.9.0.3": ErrConflict, "10.9.0.1": ErrInvalid, "10.9.0.7": ErrInvalid, "10.8.0.2": ErrInvalid, "x": ErrInvalid} {
		if _, err := attach(t, s, "n", "e", ip); !errors.Is(err, want) {
			t.Errorf("--ip %s: %v, want %v", ip, err, want)
		}
	}
	if e, err := attach(t, s, "n", "e", "10.9.0.2"); err != nil || e.IP.String() != "10.9.0.2" {
		t.Fatalf("--ip 10.9.0.2: %v %v", e, err)
	}
	// Wrap around: .6 is the last free one, then the pool is full.
	if e, _ := attach(t, s, "n", "f", ""); e == nil || e.IP.String() != "10.9.0.6" {
		t.Errorf("wrap: %v", e)
	}
	if _, err := attach(t, s, "n", "g", ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "no available IPv4 addresses") {
		t.Errorf("full pool: %v", err)
	}
	// Same container twice: refused.
	if _, err := attach(t, s, "n", "b", ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already exists in network n") {
		t.Errorf("attach twice: %v", err)
	}
	eps, err := s.NetworkEndpoints("n")
	if err != nil || len(eps) != 5 {
		t.Fatalf("endpoints %d %v", len(eps), err)
	}
	// A full pool frees the endpoints of dead owners.
	if _, err := s.Attach(context.Background(), "n", EndpointRequest{ContainerID: "dead", OwnerPid: deadPid(t)}, "p", "eth0", false); err == nil {
		t.Fatal("attach with a dead owner pid succeeded")
	}
	owner := livePid(t)
	if _, err := s.Attach(context.Background(), "n", EndpointRequest{ContainerID: "mortal", OwnerPid: owner}, "p", "eth0", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("full pool: %v", err)
	}
	// Make b's owner dead in the state, then attach again.
	st, _ := readState(s.statePath())
	sn, _ := st.find("n")
	sn.Endpoints["b"].OwnerPid = deadPid(t)
	if err := writeState(s.statePath(), st); err != nil {
		t.Fatal(err)
	}
	e, err := s.Attach(context.Background(), "n", EndpointRequest{ContainerID: "mortal", OwnerPid: owner}, "p", "eth1", false)
	if err != nil || e.IP.String() != "10.9.0.3" {
		t.Fatalf("attach after a dead owner: %v %v", e, err)
	}
	if _, ok := f.links[sn.Endpoints["b"].HostIfName]; ok {
		t.Error("the dead endpoint's veth is still there")
	}
}

func TestAttachDefaultNetworkLazyBridge(t *testing.T) {
	f := newFakePlane("172.17.0.0/16")
	s := openFake(t, f)
	if _, err := attach(t, s, "bridge", "x", "172.18.0.9"); !errors.Is(err, ErrInvalid) ||
		err.Error() != "user specified IP address is supported on user defined networks only" {
		t.Errorf("--ip on bridge: %v", err)
	}
	if _, ok := f.links[s.DefaultBridge()]; ok {
		t.Fatal("the default bridge exists before any endpoint")
	}
	// A failing endpoint leaves no bridge, no allocation.
	f.failAdd = errors.New("boom")
	if _, err := attach(t, s, "bridge", "x", ""); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing attach: %v", err)
	}
	if len(f.links) != 0 || len(f.rules) != 0 {
		t.Fatalf("failing attach left %v %v", f.links, f.rules)
	}
	f.failAdd = nil
	e1, err := attach(t, s, "bridge", "x", "")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := attach(t, s, "bridge", "y", "")
	if err != nil {
		t.Fatal(err)
	}
	if e1.IP.String() != "172.18.0.2" || e2.IP.String() != "172.18.0.3" || e1.Gateway.String() != "172.18.0.1" {
		t.Errorf("default network addresses %s %s gw %s", e1.IP, e2.IP, e1.Gateway)
	}
	if f.links[s.DefaultBridge()] != s.tag || f.rules[s.DefaultBridge()] != s.tag {
		t.Errorf("default bridge not made: %v %v", f.links, f.rules)
	}
	if err := s.DetachAll(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Detach(context.Background(), "bridge", "x"); err != nil {
		t.Errorf("detach twice: %v", err)
	}
	if _, ok := f.links[s.DefaultBridge()]; !ok {
		t.Error("default bridge gone with an endpoint left")
	}
	if err := s.Detach(context.Background(), "bridge", "c-y"); err != nil { // by name
		t.Fatal(err)
	}
	if len(f.links) != 0 || len(f.rules) != 0 {
		t.Errorf("after the last detach: %v %v", f.links, f.rules)
	}
	// The subnet is kept while free.
	e3, err := attach(t, s, "bridge", "z", "")
	if err != nil || !strings.HasPrefix(e3.IP.String(), "172.18.") {
		t.Errorf("reattach: %v %v", e3, err)
	}
	if err := s.Detach(context.Background(), "nosuch", "z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("detach from an unknown network: %v", err)
	}
	if _, err := s.Attach(context.Background(), "host", EndpointRequest{ContainerID: "h"}, "p", "eth0", true); !errors.Is(err, ErrInvalid) {
		t.Errorf("attach to host: %v", err)
	}
}

func TestRemovePruneCleanup(t *testing.T) {
	f := newFakePlane()
	s := openFake(t, f)
	a := mustCreate(t, s, CreateOptions{Name: "a"})
	mustCreate(t, s, CreateOptions{Name: "b"})
	if _, err := attach(t, s, "a", "c1", ""); err != nil {
		t.Fatal(err)
	}
	err := s.Remove(context.Background(), "a")
	if !errors.Is(err, ErrInUse) || err.Error() != "error while removing network: network a id "+a.ID+" has active endpoints" {
		t.Errorf("remove in use: %v", err)
	}
	for _, n := range []string{"bridge", "host", "none"} {
		if err := s.Remove(context.Background(), n); !errors.Is(err, ErrInvalid) || err.Error() != n+" is a pre-defined network and cannot be removed" {
			t.Errorf("remove %s: %v", n, err)
		}
	}
	if err := s.Remove(context.Background(), "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove nosuch: %v", err)
	}
	// Orphans: a link with this root's tag and one of another root; a rule of a gone bridge.
	f.links["vethorphan"] = s.tag
	f.links["vethother"] = "berth:ffffffff"
	f.rules["br-gone"] = s.tag
	removed, err := s.Prune(context.Background())
	if err != nil || strings.Join(removed, ",") != "b" {
		t.Errorf("prune: %v %v", removed, err)
	}
	if _, ok := f.links["vethorphan"]; ok {
		t.Error("orphan veth kept")
	}
	if _, ok := f.links["vethother"]; !ok {
		t.Error("another root's veth deleted")
	}
	if _, ok := f.rules["br-gone"]; ok {
		t.Error("orphan rule kept")
	}
	if _, ok := f.links[a.Bridge]; !ok {
		t.Error("bridge of a network in use deleted")
	}
	if err := s.Detach(context.Background(), "a", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(context.Background(), a.ID[:12]); err != nil {
		t.Fatal(err)
	}
	delete(f.links, "vethother")
	if len(f.links) != 0 || len(f.rules) != 0 {
		t.Errorf("left behind: %v %v", f.links, f.rules)
	}
}

func TestResolve(t *testing.T) {
	s := openFake(t, newFakePlane())
	n := mustCreate(t, s, CreateOptions{Name: "n", Subnet: "10.5.0.0/24"})
	other := mustCreate(t, s, CreateOptions{Name: "o", Subnet: "10.6.0.0/24"})
	id := strings.Repeat("ab", 32)
	if _, err := s.Attach(context.Background(), "n", EndpointRequest{ContainerID: id, ContainerName: "/Web", Aliases: []string{"www"}, OwnerPid: os.Getpid()}, "p", "eth0", true); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"web", "WEB.", "www", id, id[:12]} {
		if ips := s.Resolve(n.ID, q); len(ips) != 1 || ips[0].String() != "10.5.0.2" {
			t.Errorf("resolve %q: %v", q, ips)
		}
	}
	if ips := s.Resolve("n", "web"); len(ips) != 1 {
		t.Errorf("resolve by network name: %v", ips)
	}
	if ips := s.Resolve(other.ID, "web"); len(ips) != 0 {
		t.Errorf("resolved on another network: %v", ips)
	}
	if ips := s.Resolve(n.ID, "nosuch"); len(ips) != 0 {
		t.Errorf("nosuch: %v", ips)
	}
	if err := s.Detach(context.Background(), "n", id); err != nil {
		t.Fatal(err)
	}
	if ips := s.Resolve(n.ID, "web"); len(ips) != 0 {
		t.Errorf("after detach: %v", ips)
	}
}

func TestInspectShape(t *testing.T) {
	s := openFake(t, newFakePlane())
	mustCreate(t, s, CreateOptions{Name: "n", Subnet: "10.5.0.0/24", Labels: map[string]string{"a": "b"}})
	if _, err := attach(t, s, "n", "cid", ""); err != nil {
		t.Fatal(err)
	}
	n, err := s.Lookup("n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	cfg := m["IPAM"].(map[string]any)["Config"].([]any)[0].(map[string]any)
	c := m["Containers"].(map[string]any)["cid"].(map[string]any)
	if m["Id"] != n.ID || m["Scope"] != "local" || m["Driver"] != "bridge" || m["EnableIPv6"] != false ||
		cfg["Subnet"] != "10.5.0.0/24" || cfg["Gateway"] != "10.5.0.1" ||
		c["Name"] != "c-cid" || c["IPv4Address"] != "10.5.0.2/24" || c["MacAddress"] != "02:42:0a:05:00:02" ||
		m["Options"].(map[string]any)[OptionBridgeName] != n.Bridge || m["Labels"].(map[string]any)["a"] != "b" {
		t.Errorf("inspect JSON: %s", b)
	}
}
