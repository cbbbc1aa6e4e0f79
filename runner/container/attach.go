package container

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The monitor serves its container's streams on a unix socket (<runroot>/containers/<id>/
// attach); `start -a`/`run` get the same service on a socketpair inherited by the monitor,
// connected before the container runs, so that no output is missed.
//
// Every message, both ways, is a frame as in Docker's stdcopy: an 8-byte header (the
// frame type, three zero bytes, the payload size as a big-endian uint32), then the payload.
// Docker sends a tty's output raw; here it is framed too (type stdout), so that one
// connection also carries the exit status at its end — the client writes a tty's output
// raw to its stdout.
//
//	client → monitor   request (JSON attachRequest; first frame)
//	monitor → client   hello (JSON helloInfo: tty, pid)
//	monitor → client   stdout, stderr (output, as the container writes it)
//	client → monitor   stdin, resize (height, width: 2 × uint16), close-stdin
//	monitor → client   exit (JSON ExitInfo; last frame: the container exited)
//
// Several clients may be attached at once; each gets the output, and the stdin of each
// one that asked for it goes to the container (when it was created with OpenStdin). A
// slow client holds the container's output back for at most 10 s, then it is dropped.
const (
	frameStdin      = 0
	frameStdout     = 1
	frameStderr     = 2
	frameError      = 3
	frameExit       = 4
	frameHello      = 5
	frameRequest    = 16
	frameResize     = 17
	frameCloseStdin = 18
)

const maxAttachFrame = 1 << 20

type attachRequest struct {
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	// Wait: only the exit frame (docker wait). Pid, when set, is the run the client knows
	// of: if that run already ended, its exit is sent at once.
	Wait bool `json:"wait,omitempty"`
	Pid  int  `json:"pid,omitempty"`
}

type helloInfo struct {
	TTY bool `json:"tty"`
	Pid int  `json:"pid,omitempty"`
}

// ExitInfo is how a run of the container ended.
type ExitInfo struct {
	ExitCode  int    `json:"ExitCode"`
	OOMKilled bool   `json:"OOMKilled,omitempty"`
	Error     string `json:"Error,omitempty"`
	Pid       int    `json:"Pid,omitempty"`
}

func makeFrame(typ byte, payload []byte) []byte {
	f := make([]byte, 8+len(payload))
	f[0] = typ
	binary.BigEndian.PutUint32(f[4:], uint32(len(payload)))
	copy(f[8:], payload)
	return f
}

func writeAttachFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(makeFrame(typ, payload))
	return err
}

func readAttachFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > maxAttachFrame {
		return 0, nil, fmt.Errorf("attach: frame of %d bytes", n)
	}
	if int(n) > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// unixPath returns a name for path short enough for a sockaddr_un (108 bytes): the path
// itself, or /proc/self/fd/N/<base> through an O_PATH descriptor of the directory (the
// caller closes the returned file).
func unixPath(path string) (string, *os.File, error) {
	if len(path) < 100 {
		return path, nil, nil
	}
	d, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + filepath.Base(path), d, nil
}

func listenUnix(path string) (*net.UnixListener, error) {
	os.Remove(path)
	name, d, err := unixPath(path)
	if err != nil {
		return nil, err
	}
	if d != nil {
		defer d.Close()
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

func dialUnix(path string) (*net.UnixConn, error) {
	name, d, err := unixPath(path)
	if err != nil {
		return nil, err
	}
	if d != nil {
		defer d.Close()
	}
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: name, Net: "unix"})
}

// ---- monitor side ----

type attachServer struct {
	mu        sync.Mutex
	clients   map[*attachConn]struct{}
	tty       bool
	stdinOnce bool
	pid       int
	last      *ExitInfo
	closed    bool
	writers   sync.WaitGroup

	stdinMu sync.Mutex
	stdin   *os.File // the container's stdin (pipe or pty master), nil without OpenStdin
	console *os.File
	ownsIn  bool // stdin is a pipe of ours (closed for StdinOnce), not the console
}

type attachConn struct {
	srv  *attachServer
	conn net.Conn
	req  attachRequest
	out  chan []byte
	quit chan struct{}
	once sync.Once
}

func newAttachServer(tty, stdinOnce bool) *attachServer {
	return &attachServer{clients: map[*attachConn]struct{}{}, tty: tty, stdinOnce: stdinOnce}
}

