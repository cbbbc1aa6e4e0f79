package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// containers is the test's Resolver: names are stored lowercased, as the server asks.
type containers map[string][]net.IP

func (c containers) Resolve(name string) []net.IP { return c[name] }

func (c containers) ResolveAddr(ip net.IP) []string {
	var out []string
	for n, ips := range c {
		for _, x := range ips {
			if x.Equal(ip) {
				out = append(out, n)
			}
		}
	}
	return out
}

var testContainers = containers{
	"web":       {net.ParseIP("10.89.0.2")},
	"db":        {net.ParseIP("10.89.0.3"), net.ParseIP("fd00::3")},
	"web.mynet": {net.ParseIP("10.89.0.2")},
}

// start serves o on loopback ports of the test's own.
func start(t *testing.T, o Options) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		// The port is taken on TCP: try another one.
		_ = pc.Close()
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err = net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := Serve(context.Background(), pc, ln, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func query(t *testing.T, addr, network, name string, qtype uint16, edns uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &mdns.Client{Net: network, Timeout: 10 * time.Second, UDPSize: mdns.MaxMsgSize}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return r
}

func addrs(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		case *mdns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	return out
}

func TestContainersAnswered(t *testing.T) {
	s := start(t, Options{Resolver: testContainers})
	addr := s.Addr().String()
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"web.", mdns.TypeA, []string{"10.89.0.2"}},
		{"WeB.", mdns.TypeA, []string{"10.89.0.2"}},
		{"web.mynet.", mdns.TypeA, []string{"10.89.0.2"}},
		{"db.", mdns.TypeA, []string{"10.89.0.3"}},
		{"db.", mdns.TypeAAAA, []string{"fd00::3"}},
		{"web.", mdns.TypeAAAA, nil}, // known, no IPv6: empty NOERROR
	} {
		for _, network := range []string{"udp", "tcp"} {
			r := query(t, addr, network, tc.name, tc.qtype, 0)
			if r.Rcode != mdns.RcodeSuccess {
				t.Errorf("%s %s/%s: rcode %s, want NOERROR", tc.name, mdns.TypeToString[tc.qtype], network, mdns.RcodeToString[r.Rcode])
			}
			if got := addrs(r); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %s/%s: answers %v, want %v", tc.name, mdns.TypeToString[tc.qtype], network, got, tc.want)
			}
			for _, rr := range r.Answer {
				if rr.Header().Ttl != TTL || rr.Header().Name != tc.name {
					t.Errorf("%s: record %v, want TTL %d and the asked name", tc.name, rr, TTL)
				}
			}
			if !r.Authoritative || !r.Response {
				t.Errorf("%s: want an authoritative response, got %v", tc.name, r.MsgHdr)
			}
		}
	}
}

func TestUnknownWithoutUpstream(t *testing.T) {
	s := start(t, Options{Resolver: testContainers})
	addr := s.Addr().String()
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"nosuch.", mdns.TypeA, mdns.RcodeNameError},
		{"nosuch.", mdns.TypeAAAA, mdns.RcodeNameError},
		{"example.com.", mdns.TypeA, mdns.RcodeServerFailure},
		{"web.", mdns.TypeMX, mdns.RcodeServerFailure},
		{"9.9.9.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeServerFailure},
	} {
		r := query(t, addr, "udp", tc.name, tc.qtype, 0)
		if r.Rcode != tc.rcode || len(r.Answer) != 0 {
			t.Errorf("%s %s: rcode %s answers %v, want %s and none", tc.name, mdns.TypeToString[tc.qtype],
				mdns.RcodeToString[r.Rcode], r.Answer, mdns.RcodeToString[tc.rcode])
		}
	}
}

