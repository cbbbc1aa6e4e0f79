package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/container"
)

// The container commands' parsing and output, in process and without root: flags that are
// refused before anything is touched, the tables of an empty store. Containers themselves
// run in e2e/cli_test.go.

func TestRunBadFlags(t *testing.T) {
	root, runroot := t.TempDir(), t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", "1x"}, `pull-run: invalid argument "1x" for "-m, --memory" flag: invalid suffix: 'x'.` + "\nSee 'pull-run run --help'.\n"},
		{[]string{"--cpus", "-1"}, "pull-run: Range of CPUs is from 0.01 to"},
		{[]string{"--cpus", "x"}, `invalid argument "x" for "--cpus" flag: failed to parse x as a rational number`},
		{[]string{"-m", "4m"}, "pull-run: Minimum memory limit allowed is 6MB.\n"},
		{[]string{"-m", "200m", "--memory-swap", "100m"}, "pull-run: Minimum memoryswap limit should be larger than memory limit, see usage.\n"},
		{[]string{"--memory-swap", "100m"}, "You should always set the Memory limit when using Memoryswap limit"},
		{[]string{"--memory-swap", "-2"}, `invalid argument "-2" for "--memory-swap" flag: invalid size: '-2'`},
		{[]string{"--cpu-period", "10"}, "CPU cfs period can not be less than 1ms"},
		{[]string{"--blkio-weight", "2000"}, "Range of blkio weight is from 10 to 1000"},
		{[]string{"--restart", "bogus"}, "invalid restart policy: unknown policy 'bogus'"},
		{[]string{"--restart", "always:3"}, "maximum retry count can only be used with 'on-failure'"},
		{[]string{"--rm", "--restart", "always"}, "pull-run: Conflicting options: --restart and --rm.\n"},
		{[]string{"--ulimit", "nofile"}, "invalid ulimit argument: nofile"},
		{[]string{"--cap-add", "FOO"}, `unknown capability: "CAP_FOO"`},
		{[]string{"--pull", "sometimes"}, `invalid pull option: 'sometimes'`},
		{[]string{"--detach-keys", "ctrl-"}, "invalid detach keys"},
		{[]string{"--stop-signal", "NOPE"}, "NOPE"},
		{[]string{"--oom-score-adj", "2000"}, "range for oom score adj is [-1000, 1000]"},
		{[]string{"--sysctl", "novalue"}, `for "--sysctl" flag: must be KEY=VALUE`},
		{[]string{"--device", "relative"}, "invalid device specification"},
		{[]string{"--env-file", "/nonexistent/env"}, "/nonexistent/env"},
		{[]string{"--bogus"}, "pull-run: unknown flag: --bogus.\nSee 'pull-run run --help'.\n"},
	} {
		args := append(append([]string{"--root", root, "--runroot", runroot, "run"}, c.args...), "busybox", "true")
		r := runCLI(t, "", args...)
		if r.code != 125 || !strings.HasPrefix(r.stderr, "pull-run: ") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("run %v: exit %d, stderr %q; want 125 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	// create has the same flags and the same status.
	r := runCLI(t, "", "--root", root, "--runroot", runroot, "create", "-m", "1x", "busybox")
	if r.code != 125 || !strings.Contains(r.stderr, "See 'pull-run create --help'.") {
		t.Errorf("create -m 1x: %+v", r)
	}
	// An image that is not there with --pull never: Docker's message, 125.
	r = runCLI(t, "", "--root", root, "--runroot", runroot, "run", "--pull", "never", "--network", "none", "busybox", "true")
	if r.code != 125 || r.stderr != "pull-run: No such image: busybox:latest.\n" {
		t.Errorf("run --pull never: %+v", r)
	}
	// Network flags are checked before anything is looked up, with Docker's messages.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "container:", "busybox"}, "invalid container format container:<name|id>"},
		{[]string{"--network", "container:x", "-p", "80", "busybox"}, "conflicting options: port publishing and the container type network mode"},
		{[]string{"--network", "container:x", "-h", "h", "busybox"}, "conflicting options: hostname and the network mode"},
		{[]string{"--ip", "10.1.2.3", "busybox"}, "user specified IP address is supported on user defined networks only"},
		{[]string{"--network", "none", "--network-alias", "a", "busybox"}, "network-scoped alias is supported only for containers in user defined networks"},
		{[]string{"--network", "n", "--ip", "10.1.2", "busybox"}, "invalid IPv4 address: 10.1.2"},
		{[]string{"--expose", "x", "busybox"}, "invalid range format for --expose"},
	} {
		r := runCLI(t, "", append([]string{"--root", root, "--runroot", runroot, "run", "--pull", "never"}, c.args...)...)
		if r.code != 125 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("run %v: exit %d, stderr %q; want 125 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	// -it needs a terminal.
	r = runCLI(t, "", "--root", root, "--runroot", runroot, "run", "-it", "--network", "none", "busybox", "sh")
	if r.code != 1 || !strings.Contains(r.stderr, "the input device is not a TTY") {
		t.Errorf("run -it without a terminal: %+v", r)
	}
	// -h is --hostname, --help the help.
	r = runCLI(t, "", "run", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "-h, --hostname string") {
		t.Errorf("run --help: %+v", r)
	}
}

func TestContainerCommandsEmptyStore(t *testing.T) {
	root, runroot := t.TempDir(), t.TempDir()
	g := []string{"--root", root, "--runroot", runroot}
	r := runCLI(t, "", append(g, "ps")...)
	if r.code != 0 || r.stdout != "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n" {
		t.Errorf("ps: %+v", r)
	}
	r = runCLI(t, "", append(g, "container", "ls", "-a", "-q")...)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("container ls -aq: %+v", r)
	}
	r = runCLI(t, "", append(g, "ps", "--filter", "status=bogus")...)
	if r.code != 1 || !strings.Contains(r.stderr, "Invalid filter 'status=bogus'") {
		t.Errorf("ps --filter status=bogus: %+v", r)
	}
	for _, args := range [][]string{
		{"stop", "nosuch"}, {"kill", "nosuch"}, {"rm", "nosuch"}, {"start", "nosuch"}, {"pause", "nosuch"},
		{"logs", "nosuch"}, {"wait", "nosuch"}, {"top", "nosuch"}, {"exec", "nosuch", "true"}, {"attach", "nosuch"},
		{"restart", "nosuch"}, {"unpause", "nosuch"}, {"rename", "nosuch", "other"},
	} {
		r := runCLI(t, "", append(g, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "No such container: nosuch") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	r = runCLI(t, "", append(g, "rm", "-f", "nosuch")...)
	if r.code != 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("rm -f of nothing: %+v", r)
	}
	r = runCLI(t, "", append(g, "inspect", "nosuch")...)
	if r.code != 1 || r.stdout != "[]\n" || r.stderr != "Error: No such object: nosuch\n" {
		t.Errorf("inspect nosuch: %+v", r)
	}
	r = runCLI(t, "", append(g, "container", "prune", "-f")...)
	if r.code != 0 || r.stdout != "Total reclaimed space: 0B\n" {
		t.Errorf("container prune: %+v", r)
	}
	r = runCLI(t, "n\n", append(g, "container", "prune")...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "WARNING! This will remove all stopped containers.") {
		t.Errorf("container prune answered n: %+v", r)
	}
	r = runCLI(t, "", append(g, "stats", "--no-stream")...)
	if r.code != 0 || r.stdout != "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     PIDS\n" {
		t.Errorf("stats --no-stream: %+v", r)
	}
	r = runCLI(t, "", append(g, "system", "boot")...)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("system boot: %+v", r)
	}
}

func TestPsRow(t *testing.T) {
	now := time.Now()
	s := container.Summary{
		ID: strings.Repeat("ab", 32), Names: []string{"/web"}, Image: "busybox", Command: "sh -c 'while true; do sleep 1; done'",
		Created: now.Add(-3 * time.Minute).Unix(), Labels: map[string]string{"b": "2", "a": "1"}, State: "running", Status: "Up 3 minutes",
	}
	s.HostConfig.NetworkMode = "none"
	r := newPsRow(s, true, now)
	if r.ID != strings.Repeat("ab", 6) || r.Names != "web" || r.Command != `"sh -c 'while true; …"` || r.RunningFor != "3 minutes ago" ||
		r.Labels != "a=1,b=2" || r.Networks != "none" || r.Label("b") != "2" {
		t.Errorf("row: %+v", r)
	}
	r = newPsRow(s, false, now)
	if r.ID != s.ID || r.Command != `"sh -c 'while true; do sleep 1; done'"` {
		t.Errorf("no-trunc row: %+v", r)
	}
	var sb strings.Builder
	if err := formatRows(&sb, "json", psDefaultTable, psHeader, []psRow{r}); err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(sb.String()), &m); err != nil || len(m) != 14 || m["State"] != "running" {
		t.Errorf("json: %s (%v)", sb.String(), err)
	}
	sb.Reset()
	formatRows(&sb, `{{.Names}} {{.Label "a"}}`, psDefaultTable, psHeader, []psRow{r})
	if sb.String() != "web 1\n" {
		t.Errorf("template: %q", sb.String())
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[float64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1.5 * 1024 * 1024: "1.5MiB", 200 << 20: "200MiB", 7.63 * (1 << 30): "7.63GiB"} {
		if got := bytesSize(in); got != want {
			t.Errorf("bytesSize(%v) = %q, want %q", in, got, want)
		}
	}
	if got := ellipsis("héllo world", 6); got != "héllo…" {
		t.Errorf("ellipsis: %q", got)
	}
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                  now.Add(-10 * time.Minute),
		"2024-05-01T11:00:00Z": time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC),
		"1714560000.5":         time.Unix(1714560000, 5e8),
	} {
		got, err := parseLogTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseLogTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseLogTime("yesterday", now); err == nil {
		t.Error("parseLogTime accepted yesterday")
	}
	for in, want := range map[string]string{"default": "bridge", "": "bridge", "none": "none", "host": "host", "mynet": "mynet", "container:web": "container:web"} {
		if got, err := planNetworkFlags(&runOptions{network: in}); err != nil || got.mode != want {
			t.Errorf("planNetworkFlags(%q) = %+v %v", in, got, err)
		}
	}
	if ks, err := parseExpose("8000-8002/udp"); err != nil || strings.Join(ks, ",") != "8000/udp,8001/udp,8002/udp" {
		t.Errorf("parseExpose: %v %v", ks, err)
	}
	if kv, err := keyValues("label", []string{"a=1", "b", "c=x=y"}, true); err != nil || kv["a"] != "1" || kv["b"] != "" || kv["c"] != "x=y" {
		t.Errorf("keyValues: %v %v", kv, err)
	}
	if f, err := parseFilters([]string{"status=exited", "label=a=b", "status=created"}); err != nil || len(f["status"]) != 2 || f["label"][0] != "a=b" {
		t.Errorf("parseFilters: %v %v", f, err)
	}
	if _, err := parseFilters([]string{"novalue"}); err == nil {
		t.Error("parseFilters accepted novalue")
	}
	n := nanoCPUs(0)
	if err := n.Set("1.5"); err != nil || n != 1500000000 || n.String() != "1.5" {
		t.Errorf("--cpus 1.5: %v %v", n, err)
	}
	m := memSwapBytes(0)
	if err := m.Set("-1"); err != nil || m != -1 {
		t.Errorf("--memory-swap -1: %v %v", m, err)
	}
}
