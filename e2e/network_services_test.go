//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/berth-registry/berth/runner/network/dns"
	"github.com/berth-registry/berth/runner/network/portmap"
)

// Tests of the network layer's services run in-process against real network namespaces:
// the embedded DNS server (runner/network/dns) inside a namespace, queried by busybox
// nslookup from there, and the userland proxy (runner/network/portmap) publishing busybox
// httpd of a namespace reached through a veth pair.

// nsvcBusybox is the busybox-static binary.
func nsvcBusybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return need(t, "busybox")
}

// nsvcNetNS starts a sleeping process in a new network namespace (unshare --net) and
// returns the namespace's path (/proc/<pid>/ns/net) and its pid; the process is killed at
// the end of the test, and the namespace with it.
func nsvcNetNS(t *testing.T) (path string, pid int) {
	t.Helper()
	unshare := need(t, "unshare")
	need(t, "nsenter")
	cmd := exec.Command(unshare, "--net", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare --net: %v", err)
	}
	pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	path = fmt.Sprintf("/proc/%d/ns/net", pid)
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// unshare execs sleep once the namespace is made.
		ns, err1 := os.Readlink(path)
		comm, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err1 == nil && err2 == nil && ns != own && strings.TrimSpace(string(comm)) == "sleep" {
			return path, pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new network namespace for pid %d: %s %v %v", pid, ns, err1, err2)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsvcIn runs a command in the network namespace at ns and returns its combined output and
// error.
func nsvcIn(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	stdout, stderr, err := tryRun(t, cmdOpts{timeout: 30 * time.Second}, need(t, "nsenter"), append([]string{"--net=" + ns}, args...)...)
	return stdout + stderr, err
}

// nsvcListening reports whether the namespace of pid has a socket of proto ("udp", "tcp"
// listening) bound to addr, from /proc/<pid>/net/{udp,tcp}.
func nsvcListening(t *testing.T, pid int, proto string, addr netipAddrPort) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
	if err != nil {
		t.Fatal(err)
	}
	want := addr.procHex()
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.EqualFold(f[1], want) {
			continue
		}
		if proto == "udp" || f[3] == "0A" { // 0A: TCP_LISTEN
			return true
		}
	}
	return false
}

// netipAddrPort is an IPv4 address and port as /proc/net/{tcp,udp} print them.
type netipAddrPort struct {
	ip   net.IP
	port int
}

func (a netipAddrPort) procHex() string {
	v4 := a.ip.To4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", v4[3], v4[2], v4[1], v4[0], a.port)
}

// nsvcThreadsAtHome checks that every thread of the test process is in its own network
// namespace: ServeInNetNS must not leave one behind in the container's.
func nsvcThreadsAtHome(t *testing.T) {
	t.Helper()
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread exited
		}
		if ns != own {
			t.Errorf("thread %s of the test process is in %s, not in its own %s", task.Name(), ns, own)
		}
	}
}

