// Package dns is the embedded DNS server of user-defined networks: like Docker's at
// 127.0.0.11 inside each container's network namespace, it answers A and AAAA queries for
// the names of the containers of the container's networks (names, aliases, ids) and forwards
// every other query to the host's name servers.
//
// The server's sockets are opened inside the container's network namespace (ServeInNetNS)
// while its goroutines run in the caller's (the host's) namespace, so forwarded queries
// leave from the host: the host's resolvers, loopback ones such as systemd-resolved's
// 127.0.0.53 included, are reachable.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultAddr is where the server listens in the container's namespace, as Docker's.
const DefaultAddr = "127.0.0.11:53"

// TTL is the time to live, in seconds, of the answers for containers (Docker's 600).
const TTL = 600

// DefaultForwardTimeout bounds one forwarded query to one upstream server.
const DefaultForwardTimeout = 4 * time.Second

// maxConcurrentForwards bounds the forwarded queries in flight (Docker's is 100); queries
// beyond it are answered SERVFAIL at once rather than queued.
const maxConcurrentForwards = 100

// Resolver answers names of containers: the IPv4/IPv6 addresses for name, nil if unknown.
// The server hands it names lowercased and without a trailing dot.
type Resolver interface{ Resolve(name string) []net.IP }

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(name string) []net.IP

// Resolve calls f(name).
func (f ResolverFunc) Resolve(name string) []net.IP { return f(name) }

// ReverseResolver is optionally implemented by a Resolver to answer PTR queries for the
// addresses of containers: the names (without trailing dot) of ip, nil if unknown.
type ReverseResolver interface{ ResolveAddr(ip net.IP) []string }

// Options configure a server.
type Options struct {
	// Resolver answers the names of containers.
	Resolver Resolver
	// Upstream are the host's name servers ("ip:port" or "ip", port 53 then) that other
	// queries are forwarded to, tried in order; empty: none (see ServeInNetNS).
	Upstream []string
	// Addr is the listening address, default DefaultAddr.
	Addr string
	// Timeout bounds a forwarded query to one upstream server, default DefaultForwardTimeout.
	Timeout time.Duration
}

// Server is a running DNS server (UDP and TCP).
type Server struct {
	udp, tcp   *mdns.Server
	addr       net.Addr
	upstream   []string
	resolver   Resolver
	timeout    time.Duration
	forwardSem chan struct{}

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Serve serves DNS on an already opened UDP socket and TCP listener (in whatever network
// namespace they were opened) until ctx is done or Close is called; the server owns them.
// o.Addr is ignored.
func Serve(ctx context.Context, pc net.PacketConn, ln net.Listener, o Options) (*Server, error) {
	if pc == nil || ln == nil {
		return nil, errors.New("dns: Serve needs a UDP socket and a TCP listener")
	}
	if o.Resolver == nil {
		o.Resolver = ResolverFunc(func(string) []net.IP { return nil })
	}
	ups, err := normalizeUpstream(o.Upstream)
	if err != nil {
		_ = pc.Close()
		_ = ln.Close()
		return nil, err
	}
	s := &Server{
		addr:       pc.LocalAddr(),
		upstream:   ups,
		resolver:   o.Resolver,
		timeout:    o.Timeout,
		forwardSem: make(chan struct{}, maxConcurrentForwards),
	}
	if s.timeout <= 0 {
		s.timeout = DefaultForwardTimeout
	}
	h := mdns.HandlerFunc(s.serveDNS)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &mdns.Server{PacketConn: pc, Net: "udp", Handler: h, NotifyStartedFunc: notify}
	s.tcp = &mdns.Server{Listener: ln, Net: "tcp", Handler: h, NotifyStartedFunc: notify,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}
	errs := make(chan error, 2)
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			errs <- srv.ActivateAndServe()
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			_ = pc.Close()
			_ = ln.Close()
			_ = s.udp.Shutdown()
			_ = s.tcp.Shutdown()
			s.wg.Wait()
			return nil, fmt.Errorf("dns: serve on %s: %w", s.addr, err)
		}
	}
	ctx, s.stop = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		s.shutdown()
	}()
	return s, nil
}

// Addr is the server's UDP address (the TCP one has the same IP and port when opened by
// ServeInNetNS).
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server and closes its sockets; it waits for its goroutines.
func (s *Server) Close() error {
	s.stop()
	s.wg.Wait()
	return s.closeErr
}

func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s.closeErr = errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
	})
}

// normalizeUpstream gives every upstream server a port (53 by default).
func normalizeUpstream(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, u := range in {
		if h, _, _ := strings.Cut(strings.Trim(u, "[]"), "%"); net.ParseIP(h) != nil {
			out = append(out, net.JoinHostPort(strings.Trim(u, "[]"), "53"))
			continue
		}
		host, port, err := net.SplitHostPort(u)
		host, _, _ = strings.Cut(host, "%")
		if err != nil || net.ParseIP(host) == nil || port == "" {
			return nil, fmt.Errorf("dns: invalid upstream name server %q: want ip or ip:port", u)
		}
		out = append(out, u)
	}
	return out, nil
}