func TestReverse(t *testing.T) {
	s := start(t, Options{Resolver: testContainers})
	r := query(t, s.Addr().String(), "udp", "3.0.89.10.in-addr.arpa.", mdns.TypePTR, 0)
	if got := addrs(r); !reflect.DeepEqual(got, []string{"db."}) {
		t.Errorf("PTR of 10.89.0.3: %v, want [db.]", got)
	}
	rev, _ := mdns.ReverseAddr("fd00::3")
	r = query(t, s.Addr().String(), "udp", rev, mdns.TypePTR, 0)
	if got := addrs(r); !reflect.DeepEqual(got, []string{"db."}) {
		t.Errorf("PTR of fd00::3: %v, want [db.]", got)
	}
}

// upstream is a fake host name server: example.com has one address, many.example.com 100
// (more than fit in 512 bytes), slow.example.com is never answered, the rest NXDOMAIN.
func upstream(t *testing.T) (addr string, queries chan string) {
	t.Helper()
	queries = make(chan string, 100)
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		q := req.Question[0]
		select {
		case queries <- fmt.Sprintf("%s %s %s", w.RemoteAddr().Network(), q.Name, mdns.TypeToString[q.Qtype]):
		default:
		}
		m := new(mdns.Msg).SetReply(req)
		switch q.Name {
		case "example.com.":
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30}, A: net.IPv4(192, 0, 2, 1)})
		case "many.example.com.":
			for i := range 100 {
				m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30}, A: net.IPv4(192, 0, 2, byte(i))})
			}
		case "slow.example.com.":
			return
		default:
			m.SetRcode(req, mdns.RcodeNameError)
		}
		_ = w.WriteMsg(m)
	})
	// One port for UDP and TCP: retry while the kernel's free UDP port is taken for TCP.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 20 {
				t.Fatalf("no port free for both UDP and TCP: %v", err)
			}
		}
	}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String(), queries
}

func TestForward(t *testing.T) {
	up, queries := upstream(t)
	// The first upstream does not exist: the second answers.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	_ = dead.Close()
	s := start(t, Options{Resolver: testContainers, Upstream: []string{deadAddr, up}, Timeout: 500 * time.Millisecond})
	addr := s.Addr().String()

	r := query(t, addr, "udp", "example.com.", mdns.TypeA, 0)
	if r.Rcode != mdns.RcodeSuccess || !reflect.DeepEqual(addrs(r), []string{"192.0.2.1"}) {
		t.Fatalf("forwarded example.com: %v", r)
	}
	if got := <-queries; got != "udp example.com. A" {
		t.Errorf("upstream got %q", got)
	}
	// A container's name is not forwarded, an unknown single label is.
	if r := query(t, addr, "udp", "web.", mdns.TypeA, 0); !reflect.DeepEqual(addrs(r), []string{"10.89.0.2"}) {
		t.Errorf("web with upstream: %v", r)
	}
	if r := query(t, addr, "udp", "nosuch.", mdns.TypeA, 0); r.Rcode != mdns.RcodeNameError {
		t.Errorf("nosuch with upstream: rcode %s, want NXDOMAIN from upstream", mdns.RcodeToString[r.Rcode])
	}
	if got := <-queries; got != "udp nosuch. A" {
		t.Errorf("upstream got %q, want the nosuch query", got)
	}
	// Other types of a container's name go upstream too.
	if r := query(t, addr, "tcp", "web.", mdns.TypeMX, 0); r.Rcode != mdns.RcodeNameError {
		t.Errorf("web MX: rcode %s", mdns.RcodeToString[r.Rcode])
	}
	if got := <-queries; got != "tcp web. MX" {
		t.Errorf("upstream got %q, want the MX query over tcp", got)
	}
}

