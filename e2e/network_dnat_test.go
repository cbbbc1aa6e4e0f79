//go:build e2e

package e2e

// End-to-end tests of the kernel fast path of published ports (runner/network Publish,
// Unpublish, Cleanup): busybox httpd in a network namespace on a Berth network, published
// with DNAT rules and reached with curl from the host (127.0.0.1 and the host's own
// address) and from another namespace linked to the host by a plain veth (another host's
// stand-in) with no proxy running; a namespace on the same bridge and one on another Berth
// network reach the port through the userland proxy only. Both NAT backends; the host's
// links and iptables rules are compared before and after.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/network"
	"github.com/berth-registry/berth/runner/network/portmap"
)

// The publish helper: the test binary re-executed with BERTH_DNAT_HELPER set runs
// Publish (DN_PORTS: JSON) or Unpublish in its own process, so that BERTH_NETWORK_NAT
// chooses the backend there.
func init() {
	if os.Getenv("BERTH_DNAT_HELPER") == "" {
		return
	}
	os.Exit(dnatHelper())
}

func dnatHelper() int {
	s, err := network.Open(os.Getenv("DN_ROOT"), os.Getenv("DN_RUNROOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	ctx := context.Background()
	cid := os.Getenv("DN_CID")
	switch os.Getenv("DN_OP") {
	case "publish":
		var ep network.Endpoint
		var ports []network.PublishedPort
		if err := json.Unmarshal([]byte(os.Getenv("DN_EP")), &ep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if err := json.Unmarshal([]byte(os.Getenv("DN_PORTS")), &ports); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		err = s.Publish(ctx, cid, &ep, ports)
	case "unpublish":
		err = s.Unpublish(ctx, cid)
	case "cleanup":
		err = s.Cleanup(ctx)
	default:
		err = fmt.Errorf("unknown DN_OP %q", os.Getenv("DN_OP"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// dnatOp runs the publish helper.
func dnatOp(h *nstHost, op, cid string, ep *network.Endpoint, ports []network.PublishedPort) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	epJSON, _ := json.Marshal(ep)
	portsJSON, _ := json.Marshal(ports)
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), h.env...), "BERTH_DNAT_HELPER=1", "DN_OP="+op, "DN_ROOT="+h.root,
		"DN_RUNROOT="+h.runroot, "DN_CID="+cid, "DN_EP="+string(epJSON), "DN_PORTS="+string(portsJSON))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", op, cid, err, out)
	}
	return nil
}

func dnatID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dnatFreePort returns a TCP port nothing listens on (nothing binds it: no proxy).
func dnatFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dnatHostAddr is an IPv4 address of the host's own that is not loopback and not on a
// container bridge.
func dnatHostAddr(t *testing.T) string {
	t.Helper()
	for _, l := range strings.Split(run(t, "ip", "-4", "-o", "addr", "show", "scope", "global"), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(f[1], "br-") || strings.HasPrefix(f[1], "docker") || strings.HasPrefix(f[1], "berth") ||
			strings.HasPrefix(f[1], "veth") || strings.HasPrefix(f[1], "bnsvc") {
			continue
		}
		ip, _, _ := strings.Cut(f[3], "/")
		return ip
	}
	// This package never skips (see need): the test of outside traffic needs an address.
	t.Fatal("the host has no global IPv4 address: the DNAT test of outside traffic needs one")
	return ""
}

// dnatHTTPD serves a page with busybox httpd on addr:80 in the namespace of p.
func dnatHTTPD(t *testing.T, p *nstProc, addr, page string) {
	t.Helper()
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	httpd := exec.Command(need(t, "nsenter"), fmt.Sprintf("--net=/proc/%d/ns/net", p.pid), "--", need(t, "busybox"), "httpd", "-f", "-p", addr+":80", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = httpd.Process.Signal(syscall.SIGTERM)
		_ = httpd.Wait()
	})
}

// dnatGet fetches url with curl from the host.
func dnatGet(t *testing.T, url string) (string, error) {
	t.Helper()
	out, errs, err := tryRun(t, cmdOpts{timeout: 15 * time.Second}, need(t, "curl"), "-fsS", "--max-time", "5", url)
	if err != nil {
		return out + errs, err
	}
	return out, nil
}

// dnatGetIn fetches url with busybox wget from the namespace of p (bounded by timeout(1)).
func dnatGetIn(t *testing.T, p *nstProc, url string) (string, error) {
	t.Helper()
	return p.exec(t, need(t, "timeout"), "5", need(t, "busybox"), "wget", "-q", "-O", "-", url)
}

// dnatRules returns the lines of iptables-save (or nft list table ip berth) that carry
// the comment of the container's publish rules.
func dnatRules(t *testing.T, nft bool, comment string) []string {
	t.Helper()
	var text string
	if nft {
		out, _, err := tryRun(t, cmdOpts{}, need(t, "nft"), "list", "table", "ip", "berth")
		if err != nil {
			return nil
		}
		text = out
	} else {
		text = run(t, "iptables-save")
	}
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, comment) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// dnatLoopbackUDP listens on UDP on the host's 127.0.0.1 and returns its address and the
// count of datagrams received so far.
func dnatLoopbackUDP(t *testing.T) (string, func() int) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	var n atomic.Int32
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return pc.LocalAddr().String(), func() int { return int(n.Load()) }
}

