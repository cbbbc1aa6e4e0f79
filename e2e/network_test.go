//go:build e2e

package e2e

// The TestNetwork* tests drive pull-run's networks end to end as root: real bridges, veth
// pairs and network namespaces, the embedded DNS server and the userland port proxy, with
// busybox ping, nslookup, wget and httpd inside the containers and curl on the host. Every
// address is one of the test's own networks or loopback.

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// netApplets are the network tools of the test image, on top of cliApplets (busybox
// 1.35 wget -T crashes: timeout bounds a wget instead).
var netApplets = []string{"ping", "nslookup", "wget", "httpd", "ip", "ifconfig", "nc", "netstat", "timeout"}

// newNetHost is a cliHost whose image (h.image) also has the network applets and a page
// to serve at /www/index.html.
func newNetHost(t *testing.T) *cliHost {
	t.Helper()
	h := newCLIHost(t)
	extra := []plEnt{plD("www"), plF("www/index.html", "hello from berth\n")}
	for _, a := range netApplets {
		extra = append(extra, plS("bin/"+a, "busybox"))
	}
	cfg := cliDefaultConfig
	cfg.ExposedPorts = map[string]struct{}{"80/tcp": {}}
	img := h.push("netbox:latest", cfg, extra...)
	h.image, h.imageID = h.addr+"/netbox:latest", img.id()
	t.Cleanup(func() {
		// Networks a failed test left go with their containers (the root is removed after).
		out, _, _ := h.run("ps", "-aq", "--no-trunc")
		if ids := strings.Fields(out); len(ids) > 0 {
			h.run(append([]string{"rm", "-f"}, ids...)...)
		}
		h.run("network", "prune", "-f")
	})
	return h
}

// netState is what the host's network looks like: link names and the iptables rules.
type netState struct {
	links    []string
	iptables []string
}

func captureNetState(t *testing.T) netState {
	t.Helper()
	var s netState
	for _, l := range strings.Split(run(t, "ip", "-o", "link", "show"), "\n") {
		// "7: berth0: <...>" → "berth0"
		if f := strings.Fields(l); len(f) > 1 {
			s.links = append(s.links, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	sort.Strings(s.links)
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if strings.HasPrefix(l, ":") { // chain policy with counters
				l = regexp.MustCompile(`\[\d+:\d+\]`).ReplaceAllString(l, "")
			}
			s.iptables = append(s.iptables, table+" "+l)
		}
	}
	return s
}

func (s netState) diff(o netState) string {
	var b strings.Builder
	if strings.Join(s.links, ",") != strings.Join(o.links, ",") {
		fmt.Fprintf(&b, "links before: %v\nlinks after:  %v\n", s.links, o.links)
	}
	if strings.Join(s.iptables, "\n") != strings.Join(o.iptables, "\n") {
		fmt.Fprintf(&b, "iptables before:\n%s\niptables after:\n%s\n", strings.Join(s.iptables, "\n"), strings.Join(o.iptables, "\n"))
	}
	return b.String()
}

// ipOf is the container's address on network (inspect).
func ipOf(h *cliHost, name, network string) string {
	h.t.Helper()
	ip := h.field(name, fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, network))
	if net.ParseIP(ip) == nil {
		h.t.Fatalf("container %s has no address on %s: %q", name, network, ip)
	}
	return ip
}

