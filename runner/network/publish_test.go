package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

func TestPublishRules(t *testing.T) {
	ports := []PublishedPort{
		{HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 8081, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "0.0.0.0", HostPort: 5353, ContainerPort: 53, Proto: "udp"},
	}
	rules, localnet := publishRules("berth:t/c1", "br-abc", net.ParseIP("10.1.0.2"), ports)
	var got []string
	for _, r := range rules {
		got = append(got, strings.Join(r.cmd("-A"), " "))
	}
	c := "-m comment --comment berth:t/c1"
	want := []string{
		"-t filter -A BERTH-FORWARD -d 10.1.0.2/32 ! -i br-abc -o br-abc -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT " + c + " -j ACCEPT",
		"-t filter -A BERTH-FORWARD -d 10.1.0.2/32 ! -i br-abc -o br-abc -p udp -m udp --dport 53 -m conntrack --ctstate DNAT " + c + " -j ACCEPT",
		"-t nat -A POSTROUTING -s 127.0.0.0/8 -d 10.1.0.2/32 -o br-abc " + c + " -j MASQUERADE",
		"-t filter -A INPUT -d 127.0.0.0/8 -i br-abc -m conntrack ! --ctstate RELATED,ESTABLISHED " + c + " -j DROP",
		"-t nat -A BERTH-DNAT -p tcp -m tcp --dport 8080 " + c + " -j DNAT --to-destination 10.1.0.2:80",
		"-t nat -A BERTH-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8081 " + c + " -j DNAT --to-destination 10.1.0.2:80",
		"-t nat -A BERTH-DNAT -p udp -m udp --dport 5353 " + c + " -j DNAT --to-destination 10.1.0.2:53",
	}
	if !localnet || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("localnet %v, rules:\n%s", localnet, strings.Join(got, "\n"))
	}

	// Only a non-loopback address: no loopback rules, no route_localnet.
	rules, localnet = publishRules("berth:t/c1", "br-abc", net.ParseIP("10.1.0.2"), []PublishedPort{{HostIP: "192.0.2.7", HostPort: 80, ContainerPort: 80, Proto: "tcp"}})
	if localnet || len(rules) != 2 || !strings.Contains(strings.Join(rules[1].args, " "), "-d 192.0.2.7/32 -p tcp") {
		t.Errorf("192.0.2.7:80:80: localnet %v, %v", localnet, rules)
	}

	nr, localnet := nftPublishRules("berth:t/c1", "br-abc", net.ParseIP("10.1.0.2"), ports[:2])
	var ngot []string
	for _, r := range nr {
		ngot = append(ngot, r[0]+": "+r[1])
	}
	nc := ` comment "berth:t/c1"`
	nwant := []string{
		`forward: ip daddr 10.1.0.2 iifname != "br-abc" oifname "br-abc" tcp dport 80 ct status dnat accept` + nc,
		`postrouting: ip saddr 127.0.0.0/8 ip daddr 10.1.0.2 oifname "br-abc" masquerade` + nc,
		`rawpre: iifname "br-abc" ip daddr 127.0.0.0/8 drop` + nc,
		`publish: tcp dport 8080 dnat to 10.1.0.2:80` + nc,
		`publish: ip daddr 127.0.0.1 tcp dport 8081 dnat to 10.1.0.2:80` + nc,
	}
	if !localnet || strings.Join(ngot, "\n") != strings.Join(nwant, "\n") {
		t.Errorf("nft rules:\n%s", strings.Join(ngot, "\n"))
	}
}

func TestPublishRuleParsing(t *testing.T) {
	line := `-A POSTROUTING -s 127.0.0.0/8 -d 10.1.0.2/32 -o br-abc -m comment --comment "berth:t/c1" -j MASQUERADE`
	fields := strings.Fields(strings.ReplaceAll(line, `"`, ""))
	if c := ruleComment(fields); c != "berth:t/c1" {
		t.Errorf("comment of %q: %q", line, c)
	}
	if br := lineIface(fields, "-o"); br != "br-abc" {
		t.Errorf("-o of %q: %q", line, br)
	}
	neg := strings.Fields(`-A BERTH-FORWARD -d 10.1.0.2/32 ! -i br-abc -o br-abc -j ACCEPT`)
	if lineIface(neg, "-i") != "" || lineIface(neg, "-o") != "br-abc" {
		t.Errorf("negated -i taken for an interface")
	}
	// A network's rule (the root's bare tag) is not a publish rule of the root's cleanup.
	if taggedRule(fields, "berth:t") {
		t.Error("a publish rule looks like a network rule to iptablesCleanup")
	}
	nftLine := `		ip saddr 127.0.0.0/8 ip daddr 10.1.0.2 oifname "br-abc" masquerade comment "berth:t/c1" # handle 9`
	if m := nftComment.FindStringSubmatch(nftLine); m == nil || m[1] != "berth:t/c1" {
		t.Errorf("nft comment of %q: %v", nftLine, m)
	}
}