// canonical is the form names are looked up under: lowercased, without the trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

func (s *Server) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	if len(req.Question) != 1 {
		s.reply(w, req, new(mdns.Msg).SetRcode(req, mdns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	if q.Qclass == mdns.ClassINET {
		switch q.Qtype {
		case mdns.TypeA, mdns.TypeAAAA:
			if m := s.answerAddr(req, q); m != nil {
				s.reply(w, req, m)
				return
			}
		case mdns.TypePTR:
			if m := s.answerPTR(req, q); m != nil {
				s.reply(w, req, m)
				return
			}
		}
	}
	if len(s.upstream) == 0 {
		rcode := mdns.RcodeServerFailure
		if (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeAAAA) && mdns.CountLabel(q.Name) == 1 {
			// A single-label name that is no container: with no upstream to ask, it
			// does not exist.
			rcode = mdns.RcodeNameError
		}
		m := new(mdns.Msg).SetRcode(req, rcode)
		m.RecursionAvailable = true
		s.reply(w, req, m)
		return
	}
	s.reply(w, req, s.forward(req, isTCP(w)))
}

// answerAddr answers an A or AAAA query for a container, nil if the name is not one.
// A container without an address of the asked family gets an empty NOERROR answer, so
// that resolvers do not conclude that the name does not exist.
func (s *Server) answerAddr(req *mdns.Msg, q mdns.Question) *mdns.Msg {
	ips := s.resolver.Resolve(canonical(q.Name))
	if len(ips) == 0 {
		return nil
	}
	m := new(mdns.Msg).SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	hdr := mdns.RR_Header{Name: q.Name, Class: mdns.ClassINET, Ttl: TTL}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			if q.Qtype == mdns.TypeA {
				h := hdr
				h.Rrtype = mdns.TypeA
				m.Answer = append(m.Answer, &mdns.A{Hdr: h, A: v4})
			}
		} else if len(ip) == net.IPv6len && q.Qtype == mdns.TypeAAAA {
			h := hdr
			h.Rrtype = mdns.TypeAAAA
			m.Answer = append(m.Answer, &mdns.AAAA{Hdr: h, AAAA: ip})
		}
	}
	return m
}

// answerPTR answers a reverse query for a container's address, nil when the Resolver does
// not do reverse lookups or does not know the address.
func (s *Server) answerPTR(req *mdns.Msg, q mdns.Question) *mdns.Msg {
	rr, ok := s.resolver.(ReverseResolver)
	if !ok {
		return nil
	}
	ip := reverseIP(q.Name)
	if ip == nil {
		return nil
	}
	names := rr.ResolveAddr(ip)
	if len(names) == 0 {
		return nil
	}
	m := new(mdns.Msg).SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	for _, n := range names {
		m.Answer = append(m.Answer, &mdns.PTR{
			Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: TTL},
			Ptr: mdns.Fqdn(n),
		})
	}
	return m
}

// reverseIP parses a name of in-addr.arpa or ip6.arpa, nil if it is none.
func reverseIP(name string) net.IP {
	name = canonical(name)
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa"):
		labels := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa"), ".")
		if len(labels) != 4 {
			return nil
		}
		for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
			labels[i], labels[j] = labels[j], labels[i]
		}
		return net.ParseIP(strings.Join(labels, ".")).To4()
	case strings.HasSuffix(name, ".ip6.arpa"):
		nibbles := strings.Split(strings.TrimSuffix(name, ".ip6.arpa"), ".")
		if len(nibbles) != 32 {
			return nil
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			if len(nibbles[i]) != 1 {
				return nil
			}
			b.WriteString(nibbles[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		ip := net.ParseIP(b.String())
		if ip == nil || ip.To4() != nil {
			return nil
		}
		return ip
	}
	return nil
}

// forward asks the upstream servers in turn, over the protocol the query came in with,
// and gives the first answer, SERVFAIL when none answers.
func (s *Server) forward(req *mdns.Msg, tcp bool) *mdns.Msg {
	select {
	case s.forwardSem <- struct{}{}:
		defer func() { <-s.forwardSem }()
	default:
		return servfail(req)
	}
	c := &mdns.Client{Net: "udp", Timeout: s.timeout, UDPSize: mdns.MaxMsgSize}
	if tcp {
		c.Net = "tcp"
	}
	out := req.Copy()
	for _, up := range s.upstream {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		resp, _, err := c.ExchangeContext(ctx, out, up)
		cancel()
		if err != nil || resp == nil {
			continue
		}
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			// Another upstream may do better; keep this answer if none does.
			if up != s.upstream[len(s.upstream)-1] {
				continue
			}
		}
		resp.Id = req.Id
		return resp
	}
	return servfail(req)
}

func servfail(req *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

func isTCP(w mdns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// reply writes m, truncated to what the client can take over UDP (512 bytes, or its
// EDNS0 buffer size) with the TC bit set when it had to be cut.
func (s *Server) reply(w mdns.ResponseWriter, req *mdns.Msg, m *mdns.Msg) {
	if !isTCP(w) {
		size := mdns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}