// waitHTTP waits until url answers (a server in a container has just been started).
func waitHTTP(t *testing.T, url string) string {
	t.Helper()
	var out []byte
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, err = exec.Command("curl", "-fsS", "--max-time", "2", url).CombinedOutput()
		if err == nil {
			return string(out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("curl %s: %v\n%s", url, err, out)
	return ""
}

func TestNetworkUserDefinedByName(t *testing.T) {
	h := newNetHost(t)
	before := captureNetState(t)
	h.must("network", "create", "--subnet", "10.213.7.0/24", "appnet")
	h.must("run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www", h.image, "httpd", "-f", "-p", "80", "-h", "/www")
	webIP := ipOf(h, "web", "appnet")
	if !strings.HasPrefix(webIP, "10.213.7.") {
		t.Errorf("web's address %s is not in the network's subnet", webIP)
	}
	// By name, by alias and by short ID, from another container on the network.
	short := h.field("web", "{{.Id}}")[:12]
	out := h.must("run", "--rm", "--network", "appnet", h.image, "sh", "-c",
		"nslookup web 127.0.0.11 && ping -c1 -W3 web && wget -qO- http://www/ && wget -qO- http://"+short+"/")
	if strings.Count(out, "hello from berth") != 2 || !strings.Contains(out, webIP) {
		t.Errorf("by name on a user-defined network:\n%s", out)
	}
	// resolv.conf names the embedded server; unknown names are not found.
	if out := h.must("run", "--rm", "--network", "appnet", h.image, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 127.0.0.11") {
		t.Errorf("resolv.conf on a user-defined network:\n%s", out)
	}
	if _, _, code := h.run("run", "--rm", "--network", "appnet", h.image, "nslookup", "nosuchcontainer", "127.0.0.11"); code == 0 {
		t.Errorf("nslookup of an unknown name succeeded")
	}
	// The container's own name is in its /etc/hosts with its address.
	if out := h.must("exec", "web", "cat", "/etc/hosts"); !strings.Contains(out, webIP+"\t") {
		t.Errorf("/etc/hosts of web:\n%s", out)
	}

	// The default bridge: reachable by address, not by name (as in Docker).
	h.must("run", "-d", "--name", "web2", h.image, "httpd", "-f", "-p", "80", "-h", "/www")
	ip2 := ipOf(h, "web2", "bridge")
	if out := h.must("run", "--rm", h.image, "wget", "-qO-", "http://"+ip2+"/"); !strings.Contains(out, "hello from berth") {
		t.Errorf("by address on the default bridge: %q", out)
	}
	if _, _, code := h.run("run", "--rm", h.image, "sh", "-c", "nslookup web2 || exit 1; ping -c1 -W2 web2"); code == 0 {
		t.Errorf("web2 resolved by name on the default bridge")
	}
	if h.field("web2", "{{.NetworkSettings.IPAddress}}") != ip2 {
		t.Errorf("NetworkSettings.IPAddress is not the default bridge's address")
	}

	// A network with a container is not removed; the container's removal frees it.
	h.expect(1, []string{"network", "rm", "appnet"}, "has active endpoints")
	h.must("rm", "-f", "web", "web2")
	h.must("network", "rm", "appnet")
	h.must("network", "prune", "-f")
	if d := before.diff(captureNetState(t)); d != "" {
		t.Errorf("host network state changed:\n%s", d)
	}
}

func TestNetworkNoneHostContainer(t *testing.T) {
	h := newNetHost(t)
	// none: only the loopback interface.
	out := h.must("run", "--rm", "--network", "none", h.image, "cat", "/proc/net/dev")
	if ifs := netDevNames(out); strings.Join(ifs, ",") != "lo" {
		t.Errorf("--network none interfaces: %v", ifs)
	}
	// host: the host's interfaces.
	out = h.must("run", "--rm", "--network", "host", h.image, "cat", "/proc/net/dev")
	hostIfs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(netDevNames(out), ",")
	for _, i := range hostIfs {
		if !strings.Contains(","+got+",", ","+i.Name+",") {
			t.Errorf("--network host does not see %s: %s", i.Name, got)
		}
	}
	// bridge: lo and eth0.
	out = h.must("run", "--rm", h.image, "cat", "/proc/net/dev")
	if ifs := netDevNames(out); strings.Join(ifs, ",") != "eth0,lo" {
		t.Errorf("bridge interfaces: %v", ifs)
	}
	// container:<name>: the other one's namespace, 127.0.0.1 shared.
	h.must("run", "-d", "--name", "srv", h.image, "httpd", "-f", "-p", "127.0.0.1:8000", "-h", "/www")
	out = h.must("run", "--rm", "--network", "container:srv", h.image, "sh", "-c",
		"for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:8000/ && exit 0; sleep 0.2; done; exit 1")
	if !strings.Contains(out, "hello from berth") {
		t.Errorf("container: network mode: %q", out)
	}
	// Joining a stopped or missing container fails, and nothing is left.
	h.must("create", "--name", "stopped", h.image, "true")
	h.expect(125, []string{"run", "--rm", "--network", "container:stopped", h.image, "true"}, "non running container")
	h.expect(125, []string{"run", "--rm", "--network", "container:nosuch", h.image, "true"}, "No such container: nosuch")
	h.expect(125, []string{"run", "--rm", "--network", "nosuchnet", h.image, "true"}, "network nosuchnet not found")
	if out := h.must("ps", "-aq"); len(strings.Fields(out)) != 2 {
		t.Errorf("containers left after failed runs: %q", out)
	}
}

// netDevNames are the interface names of a /proc/net/dev, sorted.
func netDevNames(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			out = append(out, strings.TrimSpace(name))
		}
	}
	sort.Strings(out)
	return out
}