func routeLocalnet(t *testing.T, bridge string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + bridge + "/route_localnet")
	if err != nil {
		return "gone"
	}
	return strings.TrimSpace(string(b))
}

func TestNetworkDNAT(t *testing.T)    { testNetworkDNAT(t, false) }
func TestNetworkDNATNft(t *testing.T) { testNetworkDNAT(t, true) }

func testNetworkDNAT(t *testing.T, nft bool) {
	h := nstNewHost(t)
	need(t, "busybox")
	need(t, "curl")
	if nft {
		need(t, "nft")
		h.env = []string{"BERTH_NETWORK_NAT=nft"}
	}
	before := nstTakeSnapshot(t)
	subnet, subnet2 := "10.226.0.", "10.227.0."
	if nft {
		subnet, subnet2 = "10.224.0.", "10.225.0."
	}
	id := strings.TrimSpace(h.must("network", "create", "--subnet", subnet+"0/24", "pubnet"))
	// othernet's bridge has a name of its own (iptables: a RETURN rule of its network).
	bridge2 := "bxd" + dnatID()[:8]
	createOther := []string{"network", "create", "--subnet", subnet2 + "0/24"}
	if !nft { // the nft backend knows only the usual names of Berth's and Docker's bridges
		createOther = append(createOther, "-o", "com.docker.network.bridge.name="+bridge2)
	}
	id2 := strings.TrimSpace(h.must(append(createOther, "othernet")...))
	if nft {
		bridge2 = "br-" + id2[:12]
	}
	bridge := "br-" + id[:12]
	if !nft && !strings.Contains(run(t, "iptables-save", "-t", "nat"), "-A BERTH-PREROUTING -i "+bridge2+" -m comment --comment "+`"`+h.tag+`"`+" -j RETURN") &&
		!strings.Contains(run(t, "iptables-save", "-t", "nat"), "-A BERTH-PREROUTING -i "+bridge2+" -m comment --comment "+h.tag+" -j RETURN") {
		t.Errorf("no RETURN rule for the bridge %s:\n%s", bridge2, run(t, "iptables-save", "-t", "nat"))
	}
	ours := []string{bridge, bridge2}

	// The "container": busybox httpd on its address on pubnet.
	web := nstStartNetns(t)
	cid := dnatID()
	ep, err := h.helper("attach", "pubnet", cid, web.pid)
	if err != nil {
		t.Fatal(err)
	}
	ours = append(ours, ep.HostIfName)
	const page = "hello through the kernel\n"
	dnatHTTPD(t, web, ep.IP.String(), page)
	direct := "http://" + ep.IP.String() + ":80/"
	for deadline := time.Now().Add(10 * time.Second); ; {
		if out, err := dnatGet(t, direct); err == nil && out == page {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busybox httpd not reachable at %s", direct)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Published on all addresses and on 127.0.0.1 only; no proxy listens.
	all, lo := dnatFreePort(t), dnatFreePort(t)
	ports := []network.PublishedPort{
		{HostPort: all, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "127.0.0.1", HostPort: lo, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "::", HostPort: all, ContainerPort: 80, Proto: "tcp"}, // left to the proxy
		{HostPort: all, ContainerPort: 53, Proto: "udp"},
	}
	if err := dnatOp(h, "publish", cid, ep, ports); err != nil {
		t.Fatal(err)
	}
	comment := h.tag + "/" + cid
	rules := dnatRules(t, nft, comment)
	t.Logf("publish rules of %s:%d and 127.0.0.1:%d -> %s:80:\n%s", "0.0.0.0", all, lo, ep.IP, strings.Join(rules, "\n"))
	if nft {
		if len(rules) != 7 {
			t.Errorf("%d nft rules, want 7 (3 dnat, 2 accept, masquerade, loopback guard)", len(rules))
		}
	} else {
		t.Logf("iptables-save -t nat:\n%s", run(t, "iptables-save", "-t", "nat"))
		for _, want := range []string{
			"-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH-PREROUTING",
			"-A OUTPUT -m addrtype --dst-type LOCAL -j BERTH-DNAT",
			"-A BERTH-PREROUTING -i br-+ -j RETURN",
			"-A BERTH-PREROUTING -i docker0 -j RETURN",
			"-A BERTH-PREROUTING -j BERTH-DNAT",
		} {
			if !strings.Contains(run(t, "iptables-save", "-t", "nat"), want+"\n") {
				t.Errorf("iptables-save -t nat lacks %q", want)
			}
		}
		if len(rules) != 7 {
			t.Errorf("%d rules tagged %s, want 7 (3 DNAT, 2 ACCEPT, MASQUERADE, INPUT loopback guard)", len(rules), comment)
		}
	}
	if v := routeLocalnet(t, bridge); v != "1" {
		t.Errorf("route_localnet of %s = %s after publish", bridge, v)
	}
	// Idempotent: the same rules once.
	if err := dnatOp(h, "publish", cid, ep, ports); err != nil {
		t.Fatal(err)
	}
	if again := dnatRules(t, nft, comment); len(again) != len(rules) {
		t.Errorf("publish twice: %d rules, then %d", len(rules), len(again))
	}

	// From the host: loopback and its own address, with no proxy.
	hostAddr := dnatHostAddr(t)
	for _, url := range []string{
		"http://127.0.0.1:" + strconv.Itoa(all) + "/",
		"http://127.0.0.1:" + strconv.Itoa(lo) + "/",
		"http://" + net.JoinHostPort(hostAddr, strconv.Itoa(all)) + "/",
	} {
		if out, err := dnatGet(t, url); err != nil || out != page {
			t.Errorf("curl %s (DNAT, no proxy): %q %v", url, out, err)
		}
	}
	if out, err := dnatGet(t, "http://"+net.JoinHostPort(hostAddr, strconv.Itoa(lo))+"/"); err == nil {
		t.Errorf("the 127.0.0.1 port answered on %s: %q", hostAddr, out)
	}

	// From another host's stand-in (a namespace behind a plain veth): PREROUTING, then
	// forwarded through the bridge (FORWARD's policy may be DROP: Docker's).
	outside := nstStartNetns(t)
	peerHostIP, _ := nsvcVeth(t, fmt.Sprintf("/proc/%d/ns/net", outside.pid), outside.pid)
	if out, err := outside.exec(t, "ip", "route", "add", "default", "via", peerHostIP.String()); err != nil {
		t.Fatalf("default route in the outside namespace: %v\n%s", err, out)
	}
	fwdPolicy := run(t, "iptables", "-w", "-S", "FORWARD")
	externalOK := !nft || strings.Contains(fwdPolicy, "-P FORWARD ACCEPT")
	if out, err := dnatGetIn(t, outside, "http://"+net.JoinHostPort(peerHostIP.String(), strconv.Itoa(all))+"/"); err != nil || out != page {
		if externalOK {
			t.Errorf("wget host:%d from another namespace (PREROUTING DNAT): %q %v", all, out, err)
		} else {
			t.Logf("wget host:%d from another namespace failed with the nft backend and FORWARD policy DROP in iptables (expected): %q %v", all, out, err)
		}
	}

	// From container bridges (the same network, another network): no DNAT; with no proxy
	// nothing answers, with the proxy both get the page through it.
	peer := nstStartNetns(t)
	pep, err := h.helper("attach", "pubnet", dnatID(), peer.pid)
	if err != nil {
		t.Fatal(err)
	}
	other := nstStartNetns(t)
	oep, err := h.helper("attach", "othernet", dnatID(), other.pid)
	if err != nil {
		t.Fatal(err)
	}
	ours = append(ours, pep.HostIfName, oep.HostIfName)
	hairpin := "http://" + net.JoinHostPort(pep.Gateway.String(), strconv.Itoa(all)) + "/"
	cross := "http://" + net.JoinHostPort(oep.Gateway.String(), strconv.Itoa(all)) + "/"
	if out, err := dnatGetIn(t, peer, hairpin); err == nil {
		t.Errorf("wget %s from the same bridge answered with no proxy (DNATed): %q", hairpin, out)
	}
	if out, err := dnatGetIn(t, other, cross); err == nil {
		t.Errorf("wget %s from another network answered with no proxy (DNATed): %q", cross, out)
	}
	proxy, err := portmap.Start(context.Background(), ep.IP, []portmap.Mapping{{HostPort: all, ContainerPort: 80, Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	for _, c := range []struct {
		p   *nstProc
		url string
	}{{peer, hairpin}, {other, cross}} {
		if out, err := dnatGetIn(t, c.p, c.url); err != nil || out != page {
			t.Errorf("wget %s from a bridge through the proxy: %q %v", c.url, out, err)
		}
	}
	// With route_localnet on, containers on the bridge still cannot reach the host's
	// 127.0.0.0/8 services (CVE-2020-8558): datagrams from a namespace that routes
	// 127.0.0.0/8 to the gateway never reach a UDP socket on the host's 127.0.0.1.
	secret, received := dnatLoopbackUDP(t)
	for _, args := range [][]string{
		{"route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"},
		{"route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"},
		{"route", "add", "127.0.0.0/8", "via", pep.Gateway.String(), "dev", "eth0"},
	} {
		if out, err := peer.exec(t, append([]string{"ip"}, args...)...); err != nil {
			t.Fatalf("ip %s in the namespace: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	host, port, _ := net.SplitHostPort(secret)
	for range 3 {
		if out, err := peer.exec(t, need(t, "bash"), "-c", "echo probe >/dev/udp/"+host+"/"+port); err != nil {
			t.Fatalf("send from the namespace: %v\n%s", err, out)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := received(); n != 0 {
		t.Errorf("a namespace on the bridge reached the host's %s: %d datagrams", secret, n)
	}

	// Unpublish: the rules go, the proxy serves loopback again.
	if err := dnatOp(h, "unpublish", cid, nil, nil); err != nil {
		t.Fatal(err)
	}
	if left := dnatRules(t, nft, comment); len(left) != 0 {
		t.Errorf("rules left after Unpublish:\n%s", strings.Join(left, "\n"))
	}
	if v := routeLocalnet(t, bridge); v != "0" {
		t.Errorf("route_localnet of %s = %s after unpublish", bridge, v)
	}
	if err := dnatOp(h, "unpublish", cid, nil, nil); err != nil {
		t.Errorf("unpublish twice: %v", err)
	}
	if out, err := dnatGet(t, "http://127.0.0.1:"+strconv.Itoa(all)+"/"); err != nil || out != page {
		t.Errorf("curl 127.0.0.1:%d through the proxy after Unpublish: %q %v", all, out, err)
	}
	if out, err := dnatGet(t, "http://127.0.0.1:"+strconv.Itoa(lo)+"/"); err == nil {
		t.Errorf("127.0.0.1:%d answered after Unpublish (no proxy): %q", lo, out)
	}
	proxy.Close()
	// (Berth's nat chains stay while othernet's bridge has its RETURN rule: checked at the end.)

	// Bad input: nothing made.
	for _, bad := range [][]network.PublishedPort{
		{{HostPort: 0, ContainerPort: 80, Proto: "tcp"}},
		{{HostPort: all, ContainerPort: 80, Proto: "sctp"}},
		{{HostIP: "nope", HostPort: all, ContainerPort: 80, Proto: "tcp"}},
	} {
		if err := dnatOp(h, "publish", cid, ep, bad); err == nil {
			t.Errorf("publish %+v: no error", bad)
		}
	}
	if err := dnatOp(h, "publish", dnatID(), ep, ports[:1]); err == nil || !strings.Contains(err.Error(), "no live endpoint") {
		t.Errorf("publish for a container without an endpoint: %v", err)
	}
	if left := dnatRules(t, nft, h.tag+"/"); len(left) != 0 {
		t.Errorf("failed publishes left rules:\n%s", strings.Join(left, "\n"))
	}

	// A crash: published again, then the container dies without Unpublish; Cleanup
	// (`network prune`) deletes its rules.
	if err := dnatOp(h, "publish", cid, ep, ports); err != nil {
		t.Fatal(err)
	}
	if out, err := dnatGet(t, "http://127.0.0.1:"+strconv.Itoa(lo)+"/"); err != nil || out != page {
		t.Errorf("curl after publishing again: %q %v", out, err)
	}
	web.stop()
	if err := dnatOp(h, "cleanup", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if left := dnatRules(t, nft, comment); len(left) != 0 {
		t.Errorf("rules of a dead container left after Cleanup:\n%s", strings.Join(left, "\n"))
	}
	if v := routeLocalnet(t, bridge); v != "0" && v != "gone" {
		t.Errorf("route_localnet of %s = %s after cleanup", bridge, v)
	}
	peer.stop()
	other.stop()
	outside.stop()
	if out := h.must("network", "prune", "-f"); !strings.Contains(out, "othernet") || !strings.Contains(out, "pubnet") {
		t.Errorf("prune printed %q", out)
	}
	if nft {
		if out, _, err := tryRun(t, cmdOpts{}, need(t, "nft"), "list", "table", "ip", "berth"); err == nil && strings.Contains(out, h.tag) {
			t.Errorf("rules left in Berth's nft table:\n%s", out)
		}
	}
	h.assertHostRestored(before, ours)
	// Berth's nat chains went with their last rule (unless another root publishes now), and
	// no table was made that was not there (iptables-nft keeps a table once made).
	after := nstTakeSnapshot(t)
	otherPublishes := strings.Contains(strings.Join(after.rules, "\n"), "-A BERTH-DNAT ")
	gone, added := nstLineDiff(before.rules, after.rules)
	for _, l := range append(gone, added...) {
		if (!otherPublishes && regexp.MustCompile(`BERTH-(DNAT|PREROUTING)`).MatchString(l)) || strings.HasPrefix(l, "*") {
			t.Errorf("iptables-save differs before/after: %s", l)
		}
	}
}
