package network

// The kernel fast path of published ports: DNAT rules that send what the host and other
// hosts address to a published host port straight to the container, as Docker does with
// userland-proxy=false. The userland proxy (runner/network/portmap) keeps holding the port
// and still serves what the rules leave to it: traffic from container bridges (hairpin and
// cross-network access), IPv6, internal networks and hosts without a NAT backend.
//
// iptables layout (nat table unless said otherwise), C = "<root tag>/<container ID>":
//
//	-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH-PREROUTING   (inserted first)
//	-A OUTPUT -m addrtype --dst-type LOCAL -j BERTH-DNAT             (inserted first; loopback included)
//	-A BERTH-PREROUTING -i docker0|br-+|berth+ -j RETURN             (container bridges keep the proxy)
//	-A BERTH-PREROUTING -j BERTH-DNAT
//	-A BERTH-DNAT [-d HOSTIP/32] -p tcp -m tcp --dport HP -m comment --comment C -j DNAT --to-destination IP:CP
//	-A POSTROUTING -s 127.0.0.0/8 -d IP/32 -o BR -m comment --comment C -j MASQUERADE
//	-t filter -I INPUT -d 127.0.0.0/8 -i BR -m conntrack ! --ctstate RELATED,ESTABLISHED -m comment --comment C -j DROP
//	-t filter -A BERTH-FORWARD -d IP/32 ! -i BR -o BR -p tcp -m tcp --dport CP -m conntrack --ctstate DNAT -m comment --comment C -j ACCEPT
//
// Loopback traffic needs net.ipv4.conf.BR.route_localnet=1 (set while a container of the
// bridge publishes on loopback, reset after the last one); the INPUT rule keeps containers
// on the bridge from reaching the host's 127.0.0.0/8 services through it (CVE-2020-8558; the
// filter table, not raw, so that no table is made that was not there). The
// filter rule accepts only connections the PREROUTING rules translated (ctstate DNAT), so it
// never opens a way around the isolation between networks. Berth's nat chains go with their
// last rule. The nft backend makes the same rules in its table "ip berth".

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// PublishedPort is one published port of a container, after the proxy bound it.
type PublishedPort struct {
	// HostIP is the host address the port is published on; "" or "0.0.0.0" is every IPv4
	// address (loopback included). IPv6 addresses are left to the proxy.
	HostIP string
	// HostPort is the bound host port (not 0).
	HostPort int
	// ContainerPort is the port in the container.
	ContainerPort int
	// Proto is "tcp" or "udp".
	Proto string
}

// Names of Berth's nat chains for published ports.
const (
	dnatChain       = "BERTH-DNAT"
	preroutingChain = "BERTH-PREROUTING"
)

// bridgeWildcards are the container bridges (Docker's docker0 and br-*, Berth's br-*,
// berth0 and berth-*) whose traffic to the host is never DNATed: it goes to the proxy.
// Berth's bridges of other names (com.docker.network.bridge.name) get a RETURN rule of
// their own with their network's rules (networkRules, iptables only).
var bridgeWildcards = []string{"docker0", "br-+", "berth+"}

// wildcardBridge tells whether a bridge name matches one of bridgeWildcards.
func wildcardBridge(name string) bool {
	for _, w := range bridgeWildcards {
		if p, ok := strings.CutSuffix(w, "+"); ok && strings.HasPrefix(name, p) || name == w {
			return true
		}
	}
	return false
}

// publishPlane is the part of a dataplane that installs published ports in the kernel.
// The host's dataplane has it; a dataplane without it leaves every port to the proxy.
type publishPlane interface {
	// publish makes the container's rules (replacing others of the container; on error
	// none of the container's are left).
	publish(tag, containerID string, n *Network, ep *Endpoint, ports []PublishedPort) error
	// unpublish deletes the container's rules.
	unpublish(tag, containerID string) error
	// cleanupPublish deletes the rules tagged tag of containers not in keep.
	cleanupPublish(tag string, keep map[string]bool) error
}

// publishComment is the comment of a container's publish rules.
func publishComment(tag, containerID string) string { return tag + "/" + containerID }

