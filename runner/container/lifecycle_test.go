package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/cgroups"
	"github.com/berth-registry/berth/runner/internal/testenv"
	"github.com/berth-registry/berth/runner/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RestartPolicy
		err  string
	}{
		{"no", RestartPolicy{Name: "no"}, ""},
		{"", RestartPolicy{}, ""},
		{"always", RestartPolicy{Name: "always"}, ""},
		{"unless-stopped", RestartPolicy{Name: "unless-stopped"}, ""},
		{"on-failure", RestartPolicy{Name: "on-failure"}, ""},
		{"on-failure:5", RestartPolicy{Name: "on-failure", MaximumRetryCount: 5}, ""},
		{"on-failure:x", RestartPolicy{}, "invalid restart policy format: maximum retry count must be an integer"},
		{":3", RestartPolicy{}, "invalid restart policy format: no policy provided before colon"},
		{"always:2", RestartPolicy{}, "invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{"on-failure:-1", RestartPolicy{}, "invalid restart policy: maximum retry count cannot be negative"},
		{"sometimes", RestartPolicy{}, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
	} {
		got, err := ParseRestartPolicy(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errors.Is(err, ErrInvalidParameter) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
	if s := (RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}).String(); s != "on-failure:3" {
		t.Errorf("String %q", s)
	}
}

func TestRestartBackoff(t *testing.T) {
	rm := restartManager{policy: RestartPolicy{Name: "always"}}
	var delays []time.Duration
	for i := 0; i < 12; i++ {
		ok, d := rm.shouldRestart(1, false, i, time.Millisecond)
		if !ok {
			t.Fatalf("always did not restart")
		}
		delays = append(delays, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000}
	for i := range want {
		if delays[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v", delays)
		}
	}
	// A run of 10 s or more resets the delay.
	if _, d := rm.shouldRestart(0, false, 12, 10*time.Second); d != 100*time.Millisecond {
		t.Errorf("after a long run: %v", d)
	}
	if ok, _ := rm.shouldRestart(0, true, 0, 0); ok {
		t.Errorf("restart after a manual stop")
	}
	of := restartManager{policy: RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}}
	for i, want := range []bool{true, true, false} {
		if ok, _ := of.shouldRestart(1, false, i, 0); ok != want {
			t.Errorf("on-failure:2 after %d restarts: %v", i, ok)
		}
	}
	if ok, _ := of.shouldRestart(0, false, 0, 0); ok {
		t.Errorf("on-failure restarted after exit 0")
	}
	us := restartManager{policy: RestartPolicy{Name: "unless-stopped"}}
	if ok, _ := us.shouldRestart(0, false, 0, 0); !ok {
		t.Errorf("unless-stopped did not restart after exit 0")
	}
	no := restartManager{policy: RestartPolicy{Name: "no"}}
	if ok, _ := no.shouldRestart(1, false, 0, 0); ok {
		t.Errorf("no restarted")
	}
	// At boot.
	for _, tc := range []struct {
		p      string
		manual bool
		code   int
		want   bool
	}{
		{"always", true, 0, true}, {"always", false, 0, true},
		{"unless-stopped", true, 137, false}, {"unless-stopped", false, 255, true},
		{"on-failure", false, 255, true}, {"on-failure", false, 0, false}, {"on-failure", true, 143, false},
		{"no", false, 1, false},
	} {
		if got := bootRestart(RestartPolicy{Name: tc.p}, &State{ManuallyStopped: tc.manual, ExitCode: tc.code}); got != tc.want {
			t.Errorf("boot %s manual=%v code=%d: %v", tc.p, tc.manual, tc.code, got)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "hello\n", "tab\there", `quote " and \ backslash`, "<a href=\"x\">&amp;</a>",
		"\x00\x01\x1f\x7f", "héllo wörld ✓", "bad \xff\xfe utf8", "line\u2028sep\u2029", "\r\n",
	} {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, []byte(s)); string(got) != string(want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

func TestLogWriterAndReader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	limits, err := parseLogConfig(LogConfig{Config: map[string]string{"max-size": "1k", "max-file": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := openLogWriter(path, limits)
	if err != nil {
		t.Fatal(err)
	}
	out := &lineLogger{w: w, stream: "stdout"}
	errl := &lineLogger{w: w, stream: "stderr"}
	out.Write([]byte("one\ntw"))
	out.Write([]byte("o\nthree"))
	errl.Write([]byte("oops\n"))
	out.flush()
	for i := 0; i < 100; i++ {
		out.Write([]byte("filler line to rotate the log\n"))
	}
	out.Write([]byte("last\n"))
	w.Close()
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Errorf("log files %v", files)
	}
	for _, f := range files {
		if st, _ := os.Stat(f); st.Size() > 1024 {
			t.Errorf("%s is %d bytes", f, st.Size())
		}
	}
	read := func(o LogsOptions) (string, string) {
		var so, se bytes.Buffer
		r := &logReader{path: path, maxFile: 3, opts: o, stdout: &so, stderr: &se}
		if err := r.read(context.Background(), func() bool { return false }); err != nil {
			t.Fatal(err)
		}
		return so.String(), se.String()
	}
	if so, se := read(LogsOptions{Tail: 2}); so != "filler line to rotate the log\nlast\n" || se != "" {
		t.Errorf("tail 2: %q %q", so, se)
	}
	if so, _ := read(LogsOptions{Tail: -1}); !strings.HasSuffix(so, "last\n") || strings.Count(so, "\n") < 20 {
		t.Errorf("all: %q", so)
	}

	// A fresh log, read from the start, with streams and timestamps.
	path2 := filepath.Join(dir, "d-json.log")
	w2, _ := openLogWriter(path2, logLimits{driver: LogDriverJSONFile, maxFile: 1})
	before := time.Now()
	w2.writeEntry("stdout", []byte("a\n"), before.Add(-time.Hour))
	w2.writeEntry("stderr", []byte("b\n"), before)
	w2.writeEntry("stdout", []byte("c"), before.Add(time.Second))
	var so, se bytes.Buffer
	r := &logReader{path: path2, maxFile: 1, opts: LogsOptions{Tail: -1, Timestamps: true}, stdout: &so, stderr: &se}
	r.read(context.Background(), func() bool { return false })
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z a\n\S+ c$`).MatchString(so.String()) || !strings.HasSuffix(se.String(), "Z b\n") {
		t.Errorf("-t: %q %q", so.String(), se.String())
	}
	so.Reset()
	se.Reset()
	r = &logReader{path: path2, maxFile: 1, opts: LogsOptions{Tail: -1, Since: before.Add(-time.Minute), Stdout: true}, stdout: &so, stderr: &se}
	r.read(context.Background(), func() bool { return false })
	if so.String() != "c" || se.String() != "" {
		t.Errorf("--since, stdout only: %q %q", so.String(), se.String())
	}

	// Follow: new entries until running says no.
	var mu sync.Mutex
	running := true
	var fo syncBuf
	done := make(chan error)
	go func() {
		r := &logReader{path: path2, maxFile: 1, opts: LogsOptions{Tail: 0, Follow: true}, stdout: &fo, stderr: &fo}
		done <- r.read(context.Background(), func() bool { mu.Lock(); defer mu.Unlock(); return running })
	}()
	time.Sleep(50 * time.Millisecond)
	w2.writeEntry("stdout", []byte("new1\n"), time.Now())
	w2.writeEntry("stderr", []byte("new2\n"), time.Now())
	deadline := time.Now().Add(5 * time.Second)
	for fo.String() != "new1\nnew2\n" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	running = false
	mu.Unlock()
	w2.writeEntry("stdout", []byte("after\n"), time.Now())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fo.String() != "new1\nnew2\nafter\n" {
		t.Errorf("follow: %q", fo.String())
	}
	w2.Close()

	// Long lines are cut at 16 KiB, as Docker does.
	path3 := filepath.Join(dir, "e-json.log")
	w3, _ := openLogWriter(path3, logLimits{driver: LogDriverJSONFile})
	l := &lineLogger{w: w3, stream: "stdout"}
	l.Write(bytes.Repeat([]byte("x"), 40000))
	l.Write([]byte("y\n"))
	w3.Close()
	b, _ := os.ReadFile(path3)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var e1, e3 logEntry
	json.Unmarshal([]byte(lines[0]), &e1)
	json.Unmarshal([]byte(lines[len(lines)-1]), &e3)
	if len(lines) != 3 || len(e1.Log) != 16384 || !strings.HasSuffix(e3.Log, "xy\n") {
		t.Errorf("long line: %d entries, first %d bytes, last %q", len(lines), len(e1.Log), e3.Log[max(0, len(e3.Log)-5):])
	}

	for _, bad := range []LogConfig{
		{Type: "syslog"}, {Config: map[string]string{"max-file": "0"}}, {Config: map[string]string{"nope": "1"}},
		{Config: map[string]string{"max-size": "1x"}},
	} {
		if _, err := parseLogConfig(bad); err == nil {
			t.Errorf("log config %+v accepted", bad)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDetachKeys(t *testing.T) {
	b, err := ParseDetachKeys("ctrl-p,ctrl-q")
	if err != nil || !bytes.Equal(b, []byte{16, 17}) {
		t.Errorf("%v %v", b, err)
	}
	if b, _ := ParseDetachKeys("a,ctrl-@,ctrl-[,ctrl-_"); !bytes.Equal(b, []byte{'a', 0, 27, 31}) {
		t.Errorf("%v", b)
	}
	for _, bad := range []string{"ctrl-", "ctrl-pp", "alt-x", "ctrl-1"} {
		if _, err := ParseDetachKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	e := &escapeScanner{keys: []byte{16, 17}}
	out, det := e.scan([]byte("ab\x10c"))
	if string(out) != "ab\x10c" || det {
		t.Errorf("broken sequence: %q %v", out, det)
	}
	out, det = e.scan([]byte("x\x10"))
	if string(out) != "x" || det {
		t.Errorf("held: %q %v", out, det)
	}
	out, det = e.scan([]byte("\x11rest"))
	if len(out) != 0 || !det {
		t.Errorf("detach: %q %v", out, det)
	}
	e = &escapeScanner{keys: []byte{16, 17}}
	e.scan([]byte{16})
	if out, det := e.scan([]byte{16, 17}); len(out) != 1 || out[0] != 16 || !det {
		t.Errorf("repeated first key: %q %v", out, det)
	}
}

// TestAttachProtocol runs the monitor's attach server and the client over socketpairs.
func TestAttachProtocol(t *testing.T) {
	srv := newAttachServer(false, true)
	inR, inW, _ := os.Pipe()
	defer inR.Close()
	srv.setRun(42, inW, true, nil)
	m := &Manager{}
	connect := func(req attachRequest, o AttachOptions) *Stream {
		a, b := net.Pipe()
		go srv.handshake(b)
		s, err := m.newStream(context.Background(), "x", a, req, o, true)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var out1, err1, out2 syncBuf
	stdin := strings.NewReader("input\n")
	s1 := connect(attachRequest{Stdin: true, Stdout: true, Stderr: true}, AttachOptions{Stdin: stdin, Stdout: &out1, Stderr: &err1})
	s2 := connect(attachRequest{Stdout: true}, AttachOptions{Stdout: &out2})
	w := connect(attachRequest{Wait: true, Pid: 42}, AttachOptions{})
	if s1.pid != 42 || s1.TTY() {
		t.Errorf("hello: pid %d tty %v", s1.pid, s1.TTY())
	}
	// The client's stdin reaches the container, and its EOF closes it (StdinOnce).
	got, _ := io.ReadAll(inR)
	if string(got) != "input\n" {
		t.Errorf("stdin: %q", got)
	}
	srv.broadcast(frameStdout, []byte("out"))
	srv.broadcast(frameStderr, []byte("err"))
	srv.exited(ExitInfo{ExitCode: 3, Pid: 42})
	for _, s := range []*Stream{s1, s2, w} {
		code, err := s.Wait(context.Background())
		if code != 3 || err != nil {
			t.Errorf("exit: %d %v", code, err)
		}
	}
	if out1.String() != "out" || err1.String() != "err" || out2.String() != "out" {
		t.Errorf("output %q %q %q", out1.String(), err1.String(), out2.String())
	}
	// A waiter for the run that ended gets its exit at once.
	w = connect(attachRequest{Wait: true, Pid: 42}, AttachOptions{})
	if code, err := w.Wait(context.Background()); code != 3 || err != nil {
		t.Errorf("late wait: %d %v", code, err)
	}
	// Detach.
	s3 := connect(attachRequest{Stdout: true}, AttachOptions{Stdout: io.Discard})
	s3.Close()
	if _, err := s3.Wait(context.Background()); !errors.Is(err, ErrDetached) {
		t.Errorf("detach: %v", err)
	}
	srv.close()
}

func TestFraming(t *testing.T) {
	var b bytes.Buffer
	writeAttachFrame(&b, frameStderr, []byte("hello"))
	if !bytes.Equal(b.Bytes()[:8], []byte{2, 0, 0, 0, 0, 0, 0, 5}) {
		t.Errorf("header % x", b.Bytes()[:8])
	}
	typ, p, err := readAttachFrame(&b, nil)
	if typ != frameStderr || string(p) != "hello" || err != nil {
		t.Errorf("%d %q %v", typ, p, err)
	}
	b.Write([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	if _, _, err := readAttachFrame(&b, nil); err == nil {
		t.Errorf("huge frame accepted")
	}
}

func newTestManager(t *testing.T) *Manager {
	t.Helper()
	dir := t.TempDir()
	m, err := NewManager(filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeContainer writes a container's files directly (no image, no process).
func fakeContainer(t *testing.T, m *Manager, name string, st State) *Container {
	t.Helper()
	id := newID()
	if err := os.MkdirAll(m.s.Dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	c := &Container{
		ID: id, Name: name, Created: time.Now().UTC(), Image: "sha256:abc", ImageRef: "busybox",
		Spec:       &specs.Spec{Process: &specs.Process{Args: []string{"sh", "-c", "true"}}, Linux: &specs.Linux{CgroupsPath: "berth-unit-test/" + id}},
		Config:     DockerConfig{Labels: map[string]string{"k": "v"}},
		HostConfig: HostConfig{RestartPolicy: RestartPolicy{Name: "no"}, LogConfig: LogConfig{Type: "json-file"}},
		LogPath:    m.s.LogPath(id),
	}
	lk, _ := m.s.lockStore()
	if err := m.s.reserveName(name, id); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if err := m.s.saveConfig(c, false); err != nil {
		t.Fatal(err)
	}
	if err := m.s.saveState(id, &st); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStoreNamesResolve(t *testing.T) {
	m := newTestManager(t)
	c1 := fakeContainer(t, m, "web", State{Status: StatusExited})
	lk, _ := m.s.lockStore()
	err := m.s.reserveName("web", newID())
	lk.Unlock()
	want := `Conflict. The container name "/web" is already in use by container "` + c1.ID + `". You have to remove (or rename) that container to be able to reuse that name.`
	if err == nil || err.Error() != want || !errors.Is(err, ErrConflict) {
		t.Errorf("conflict: %v", err)
	}
	for _, ref := range []string{"web", "/web", c1.ID, c1.ID[:5]} {
		if id, err := m.Resolve(ref); id != c1.ID || err != nil {
			t.Errorf("resolve %q: %s %v", ref, id, err)
		}
	}
	if _, err := m.Resolve("db"); err == nil || err.Error() != "No such container: db" || !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve db: %v", err)
	}
	// A name left by a create killed halfway (no container) is free.
	os.WriteFile(m.s.namePath("ghost"), []byte(newID()+"\n"), 0o600)
	if owner, err := m.s.nameOwner("ghost"); owner != "" || err != nil {
		t.Errorf("ghost: %q %v", owner, err)
	}
	// Ambiguous prefixes.
	ids := map[byte]bool{c1.ID[0]: true}
	var amb string
	for amb == "" {
		c := fakeContainer(t, m, randomName(1)+"x", State{Status: StatusCreated})
		if ids[c.ID[0]] {
			amb = c.ID[:1]
		}
		ids[c.ID[0]] = true
	}
	if _, err := m.Resolve(amb); err == nil || err.Error() != "Multiple IDs found with provided prefix: "+amb {
		t.Errorf("ambiguous: %v", err)
	}
	// Rename.
	ctx := context.Background()
	if err := m.Rename(ctx, "web", "db"); err != nil {
		t.Fatal(err)
	}
	if id, _ := m.Resolve("db"); id != c1.ID {
		t.Errorf("renamed: %s", id)
	}
	if _, err := m.Resolve("web"); err == nil {
		t.Errorf("old name still resolves")
	}
	if err := m.Rename(ctx, "db", "-bad"); err == nil || !strings.Contains(err.Error(), "Invalid container name (-bad)") {
		t.Errorf("bad name: %v", err)
	}
	// No temporary file is left by the atomic writes.
	filepath.Walk(m.s.root, func(p string, info os.FileInfo, err error) error {
		if strings.Contains(filepath.Base(p), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	if !regexp.MustCompile(`^[a-z]+_[a-z]+$`).MatchString(randomName(0)) || !regexp.MustCompile(`^[a-z]+_[a-z]+\d$`).MatchString(randomName(2)) {
		t.Errorf("random names %s %s", randomName(0), randomName(2))
	}
	if id := newID(); !validIDRe.MatchString(id) {
		t.Errorf("id %s", id)
	}
}

func TestListInspectAndErrors(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	now := time.Now().UTC()
	ex := fakeContainer(t, m, "exited1", State{Status: StatusExited, ExitCode: 3, StartedAt: now.Add(-time.Minute), FinishedAt: now.Add(-30 * time.Second)})
	time.Sleep(2 * time.Millisecond)
	cr := fakeContainer(t, m, "created1", State{Status: StatusCreated})
	l, err := m.List(ctx, ListOptions{All: true})
	if err != nil || len(l) != 2 || l[0].ID != cr.ID || l[1].Status != "Exited (3) 30 seconds ago" || l[0].Status != "Created" || l[1].Names[0] != "/exited1" {
		t.Errorf("ps -a: %+v %v", l, err)
	}
	if l, _ := m.List(ctx, ListOptions{}); len(l) != 0 {
		t.Errorf("ps: %+v", l)
	}
	for _, tc := range []struct {
		f    map[string][]string
		want int
	}{
		{map[string][]string{"status": {"exited"}}, 1},
		{map[string][]string{"exited": {"3"}}, 1},
		{map[string][]string{"exited": {"0"}}, 0},
		{map[string][]string{"name": {"created"}}, 1},
		{map[string][]string{"label": {"k=v"}}, 2},
		{map[string][]string{"label": {"k=w"}}, 0},
		{map[string][]string{"id": {ex.ID[:6]}}, 1},
		{map[string][]string{"ancestor": {"busybox"}}, 2},
		{map[string][]string{"before": {"created1"}}, 1},
		{map[string][]string{"since": {"exited1"}}, 1},
	} {
		l, err := m.List(ctx, ListOptions{All: true, Filters: tc.f})
		if err != nil || len(l) != tc.want {
			t.Errorf("filter %v: %d %v", tc.f, len(l), err)
		}
	}
	if _, err := m.List(ctx, ListOptions{Filters: map[string][]string{"bogus": {"x"}}}); err == nil || err.Error() != "invalid filter 'bogus'" {
		t.Errorf("bogus filter: %v", err)
	}
	r, err := m.Inspect(ctx, "exited1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	for _, k := range []string{`"Id":"` + ex.ID, `"Name":"/exited1"`, `"Status":"exited"`, `"ExitCode":3`, `"Path":"sh"`, `"Args":["-c","true"]`, `"RestartPolicy":{"Name":"no","MaximumRetryCount":0}`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("inspect has no %s:\n%s", k, b)
		}
	}
	// Commands on containers that do not run, with Docker's messages.
	if err := m.Stop(ctx, "exited1", StopOptions{}); err != nil {
		t.Errorf("stop of a stopped container: %v", err)
	}
	if err := m.Kill(ctx, "exited1", ""); err == nil || err.Error() != "Cannot kill container: exited1: Container "+ex.ID+" is not running" {
		t.Errorf("kill: %v", err)
	}
	if err := m.Pause(ctx, "exited1"); err == nil || err.Error() != "Container "+ex.ID+" is not running" {
		t.Errorf("pause: %v", err)
	}
	if err := m.Unpause(ctx, "exited1"); err == nil || err.Error() != "Container "+ex.ID+" is not paused" {
		t.Errorf("unpause: %v", err)
	}
	if _, err := m.Exec(ctx, "exited1", ExecOptions{Cmd: []string{"true"}}); err == nil || err.Error() != "Container "+ex.ID+" is not running" {
		t.Errorf("exec: %v", err)
	}
	if _, err := m.Attach(ctx, "exited1", AttachOptions{}); err == nil || err.Error() != "You cannot attach to a stopped container, start it first" {
		t.Errorf("attach: %v", err)
	}
	if code, err := m.Wait(ctx, "exited1"); code != 3 || err != nil {
		t.Errorf("wait: %d %v", code, err)
	}
	if _, err := m.Top(ctx, "exited1"); err == nil {
		t.Errorf("top of a stopped container")
	}
	if st, err := m.Stats(ctx, "exited1", time.Millisecond); err != nil || st.MemoryUsage != 0 || st.Name != "/exited1" {
		t.Errorf("stats: %+v %v", st, err)
	}
	rep, err := m.Prune(ctx, map[string][]string{"label": {"k"}})
	if err != nil || len(rep.ContainersDeleted) != 2 {
		t.Errorf("prune: %+v %v", rep, err)
	}
	if l, _ := m.List(ctx, ListOptions{All: true}); len(l) != 0 {
		t.Errorf("after prune: %+v", l)
	}
	if _, err := os.Stat(m.s.namePath("exited1")); err == nil {
		t.Errorf("the name survived the removal")
	}
}

// TestReconcile: a state that claims a run whose process and monitor are gone is
// corrected by the next command.
func TestReconcile(t *testing.T) {
	m := newTestManager(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		testenv.SkipOrFailInCI(t, "no true: %v", err)
	}
	dead := cmd.Process.Pid
	c := fakeContainer(t, m, "ghost1", State{Status: StatusRunning, Pid: dead, StartTime: 1, StartedAt: time.Now(), LastSignal: 15})
	r, err := m.Inspect(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State.Status != "exited" || r.State.ExitCode != 143 || r.State.Pid != 0 || r.State.FinishedAt.IsZero() {
		t.Errorf("reconciled: %+v", r.State)
	}
	c2 := fakeContainer(t, m, "ghost2", State{Status: StatusRunning, Pid: dead, StartTime: 1})
	if code, err := m.Wait(context.Background(), c2.ID); code != 255 || err != nil {
		t.Errorf("wait: %d %v", code, err)
	}
	// An AutoRemove container found dead is removed.
	c3 := fakeContainer(t, m, "ghost3", State{Status: StatusRunning, Pid: dead, StartTime: 1})
	c3.HostConfig.AutoRemove = true
	m.s.saveConfig(c3, false)
	if _, err := m.Inspect(context.Background(), c3.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("auto-removed: %v", err)
	}
	if _, err := os.Stat(m.s.Dir(c3.ID)); err == nil {
		t.Errorf("directory left")
	}
	// An --rm container whose removal a crash interrupted goes at boot; others stay.
	c4 := fakeContainer(t, m, "ghost4", State{Status: StatusExited, ExitCode: 0, StartedAt: time.Now()})
	c4.HostConfig.AutoRemove = true
	m.s.saveConfig(c4, false)
	c5 := fakeContainer(t, m, "ghost5", State{Status: StatusExited, ExitCode: 1, StartedAt: time.Now(), ManuallyStopped: true})
	if started, err := m.Boot(context.Background()); err != nil || len(started) != 0 {
		t.Errorf("boot: %v %v", started, err)
	}
	if _, err := m.Resolve(c4.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("--rm container after boot: %v", err)
	}
	if _, err := m.Resolve(c5.ID); err != nil {
		t.Errorf("stopped container after boot: %v", err)
	}
	// A live process (this one) with another start time is not the container.
	if alive(os.Getpid(), 1) || !alive(os.Getpid(), 0) {
		t.Errorf("alive()")
	}
}

func TestResourcesFromSpec(t *testing.T) {
	in := &cgroups.Resources{Memory: 64 << 20, MemoryReservation: 32 << 20, CPUShares: 512, NanoCPUs: 1500000000,
		CpusetCpus: "0", PidsLimit: 100, BlkioWeight: 300, OomKillDisable: true, Devices: cgroups.DefaultDeviceRules()}
	sr, _, err := spec.ConvertResources(in)
	if err != nil {
		t.Fatal(err)
	}
	out := resourcesFromSpec(sr)
	if out.Memory != 64<<20 || out.MemorySwap != 128<<20 || out.MemoryReservation != 32<<20 || out.CPUShares != 512 ||
		out.CPUQuota != 150000 || out.CPUPeriod != 100000 || out.CpusetCpus != "0" || out.PidsLimit != 100 ||
		out.BlkioWeight != 300 || !out.OomKillDisable || len(out.Devices) != len(in.Devices) {
		t.Errorf("%+v", out)
	}
	for i, d := range out.Devices {
		if d != in.Devices[i] {
			t.Errorf("device rule %d: %+v, want %+v", i, d, in.Devices[i])
		}
	}
	if err := out.Validate(); err != nil {
		t.Errorf("round trip does not validate: %v", err)
	}
}

func TestEtcFiles(t *testing.T) {
	h := string(hostsFile(false, NetworkOptions{ExtraHosts: []string{"db:10.0.0.2"}, HostsEntries: []string{"172.17.0.2\tabc"}}))
	if !strings.HasPrefix(h, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n") || !strings.Contains(h, "10.0.0.2\tdb\n") || !strings.HasSuffix(h, "172.17.0.2\tabc\n") {
		t.Errorf("hosts:\n%s", h)
	}
	r := string(resolvConf(false, NetworkOptions{DNS: []string{"1.1.1.1"}, DNSSearch: []string{"example.com"}, DNSOptions: []string{"ndots:2"}}))
	if r != "nameserver 1.1.1.1\nsearch example.com\noptions ndots:2\n" {
		t.Errorf("resolv.conf:\n%s", r)
	}
	if !isLoopback("127.0.0.53") || isLoopback("8.8.8.8") {
		t.Errorf("isLoopback")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "Less than a second", time.Second: "1 second", 45 * time.Second: "45 seconds",
		90 * time.Second: "About a minute", 5 * time.Minute: "5 minutes", time.Hour: "About an hour",
		5 * time.Hour: "5 hours", 72 * time.Hour: "3 days", 21 * 24 * time.Hour: "3 weeks",
		90 * 24 * time.Hour: "3 months", 3 * 365 * 24 * time.Hour: "3 years",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
	now := time.Now()
	if s := statusString(&State{Status: StatusPaused, StartedAt: now.Add(-3 * time.Second)}, now); s != "Up 3 seconds (Paused)" {
		t.Errorf("%q", s)
	}
	if s := statusString(&State{Status: StatusRestarting, ExitCode: 1, FinishedAt: now}, now); s != "Restarting (1) Less than a second ago" {
		t.Errorf("%q", s)
	}
}

func TestHandshakeMessages(t *testing.T) {
	pair, err := unixSocketpair()
	if err != nil {
		t.Fatal(err)
	}
	a, b := pair[0], pair[1]
	defer a.Close()
	defer b.Close()
	tmp, _ := os.CreateTemp(t.TempDir(), "x")
	defer tmp.Close()
	args := &monitorArgs{Root: "/r", RunRoot: "/rr", ID: "abc", Reset: true, Console: &specs.Box{Height: 1, Width: 2}}
	if err := writeHandshake(a, &handshakeMsg{Type: "start", Args: args}, int(tmp.Fd())); err != nil {
		t.Fatal(err)
	}
	msg, fds, err := readHandshake(b, time.Second)
	if err != nil || msg.Type != "start" || msg.Args.ID != "abc" || !msg.Args.Reset || msg.Args.Console.Width != 2 || len(fds) != 1 {
		t.Fatalf("%+v %v %v", msg, fds, err)
	}
	f := os.NewFile(uintptr(fds[0]), "fd")
	st1, _ := f.Stat()
	st2, _ := tmp.Stat()
	if !os.SameFile(st1, st2) {
		t.Errorf("the descriptor is another file")
	}
	f.Close()
	if _, _, err := readHandshake(b, 50*time.Millisecond); err == nil {
		t.Errorf("no timeout")
	}
	a.Close()
	if _, _, err := readHandshake(b, time.Second); err != io.EOF {
		t.Errorf("after close: %v", err)
	}
}

func unixSocketpair() ([2]*os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return [2]*os.File{}, err
	}
	return [2]*os.File{os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")}, nil
}
