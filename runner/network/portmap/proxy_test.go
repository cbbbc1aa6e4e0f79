package portmap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var loopback = net.IPv4(127, 0, 0, 1)

// backend is a TCP server on loopback standing in for the container: each connection is
// handled by serve.
func backend(t *testing.T, serve func(c *net.TCPConn)) int {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// freePort returns a TCP port of loopback that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startProxy(t *testing.T, maps ...Mapping) *Proxy {
	t.Helper()
	p, err := Start(context.Background(), loopback, maps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dialBound(t *testing.T, m Mapping) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, &net.TCPAddr{IP: loopback, Port: m.HostPort})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTCPLargeHalfClose sends 64 MiB through the proxy, half-closes, and gets the
// backend's digest of what it received followed by 16 MiB of its own.
func TestTCPLargeHalfClose(t *testing.T) {
	const up, down = 64 << 20, 16 << 20
	port := backend(t, func(c *net.TCPConn) {
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%d %x\n", n, h.Sum(nil))
		_, _ = io.CopyN(c, rand.NewChaCha8([32]byte{1}), down)
	})
	p := startProxy(t, Mapping{ContainerPort: port, Proto: "tcp"})
	b := p.Bound()
	if len(b) != 1 || b[0].HostPort == 0 || b[0].HostIP != "0.0.0.0" {
		t.Fatalf("Bound = %+v", b)
	}
	c := dialBound(t, b[0])
	defer c.Close()

	h := sha256.New()
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.MultiWriter(c, h), rand.NewChaCha8([32]byte{2}), up)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	line, rest, _ := bytes.Cut(got, []byte("\n"))
	if want := fmt.Sprintf("%d %x", up, h.Sum(nil)); string(line) != want {
		t.Errorf("backend received %q, want %q", line, want)
	}
	want := make([]byte, down)
	_, _ = io.ReadFull(rand.NewChaCha8([32]byte{1}), want)
	if !bytes.Equal(rest, want) {
		t.Errorf("received %d bytes back, want the backend's %d", len(rest), down)
	}
}