// nsvcUpstream is a name server on the host's loopback (unreachable from the test's
// namespace) that knows one name.
func nsvcUpstream(t *testing.T, name string, ip net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg).SetReply(req)
		q := req.Question[0]
		switch {
		case q.Name == mdns.Fqdn(name) && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: ip})
		case q.Name == mdns.Fqdn(name):
		default:
			m.SetRcode(req, mdns.RcodeNameError)
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestNetworkServicesDNS(t *testing.T) {
	bb := nsvcBusybox(t)
	ns, pid := nsvcNetNS(t)
	// A new namespace's lo is down: the server brings it up.
	if out, err := nsvcIn(t, ns, "ip", "-br", "link", "show", "lo"); err != nil || !strings.Contains(out, "DOWN") {
		t.Fatalf("lo of a new namespace: want DOWN; got (%v) %s", err, out)
	}

	resolver := dns.ResolverFunc(func(name string) []net.IP {
		switch name {
		case "web", "web.berthnet":
			return []net.IP{net.ParseIP("10.123.45.2")}
		case "db":
			return []net.IP{net.ParseIP("10.123.45.3"), net.ParseIP("fd00:123::3")}
		}
		return nil
	})
	upstream := nsvcUpstream(t, "outside.example.test", net.ParseIP("192.0.2.77"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := dns.ServeInNetNS(ctx, ns, dns.Options{Resolver: resolver, Upstream: []string{upstream}})
	if err != nil {
		t.Fatalf("ServeInNetNS: %v", err)
	}
	defer srv.Close()
	nsvcThreadsAtHome(t)

	// lo was brought up in the namespace, the server listens there and not on the host.
	if out, err := nsvcIn(t, ns, "ip", "-br", "link", "show", "lo"); err != nil || !strings.Contains(out, "LOOPBACK,UP") {
		t.Errorf("lo in the namespace: %s %v", out, err)
	}
	dnsAddr := netipAddrPort{net.IPv4(127, 0, 0, 11), 53}
	if !nsvcListening(t, pid, "udp", dnsAddr) || !nsvcListening(t, pid, "tcp", dnsAddr) {
		t.Fatalf("no UDP and TCP listener on 127.0.0.11:53 in the namespace")
	}
	if nsvcListening(t, os.Getpid(), "udp", dnsAddr) {
		t.Errorf("a listener on 127.0.0.11:53 in the host's namespace")
	}

	for _, tc := range []struct{ name, want string }{
		{"web", "10.123.45.2"},
		{"WEB", "10.123.45.2"},
		{"web.", "10.123.45.2"},
		{"web.berthnet", "10.123.45.2"},
		{"db", "10.123.45.3"},
		{"db", "fd00:123::3"},
		// Forwarded upstream, to a server only the host's namespace reaches.
		{"outside.example.test", "192.0.2.77"},
	} {
		out, err := nsvcIn(t, ns, bb, "nslookup", tc.name, "127.0.0.11")
		if err != nil || !strings.Contains(out, "Address: "+tc.want) {
			t.Errorf("nslookup %s 127.0.0.11: want address %s; got (%v):\n%s", tc.name, tc.want, err, out)
		}
	}
	for _, name := range []string{"nosuch", "nosuch.example.test"} {
		out, err := nsvcIn(t, ns, bb, "nslookup", name, "127.0.0.11")
		if err == nil || !strings.Contains(out, "NXDOMAIN") {
			t.Errorf("nslookup %s: want NXDOMAIN and a failure; got (%v):\n%s", name, err, out)
		}
	}

	// Without upstream servers: unknown single labels are NXDOMAIN, the rest SERVFAIL.
	srv2, err := dns.ServeInNetNS(ctx, ns, dns.Options{Resolver: resolver, Addr: "127.0.0.12:53"})
	if err != nil {
		t.Fatalf("ServeInNetNS without upstream: %v", err)
	}
	if out, err := nsvcIn(t, ns, bb, "nslookup", "web", "127.0.0.12"); err != nil || !strings.Contains(out, "Address: 10.123.45.2") {
		t.Errorf("nslookup web without upstream: (%v)\n%s", err, out)
	}
	if out, err := nsvcIn(t, ns, bb, "nslookup", "nosuch", "127.0.0.12"); err == nil || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("nslookup nosuch without upstream: want NXDOMAIN; got (%v)\n%s", err, out)
	}
	if out, err := nsvcIn(t, ns, bb, "nslookup", "outside.example.test", "127.0.0.12"); err == nil || !strings.Contains(out, "SERVFAIL") {
		t.Errorf("nslookup outside.example.test without upstream: want SERVFAIL; got (%v)\n%s", err, out)
	}
	if err := srv2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// Closed: no listener left in the namespace.
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, a := range []netipAddrPort{dnsAddr, {net.IPv4(127, 0, 0, 12), 53}} {
		if nsvcListening(t, pid, "udp", a) || nsvcListening(t, pid, "tcp", a) {
			t.Errorf("listener on %s:%d left in the namespace after Close", a.ip, a.port)
		}
	}
	if out, err := nsvcIn(t, ns, bb, "nslookup", "-timeout=1", "-retry=0", "web", "127.0.0.11"); err == nil {
		t.Errorf("nslookup after Close answered:\n%s", out)
	}
	nsvcThreadsAtHome(t)

	// A namespace that does not exist, and a port taken in the namespace.
	if _, err := dns.ServeInNetNS(ctx, "/proc/0/ns/net", dns.Options{}); err == nil {
		t.Error("ServeInNetNS into a missing namespace: no error")
	}
	srv3, err := dns.ServeInNetNS(ctx, ns, dns.Options{Resolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	defer srv3.Close()
	if s, err := dns.ServeInNetNS(ctx, ns, dns.Options{Resolver: resolver}); err == nil {
		_ = s.Close()
		t.Error("a second server on 127.0.0.11:53 of one namespace: no error")
	}
	nsvcThreadsAtHome(t)
}

// nsvcSubnet picks a 10.x.y.0/24 that no route of the host's uses.
func nsvcSubnet(t *testing.T) (host, peer net.IP) {
	t.Helper()
	routes := run(t, need(t, "ip"), "-4", "route", "show", "table", "all")
	var b [2]byte
	for range 100 {
		_, _ = rand.Read(b[:])
		x, y := 200+int(b[0])%50, int(b[1])
		prefix := fmt.Sprintf("10.%d.%d.", x, y)
		if !strings.Contains(routes, prefix) && !strings.Contains(routes, fmt.Sprintf("10.%d.0.0/16", x)) {
			return net.ParseIP(prefix + "1").To4(), net.ParseIP(prefix + "2").To4()
		}
	}
	t.Fatal("no free 10.x.y.0/24 for the test")
	return nil, nil
}

// nsvcVeth links the namespace of pid to the host with a veth pair addressed in a /24 of
// the test's own, and returns the host's and the namespace's addresses; the pair is
// deleted at the end of the test.
func nsvcVeth(t *testing.T, ns string, pid int) (hostIP, nsIP net.IP) {
	t.Helper()
	ipBin := need(t, "ip")
	var b [3]byte
	_, _ = rand.Read(b[:])
	hostIf := "bnsvc" + hex.EncodeToString(b[:]) + "h"
	nsIf := "bnsvc" + hex.EncodeToString(b[:]) + "c"
	hostIP, nsIP = nsvcSubnet(t)
	run(t, ipBin, "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() {
		if _, _, err := tryRun(t, cmdOpts{}, ipBin, "link", "del", hostIf); err != nil {
			// Gone with the namespace's end already?
			if out, _, _ := tryRun(t, cmdOpts{}, ipBin, "-br", "link", "show", hostIf); out != "" {
				t.Errorf("veth %s left behind", hostIf)
			}
		}
	})
	run(t, ipBin, "link", "set", nsIf, "netns", strconv.Itoa(pid))
	run(t, ipBin, "addr", "add", hostIP.String()+"/24", "dev", hostIf)
	run(t, ipBin, "link", "set", hostIf, "up")
	for _, args := range [][]string{
		{"addr", "add", nsIP.String() + "/24", "dev", nsIf},
		{"link", "set", nsIf, "up"},
		{"link", "set", "lo", "up"},
	} {
		if out, err := nsvcIn(t, ns, append([]string{ipBin}, args...)...); err != nil {
			t.Fatalf("ip %s in the namespace: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return hostIP, nsIP
}

func TestNetworkServicesPublish(t *testing.T) {
	bb := nsvcBusybox(t)
	curl := need(t, "curl")
	ns, pid := nsvcNetNS(t)
	hostIP, nsIP := nsvcVeth(t, ns, pid)

	// busybox httpd in the namespace serving a small and a large file.
	www := t.TempDir()
	small := []byte("hello from the namespace\n")
	large := make([]byte, 8<<20)
	_, _ = rand.Read(large)
	if err := os.WriteFile(filepath.Join(www, "index.html"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "large.bin"), large, 0o644); err != nil {
		t.Fatal(err)
	}
	httpd := exec.Command(need(t, "nsenter"), "--net="+ns, bb, "httpd", "-f", "-p", nsIP.String()+":80", "-h", www)
	var httpdLog bytes.Buffer
	httpd.Stdout, httpd.Stderr = &httpdLog, &httpdLog
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = httpd.Process.Signal(syscall.SIGTERM)
		_ = httpd.Wait()
	})
	direct := "http://" + net.JoinHostPort(nsIP.String(), "80") + "/index.html"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out, _, err := tryRun(t, cmdOpts{timeout: 5 * time.Second}, curl, "-fsS", "--max-time", "2", direct); err == nil && out == string(small) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busybox httpd in the namespace not reachable at %s; its log:\n%s", direct, httpdLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	maps, err := portmap.Parse([]string{"80", "127.0.0.1::80"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := portmap.Start(context.Background(), nsIP, maps)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer p.Close()
	bound := p.Bound()
	if len(bound) != 2 || bound[0].HostPort == 0 || bound[0].HostIP != "0.0.0.0" || bound[1].HostIP != "127.0.0.1" {
		t.Fatalf("Bound = %+v", bound)
	}
	t.Logf("published: %s", strings.Join(portmap.FormatPorts(bound), ", "))
	all, lo := bound[0], bound[1]

	// curl through the published ports from the host's loopback.
	for _, m := range []portmap.Mapping{all, lo} {
		url := "http://127.0.0.1:" + strconv.Itoa(m.HostPort)
		if out := run(t, curl, "-fsS", "--max-time", "10", url+"/index.html"); out != string(small) {
			t.Errorf("curl %s/index.html: %q, want %q", url, out, small)
		}
		out := run(t, curl, "-fsS", "--max-time", "30", url+"/large.bin")
		if !bytes.Equal([]byte(out), large) {
			t.Errorf("curl %s/large.bin: %d bytes, not the 8 MiB file", url, len(out))
		}
	}
	// From the host's address on the veth (all addresses), and from inside the namespace
	// through the host (hairpin).
	viaHost := "http://" + net.JoinHostPort(hostIP.String(), strconv.Itoa(all.HostPort)) + "/index.html"
	if out := run(t, curl, "-fsS", "--max-time", "10", viaHost); out != string(small) {
		t.Errorf("curl %s: %q", viaHost, out)
	}
	if out, err := nsvcIn(t, ns, bb, "wget", "-q", "-O", "-", viaHost); err != nil || out != string(small) {
		t.Errorf("wget %s from the namespace: %q %v", viaHost, out, err)
	}
	// 127.0.0.1-only: not on the veth address.
	if out, _, err := tryRun(t, cmdOpts{}, curl, "-fsS", "--max-time", "5", "http://"+net.JoinHostPort(hostIP.String(), strconv.Itoa(lo.HostPort))); err == nil {
		t.Errorf("the 127.0.0.1 port answered on %s: %q", hostIP, out)
	}

	// Go's client with keep-alive: many requests over one connection.
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 20 {
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(all.HostPort) + "/index.html")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != string(small) {
			t.Fatalf("request %d: %q", i, body)
		}
	}

	// The same port again: Docker's error, and the first proxy still serves.
	_, err = portmap.Start(context.Background(), nsIP, []portmap.Mapping{{HostPort: all.HostPort, ContainerPort: 80, Proto: "tcp"}})
	if want := fmt.Sprintf("Bind for 0.0.0.0:%d failed: port is already allocated", all.HostPort); err == nil || err.Error() != want {
		t.Errorf("port in use: %v, want %q", err, want)
	}
	if out := run(t, curl, "-fsS", "--max-time", "10", "http://127.0.0.1:"+strconv.Itoa(all.HostPort)+"/index.html"); out != string(small) {
		t.Errorf("after the failed Start: %q", out)
	}

	// UDP: a DNS server on the namespace's veth address, published as 53/udp and asked
	// from the host through 127.0.0.1.
	dnsSrv, err := dns.ServeInNetNS(context.Background(), ns, dns.Options{
		Addr:     net.JoinHostPort(nsIP.String(), "53"),
		Resolver: dns.ResolverFunc(func(string) []net.IP { return []net.IP{nsIP} }),
	})
	if err != nil {
		t.Fatalf("ServeInNetNS on %s: %v", nsIP, err)
	}
	defer dnsSrv.Close()
	udpMaps, err := portmap.Parse([]string{"127.0.0.1::53/udp"})
	if err != nil {
		t.Fatal(err)
	}
	up, err := portmap.Start(context.Background(), nsIP, udpMaps)
	if err != nil {
		t.Fatalf("Start 53/udp: %v", err)
	}
	defer up.Close()
	udpAddr := up.Bound()[0].HostAddr()
	for i := range 3 {
		c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(new(mdns.Msg).SetQuestion(fmt.Sprintf("c%d.", i), mdns.TypeA), udpAddr)
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != nsIP.String() {
			t.Fatalf("DNS query %d through the published %s: %v %v", i, udpAddr, r, err)
		}
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.ListenPacket("udp4", udpAddr); err != nil {
		t.Errorf("%s still bound after Close: %v", udpAddr, err)
	} else {
		_ = c.Close()
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, m := range bound {
		if nsvcListening(t, os.Getpid(), "tcp", netipAddrPort{net.ParseIP(m.HostIP), m.HostPort}) {
			t.Errorf("%s still listening after Close", m.HostAddr())
		}
		if out, _, err := tryRun(t, cmdOpts{}, curl, "-fsS", "--max-time", "5", "http://127.0.0.1:"+strconv.Itoa(m.HostPort)); err == nil {
			t.Errorf("port %d still answers after Close: %q", m.HostPort, out)
		}
	}
}