// Publish installs kernel forwarding (DNAT) for the container's published TCP and UDP ports
// to its endpoint address ep.IP on ep's network: traffic of the host itself (nat OUTPUT,
// loopback included) and traffic arriving from other hosts (nat PREROUTING, except from
// container bridges, which keeps going to the userland proxy), plus the filter rule
// accepting those connections out through the bridge. Rules are tagged with the root's tag
// and the container ID, so that Unpublish and Cleanup find them. Publish is idempotent (a
// second call replaces the container's rules) and all-or-nothing. Ports on IPv6 host
// addresses and endpoints of internal networks are left to the proxy (nothing is made), as
// is everything on hosts without iptables or nft.
func (s *Store) Publish(ctx context.Context, containerID string, ep *Endpoint, ports []PublishedPort) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validContainerID(containerID); err != nil {
		return err
	}
	if ep == nil || ep.IP.To4() == nil {
		return newError(ErrInvalid, "publish: the endpoint has no IPv4 address")
	}
	var kernel []PublishedPort
	for _, p := range ports {
		if err := p.validate(); err != nil {
			return err
		}
		if p.ipv4() {
			kernel = append(kernel, p)
		}
	}
	pp, ok := s.dp.(publishPlane)
	if !ok {
		return nil
	}
	if len(kernel) == 0 {
		return s.Unpublish(ctx, containerID)
	}
	return s.update(func(st *state) (bool, error) {
		sn, err := st.find(ep.NetworkID)
		if err != nil {
			return false, fmt.Errorf("publish: %w", err)
		}
		n := sn.net()
		e := sn.Endpoints[containerID]
		if n.Driver != DriverBridge || e == nil || !e.alive() {
			return false, newError(ErrNotFound, fmt.Sprintf("publish: container %s has no live endpoint on network %s", containerID, n.Name))
		}
		if !e.IP.Equal(ep.IP) {
			return false, newError(ErrInvalid, fmt.Sprintf("publish: container %s has address %s on network %s, not %s", containerID, e.IP, n.Name, ep.IP))
		}
		live := liveContainers(st)
		return false, s.withHostLock(func() error {
			// Rules of this root's containers that are gone (a crash) go first: their
			// addresses may be handed out again.
			if err := pp.cleanupPublish(s.tag, live); err != nil {
				slog.Warn("network: delete orphaned publish rules", "err", err)
			}
			if n.Internal {
				return pp.unpublish(s.tag, containerID)
			}
			return pp.publish(s.tag, containerID, n, e, kernel)
		})
	})
}

// Unpublish removes the container's publish rules (idempotent).
func (s *Store) Unpublish(ctx context.Context, containerID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validContainerID(containerID); err != nil {
		return err
	}
	pp, ok := s.dp.(publishPlane)
	if !ok {
		return nil
	}
	return s.withHostLock(func() error { return pp.unpublish(s.tag, containerID) })
}

// liveContainers returns the IDs of the containers with a live endpoint.
func liveContainers(st *state) map[string]bool {
	live := map[string]bool{}
	for _, sn := range st.Networks {
		for id, e := range sn.Endpoints {
			if e.alive() {
				live[id] = true
			}
		}
	}
	return live
}

// validContainerID checks that a container ID can go into a rule comment.
func validContainerID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, " \t\n\"'\\/") {
		return newError(ErrInvalid, fmt.Sprintf("publish: invalid container ID %q", id))
	}
	return nil
}

func (p PublishedPort) validate() error {
	if p.Proto != "tcp" && p.Proto != "udp" {
		return newError(ErrInvalid, fmt.Sprintf("publish: invalid protocol %q: want tcp or udp", p.Proto))
	}
	if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return newError(ErrInvalid, fmt.Sprintf("publish: invalid port mapping %d:%d/%s", p.HostPort, p.ContainerPort, p.Proto))
	}
	if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
		return newError(ErrInvalid, fmt.Sprintf("publish: invalid host IP %q", p.HostIP))
	}
	return nil
}

// ipv4 tells whether the port is published on IPv4 (all addresses or one IPv4 address).
func (p PublishedPort) ipv4() bool {
	return p.HostIP == "" || net.ParseIP(p.HostIP).To4() != nil
}

// hostAddr is the IPv4 destination the rule matches; "" for every address.
func (p PublishedPort) hostAddr() string {
	if p.HostIP == "" {
		return ""
	}
	ip := net.ParseIP(p.HostIP).To4()
	if ip == nil || ip.IsUnspecified() {
		return ""
	}
	return ip.String()
}

// loopback tells whether the port is reachable on the host's loopback.
func (p PublishedPort) loopback() bool {
	h := p.hostAddr()
	return h == "" || net.ParseIP(h).IsLoopback()
}

// ---------------------------------------------------------------------------------------------
// the host's dataplane