func TestForwardTruncated(t *testing.T) {
	up, _ := upstream(t)
	s := start(t, Options{Upstream: []string{up}})
	addr := s.Addr().String()

	r := query(t, addr, "udp", "many.example.com.", mdns.TypeA, 0)
	if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 100 {
		t.Errorf("over UDP without EDNS: truncated %v with %d answers, want TC and fewer than 100", r.Truncated, len(r.Answer))
	}
	r.Compress = true // as it was sent
	if b, _ := r.Pack(); len(b) > mdns.MinMsgSize {
		t.Errorf("UDP answer of %d bytes, more than 512", len(b))
	}
	r = query(t, addr, "udp", "many.example.com.", mdns.TypeA, 4096)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("over UDP with EDNS 4096: truncated %v with %d answers, want all 100", r.Truncated, len(r.Answer))
	}
	r = query(t, addr, "tcp", "many.example.com.", mdns.TypeA, 0)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("over TCP: truncated %v with %d answers, want all 100", r.Truncated, len(r.Answer))
	}
}

func TestForwardTimeout(t *testing.T) {
	up, _ := upstream(t)
	s := start(t, Options{Upstream: []string{up}, Timeout: 300 * time.Millisecond})
	t0 := time.Now()
	r := query(t, s.Addr().String(), "udp", "slow.example.com.", mdns.TypeA, 0)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("unanswered upstream: rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("SERVFAIL after %v", d)
	}
}

func TestCloseReleasesPorts(t *testing.T) {
	s := start(t, Options{Resolver: testContainers})
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP %s still taken after Close: %v", addr, err)
	}
	_ = pc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP %s still taken after Close: %v", addr, err)
	}
	_ = ln.Close()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContextStops(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Serve(ctx, pc, ln, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still listening 5s after the context was cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.Close()
}

func TestHostUpstream(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	conf := strings.Join([]string{
		"# generated",
		"nameserver 127.0.0.53",
		"nameserver   192.0.2.53  ",
		"nameserver 2001:db8::53",
		"nameserver fe80::1%eth0",
		"nameserver bogus",
		"search example.com",
		"options ndots:0",
	}, "\n")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := HostUpstream(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.53:53", "192.0.2.53:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HostUpstream: %q, want %q", got, want)
	}
	if _, err := normalizeUpstream(got); err != nil {
		t.Errorf("HostUpstream's output refused as Upstream: %v", err)
	}
	if got, err := HostUpstream(filepath.Join(t.TempDir(), "missing")); err != nil || got != nil {
		t.Errorf("missing file: %v, %v", got, err)
	}
}

func TestUpstreamValidated(t *testing.T) {
	got, err := normalizeUpstream([]string{"192.0.2.1", "[2001:db8::1]", "192.0.2.2:5353"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.1:53", "[2001:db8::1]:53", "192.0.2.2:5353"}; !reflect.DeepEqual(got, want) {
		t.Errorf("normalizeUpstream: %q, want %q", got, want)
	}
	for _, bad := range []string{"dns.example.com", "dns.example.com:53", "1.2.3.4:"} {
		if _, err := normalizeUpstream([]string{bad}); err == nil {
			t.Errorf("upstream %q accepted", bad)
		}
	}
	if _, err := ServeInNetNS(context.Background(), "/proc/self/ns/net", Options{Upstream: []string{"bogus"}}); err == nil {
		t.Error("ServeInNetNS accepted a bad upstream")
	}
}

func TestServeInNetNSMissingNamespace(t *testing.T) {
	_, err := ServeInNetNS(context.Background(), filepath.Join(t.TempDir(), "nonexistent"), Options{Addr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "network namespace") {
		t.Errorf("missing namespace: %v", err)
	}
}

func TestReverseIP(t *testing.T) {
	for name, want := range map[string]string{
		"3.0.89.10.in-addr.arpa.": "10.89.0.3",
		"3.0.89.10.IN-ADDR.ARPA":  "10.89.0.3",
		"0.89.10.in-addr.arpa.":   "<nil>",
		"x.0.89.10.in-addr.arpa.": "<nil>",
		"example.com.":            "<nil>",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.": "::1",
		"1.0.0.ip6.arpa.": "<nil>",
	} {
		if got := reverseIP(name).String(); got != want {
			t.Errorf("reverseIP(%q) = %s, want %s", name, got, want)
		}
	}
}
