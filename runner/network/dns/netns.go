package dns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// ServeInNetNS starts a DNS server (UDP and TCP) listening on Options.Addr (default
// 127.0.0.11:53) INSIDE the network namespace netnsPath (e.g. /proc/<pid>/ns/net): a
// goroutine locks its OS thread, enters the namespace, brings lo up when it is down, opens
// the sockets and goes back to the caller's namespace (when going back fails, the thread
// stays locked so that the Go runtime discards it). The server's goroutines then run in
// the caller's namespace, where forwarded queries leave from.
//
// It answers A/AAAA for the names the Resolver knows (TTL 600, names matched
// case-insensitively, with or without the trailing dot, no search domains applied),
// NXDOMAIN for A/AAAA of single-label names it does not know when there is no upstream
// (SERVFAIL for every other query then), and forwards everything else upstream with a
// timeout, answers over UDP truncated to the client's buffer size. The server runs until
// ctx is done or Close is called.
func ServeInNetNS(ctx context.Context, netnsPath string, o Options) (*Server, error) {
	addr := o.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if _, err := normalizeUpstream(o.Upstream); err != nil {
		return nil, err
	}
	pc, ln, err := listenInNetNS(netnsPath, addr)
	if err != nil {
		return nil, err
	}
	return Serve(ctx, pc, ln, o)
}

// listenInNetNS opens a UDP socket and a TCP listener on addr in the network namespace
// netnsPath, from a locked thread of a goroutine of its own.
func listenInNetNS(netnsPath, addr string) (net.PacketConn, net.Listener, error) {
	type result struct {
		pc  net.PacketConn
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Unlocked only once back in the original namespace: a thread left in the
		// container's namespace dies with this goroutine.
		var r result
		back, err := enterNetNS(netnsPath)
		if err != nil {
			// The thread did not move.
			runtime.UnlockOSThread()
			r.err = err
			ch <- r
			return
		}
		r.pc, r.ln, r.err = listenHere(addr)
		if err := back(); err != nil {
			if r.pc != nil {
				_ = r.pc.Close()
			}
			if r.ln != nil {
				_ = r.ln.Close()
			}
			r.pc, r.ln = nil, nil
			r.err = errors.Join(r.err, err)
			ch <- r
			return // thread still locked: discarded
		}
		runtime.UnlockOSThread()
		ch <- r
	}()
	r := <-ch
	return r.pc, r.ln, r.err
}

// enterNetNS moves the calling (locked) thread into the network namespace at path and
// returns the function that moves it back. On an error, the thread has not moved.
func enterNetNS(path string) (back func() error, err error) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("dns: open own network namespace: %w", err)
	}
	target, err := os.Open(path)
	if err != nil {
		_ = orig.Close()
		return nil, fmt.Errorf("dns: open network namespace: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		_ = orig.Close()
		return nil, fmt.Errorf("dns: enter network namespace %s: %w", path, err)
	}
	return func() error {
		defer orig.Close()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("dns: return to the host's network namespace: %w", err)
		}
		return nil
	}, nil
}

// listenHere brings lo up and opens the sockets in the thread's current namespace.
func listenHere(addr string) (net.PacketConn, net.Listener, error) {
	if err := loopbackUp(); err != nil {
		return nil, nil, err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("dns: listen: %w", err)
	}
	return pc, ln, nil
}

// loopbackUp sets IFF_UP on lo in the thread's network namespace if it is not set.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dns: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("dns: lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("dns: flags of lo: %w", err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("dns: bring lo up: %w", err)
	}
	return nil
}

// HostUpstream reads the name servers of a resolv.conf file (normally /etc/resolv.conf) as
// "ip:53" addresses for Options.Upstream. Loopback servers (systemd-resolved's
// 127.0.0.53, a local dnsmasq) are kept: the server forwards from the host's namespace,
// where they are reachable. Zone indexes of link-local IPv6 servers are kept. A missing
// file gives no servers and no error.
func HostUpstream(resolvConf string) ([]string, error) {
	f, err := os.Open(resolvConf)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("dns: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		host, zone, _ := strings.Cut(fields[1], "%")
		ip := net.ParseIP(host)
		if ip == nil {
			continue
		}
		h := ip.String()
		if zone != "" && ip.To4() == nil {
			h += "%" + zone
		}
		out = append(out, net.JoinHostPort(h, "53"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dns: read %s: %w", resolvConf, err)
	}
	return out, nil
}