func (netlinkPlane) publish(tag, containerID string, n *Network, ep *Endpoint, ports []PublishedPort) error {
	switch natBackend() {
	case "iptables":
		return iptablesPublish(tag, containerID, n.Bridge, ep.IP, ports)
	case "nft":
		return nftPublish(tag, containerID, n.Bridge, ep.IP, ports)
	}
	return nil
}

func (netlinkPlane) unpublish(tag, containerID string) error {
	c := publishComment(tag, containerID)
	return deletePublish(func(comment string) bool { return comment == c })
}

func (netlinkPlane) cleanupPublish(tag string, keep map[string]bool) error {
	return deletePublish(func(comment string) bool {
		id, ok := strings.CutPrefix(comment, tag+"/")
		return ok && !keep[id]
	})
}

// deletePublish deletes the publish rules whose comment del selects, with the backend in
// use.
func deletePublish(del func(comment string) bool) error {
	switch natBackend() {
	case "iptables":
		return iptablesUnpublish(del)
	case "nft":
		return nftUnpublish(del)
	}
	return nil
}

// setRouteLocalnet sets net.ipv4.conf.<bridge>.route_localnet; a bridge that is gone is
// not an error when clearing.
func setRouteLocalnet(bridge string, on bool) error {
	if bridge == "" || strings.ContainsAny(bridge, "/") || bridge == "." || bridge == ".." {
		return fmt.Errorf("invalid bridge name %q", bridge)
	}
	v := "0\n"
	if on {
		v = "1\n"
	}
	err := os.WriteFile("/proc/sys/net/ipv4/conf/"+bridge+"/route_localnet", []byte(v), 0o644)
	if err != nil && !on && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set route_localnet of %s: %w", bridge, err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// iptables

// publishRules are the container's iptables rules, in the order they are added: those that
// let translated traffic through first, the DNAT rules last. localnet tells whether a port
// is reachable on loopback (route_localnet is needed).
func publishRules(comment, bridge string, ip net.IP, ports []PublishedPort) (rules []rule, localnet bool) {
	c := []string{"-m", "comment", "--comment", comment}
	cip := ip.To4().String()
	seen := map[string]bool{}
	add := func(r rule) {
		k := r.table + " " + r.chain + " " + strings.Join(r.args, " ")
		if !seen[k] {
			seen[k] = true
			rules = append(rules, r)
		}
	}
	var dnat []rule
	for _, p := range ports {
		cp := strconv.Itoa(p.ContainerPort)
		add(rule{"filter", forwardChain, append([]string{"-d", cip + "/32", "!", "-i", bridge, "-o", bridge,
			"-p", p.Proto, "-m", p.Proto, "--dport", cp, "-m", "conntrack", "--ctstate", "DNAT"}, append(c, "-j", "ACCEPT")...)})
		var args []string
		if h := p.hostAddr(); h != "" {
			args = append(args, "-d", h+"/32")
		}
		args = append(args, "-p", p.Proto, "-m", p.Proto, "--dport", strconv.Itoa(p.HostPort))
		args = append(append(args, c...), "-j", "DNAT", "--to-destination", net.JoinHostPort(cip, cp))
		dnat = append(dnat, rule{"nat", dnatChain, args})
		if p.loopback() {
			localnet = true
		}
	}
	if localnet {
		add(rule{"nat", "POSTROUTING", append([]string{"-s", "127.0.0.0/8", "-d", cip + "/32", "-o", bridge}, append(c, "-j", "MASQUERADE")...)})
		add(rule{"filter", "INPUT", append([]string{"-d", "127.0.0.0/8", "-i", bridge, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED"}, append(c, "-j", "DROP")...)})
	}
	for _, r := range dnat {
		add(r)
	}
	return rules, localnet
}

// publishChains are the chains that hold publish rules.
var publishChains = [][2]string{{"nat", dnatChain}, {"nat", "POSTROUTING"}, {"filter", "INPUT"}, {"filter", forwardChain}}

// publishLine is a publish rule as iptables -S prints it, split into fields (quotes removed).
type publishLine struct {
	table   string
	fields  []string
	comment string
}

// publishLines lists the publish rules whose comment sel selects.
func publishLines(sel func(comment string) bool) []publishLine {
	var out []publishLine
	for _, tc := range publishChains {
		s, err := iptables("-t", tc[0], "-S", tc[1])
		if err != nil {
			continue // no such chain
		}
		for _, line := range strings.Split(s, "\n") {
			fields := strings.Fields(strings.ReplaceAll(line, `"`, ""))
			if len(fields) < 2 || fields[0] != "-A" {
				continue
			}
			if c := ruleComment(fields); c != "" && strings.Contains(c, "/") && sel(c) {
				out = append(out, publishLine{table: tc[0], fields: fields, comment: c})
			}
		}
	}
	return out
}

// ruleComment returns the comment of the fields of an iptables -S line.
func ruleComment(fields []string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "--comment" {
			return fields[i+1]
		}
	}
	return ""
}

// lineIface returns the value of opt (-i or -o, not negated) in the fields of a rule.
func lineIface(fields []string, opt string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == opt && (i == 0 || fields[i-1] != "!") {
			return fields[i+1]
		}
	}
	return ""
}

// iptablesPublish makes the container's rules: nothing when they are all there already,
// else the old ones are deleted and the new ones added.
func iptablesPublish(tag, containerID, bridge string, ip net.IP, ports []PublishedPort) (err error) {
	comment := publishComment(tag, containerID)
	rules, localnet := publishRules(comment, bridge, ip, ports)
	old := publishLines(func(c string) bool { return c == comment })
	if len(old) == len(rules) && iptablesHasAll(rules) {
		return nil
	}
	mine := func(c string) bool { return c == comment }
	if err := iptablesUnpublish(mine); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if uerr := iptablesUnpublish(mine); uerr != nil {
				slog.Warn("network: undo a failed publish", "container", containerID, "err", uerr)
			}
		}
	}()
	if err := iptablesPublishChains(); err != nil {
		return err
	}
	if localnet {
		if err := setRouteLocalnet(bridge, true); err != nil {
			return err
		}
	}
	for _, r := range rules {
		cmd := r.cmd("-A")
		if r.chain == "INPUT" { // before the host's own INPUT rules
			cmd = append([]string{"-t", r.table, "-I", r.chain, "1"}, r.args...)
		}
		if _, err := iptables(cmd...); err != nil {
			return fmt.Errorf("publish ports of %s: %w", containerID, err)
		}
	}
	return nil
}

// iptablesHasAll tells whether every rule exists.
func iptablesHasAll(rules []rule) bool {
	for _, r := range rules {
		if !iptablesOK(r.cmd("-C")...) {
			return false
		}
	}
	return true
}

// iptablesPublishChains makes Berth's nat chains and the jumps to them (idempotent; a rule
// missing is put back in its place).
func iptablesPublishChains() error {
	for _, ch := range []string{dnatChain, preroutingChain} {
		if !iptablesOK("-t", "nat", "-n", "-L", ch) {
			if _, err := iptables("-t", "nat", "-N", ch); err != nil {
				return err
			}
		}
	}
	if !iptablesOK("-t", "nat", "-C", preroutingChain, "-j", dnatChain) {
		if _, err := iptables("-t", "nat", "-A", preroutingChain, "-j", dnatChain); err != nil {
			return err
		}
	}
	for _, br := range bridgeWildcards {
		if !iptablesOK("-t", "nat", "-C", preroutingChain, "-i", br, "-j", "RETURN") {
			if _, err := iptables("-t", "nat", "-I", preroutingChain, "1", "-i", br, "-j", "RETURN"); err != nil {
				return err
			}
		}
	}
	for _, j := range [][2]string{{"PREROUTING", preroutingChain}, {"OUTPUT", dnatChain}} {
		args := []string{j[0], "-m", "addrtype", "--dst-type", "LOCAL", "-j", j[1]}
		if !iptablesOK(append([]string{"-t", "nat", "-C"}, args...)...) {
			if _, err := iptables(append([]string{"-t", "nat", "-I", j[0], "1"}, args[1:]...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// iptablesUnpublish deletes the publish rules whose comment del selects, clears
// route_localnet of the bridges left without a loopback rule, and deletes Berth's nat chains
// when no publish rule is left in them.
func iptablesUnpublish(del func(comment string) bool) error {
	var errs []error
	bridges := map[string]bool{}
	for _, l := range publishLines(del) {
		if l.table == "nat" && l.fields[1] == "POSTROUTING" {
			bridges[lineIface(l.fields, "-o")] = true
		}
		args := append([]string{"-t", l.table, "-D"}, l.fields[1:]...)
		if _, err := iptables(args...); err != nil {
			errs = append(errs, err)
		}
	}
	if len(bridges) > 0 {
		for _, l := range publishLines(func(string) bool { return true }) {
			if l.table == "nat" && l.fields[1] == "POSTROUTING" {
				delete(bridges, lineIface(l.fields, "-o"))
			}
		}
		for br := range bridges {
			if br != "" {
				errs = append(errs, setRouteLocalnet(br, false))
			}
		}
	}
	errs = append(errs, dropPublishChains())
	return errors.Join(errs...)
}

// dropPublishChains deletes BERTH-DNAT, BERTH-PREROUTING and the jumps to them when
// BERTH-DNAT is empty and no network has a rule of its own in BERTH-PREROUTING.
func dropPublishChains() error {
	out, err := iptables("-t", "nat", "-S", dnatChain)
	if err == nil {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "-A ") {
				return nil // still used
			}
		}
	}
	if out, err := iptables("-t", "nat", "-S", preroutingChain); err == nil && strings.Contains(out, "--comment") {
		return nil // a network's RETURN rule
	}
	var errs []error
	for _, j := range [][2]string{{"PREROUTING", preroutingChain}, {"OUTPUT", dnatChain}} {
		args := []string{j[0], "-m", "addrtype", "--dst-type", "LOCAL", "-j", j[1]}
		for i := 0; i < 16 && iptablesOK(append([]string{"-t", "nat", "-C"}, args...)...); i++ {
			if _, err := iptables(append([]string{"-t", "nat", "-D"}, args...)...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for _, ch := range []string{preroutingChain, dnatChain} {
		if iptablesOK("-t", "nat", "-n", "-L", ch) {
			if _, err := iptables("-t", "nat", "-F", ch); err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := iptables("-t", "nat", "-X", ch); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ---------------------------------------------------------------------------------------------
// nft: the same rules in Berth's table "ip berth": chain "publish" (the DNAT rules), base
// chains "prerouting" and "output" (nat) jumping to it, "rawpre" (the loopback guard), and
// the table's "forward" and "postrouting" chains for the rest.

// nftPublishChains are the chains that hold publish rules.
var nftPublishChains = []string{"publish", "postrouting", "rawpre", "forward"}

var nftComment = regexp.MustCompile(`comment "([^"]+)"`)

// nftPublishRules are the container's nft rules (chain, rule), DNAT rules last.
func nftPublishRules(comment, bridge string, ip net.IP, ports []PublishedPort) (rules [][2]string, localnet bool) {
	c := ` comment "` + comment + `"`
	br := `"` + bridge + `"`
	cip := ip.To4().String()
	seen := map[[2]string]bool{}
	add := func(r [2]string) {
		if !seen[r] {
			seen[r] = true
			rules = append(rules, r)
		}
	}
	var dnat [][2]string
	for _, p := range ports {
		cp := strconv.Itoa(p.ContainerPort)
		add([2]string{"forward", "ip daddr " + cip + " iifname != " + br + " oifname " + br + " " + p.Proto + " dport " + cp + " ct status dnat accept" + c})
		d := ""
		if h := p.hostAddr(); h != "" {
			d = "ip daddr " + h + " "
		}
		dnat = append(dnat, [2]string{"publish", d + p.Proto + " dport " + strconv.Itoa(p.HostPort) + " dnat to " + net.JoinHostPort(cip, cp) + c})
		if p.loopback() {
			localnet = true
		}
	}
	if localnet {
		add([2]string{"postrouting", "ip saddr 127.0.0.0/8 ip daddr " + cip + " oifname " + br + " masquerade" + c})
		add([2]string{"rawpre", "iifname " + br + " ip daddr 127.0.0.0/8 drop" + c})
	}
	for _, r := range dnat {
		add(r)
	}
	return rules, localnet
}

// nftPublish replaces the container's rules with new ones.
func nftPublish(tag, containerID, bridge string, ip net.IP, ports []PublishedPort) (err error) {
	comment := publishComment(tag, containerID)
	mine := func(c string) bool { return c == comment }
	if err := nftUnpublish(mine); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if uerr := nftUnpublish(mine); uerr != nil {
				slog.Warn("network: undo a failed publish", "container", containerID, "err", uerr)
			}
		}
	}()
	rules, localnet := nftPublishRules(comment, bridge, ip, ports)
	if err := nftPublishSetup(); err != nil {
		return err
	}
	if localnet {
		if err := setRouteLocalnet(bridge, true); err != nil {
			return err
		}
	}
	for _, r := range rules {
		if _, err := nft("add", "rule", "ip", nftTable, r[0], r[1]); err != nil {
			return fmt.Errorf("publish ports of %s: %w", containerID, err)
		}
	}
	return nil
}

// nftPublishSetup makes the table and its publish chains (the base chains' rules only when
// the chain is new).
func nftPublishSetup() error {
	if _, err := nft("add", "table", "ip", nftTable); err != nil {
		return err
	}
	for _, ch := range [][2]string{
		{"forward", "{ type filter hook forward priority -1 ; policy accept ; }"},
		{"postrouting", "{ type nat hook postrouting priority 100 ; policy accept ; }"},
		{"rawpre", "{ type filter hook prerouting priority -300 ; policy accept ; }"},
	} {
		if _, err := nft("add", "chain", "ip", nftTable, ch[0], ch[1]); err != nil {
			return err
		}
	}
	if _, err := nft("list", "chain", "ip", nftTable, "publish"); err == nil {
		return nil
	}
	if _, err := nft("add", "chain", "ip", nftTable, "publish"); err != nil {
		return err
	}
	for _, ch := range [][2]string{
		{"prerouting", "{ type nat hook prerouting priority -100 ; policy accept ; }"},
		{"output", "{ type nat hook output priority -100 ; policy accept ; }"},
	} {
		// A leftover base chain is emptied first.
		if _, err := nft("list", "chain", "ip", nftTable, ch[0]); err == nil {
			if _, err := nft("flush", "chain", "ip", nftTable, ch[0]); err != nil {
				return err
			}
		}
		if _, err := nft("add", "chain", "ip", nftTable, ch[0], ch[1]); err != nil {
			return err
		}
	}
	for _, br := range bridgeWildcards {
		if _, err := nft("add", "rule", "ip", nftTable, "prerouting", `iifname "`+strings.ReplaceAll(br, "+", "*")+`" return`); err != nil {
			return err
		}
	}
	for _, ch := range []string{"prerouting", "output"} {
		if _, err := nft("add", "rule", "ip", nftTable, ch, "fib daddr type local jump publish"); err != nil {
			return err
		}
	}
	return nil
}

// nftUnpublish deletes the publish rules whose comment del selects, clears route_localnet
// of the bridges left without a loopback rule, deletes the publish chains when no DNAT rule
// is left and the table when no rule is left.
func nftUnpublish(del func(comment string) bool) error {
	if _, err := nft("list", "table", "ip", nftTable); err != nil {
		return nil // no table
	}
	var errs []error
	bridges := map[string]bool{}
	scan := func(sel func(string) bool, each func(chain, line, handle string)) {
		for _, chain := range nftPublishChains {
			out, err := nft("-a", "list", "chain", "ip", nftTable, chain)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(out, "\n") {
				h, c := nftHandle.FindStringSubmatch(line), nftComment.FindStringSubmatch(line)
				if h == nil || c == nil || !strings.Contains(c[1], "/") || !sel(c[1]) {
					continue
				}
				each(chain, line, h[1])
			}
		}
	}
	scan(del, func(chain, line, handle string) {
		if chain == "postrouting" {
			if m := nftIf.FindStringSubmatch(line); m != nil {
				bridges[m[1]] = true
			}
		}
		if _, err := nft("delete", "rule", "ip", nftTable, chain, "handle", handle); err != nil {
			errs = append(errs, err)
		}
	})
	dnatLeft := false
	scan(func(string) bool { return true }, func(chain, line, _ string) {
		if chain == "postrouting" {
			if m := nftIf.FindStringSubmatch(line); m != nil {
				delete(bridges, m[1])
			}
		}
		if chain == "publish" {
			dnatLeft = true
		}
	})
	for br := range bridges {
		errs = append(errs, setRouteLocalnet(br, false))
	}
	if !dnatLeft {
		for _, ch := range []string{"prerouting", "output", "publish", "rawpre"} {
			if _, err := nft("list", "chain", "ip", nftTable, ch); err != nil {
				continue
			}
			if ch == "rawpre" {
				if out, _ := nft("list", "chain", "ip", nftTable, ch); nftComment.MatchString(out) {
					continue
				}
			}
			// Emptied first: a chain goes only without rules and jumps to it.
			if _, err := nft("flush", "chain", "ip", nftTable, ch); err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := nft("delete", "chain", "ip", nftTable, ch); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if out, err := nft("list", "table", "ip", nftTable); err == nil && !nftComment.MatchString(out) {
		if _, err := nft("delete", "table", "ip", nftTable); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