// TestTCPBackendHalfClose: the backend half-closes first and still reads the client.
func TestTCPBackendHalfClose(t *testing.T) {
	read := make(chan string, 1)
	port := backend(t, func(c *net.TCPConn) {
		_, _ = io.WriteString(c, "hello\n")
		_ = c.CloseWrite()
		b, _ := io.ReadAll(c)
		read <- string(b)
	})
	p := startProxy(t, Mapping{ContainerPort: port, Proto: "tcp"})
	c := dialBound(t, p.Bound()[0])
	defer c.Close()
	got, err := io.ReadAll(c) // EOF: the backend's half-close came through
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := io.WriteString(c, "bye\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	select {
	case got := <-read:
		if got != "bye\n" {
			t.Errorf("backend read %q after its half-close, want bye", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("the client's data and half-close did not reach the backend")
	}
}

func echo(c *net.TCPConn) { _, _ = io.Copy(c, c) }

func TestTCPConcurrent(t *testing.T) {
	port := backend(t, echo)
	p := startProxy(t, Mapping{ContainerPort: port, Proto: "tcp"})
	m := p.Bound()[0]
	const conns = 200
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTCP("tcp", nil, &net.TCPAddr{IP: loopback, Port: m.HostPort})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := bytes.Repeat([]byte(strconv.Itoa(i)+" "), 1000)
			for range 5 {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				back := make([]byte, len(msg))
				if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, msg) {
					errs <- fmt.Errorf("conn %d: echo %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTCPBackendDown(t *testing.T) {
	port := freePort(t) // nothing listens there
	p := startProxy(t, Mapping{ContainerPort: port, Proto: "tcp"})
	c := dialBound(t, p.Bound()[0])
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a proxied connection to nothing", n)
	} else if isTimeout(err) {
		t.Fatalf("connection to a down backend not closed: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestCloseEndsConnections(t *testing.T) {
	port := backend(t, echo)
	p, err := Start(context.Background(), loopback, []Mapping{{HostIP: "127.0.0.1", ContainerPort: port, Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	m := p.Bound()[0]
	if m.HostIP != "127.0.0.1" {
		t.Errorf("bound to %s, want 127.0.0.1", m.HostIP)
	}
	c := dialBound(t, m)
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = p.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs with a live connection")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Error("live connection still open after Close")
	}
	if c2, err := net.Dial("tcp", m.HostAddr()); err == nil {
		_ = c2.Close()
		t.Errorf("%s still accepts after Close", m.HostAddr())
	}
}

func TestContextCloses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, loopback, []Mapping{{HostIP: "127.0.0.1", ContainerPort: 80, Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := p.Bound()[0].HostAddr()
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still listening after the context's end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = p.Close()
}

func TestPortInUse(t *testing.T) {
	busy, err := net.ListenTCP("tcp4", &net.TCPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	first, udpFirst := freePort(t), freePort(t)

	maps := []Mapping{
		{HostPort: first, ContainerPort: 80, Proto: "tcp"},
		{HostPort: udpFirst, ContainerPort: 53, Proto: "udp"},
		{HostPort: 0, ContainerPort: 81, Proto: "tcp"},
		{HostPort: busyPort, ContainerPort: 82, Proto: "tcp"},
	}
	p, err := Start(context.Background(), loopback, maps)
	if err == nil {
		_ = p.Close()
		t.Fatal("Start with a port in use succeeded")
	}
	if want := fmt.Sprintf("Bind for 0.0.0.0:%d failed: port is already allocated", busyPort); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	var be *BindError
	if !errors.As(err, &be) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %T is not a *BindError of EADDRINUSE", err)
	}
	// Nothing left listening: the ports opened before the failure are free again.
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: first})
	if err != nil {
		t.Errorf("port %d left bound: %v", first, err)
	} else {
		_ = ln.Close()
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: udpFirst})
	if err != nil {
		t.Errorf("udp port %d left bound: %v", udpFirst, err)
	} else {
		_ = uc.Close()
	}

	// The same port twice in one Start is in use too.
	p, err = Start(context.Background(), loopback, []Mapping{
		{HostPort: first, ContainerPort: 80, Proto: "tcp"}, {HostPort: first, ContainerPort: 81, Proto: "tcp"},
	})
	if err == nil {
		_ = p.Close()
		t.Fatal("Start with one port twice succeeded")
	}
	// A specific address.
	_, err = Start(context.Background(), loopback, []Mapping{{HostIP: "127.0.0.1", HostPort: busyPort, ContainerPort: 80, Proto: "tcp"}})
	if want := fmt.Sprintf("Bind for 127.0.0.1:%d failed: port is already allocated", busyPort); err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	// An address the host does not have.
	if _, err := Start(context.Background(), loopback, []Mapping{{HostIP: "192.0.2.1", ContainerPort: 80, Proto: "tcp"}}); err == nil || errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("address not on the host: %v", err)
	}
	if _, err := Start(context.Background(), nil, []Mapping{{ContainerPort: 80, Proto: "tcp"}}); err == nil {
		t.Error("no container address: no error")
	}
}

func TestHostPortRange(t *testing.T) {
	// Find two consecutive free ports, take the first.
	var lo int
	var busy *net.TCPListener
	for range 50 {
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{})
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port < 65535 {
			if l2, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: port + 1}); err == nil {
				_ = l2.Close()
				lo, busy = port, l
				break
			}
		}
		_ = l.Close()
	}
	if busy == nil {
		t.Fatal("no two consecutive free ports")
	}
	defer busy.Close()
	p := startProxy(t, Mapping{HostPort: lo, HostPortEnd: lo + 1, ContainerPort: 80, Proto: "tcp"})
	if b := p.Bound(); b[0].HostPort != lo+1 || b[0].HostPortEnd != 0 {
		t.Errorf("range %d-%d with %d busy: bound %+v", lo, lo+1, lo, b)
	}
	_, err := Start(context.Background(), loopback, []Mapping{{HostPort: lo, HostPortEnd: lo + 1, ContainerPort: 80, Proto: "tcp"}})
	if want := fmt.Sprintf("Bind for 0.0.0.0:%d-%d failed: port is already allocated", lo, lo+1); err == nil || err.Error() != want {
		t.Errorf("range all busy: %v, want %q", err, want)
	}
}

func TestRandomPorts(t *testing.T) {
	port := backend(t, echo)
	p := startProxy(t,
		Mapping{ContainerPort: port, Proto: "tcp"},
		Mapping{ContainerPort: port, Proto: "tcp"},
		Mapping{ContainerPort: 9, Proto: "udp"},
	)
	b := p.Bound()
	if len(b) != 3 {
		t.Fatalf("Bound = %+v", b)
	}
	seen := map[string]bool{}
	for _, m := range b {
		if m.HostPort == 0 || seen[m.Proto+strconv.Itoa(m.HostPort)] {
			t.Errorf("random port %+v zero or twice", m)
		}
		seen[m.Proto+strconv.Itoa(m.HostPort)] = true
	}
	for _, m := range b[:2] {
		c := dialBound(t, m)
		_, _ = c.Write([]byte("ping"))
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
			t.Errorf("through %s: %q %v", m.HostAddr(), got, err)
		}
		_ = c.Close()
	}
}

// udpEcho is a UDP server on loopback answering each datagram with "echo:" + it.
func udpEcho(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestUDP(t *testing.T) {
	old := udpIdleTimeout
	udpIdleTimeout = 300 * time.Millisecond
	defer func() { udpIdleTimeout = old }()

	port := udpEcho(t)
	p := startProxy(t, Mapping{ContainerPort: port, Proto: "udp"})
	m := p.Bound()[0]
	var clients []*net.UDPConn
	for i := range 5 {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: loopback, Port: m.HostPort})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		for j := range 3 {
			msg := fmt.Sprintf("client %d datagram %d", i, j)
			if j == 2 {
				msg = string(bytes.Repeat([]byte("z"), 60000)) // a large one
			}
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, maxDatagram)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "echo:"+msg {
				t.Fatalf("client %d: got %d bytes %v", i, n, err)
			}
		}
	}
	u := p.udp[0]
	u.mu.Lock()
	flows := len(u.flows)
	u.mu.Unlock()
	if flows != 5 {
		t.Errorf("%d flows for 5 clients", flows)
	}
	// Idle flows go away; a client coming back gets a new flow.
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		flows = len(u.flows)
		u.mu.Unlock()
		if flows == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flows left after their idle timeout", flows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := clients[0].Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = clients[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := clients[0].Read(buf); err != nil || string(buf[:n]) != "echo:again" {
		t.Errorf("after the idle timeout: %q %v", buf[:n], err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: m.HostPort})
	if err != nil {
		t.Errorf("udp port %d left bound after Close: %v", m.HostPort, err)
	} else {
		_ = uc.Close()
	}
}