func TestNetworkPublish(t *testing.T) {
	h := newNetHost(t)
	before := captureNetState(t)
	port := 8080 // the issue's -p 8080:80, unless the host uses 8080 already
	if l, err := net.Listen("tcp", ":8080"); err != nil {
		port = freePort(t)
		t.Logf("port 8080 is taken on this host (%v): publishing %d", err, port)
	} else {
		l.Close()
	}
	h.must("run", "-d", "--name", "pub", "-p", fmt.Sprintf("%d:80", port), h.image, "httpd", "-f", "-p", "80", "-h", "/www")
	if out := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); out != "hello from berth\n" {
		t.Errorf("curl through the published port: %q", out)
	}
	// The kernel forwards the port (DNAT to the container's address); the proxy holds it.
	if nat, err := exec.Command("iptables-save", "-t", "nat").Output(); err != nil {
		t.Errorf("iptables-save: %v", err)
	} else if want := fmt.Sprintf("--dport %d ", port); !strings.Contains(string(nat), want) || !strings.Contains(string(nat), "--to-destination "+ipOf(h, "pub", "bridge")+":80") {
		t.Errorf("no DNAT rule for port %d:\n%s", port, nat)
	}
	if out := strings.TrimSpace(h.must("port", "pub")); out != fmt.Sprintf("80/tcp -> 0.0.0.0:%d", port) {
		t.Errorf("port: %q", out)
	}
	if out := h.must("ps", "--format", "{{.Ports}}"); !strings.Contains(out, fmt.Sprintf("0.0.0.0:%d->80/tcp", port)) {
		t.Errorf("ps ports: %q", out)
	}
	// From another network namespace: a container on the bridge, through the gateway.
	gw := h.field("pub", "{{.NetworkSettings.Gateway}}")
	if out := h.must("run", "--rm", h.image, "wget", "-qO-", fmt.Sprintf("http://%s:%d/", gw, port)); out != "hello from berth\n" {
		t.Errorf("published port from another namespace: %q", out)
	}
	// -P: the image's EXPOSE 80 on a random port.
	h.must("run", "-d", "--name", "pall", "-P", h.image, "httpd", "-f", "-p", "80", "-h", "/www")
	hp := strings.TrimSpace(h.must("port", "pall", "80"))
	if _, p, err := net.SplitHostPort(hp); err != nil || p == "0" {
		t.Fatalf("port pall 80: %q", hp)
	} else {
		waitHTTP(t, "http://127.0.0.1:"+p+"/")
	}
	// A port in use: Docker's message, the start fails, and no proxy or veth is left.
	linksBefore := captureNetState(t).links
	h.expect(125, []string{"run", "-d", "--name", "clash", "-p", fmt.Sprintf("%d:80", port), h.image, "sleep", "100"}, "port is already allocated")
	if links := captureNetState(t).links; strings.Join(links, ",") != strings.Join(linksBefore, ",") {
		t.Errorf("a failed start left links: %v → %v", linksBefore, links)
	}
	if st := h.field("clash", "{{.State.Status}}"); st == "running" {
		t.Errorf("clash is %s", st)
	}
	// Invalid values.
	h.expect(125, []string{"run", "--rm", "-p", "70000:80", h.image, "true"}, "Invalid hostPort")
	h.expect(125, []string{"run", "--rm", "-p", "1.2.3:80:80", h.image, "true"}, "Invalid ip address")

	h.must("rm", "-f", "pub", "pall", "clash")
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("the published port still listens after rm -f")
	}
	h.must("network", "prune", "-f")
	if d := before.diff(captureNetState(t)); d != "" {
		t.Errorf("host network state changed:\n%s", d)
	}
}

