package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berth-registry/berth/runner/cgroups"
	"golang.org/x/sys/unix"
)

// Logs are Docker's json-file format: one JSON object per line,
//
//	{"log":"hello\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}
//
// written by the monitor as the container writes (stdout and stderr kept apart; a line
// longer than 16 KiB is cut into entries without a trailing newline, as Docker does). The
// file <id>-json.log is rotated when it would grow past max-size: <id>-json.log.1 is the
// previous one, up to max-file files in all.

// Log drivers.
const (
	LogDriverJSONFile = "json-file"
	LogDriverNone     = "none"
)

// Default json-file limits: Docker has none by default; Berth caps a container's logs at
// 3 files of 20 MiB.
const (
	DefaultLogMaxSize = 20 << 20
	DefaultLogMaxFile = 3
)

// maxLogLine is Docker's cut for long lines.
const maxLogLine = 16 << 10

// timeFormat is how Docker prints timestamps (logs -t): RFC 3339 with 9 fixed digits.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

type logLimits struct {
	driver  string
	maxSize int64 // ≤ 0: no cap
	maxFile int
}

// parseLogConfig validates a log configuration with Docker's messages.
func parseLogConfig(c LogConfig) (logLimits, error) {
	l := logLimits{driver: c.Type, maxSize: DefaultLogMaxSize, maxFile: DefaultLogMaxFile}
	if l.driver == "" {
		l.driver = LogDriverJSONFile
	}
	switch l.driver {
	case LogDriverJSONFile:
	case LogDriverNone:
		if len(c.Config) > 0 {
			for k := range c.Config {
				return l, invalidf("unknown log opt '%s' for %s log driver", k, l.driver)
			}
		}
		return l, nil
	default:
		return l, invalidf("logger: no log driver named '%s' is registered", l.driver)
	}
	for k, v := range c.Config {
		switch k {
		case "max-size":
			if v == "-1" {
				l.maxSize = -1
				continue
			}
			n, err := cgroups.ParseSize(v)
			if err != nil {
				return l, invalidf("%v", err)
			}
			l.maxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil {
				return l, invalidf("%v", err)
			}
			if n < 1 {
				return l, invalidf("max-file cannot be less than 1")
			}
			l.maxFile = n
		case "compress", "labels", "labels-regex", "env", "env-regex", "tag":
			// Accepted as Docker does; Berth does not compress or decorate (yet).
		default:
			return l, invalidf("unknown log opt '%s' for json-file log driver", k)
		}
	}
	if c.Config["max-file"] != "" && c.Config["max-size"] == "-1" && l.maxFile > 1 {
		return l, invalidf("max-file cannot be used without max-size")
	}
	return l, nil
}

// logWriter appends entries to a json-file log, rotating it.
type logWriter struct {
	mu     sync.Mutex
	path   string
	limits logLimits
	f      *os.File
	size   int64
	buf    []byte
}

