package portmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// UDPIdleTimeout is how long a UDP flow (one client address) lives without traffic, as
// Docker's userland proxy.
const UDPIdleTimeout = 90 * time.Second

// DialTimeout bounds the connection to the container for one accepted TCP connection.
const DialTimeout = 10 * time.Second

// udpIdleTimeout is UDPIdleTimeout, shortened by tests.
var udpIdleTimeout = UDPIdleTimeout

// Proxy is a userland proxy for one container's published ports: it listens on the host
// and forwards each TCP connection and UDP flow to the container's address.
type Proxy struct {
	bound []Mapping

	tcp []*net.TCPListener
	udp []*udpProxy

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // live TCP connections, both sides

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// BindError is the error of a host port that cannot be bound.
type BindError struct {
	Addr string // host ip:port
	Err  error  // the bind error
}

// Error is Docker's message for a port in use, the bind error for the rest.
func (e *BindError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return "Bind for " + e.Addr + " failed: port is already allocated"
	}
	return "Error starting userland proxy: " + e.Err.Error()
}

// Unwrap returns the bind error.
func (e *BindError) Unwrap() error { return e.Err }

// Start publishes maps: it listens on the host (HostIP, default 0.0.0.0 = every IPv4
// address, loopback included) and forwards each TCP connection and UDP flow to
// containerIP:ContainerPort until ctx is done or Close is called. Random host ports
// (HostPort 0) are bound by the kernel, ranges (HostPortEnd) to their first free port;
// Bound reports them. A port already in use fails the whole Start with Docker's message
// ("Bind for 0.0.0.0:8080 failed: port is already allocated", a *BindError) and closes
// every listener it opened.
func Start(ctx context.Context, containerIP net.IP, maps []Mapping) (*Proxy, error) {
	if containerIP == nil || containerIP.IsUnspecified() {
		return nil, fmt.Errorf("portmap: no container address to publish ports to (%v)", containerIP)
	}
	p := &Proxy{conns: map[net.Conn]struct{}{}}
	for _, m := range maps {
		b, err := p.listen(m, containerIP)
		if err != nil {
			p.closeListeners()
			return nil, err
		}
		p.bound = append(p.bound, b)
	}
	ctx, p.stop = context.WithCancel(ctx)
	ports := p.tcpPorts()
	for i, ln := range p.tcp {
		backend := tcpBackend(containerIP, ports[i])
		p.wg.Add(1)
		go p.serveTCP(ctx, ln, backend)
	}
	for _, u := range p.udp {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			u.serve()
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-ctx.Done()
		p.shutdown()
	}()
	return p, nil
}

// tcpPorts are the container ports of the TCP listeners, in order.
func (p *Proxy) tcpPorts() []int {
	var out []int
	for _, b := range p.bound {
		if b.Proto == "tcp" {
			out = append(out, b.ContainerPort)
		}
	}
	return out
}

func tcpBackend(ip net.IP, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// listen binds m's host port and returns m with the bound address.
func (p *Proxy) listen(m Mapping, containerIP net.IP) (Mapping, error) {
	hostIP := net.IPv4zero
	if m.HostIP != "" {
		if hostIP = net.ParseIP(m.HostIP); hostIP == nil {
			return m, fmt.Errorf("Invalid ip address: %s", m.HostIP) //nolint:staticcheck // Docker's wording
		}
	}
	family := "4"
	if hostIP.To4() == nil {
		family = "6"
	} else {
		hostIP = hostIP.To4()
	}
	if m.Proto != "tcp" && m.Proto != "udp" {
		return m, fmt.Errorf("invalid proto: %s", m.Proto)
	}
	if m.ContainerPort <= 0 || m.ContainerPort > 65535 {
		return m, fmt.Errorf("invalid containerPort: %d", m.ContainerPort)
	}
	first, last := m.HostPort, m.HostPort
	if m.HostPortEnd > m.HostPort {
		last = m.HostPortEnd
	}
	var err error
	for port := first; port <= last; port++ {
		if m.Proto == "tcp" {
			var ln *net.TCPListener
			ln, err = net.ListenTCP("tcp"+family, &net.TCPAddr{IP: hostIP, Port: port})
			if err == nil {
				p.tcp = append(p.tcp, ln)
				return bound(m, hostIP, ln.Addr().(*net.TCPAddr).Port), nil
			}
		} else {
			var c *net.UDPConn
			c, err = net.ListenUDP("udp"+family, &net.UDPAddr{IP: hostIP, Port: port})
			if err == nil {
				backend := &net.UDPAddr{IP: containerIP, Port: m.ContainerPort}
				p.udp = append(p.udp, &udpProxy{ln: c, backend: backend, idle: udpIdleTimeout, flows: map[netip.AddrPort]*udpFlow{}})
				return bound(m, hostIP, c.LocalAddr().(*net.UDPAddr).Port), nil
			}
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	addr := net.JoinHostPort(hostIP.String(), strconv.Itoa(m.HostPort))
	if last != first {
		addr = net.JoinHostPort(hostIP.String(), fmt.Sprintf("%d-%d", first, last))
	}
	return m, &BindError{Addr: addr, Err: err}
}

func bound(m Mapping, ip net.IP, port int) Mapping {
	m.HostIP = ip.String()
	m.HostPort = port
	m.HostPortEnd = 0
	return m
}

// Bound returns the published mappings with the host addresses and ports actually bound.
func (p *Proxy) Bound() []Mapping {
	return append([]Mapping(nil), p.bound...)
}

// Close closes the listeners and every live connection and flow, and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.stop()
	p.wg.Wait()
	return nil
}

func (p *Proxy) shutdown() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.closeListeners()
	})
}