func TestNetworkConcurrentRuns(t *testing.T) {
	h := newNetHost(t)
	before := captureNetState(t)
	h.must("network", "create", "many")
	h.expect(1, []string{"network", "create", "many"}, "already exists")
	const n = 20
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, e, code := h.run("run", "-d", "--name", "c"+strconv.Itoa(i), "--network", "many", h.image, "sleep", "300"); code != 0 {
				errs[i] = e
			}
		}(i)
	}
	wg.Wait()
	seen := map[string]string{}
	for i := 0; i < n; i++ {
		if errs[i] != "" {
			t.Errorf("run c%d: %s", i, errs[i])
			continue
		}
		name := "c" + strconv.Itoa(i)
		ip := ipOf(h, name, "many")
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both have %s", name, other, ip)
		}
		seen[ip] = name
	}
	if len(seen) != n {
		t.Errorf("%d distinct addresses for %d containers", len(seen), n)
	}
	// Every container reaches the others (by name, through the embedded DNS).
	if out, e, code := h.run("exec", "c0", "ping", "-c1", "-W3", "c19"); code != 0 {
		t.Errorf("c0 → c19: %s%s", out, e)
	}
	// An address is never handed out twice, also with --ip.
	h.expect(125, []string{"run", "-d", "--network", "many", "--ip", ipOf(h, "c3", "many"), h.image, "sleep", "1"}, "")
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, "c"+strconv.Itoa(i))
	}
	h.must(append([]string{"rm", "-f"}, ids...)...)
	if left := strings.Fields(h.must("ps", "-aq")); len(left) > 0 {
		h.must(append([]string{"rm", "-f"}, left...)...)
	}
	h.must("network", "prune", "-f")
	if out := h.must("network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "many") {
		t.Errorf("network prune left many:\n%s", out)
	}
	if d := before.diff(captureNetState(t)); d != "" {
		t.Errorf("host network state changed:\n%s", d)
	}
}

func TestNetworkConnectDisconnect(t *testing.T) {
	h := newNetHost(t)
	h.must("network", "create", "front")
	h.must("network", "create", "back")
	h.must("run", "-d", "--name", "api", "--network", "back", h.image, "httpd", "-f", "-p", "80", "-h", "/www")
	h.must("run", "-d", "--name", "edge", "--network", "front", h.image, "sleep", "300")
	if _, _, code := h.run("exec", "edge", "timeout", "3", "wget", "-qO-", "http://"+ipOf(h, "api", "back")+"/"); code == 0 {
		t.Errorf("edge reached api across networks")
	}
	h.must("network", "connect", "back", "edge")
	if out := h.must("exec", "edge", "cat", "/proc/net/dev"); strings.Join(netDevNames(out), ",") != "eth0,eth1,lo" {
		t.Errorf("after connect: %v", netDevNames(out))
	}
	if out := h.must("exec", "edge", "timeout", "5", "wget", "-qO-", "http://"+ipOf(h, "api", "back")+"/"); out != "hello from berth\n" {
		t.Errorf("after connect: %q", out)
	}
	h.must("network", "disconnect", "back", "edge")
	if out := h.must("exec", "edge", "cat", "/proc/net/dev"); strings.Join(netDevNames(out), ",") != "eth0,lo" {
		t.Errorf("after disconnect: %v", netDevNames(out))
	}
	// A container on the default bridge connected to a user-defined network resolves the
	// names of that network from its next start on (the embedded server is its name server).
	h.must("run", "-d", "--name", "solo", h.image, "sleep", "300")
	h.must("network", "connect", "back", "solo")
	h.must("restart", "-t", "0", "solo")
	if out, e, code := h.run("exec", "solo", "nslookup", "api"); code != 0 || !strings.Contains(out, ipOf(h, "api", "back")) {
		t.Errorf("solo → api by name after connect and restart: %s%s", out, e)
	}
	h.must("rm", "-f", "api", "edge", "solo")
	h.must("network", "rm", "front", "back")
}