func openLogWriter(path string, limits logLimits) (*logWriter, error) {
	w := &logWriter{path: path, limits: limits}
	if limits.driver == LogDriverNone {
		return w, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	w.f, w.size = f, st.Size()
	return w, nil
}

// writeEntry writes one entry (msg as the log text) with a single write(2).
func (w *logWriter) writeEntry(stream string, msg []byte, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	b := w.buf[:0]
	b = append(b, `{"log":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"stream":"`...)
	b = append(b, stream...)
	b = append(b, `","time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\"}\n"...)
	w.buf = b
	if w.limits.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.limits.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if cap(w.buf) > 64<<10 {
		w.buf = nil // a huge line: do not keep its buffer
	}
	return err
}

// rotate shifts <log>.N-1 → <log>.N … <log> → <log>.1 and starts a new file; with
// max-file 1 the log is truncated.
func (w *logWriter) rotate() error {
	if w.limits.maxFile <= 1 {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		w.size = 0
		return nil
	}
	for i := w.limits.maxFile - 1; i > 1; i-- {
		os.Rename(w.path+"."+strconv.Itoa(i-1), w.path+"."+strconv.Itoa(i))
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return err
	}
	w.f.Close()
	w.f, w.size = f, 0
	return nil
}

func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// appendJSONString appends s as a JSON string, escaped as encoding/json does (invalid
// UTF-8 becomes U+FFFD).
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// lineLogger cuts one stream of the container into log entries.
type lineLogger struct {
	w       *logWriter
	stream  string
	partial []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	now := time.Now()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(l.partial)
			if len(p) < room {
				l.partial = append(l.partial, p...)
				break
			}
			l.partial = append(l.partial, p[:room]...)
			p = p[room:]
			l.w.writeEntry(l.stream, l.partial, now)
			l.partial = l.partial[:0]
			continue
		}
		line := p[:i+1]
		p = p[i+1:]
		if len(l.partial) > 0 {
			if len(l.partial)+len(line) > maxLogLine {
				l.w.writeEntry(l.stream, l.partial, now)
				l.partial = l.partial[:0]
			} else {
				line = append(l.partial, line...)
				l.partial = l.partial[:0]
			}
		}
		for len(line) > maxLogLine {
			l.w.writeEntry(l.stream, line[:maxLogLine], now)
			line = line[maxLogLine:]
		}
		l.w.writeEntry(l.stream, line, now)
	}
	if cap(l.partial) > 2*maxLogLine {
		l.partial = append([]byte(nil), l.partial...)
	}
	return n, nil
}

// flush writes a last line without its newline.
func (l *lineLogger) flush() {
	if len(l.partial) > 0 {
		l.w.writeEntry(l.stream, l.partial, time.Now())
		l.partial = l.partial[:0]
	}
}

// LogsOptions are `logs` options.
type LogsOptions struct {
	// Follow keeps reading new entries until the container stops running (logs -f).
	Follow bool
	// Tail is the number of entries from the end to show (--tail); negative: all.
	Tail int
	// Timestamps prefixes each entry with its time (-t).
	Timestamps bool
	// Since and Until bound the entries by time (zero: no bound).
	Since, Until time.Time
	// Stdout and Stderr pick the streams; both false means both.
	Stdout, Stderr bool
}

type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// logReader reads a container's json-file log.
type logReader struct {
	path    string
	maxFile int
	opts    LogsOptions
	stdout  io.Writer
	stderr  io.Writer
	tsBuf   []byte
}

func (r *logReader) want(e *logEntry) bool {
	if r.opts.Stdout || r.opts.Stderr {
		if e.Stream == "stderr" && !r.opts.Stderr || e.Stream != "stderr" && !r.opts.Stdout {
			return false
		}
	}
	if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
		return false
	}
	if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
		return false
	}
	return true
}

func (r *logReader) emit(e *logEntry) error {
	w := r.stdout
	if e.Stream == "stderr" {
		w = r.stderr
	}
	if w == nil {
		return nil
	}
	if r.opts.Timestamps {
		r.tsBuf = e.Time.UTC().AppendFormat(r.tsBuf[:0], timeFormat)
		r.tsBuf = append(r.tsBuf, ' ')
		r.tsBuf = append(r.tsBuf, e.Log...)
		_, err := w.Write(r.tsBuf)
		return err
	}
	_, err := io.WriteString(w, e.Log)
	return err
}

// files are the log files, oldest first.
func (r *logReader) files() []string {
	var out []string
	for i := r.maxFile - 1; i >= 1; i-- {
		p := r.path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return append(out, r.path)
}

// parseLine decodes one line; a bad line (a torn write) is skipped.
func parseLine(line []byte, e *logEntry) bool {
	*e = logEntry{}
	return json.Unmarshal(line, e) == nil
}

// read prints what the log holds now and, with Follow, what comes until running reports
// false (checked whenever the log has nothing new, and at least every 250 ms).
func (r *logReader) read(ctx context.Context, running func() bool) error {
	files := r.files()
	var cur *os.File
	var curOff int64
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	var e logEntry
	if r.opts.Tail >= 0 {
		// Keep the last Tail matching entries of all the files.
		ring := make([]logEntry, 0, min(r.opts.Tail, 4096))
		next := 0
		for i, p := range files {
			f, err := os.Open(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			off, err := scanLines(f, 0, func(line []byte) error {
				if r.opts.Tail == 0 || !parseLine(line, &e) || !r.want(&e) {
					return nil
				}
				if len(ring) < r.opts.Tail {
					ring = append(ring, e)
				} else {
					ring[next] = e
					next = (next + 1) % r.opts.Tail
				}
				return nil
			})
			if err != nil {
				f.Close()
				return err
			}
			if i == len(files)-1 {
				cur, curOff = f, off
			} else {
				f.Close()
			}
		}
		for i := range ring {
			if err := r.emit(&ring[(next+i)%len(ring)]); err != nil {
				return err
			}
		}
	} else {
		for i, p := range files {
			f, err := os.Open(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			off, err := scanLines(f, 0, func(line []byte) error {
				if parseLine(line, &e) && r.want(&e) {
					return r.emit(&e)
				}
				return nil
			})
			if err != nil {
				f.Close()
				return err
			}
			if i == len(files)-1 {
				cur, curOff = f, off
			} else {
				f.Close()
			}
		}
	}
	if !r.opts.Follow {
		return nil
	}
	return r.follow(ctx, cur, curOff, running)
}

func (r *logReader) follow(ctx context.Context, cur *os.File, off int64, running func() bool) error {
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	defer unix.Close(ino)
	if _, err := unix.InotifyAddWatch(ino, filepath.Dir(r.path), unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE_SELF); err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	var e logEntry
	emit := func(line []byte) error {
		if parseLine(line, &e) && r.want(&e) {
			return r.emit(&e)
		}
		return nil
	}
	evbuf := make([]byte, 4096)
	for {
		if cur == nil {
			f, err := os.Open(r.path)
			if err == nil {
				cur, off = f, 0
			}
		}
		if cur != nil {
			var err error
			if off, err = scanLines(cur, off, emit); err != nil {
				return err
			}
			// Rotated: finish the old file, then go on with the new one.
			if st, err := os.Stat(r.path); err == nil {
				if cst, err := cur.Stat(); err == nil && !os.SameFile(st, cst) {
					if off, err = scanLines(cur, off, emit); err != nil {
						return err
					}
					cur.Close()
					cur = nil
					continue
				}
			}
		}
		if !running() {
			// The monitor writes the last entries before it records the exit.
			if cur != nil {
				_, err := scanLines(cur, off, emit)
				return err
			}
			return nil
		}
		fds := []unix.PollFd{{Fd: int32(ino), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 250); err != nil && err != unix.EINTR {
			return err
		}
		for {
			if _, err := unix.Read(ino, evbuf); err != nil {
				break
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// scanLines calls fn for each complete line of f from offset off and returns the offset
// after the last complete line (a line being written is left for later).
func scanLines(f *os.File, off int64, fn func([]byte) error) (int64, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, line...)
			continue
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		off += int64(len(line))
		if err := fn(line); err != nil {
			return off, err
		}
	}
}