// accept serves the listener until it is closed.
func (s *attachServer) accept(l *net.UnixListener) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.handshake(c)
	}
}

// handshake reads a client's request and adds it.
func (s *attachServer) handshake(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, b, err := readAttachFrame(c, nil)
	c.SetReadDeadline(time.Time{})
	var req attachRequest
	if err != nil || typ != frameRequest || json.Unmarshal(b, &req) != nil {
		c.Close()
		return
	}
	s.add(c, req)
}

func (s *attachServer) add(c net.Conn, req attachRequest) {
	s.mu.Lock()
	if s.closed || req.Wait && req.Pid != 0 && s.last != nil && s.last.Pid == req.Pid {
		last := s.last
		s.mu.Unlock()
		if last != nil {
			b, _ := json.Marshal(last)
			writeAttachFrame(c, frameExit, b)
		}
		c.Close()
		return
	}
	ac := &attachConn{srv: s, conn: c, req: req, out: make(chan []byte, 256), quit: make(chan struct{})}
	s.clients[ac] = struct{}{}
	hello, _ := json.Marshal(helloInfo{TTY: s.tty, Pid: s.pid})
	ac.out <- makeFrame(frameHello, hello)
	s.writers.Add(1)
	s.mu.Unlock()
	go ac.writer()
	go ac.reader()
}

// flush waits (up to d) until every client has been sent what was queued for it.
func (s *attachServer) flush(d time.Duration) {
	done := make(chan struct{})
	go func() { s.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// setRun gives the server the new run's stdin and console.
func (s *attachServer) setRun(pid int, stdin *os.File, ownsIn bool, console *os.File) {
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
	s.stdinMu.Lock()
	s.stdin, s.ownsIn, s.console = stdin, ownsIn, console
	s.stdinMu.Unlock()
}

// broadcast sends output to the clients that want the stream.
func (s *attachServer) broadcast(stream byte, p []byte) {
	s.mu.Lock()
	if len(s.clients) == 0 {
		s.mu.Unlock()
		return
	}
	var targets []*attachConn
	for c := range s.clients {
		if c.req.Wait {
			continue
		}
		if stream == frameStdout && c.req.Stdout || stream == frameStderr && c.req.Stderr {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	f := makeFrame(stream, p)
	for _, c := range targets {
		c.send(f)
	}
}

// exited ends the run: every client gets the exit frame and is closed.
func (s *attachServer) exited(info ExitInfo) {
	s.mu.Lock()
	s.last = &info
	s.pid = 0
	targets := s.clients
	s.clients = map[*attachConn]struct{}{}
	s.mu.Unlock()
	s.stdinMu.Lock()
	s.stdin, s.console, s.ownsIn = nil, nil, false
	s.stdinMu.Unlock()
	b, _ := json.Marshal(info)
	f := makeFrame(frameExit, b)
	for c := range targets {
		c.send(f)
	}
}

// close refuses new clients and drops the others (the monitor ends).
func (s *attachServer) close() {
	s.mu.Lock()
	s.closed = true
	targets := s.clients
	s.clients = map[*attachConn]struct{}{}
	s.mu.Unlock()
	for c := range targets {
		c.close()
	}
}

func (s *attachServer) drop(c *attachConn) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
}

func (s *attachServer) writeStdin(p []byte) {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin != nil {
		if _, err := s.stdin.Write(p); err != nil && s.ownsIn {
			s.stdin.Close()
			s.stdin = nil
		}
	}
}

// closeStdin closes the container's stdin when it is a pipe and StdinOnce is set (docker
// run -i: the container sees EOF when the attached client's input ends).
func (s *attachServer) closeStdin() {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdinOnce && s.ownsIn && s.stdin != nil {
		s.stdin.Close()
		s.stdin = nil
	}
}

func (s *attachServer) resize(h, w uint16) {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.console != nil {
		SetConsoleSize(s.console, h, w)
	}
}

func (c *attachConn) send(f []byte) {
	select {
	case c.out <- f:
		return
	case <-c.quit:
		return
	default:
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case c.out <- f:
	case <-c.quit:
	case <-t.C:
		c.close() // too slow: dropped rather than holding the container back
	}
}

func (c *attachConn) close() {
	c.once.Do(func() {
		close(c.quit)
		c.conn.Close()
		c.srv.drop(c)
	})
}

func (c *attachConn) writer() {
	defer c.srv.writers.Done()
	for {
		select {
		case f := <-c.out:
			if _, err := c.conn.Write(f); err != nil {
				c.close()
				return
			}
			if f[0] == frameExit {
				c.close()
				return
			}
		case <-c.quit:
			return
		}
	}
}

func (c *attachConn) reader() {
	buf := make([]byte, 0, 4096)
	for {
		typ, p, err := readAttachFrame(c.conn, buf)
		if err != nil {
			break
		}
		switch typ {
		case frameStdin:
			if c.req.Stdin {
				c.srv.writeStdin(p)
			}
		case frameCloseStdin:
			if c.req.Stdin {
				c.srv.closeStdin()
			}
		case frameResize:
			if len(p) == 4 {
				c.srv.resize(binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]))
			}
		}
	}
	if c.req.Stdin {
		c.srv.closeStdin() // StdinOnce: the attached client is gone
	}
	c.close()
}

// ---- client side ----

// AttachOptions are the streams of attach (and of start -a / run).
type AttachOptions struct {
	// Stdin, when set (and the container has OpenStdin), is copied to the container.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output (a tty's all goes to Stdout).
	Stdout, Stderr io.Writer
	// DetachKeys is the key sequence that detaches (Docker's syntax, "ctrl-p,ctrl-q" by
	// default), recognised in Stdin when the container has a tty.
	DetachKeys string
	// Logs replays the container's log before the live output.
	Logs bool
	// ConsoleSize is the window size of the client's terminal, given to the container's
	// tty (before its command runs, with Start).
	ConsoleSize *specs.Box
}

// Stream is an attached client: output flows to the writers until the container exits
// (or the client detaches).
type Stream struct {
	m    *Manager
	id   string
	conn net.Conn
	tty  bool
	pid  int

	wmu      sync.Mutex
	done     chan struct{}
	exit     *ExitInfo
	err      error
	detached bool
	stopCtx  func() bool
}

// TTY reports whether the container has a terminal (its output is all on Stdout).
func (s *Stream) TTY() bool { return s.tty }

func (s *Stream) writeFrame(typ byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return writeAttachFrame(s.conn, typ, p)
}

// Resize sets the window size of the container's terminal.
func (s *Stream) Resize(height, width uint16) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], height)
	binary.BigEndian.PutUint16(b[2:], width)
	return s.writeFrame(frameResize, b[:])
}