func (p *Proxy) closeListeners() {
	for _, ln := range p.tcp {
		_ = ln.Close()
	}
	for _, u := range p.udp {
		u.close()
	}
}

// track registers live connections (and a goroutine for them), false once closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

// serveTCP accepts connections on ln and proxies each to backend.
func (p *Proxy) serveTCP(ctx context.Context, ln *net.TCPListener, backend string) {
	defer p.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			continue
		}
		delay = 0
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.proxyTCP(ctx, c, backend)
	}
}

// dialer connects to containers. Keep-alive probes are left to the endpoints on that
// side (the container is local; the proxy is closed when it stops); TCP_NODELAY is Go's
// default on both sides.
var dialer = net.Dialer{Timeout: DialTimeout, KeepAlive: -1}

// proxyTCP connects to the container and copies both ways, passing half-closes on; an
// error either way closes both sides.
func (p *Proxy) proxyTCP(ctx context.Context, c *net.TCPConn, backend string) {
	defer p.wg.Done()
	defer func() {
		_ = c.Close()
		p.untrack(c)
	}()
	bc, err := dialer.DialContext(ctx, "tcp", backend)
	if err != nil {
		return
	}
	b := bc.(*net.TCPConn)
	defer func() {
		_ = b.Close()
		p.untrack(b)
	}()
	if !p.track(b) {
		return
	}
	var ended atomic.Int32
	done := make(chan struct{})
	go func() {
		pipe(b, c, &ended)
		close(done)
	}()
	pipe(c, b, &ended)
	<-done
}

// copyBufSize is the buffer of the read/write phase of a pipe: requests and responses of
// that size or less are copied through it; a read that fills it means a bulk transfer, which
// continues with splice(2).
const copyBufSize = 16 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// pipe copies src to dst until src's end, then half-closes dst (unless the other direction
// has ended already: both connections are about to be closed, which sends the FIN); an error
// closes both. Small messages go through read(2)/write(2) with a pooled buffer, cheaper than
// splice(2) through a pipe for a few KiB; the first read that fills the buffer switches to
// io.Copy, TCPConn.ReadFrom, which splices on Linux.
func pipe(dst, src *net.TCPConn, ended *atomic.Int32) {
	err := copyTCP(dst, src)
	if err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if ended.Add(1) == 1 {
		_ = dst.CloseWrite()
	}
}

func copyTCP(dst, src *net.TCPConn) error {
	bp := copyBufs.Get().(*[]byte)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				copyBufs.Put(bp)
				return werr
			}
		}
		if err != nil {
			copyBufs.Put(bp)
			if err == io.EOF {
				return nil
			}
			return err
		}
		if n == len(buf) {
			copyBufs.Put(bp)
			_, err := io.Copy(dst, src)
			return err
		}
	}
}

// udpProxy forwards the datagrams of each client address (a flow) through a socket of its
// own connected to the container, and the container's replies back to the client.
type udpProxy struct {
	ln      *net.UDPConn
	backend *net.UDPAddr
	idle    time.Duration // a flow's idle timeout

	mu     sync.Mutex
	closed bool
	flows  map[netip.AddrPort]*udpFlow
	wg     sync.WaitGroup
}

type udpFlow struct {
	conn *net.UDPConn
	last atomic.Int64 // unix nanoseconds of the last datagram either way
}

const maxDatagram = 65535

func (u *udpProxy) serve() {
	defer u.wg.Wait()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := u.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		for range 2 {
			f := u.flow(from)
			if f == nil {
				break
			}
			f.last.Store(time.Now().UnixNano())
			// Other errors (the container not listening: ECONNREFUSED from an earlier
			// ICMP) lose the datagram, as the network would.
			if _, err := f.conn.Write(buf[:n]); !errors.Is(err, net.ErrClosed) {
				break
			}
			// The flow expired right then: once more with a new one.
		}
	}
}

// flow returns the flow of client from, opening it if new; nil once closed or when no
// socket can be opened.
func (u *udpProxy) flow(from netip.AddrPort) *udpFlow {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f := u.flows[from]; f != nil {
		return f
	}
	if u.closed {
		return nil
	}
	c, err := net.DialUDP("udp", nil, u.backend)
	if err != nil {
		return nil
	}
	f := &udpFlow{conn: c}
	u.flows[from] = f
	u.wg.Add(1)
	go u.reply(from, f)
	return f
}

// reply sends the container's datagrams of a flow back to its client until the flow is
// idle for u.idle or closed.
func (u *udpProxy) reply(client netip.AddrPort, f *udpFlow) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		if u.flows[client] == f {
			delete(u.flows, client)
		}
		u.mu.Unlock()
		_ = f.conn.Close()
	}()
	buf := make([]byte, maxDatagram)
	for {
		idle := time.Duration(time.Now().UnixNano() - f.last.Load())
		if idle >= u.idle {
			return
		}
		_ = f.conn.SetReadDeadline(time.Now().Add(u.idle - idle))
		n, err := f.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // the loop checks the idle time again
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // ICMP port unreachable for an earlier datagram
			}
			return
		}
		f.last.Store(time.Now().UnixNano())
		if _, err := u.ln.WriteToUDPAddrPort(buf[:n], client); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (u *udpProxy) close() {
	u.mu.Lock()
	u.closed = true
	_ = u.ln.Close()
	for _, f := range u.flows {
		_ = f.conn.Close()
	}
	u.mu.Unlock()
}