func TestPublishedPortValidate(t *testing.T) {
	for _, p := range []PublishedPort{
		{HostPort: 0, ContainerPort: 80, Proto: "tcp"},
		{HostPort: 80, ContainerPort: 70000, Proto: "tcp"},
		{HostPort: 80, ContainerPort: 80, Proto: "sctp"},
		{HostIP: "localhost", HostPort: 80, ContainerPort: 80, Proto: "tcp"},
	} {
		if err := p.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for _, c := range []struct {
		p      PublishedPort
		v4, lo bool
		addr   string
	}{
		{p: PublishedPort{HostIP: "", HostPort: 1, ContainerPort: 1, Proto: "udp"}, v4: true, lo: true},
		{p: PublishedPort{HostIP: "0.0.0.0", HostPort: 1, ContainerPort: 1, Proto: "tcp"}, v4: true, lo: true},
		{p: PublishedPort{HostIP: "127.0.0.2", HostPort: 1, ContainerPort: 1, Proto: "tcp"}, v4: true, lo: true, addr: "127.0.0.2"},
		{p: PublishedPort{HostIP: "192.0.2.1", HostPort: 1, ContainerPort: 1, Proto: "tcp"}, v4: true, addr: "192.0.2.1"},
		{p: PublishedPort{HostIP: "::", HostPort: 1, ContainerPort: 1, Proto: "tcp"}},
	} {
		if err := c.p.validate(); err != nil {
			t.Errorf("%+v: %v", c.p, err)
		}
		if c.p.ipv4() != c.v4 || (c.v4 && (c.p.loopback() != c.lo || c.p.hostAddr() != c.addr)) {
			t.Errorf("%+v: ipv4 %v loopback %v addr %q", c.p, c.p.ipv4(), c.p.loopback(), c.p.hostAddr())
		}
	}
	for _, id := range []string{"", "a b", `a"b`, "a/b", strings.Repeat("a", 129)} {
		if err := validContainerID(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("container ID %q: %v", id, err)
		}
	}
}

// publishFake is a fake dataplane that also publishes: it records the calls.
type publishFake struct {
	*fakePlane
	calls []string
}

func (f *publishFake) publish(tag, containerID string, n *Network, ep *Endpoint, ports []PublishedPort) error {
	var ps []string
	for _, p := range ports {
		ps = append(ps, fmt.Sprintf("%s:%d:%d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Proto))
	}
	f.calls = append(f.calls, fmt.Sprintf("publish %s %s %s %s %s", tag, containerID, n.Bridge, ep.IP, strings.Join(ps, ",")))
	return nil
}

func (f *publishFake) unpublish(tag, containerID string) error {
	f.calls = append(f.calls, "unpublish "+tag+" "+containerID)
	return nil
}

func (f *publishFake) cleanupPublish(tag string, keep map[string]bool) error {
	var ids []string
	for id := range keep {
		ids = append(ids, id)
	}
	f.calls = append(f.calls, fmt.Sprintf("cleanup %s %d", tag, len(ids)))
	for _, id := range ids {
		if !strings.HasPrefix(id, "c") {
			f.calls = append(f.calls, "unexpected live container "+id)
		}
	}
	return nil
}

func (f *publishFake) take() string {
	s := strings.Join(f.calls, "\n")
	f.calls = nil
	return s
}

func TestStorePublish(t *testing.T) {
	f := &publishFake{fakePlane: newFakePlane()}
	dir := t.TempDir()
	s, err := open(dir+"/root", dir+"/run", f, dir+"/host.lock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	n := mustCreate(t, s, CreateOptions{Name: "web", Subnet: "10.9.0.0/24"})
	in := mustCreate(t, s, CreateOptions{Name: "back", Subnet: "10.10.0.0/24", Internal: true})
	e1, err := attach(t, s, "web", "c1", "")
	if err != nil {
		t.Fatal(err)
	}
	pid := livePid(t)
	_, err = s.Attach(ctx, "web", EndpointRequest{ContainerID: "c2", OwnerPid: pid}, "/proc/self/ns/net", "eth0", true)
	if err != nil {
		t.Fatal(err)
	}
	ports := []PublishedPort{
		{HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "::", HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 53, Proto: "udp"},
	}
	if err := s.Publish(ctx, "c1", e1, ports); err != nil {
		t.Fatal(err)
	}
	// Orphans first (both containers live), then the IPv4 ports.
	want := "cleanup " + s.tag + " 2\npublish " + s.tag + " c1 " + n.Bridge + " 10.9.0.2 :8080:80/tcp,127.0.0.1:53:53/udp"
	if got := f.take(); got != want {
		t.Errorf("Publish calls:\n%s\nwant:\n%s", got, want)
	}

	// Refused before any rule: bad ports, an endpoint that is not the container's, a
	// container without an endpoint.
	bad := *e1
	bad.IP = net.ParseIP("10.9.0.99")
	for _, c := range []struct {
		id    string
		ep    *Endpoint
		ports []PublishedPort
		kind  error
	}{
		{"c1", e1, []PublishedPort{{HostPort: 0, ContainerPort: 80, Proto: "tcp"}}, ErrInvalid},
		{"c1", &bad, ports, ErrInvalid},
		{"c1", nil, ports, ErrInvalid},
		{"c9", e1, ports, ErrNotFound},
		{"c 1", e1, ports, ErrInvalid},
	} {
		if err := s.Publish(ctx, c.id, c.ep, c.ports); !errors.Is(err, c.kind) {
			t.Errorf("Publish(%s, %v, %v): %v, want %v", c.id, c.ep, c.ports, err, c.kind)
		}
	}
	if got := f.take(); got != "" {
		t.Errorf("refused publishes touched the dataplane:\n%s", got)
	}

	// Only IPv6 ports: nothing to forward, the container's rules go.
	if err := s.Publish(ctx, "c1", e1, ports[1:2]); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); got != "unpublish "+s.tag+" c1" {
		t.Errorf("IPv6-only publish: %q", got)
	}
	// An internal network: the proxy only.
	ei, err := attach(t, s, in.Name, "c3", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "c3", ei, ports[:1]); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); got != "cleanup "+s.tag+" 3\nunpublish "+s.tag+" c3" {
		t.Errorf("internal network publish: %q", got)
	}
	if err := s.Unpublish(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); got != "unpublish "+s.tag+" c2" {
		t.Errorf("Unpublish: %q", got)
	}

	// Cleanup keeps the rules of live containers only: c2's owner dies.
	p, _ := os.FindProcess(pid)
	_ = p.Kill()
	_, _ = p.Wait()
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); got != "cleanup "+s.tag+" 2" {
		t.Errorf("Cleanup calls: %q (want the 2 live containers c1, c3)", got)
	}

	// A dataplane without the kernel path: Publish does nothing, successfully.
	plain := openFake(t, newFakePlane())
	mustCreate(t, plain, CreateOptions{Name: "web", Subnet: "10.9.0.0/24"})
	pe, err := attach(t, plain, "web", "c1", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Publish(ctx, "c1", pe, ports); err != nil {
		t.Errorf("Publish without a kernel path: %v", err)
	}
	if err := plain.Unpublish(ctx, "c1"); err != nil {
		t.Errorf("Unpublish without a kernel path: %v", err)
	}
}

func TestCustomBridgeReturnRule(t *testing.T) {
	for name, want := range map[string]bool{"br-0123456789ab": true, "berth0": true, "berth-1a2b3c4d": true, "docker0": true, "docker1": false, "mybridge": false, "br0": false} {
		if wildcardBridge(name) != want {
			t.Errorf("wildcardBridge(%q) = %v", name, !want)
		}
	}
	// A bridge of another name gets a RETURN rule in BERTH-PREROUTING with its network's
	// rules (first: it is inserted before the jump to BERTH-DNAT), tagged like them.
	rules := networkRules(&Network{Bridge: "mybridge", Subnet: "10.1.0.0/16"}, "berth:t")
	if got := strings.Join(rules[0].cmd("-A"), " "); got != "-t nat -A BERTH-PREROUTING -i mybridge -j RETURN -m comment --comment berth:t" {
		t.Errorf("first rule of a custom-named bridge: %s", got)
	}
	for _, r := range networkRules(&Network{Bridge: "br-abc", Subnet: "10.1.0.0/16"}, "berth:t") {
		if r.chain == preroutingChain {
			t.Errorf("a br-* bridge has its own RETURN rule: %v", r)
		}
	}
}