// Close detaches the client (the container goes on).
func (s *Stream) Close() error {
	s.wmu.Lock()
	s.detached = true
	s.wmu.Unlock()
	return s.conn.Close()
}

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Wait waits for the end of the stream and returns the container's exit code; after a
// detach (the detach keys, or Close) it returns ErrDetached. If the monitor went away
// without telling, the exit is awaited as Manager.Wait does.
func (s *Stream) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		s.conn.Close()
		return -1, ctx.Err()
	}
	s.wmu.Lock()
	detached := s.detached
	s.wmu.Unlock()
	if s.exit != nil {
		if s.exit.Error != "" && s.exit.ExitCode == 0 {
			return ExitRuntimeError, errors.New(s.exit.Error)
		}
		return s.exit.ExitCode, nil
	}
	if detached {
		return -1, ErrDetached
	}
	return s.m.waitExit(ctx, s.id, s.pid)
}

// Exit is how the run ended (nil before the end, or when the monitor did not tell).
func (s *Stream) Exit() *ExitInfo {
	select {
	case <-s.done:
		return s.exit
	default:
		return nil
	}
}

// newStream sends the request on conn and starts the stream's goroutines once hello has
// come; with readHello false, hello is read by the output goroutine (the monitor answers
// it only when it has started).
func (m *Manager) newStream(ctx context.Context, id string, conn net.Conn, req attachRequest, opts AttachOptions, readHello bool) (*Stream, error) {
	s := &Stream{m: m, id: id, conn: conn, done: make(chan struct{})}
	if !req.Stdin {
		opts.Stdin = nil // the container has no stdin to give it to (no OpenStdin)
	}
	b, _ := json.Marshal(req)
	if err := writeAttachFrame(conn, frameRequest, b); err != nil {
		conn.Close()
		return nil, err
	}
	if readHello {
		if err := s.readHello(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	s.stopCtx = context.AfterFunc(ctx, func() { conn.Close() })
	go s.output(opts, readHello)
	return s, nil
}

func (s *Stream) readHello() error {
	s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, b, err := readAttachFrame(s.conn, nil)
	s.conn.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if typ == frameExit {
		var e ExitInfo
		json.Unmarshal(b, &e)
		s.exit = &e
		return nil
	}
	if typ != frameHello {
		return fmt.Errorf("attach: unexpected frame %d", typ)
	}
	var h helloInfo
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	s.tty, s.pid = h.TTY, h.Pid
	return nil
}

func (s *Stream) output(opts AttachOptions, helloRead bool) {
	defer close(s.done)
	defer s.stopCtx()
	defer s.conn.Close()
	if !helloRead {
		if err := s.readHello(); err != nil {
			s.err = err
			return
		}
	}
	if s.exit != nil {
		return
	}
	if opts.Stdin != nil {
		go s.input(opts)
	}
	buf := make([]byte, 0, 32<<10)
	for {
		typ, p, err := readAttachFrame(s.conn, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.err = err
			}
			return
		}
		switch typ {
		case frameStdout:
			if opts.Stdout != nil {
				opts.Stdout.Write(p)
			}
		case frameStderr:
			w := opts.Stderr
			if s.tty {
				w = opts.Stdout
			}
			if w != nil {
				w.Write(p)
			}
		case frameError:
			s.err = errors.New(string(p))
		case frameExit:
			var e ExitInfo
			if err := json.Unmarshal(p, &e); err == nil {
				s.exit = &e
			}
			return
		}
	}
}

// input copies Stdin to the container, watching for the detach keys on a tty.
func (s *Stream) input(opts AttachOptions) {
	var keys []byte
	if s.tty {
		k := opts.DetachKeys
		if k == "" {
			k = DefaultDetachKeys
		}
		keys, _ = ParseDetachKeys(k)
	}
	esc := &escapeScanner{keys: keys}
	buf := make([]byte, 32<<10)
	for {
		n, err := opts.Stdin.Read(buf)
		if n > 0 {
			out, detach := esc.scan(buf[:n])
			if len(out) > 0 {
				if werr := s.writeFrame(frameStdin, out); werr != nil {
					return
				}
			}
			if detach {
				s.Close()
				return
			}
		}
		if err != nil {
			if rest := esc.flush(); len(rest) > 0 {
				s.writeFrame(frameStdin, rest)
			}
			s.writeFrame(frameCloseStdin, nil)
			return
		}
	}
}

// DefaultDetachKeys is Docker's detach sequence.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// ParseDetachKeys converts Docker's detach-keys syntax (comma-separated keys, each a
// single character or ctrl-<c> with c a letter or one of @[\]^_) to bytes.
func ParseDetachKeys(keys string) ([]byte, error) {
	var out []byte
	for _, k := range strings.Split(keys, ",") {
		if len(k) == 1 {
			out = append(out, k[0])
			continue
		}
		rest, ok := strings.CutPrefix(strings.ToLower(k), "ctrl-")
		if !ok || len(rest) != 1 {
			return nil, invalidf("Unknown character: '%s'", k)
		}
		c := rest[0]
		switch {
		case c >= 'a' && c <= 'z':
			out = append(out, c-'a'+1)
		case c == '@':
			out = append(out, 0)
		case c >= '[' && c <= '_':
			out = append(out, c-'['+27)
		default:
			return nil, invalidf("Unknown character: '%s'", k)
		}
	}
	return out, nil
}

// escapeScanner finds the detach sequence in the input, holding back a partial match
// until it is complete (detach) or broken (the held bytes go through).
type escapeScanner struct {
	keys []byte
	pos  int
	out  []byte
}

func (e *escapeScanner) scan(p []byte) ([]byte, bool) {
	if len(e.keys) == 0 {
		return p, false
	}
	e.out = e.out[:0]
	for _, c := range p {
		if c == e.keys[e.pos] {
			e.pos++
			if e.pos == len(e.keys) {
				e.pos = 0
				return e.out, true
			}
			continue
		}
		if e.pos > 0 {
			e.out = append(e.out, e.keys[:e.pos]...)
			e.pos = 0
			if c == e.keys[0] {
				e.pos = 1
				continue
			}
		}
		e.out = append(e.out, c)
	}
	return e.out, false
}

func (e *escapeScanner) flush() []byte {
	if e.pos == 0 {
		return nil
	}
	out := append([]byte(nil), e.keys[:e.pos]...)
	e.pos = 0
	return out
}
