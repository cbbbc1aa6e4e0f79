package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-registry/berth/runner/cgroups"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestMain pins the kernel facts Generate reads: 41 capabilities (cap_last_cap 40) and a
// sysfs without thermal_throttle directories.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spec-test")
	if err != nil {
		panic(err)
	}
	capLastCapFile = filepath.Join(dir, "cap_last_cap")
	if err := os.WriteFile(capLastCapFile, []byte("40\n"), 0o644); err != nil {
		panic(err)
	}
	// A full bounding set, whatever the machine running the tests has.
	boundingFile = filepath.Join(dir, "status")
	if err := os.WriteFile(boundingFile, []byte("Name:\ttest\nCapBnd:\t000001ffffffffff\n"), 0o644); err != nil {
		panic(err)
	}
	sysfsRoot = filepath.Join(dir, "sys")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func gen(t *testing.T, opts *Options) *specs.Spec {
	t.Helper()
	s, _, err := Generate(image(nil, sl("sh")), "", "0123456789abcdef", opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func genErr(t *testing.T, opts *Options) error {
	t.Helper()
	_, _, err := Generate(image(nil, sl("sh")), "", "0123456789abcdef", opts)
	return err
}

func TestDefaults(t *testing.T) {
	s := gen(t, nil)
	if s.Version != specs.Version || s.Root.Path != "rootfs" || s.Root.Readonly {
		t.Fatalf("version/root: %s %+v", s.Version, s.Root)
	}
	if s.Hostname != "0123456789ab" || s.Domainname != "" {
		t.Fatalf("hostname %q", s.Hostname)
	}
	p := s.Process
	if p.Terminal || p.NoNewPrivileges || p.Rlimits != nil || p.OOMScoreAdj == nil || *p.OOMScoreAdj != 0 || p.Cwd != "/" {
		t.Fatalf("process: %+v", p)
	}
	if p.User.UID != 0 || p.User.GID != 0 || !slices.Equal(p.User.AdditionalGids, []uint32{0}) {
		t.Fatalf("user: %+v", p.User)
	}
	c := p.Capabilities
	if len(c.Bounding) != 14 || !slices.Equal(c.Bounding, DefaultCapabilities()) ||
		!slices.Equal(c.Effective, c.Bounding) || !slices.Equal(c.Permitted, c.Bounding) ||
		len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Fatalf("capabilities: %+v", c)
	}
	l := s.Linux
	if l.CgroupsPath != "berth/0123456789abcdef" || l.RootfsPropagation != "rprivate" || l.Seccomp != nil {
		t.Fatalf("linux: %+v", l)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range l.Namespaces {
		ns = append(ns, n.Type)
		if n.Path != "" {
			t.Fatalf("namespace path %q", n.Path)
		}
	}
	if want := []specs.LinuxNamespaceType{"mount", "network", "uts", "pid", "ipc"}; !slices.Equal(ns, want) {
		t.Fatalf("namespaces %v, want %v", ns, want)
	}
	if s.Annotations[AnnotationStopSignal] != "SIGTERM" {
		t.Fatalf("annotations %v", s.Annotations)
	}
	// The spec serializes.
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	s := gen(t, nil)
	for _, p := range []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("masked path %s missing", p)
		}
	}
	if want := sl("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"); !slices.Equal(s.Linux.ReadonlyPaths, want) {
		t.Errorf("readonly paths %q", s.Linux.ReadonlyPaths)
	}

	// Per-CPU thermal_throttle directories, from the possible CPUs the host has them for.
	old := sysfsRoot
	defer func() { sysfsRoot = old }()
	sysfsRoot = t.TempDir()
	cpu := filepath.Join(sysfsRoot, "devices/system/cpu")
	for _, d := range []string{"cpu0/thermal_throttle", "cpu2/thermal_throttle", "cpu3"} {
		if err := os.MkdirAll(filepath.Join(cpu, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cpu, "possible"), []byte("0-3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = gen(t, nil)
	got := s.Linux.MaskedPaths[len(s.Linux.MaskedPaths)-2:]
	if want := sl("/sys/devices/system/cpu/cpu0/thermal_throttle", "/sys/devices/system/cpu/cpu2/thermal_throttle"); !slices.Equal(got, want) {
		t.Errorf("thermal paths %q", got)
	}
}

func mountDests(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func findMount(t *testing.T, s *specs.Spec, dest string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m
		}
	}
	t.Fatalf("no mount on %s in %q", dest, mountDests(s.Mounts))
	return specs.Mount{}
}

func TestDefaultMountsOrder(t *testing.T) {
	s := gen(t, &Options{
		ResolvConfPath: "/run/berth/c/resolv.conf",
		HostnamePath:   "/run/berth/c/hostname",
		HostsPath:      "/run/berth/c/hosts",
		Mounts: []specs.Mount{
			{Destination: "/data/sub", Type: "bind", Source: "/srv/sub", Options: sl("rbind")},
			{Destination: "/data/", Type: "bind", Source: "/srv/data", Options: sl("rbind", "ro")},
		},
		Tmpfs: sl("/run:size=1m", "/tmp"),
	})
	want := sl("/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm",
		"/data", "/run", "/tmp", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/data/sub")
	if got := mountDests(s.Mounts); !slices.Equal(got, want) {
		t.Fatalf("mounts\n%q\nwant\n%q", got, want)
	}
	for _, c := range []struct {
		dest, typ, source string
		options           []string
	}{
		{"/proc", "proc", "proc", sl("nosuid", "noexec", "nodev")},
		{"/dev", "tmpfs", "tmpfs", sl("nosuid", "strictatime", "mode=755", "size=65536k")},
		{"/dev/pts", "devpts", "devpts", sl("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")},
		{"/sys", "sysfs", "sysfs", sl("nosuid", "noexec", "nodev", "ro")},
		{"/sys/fs/cgroup", "cgroup", "cgroup", sl("ro", "nosuid", "noexec", "nodev")},
		{"/dev/mqueue", "mqueue", "mqueue", sl("nosuid", "noexec", "nodev")},
		{"/dev/shm", "tmpfs", "shm", sl("nosuid", "noexec", "nodev", "mode=1777", "size=67108864")},
		{"/etc/resolv.conf", "bind", "/run/berth/c/resolv.conf", sl("rbind", "rprivate")},
		{"/etc/hostname", "bind", "/run/berth/c/hostname", sl("rbind", "rprivate")},
		{"/etc/hosts", "bind", "/run/berth/c/hosts", sl("rbind", "rprivate")},
		{"/run", "tmpfs", "tmpfs", sl("noexec", "nosuid", "nodev", "rprivate", "size=1m")},
		{"/tmp", "tmpfs", "tmpfs", sl("noexec", "nosuid", "nodev", "rprivate")},
		{"/data", "bind", "/srv/data", sl("rbind", "ro")},
	} {
		m := findMount(t, s, c.dest)
		if m.Type != c.typ || m.Source != c.source || !slices.Equal(m.Options, c.options) {
			t.Errorf("%s: %+v, want %s %s %q", c.dest, m, c.typ, c.source, c.options)
		}
	}
}

func TestMountsOverrideAndErrors(t *testing.T) {
	// A user mount replaces the default and the network file of its destination.
	s := gen(t, &Options{
		HostsPath: "/h", ResolvConfPath: "/r",
		Mounts: []specs.Mount{{Destination: "/etc/hosts", Type: "bind", Source: "/mine"}, {Destination: "/dev/shm", Type: "bind", Source: "/shm"}},
	})
	if m := findMount(t, s, "/etc/hosts"); m.Source != "/mine" {
		t.Fatalf("hosts from %s", m.Source)
	}
	if m := findMount(t, s, "/dev/shm"); m.Source != "/shm" {
		t.Fatalf("shm from %s", m.Source)
	}
	if n := strings.Count(strings.Join(mountDests(s.Mounts), " "), "/dev/shm"); n != 1 {
		t.Fatalf("%d /dev/shm mounts", n)
	}
	// A user /dev replaces every default below /dev.
	s = gen(t, &Options{Mounts: []specs.Mount{{Destination: "/dev", Type: "bind", Source: "/dev"}}})
	if got := mountDests(s.Mounts); !slices.Equal(got, sl("/proc", "/sys", "/sys/fs/cgroup", "/dev")) {
		t.Fatalf("mounts %q", got)
	}
	// --shm-size.
	s = gen(t, &Options{ShmSize: 128 << 20})
	if m := findMount(t, s, "/dev/shm"); m.Options[len(m.Options)-1] != "size=134217728" {
		t.Fatalf("shm %q", m.Options)
	}
	// Propagation.
	s = gen(t, &Options{Mounts: []specs.Mount{{Destination: "/a", Type: "bind", Source: "/a", Options: sl("rbind", "rslave")}}})
	if s.Linux.RootfsPropagation != "rslave" {
		t.Fatalf("propagation %s", s.Linux.RootfsPropagation)
	}
	s = gen(t, &Options{Mounts: []specs.Mount{
		{Destination: "/a", Type: "bind", Source: "/a", Options: sl("rbind", "rshared")},
		{Destination: "/b", Type: "bind", Source: "/b", Options: sl("rbind", "slave")},
	}})
	if s.Linux.RootfsPropagation != "rshared" {
		t.Fatalf("propagation %s", s.Linux.RootfsPropagation)
	}

	for name, o := range map[string]*Options{
		"duplicate":            {Mounts: []specs.Mount{{Destination: "/a"}, {Destination: "/a/"}}},
		"duplicate with tmpfs": {Mounts: []specs.Mount{{Destination: "/run"}}, Tmpfs: sl("/run")},
		"relative":             {Mounts: []specs.Mount{{Destination: "data"}}},
		"root":                 {Mounts: []specs.Mount{{Destination: "/"}}},
		"tmpfs root":           {Tmpfs: sl("/")},
		"tmpfs relative":       {Tmpfs: sl("tmp")},
		"tmpfs bad option":     {Tmpfs: sl("/t:bogus")},
		"tmpfs bind":           {Tmpfs: sl("/t:rbind")},
		"tmpfs bad data":       {Tmpfs: sl("/t:color=red")},
		"negative shm":         {ShmSize: -1},
	} {
		if err := genErr(t, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := genErr(t, &Options{Mounts: []specs.Mount{{Destination: "/a"}, {Destination: "/a"}}}); err == nil || err.Error() != "Duplicate mount point: /a" {
		t.Errorf("err = %v", err)
	}
}

func TestTmpfsOptions(t *testing.T) {
	for in, want := range map[string][]string{
		"/t":                          sl("noexec", "nosuid", "nodev", "rprivate"),
		"/t:exec":                     sl("nosuid", "nodev", "rprivate", "exec"),
		"/t:rw,exec,size=64m":         sl("nosuid", "nodev", "rprivate", "rw", "exec", "size=64m"),
		"/t:size=1m,size=2m,mode=700": sl("noexec", "nosuid", "nodev", "rprivate", "size=2m", "mode=700"),
		"/t:ro,suid,dev,shared":       sl("noexec", "ro", "suid", "dev", "shared"),
		"/t:defaults,uid=1000":        sl("noexec", "nosuid", "nodev", "rprivate", "uid=1000"),
	} {
		m, err := parseTmpfs(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !slices.Equal(m.Options, want) || m.Destination != "/t" || m.Type != "tmpfs" {
			t.Errorf("%s: %+v, want %q", in, m, want)
		}
	}
}

func TestReadOnly(t *testing.T) {
	s := gen(t, &Options{ReadOnly: true, HostsPath: "/h", Tmpfs: sl("/tmp"),
		Mounts: []specs.Mount{{Destination: "/data", Type: "bind", Source: "/d", Options: sl("rbind")}}})
	if !s.Root.Readonly {
		t.Fatal("root not read-only")
	}
	for _, m := range s.Mounts {
		ro := slices.Contains(m.Options, "ro")
		switch m.Destination {
		case "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/tmp", "/data":
			if ro {
				t.Errorf("%s read-only: %q", m.Destination, m.Options)
			}
		default: // /sys, /sys/fs/cgroup, /etc/hosts
			if !ro {
				t.Errorf("%s writable: %q", m.Destination, m.Options)
			}
		}
	}
	if m := findMount(t, s, "/etc/hosts"); !slices.Equal(m.Options, sl("rbind", "ro", "rprivate")) {
		t.Errorf("hosts %q", m.Options)
	}
}

func TestCapabilities(t *testing.T) {
	all := AllCapabilities()
	if len(all) != 41 || all[0] != "CAP_CHOWN" || all[40] != "CAP_CHECKPOINT_RESTORE" {
		t.Fatalf("all caps %q", all)
	}
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	for _, c := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		err        string
	}{
		{name: "default", want: DefaultCapabilities()},
		{name: "add", add: sl("NET_ADMIN", "cap_sys_time"), want: append(DefaultCapabilities(), "CAP_NET_ADMIN", "CAP_SYS_TIME")},
		{name: "add existing", add: sl("CAP_CHOWN", "chown"), want: DefaultCapabilities()},
		{name: "drop", drop: sl("net_raw", "CAP_MKNOD"), want: without(DefaultCapabilities(), "CAP_NET_RAW", "CAP_MKNOD")},
		{name: "drop and add same", add: sl("KILL"), drop: sl("KILL"), want: append(without(DefaultCapabilities(), "CAP_KILL"), "CAP_KILL")},
		{name: "drop ALL", drop: sl("ALL"), want: []string{}},
		{name: "drop all, add some", drop: sl("all"), add: sl("chown", "NET_BIND_SERVICE"), want: sl("CAP_CHOWN", "CAP_NET_BIND_SERVICE")},
		{name: "add ALL", add: sl("ALL"), want: all},
		{name: "add ALL, drop some", add: sl("ALL"), drop: sl("SYS_ADMIN", "sys_module"), want: without(all, "CAP_SYS_ADMIN", "CAP_SYS_MODULE")},
		{name: "privileged", privileged: true, drop: sl("ALL"), want: all},
		{name: "unknown", add: sl("FLY"), err: `unknown capability: "CAP_FLY"`},
		{name: "unknown drop", drop: sl("CAP_NOPE"), err: `unknown capability: "CAP_NOPE"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, sl("sh")), "", "abc", &Options{CapAdd: c.add, CapDrop: c.drop, Privileged: c.privileged})
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err = %v, want %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			caps := s.Process.Capabilities
			if !slices.Equal(caps.Bounding, c.want) || !slices.Equal(caps.Effective, c.want) || !slices.Equal(caps.Permitted, c.want) {
				t.Fatalf("caps %q, want %q", caps.Bounding, c.want)
			}
			if len(caps.Inheritable) != 0 || len(caps.Ambient) != 0 {
				t.Fatalf("inheritable/ambient %+v", caps)
			}
		})
	}
}

func TestCapabilitiesKernelLimit(t *testing.T) {
	old := capLastCapFile
	defer func() { capLastCapFile = old }()
	capLastCapFile = filepath.Join(t.TempDir(), "cap_last_cap")
	os.WriteFile(capLastCapFile, []byte("37\n"), 0o644)
	if all := AllCapabilities(); len(all) != 38 || all[37] != "CAP_AUDIT_READ" {
		t.Fatalf("all = %q", all)
	}
	if _, err := NormalizeCap("bpf"); err == nil || err.Error() != `unknown capability: "CAP_BPF"` {
		t.Fatalf("err = %v", err)
	}
	for in, want := range map[string]string{"chown": "CAP_CHOWN", "Cap_Kill": "CAP_KILL", "all": "ALL", "AUDIT_READ": "CAP_AUDIT_READ"} {
		if got, err := NormalizeCap(in); err != nil || got != want {
			t.Errorf("NormalizeCap(%q) = %q, %v", in, got, err)
		}
	}
	// Unreadable file: every capability this package knows.
	capLastCapFile = filepath.Join(t.TempDir(), "missing")
	if len(AllCapabilities()) != len(capNames) {
		t.Fatal("fallback")
	}
}

func TestParseCapabilities(t *testing.T) {
	caps, err := ParseCapabilities(sl("sys_ptrace"), sl("chown"), false)
	if err != nil || len(caps) != 14 || caps[0] != "CAP_DAC_OVERRIDE" || caps[13] != "CAP_SYS_PTRACE" {
		t.Fatalf("%q %v", caps, err)
	}
}

// TestPrivilegedBoundingSet: --privileged grants only what this process's
// bounding set holds (capset refuses the rest), here without CAP_SYS_TIME (25).
func TestPrivilegedBoundingSet(t *testing.T) {
	old := boundingFile
	defer func() { boundingFile = old }()
	boundingFile = filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(boundingFile, []byte("CapBnd:\t000001fffdffffff\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := gen(t, &Options{Privileged: true})
	if n := len(s.Process.Capabilities.Bounding); n != 40 || slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_TIME") {
		t.Fatalf("caps %d: %q", n, s.Process.Capabilities.Bounding)
	}
}

func TestPrivileged(t *testing.T) {
	s := gen(t, &Options{Privileged: true, ReadOnly: true})
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Fatalf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := findMount(t, s, d); slices.Contains(m.Options, "ro") {
			t.Errorf("%s read-only with --privileged: %q", d, m.Options)
		}
	}
	if len(s.Process.Capabilities.Bounding) != 41 {
		t.Fatalf("caps %d", len(s.Process.Capabilities.Bounding))
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" || d[0].Type != "" {
		t.Fatalf("device rules %+v", d)
	}
	if s.Annotations[AnnotationPrivileged] != "true" {
		t.Fatal("privileged annotation")
	}
	if !s.Root.Readonly {
		t.Fatal("--read-only lost")
	}
	if _, ok := gen(t, nil).Annotations[AnnotationPrivileged]; ok {
		t.Fatal("privileged annotation on an unprivileged container")
	}
}

func TestSecurityOpt(t *testing.T) {
	for _, c := range []struct {
		opts []string
		want bool
		err  string
	}{
		{nil, false, ""},
		{sl("no-new-privileges"), true, ""},
		{sl("no-new-privileges:true"), true, ""},
		{sl("no-new-privileges=true"), true, ""},
		{sl("no-new-privileges", "no-new-privileges:false"), false, ""},
		{sl("no-new-privileges=1"), true, ""},
		{sl("seccomp=unconfined", "apparmor=unconfined", "label=disable", "label:disable"), false, ""},
		{sl("no-new-privileges:maybe"), false, `invalid --security-opt 2: "no-new-privileges:maybe"`},
		{sl("seccomp=/tmp/profile.json"), false, `unsupported --security-opt: "seccomp=/tmp/profile.json"`},
		{sl("apparmor=docker-default"), false, `unsupported --security-opt: "apparmor=docker-default"`},
		{sl("label=type:svirt_t"), false, `unsupported --security-opt: "label=type:svirt_t"`},
		{sl("systempaths=unconfined"), false, `unsupported --security-opt: "systempaths=unconfined"`},
		{sl("bogus"), false, `invalid --security-opt 1: "bogus"`},
		{sl("bogus=1"), false, `unsupported --security-opt: "bogus=1": unknown option "bogus"`},
	} {
		s, _, err := Generate(image(nil, sl("sh")), "", "abc", &Options{SecurityOpt: c.opts})
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: err = %v, want %s", c.opts, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.opts, err)
			continue
		}
		if s.Process.NoNewPrivileges != c.want {
			t.Errorf("%q: nnp = %v", c.opts, s.Process.NoNewPrivileges)
		}
	}
}

func TestParseUlimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Ulimit
		err  string
	}{
		{"nofile=1024:2048", Ulimit{"nofile", 1024, 2048}, ""},
		{"nofile=1024", Ulimit{"nofile", 1024, 1024}, ""},
		{"core=-1", Ulimit{"core", -1, -1}, ""},
		{"core=0:-1", Ulimit{"core", 0, -1}, ""},
		{"nproc=512:512", Ulimit{"nproc", 512, 512}, ""},
		{"nofile", Ulimit{}, "invalid ulimit argument: nofile"},
		{"bogus=1", Ulimit{}, "invalid ulimit type: bogus"},
		{"NOFILE=1", Ulimit{}, "invalid ulimit type: NOFILE"},
		{"nofile=2048:1024", Ulimit{}, "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"},
		{"nofile=-1:1024", Ulimit{}, "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 1024"},
		{"nofile=1:2:3", Ulimit{}, "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"},
		{"nofile=x", Ulimit{}, "invalid ulimit value"},
		{"nofile=-2", Ulimit{}, "invalid ulimit value"},
	} {
		got, err := ParseUlimit(c.in)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v", c.in, got, err)
		}
	}
}

func TestUlimits(t *testing.T) {
	var uls []Ulimit
	for _, v := range sl("nofile=1024:2048", "core=-1", "nproc=10", "nofile=4096") {
		u, err := ParseUlimit(v)
		if err != nil {
			t.Fatal(err)
		}
		uls = append(uls, u)
	}
	s := gen(t, &Options{Ulimits: uls})
	want := []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 4096, Hard: 4096},
		{Type: "RLIMIT_CORE", Soft: ^uint64(0), Hard: ^uint64(0)},
		{Type: "RLIMIT_NPROC", Soft: 10, Hard: 10},
	}
	if !slices.Equal(s.Process.Rlimits, want) {
		t.Fatalf("rlimits %+v", s.Process.Rlimits)
	}
	if err := genErr(t, &Options{Ulimits: []Ulimit{{"nofile", 10, 5}}}); err == nil {
		t.Fatal("soft > hard accepted")
	}
	if err := genErr(t, &Options{Ulimits: []Ulimit{{"files", 1, 1}}}); err == nil {
		t.Fatal("bad name accepted")
	}
}

func TestResources(t *testing.T) {
	r := &cgroups.Resources{
		Memory: 200 << 20, MemoryReservation: 100 << 20, OomKillDisable: true,
		CPUShares: 512, NanoCPUs: 1_500_000_000, CpusetCpus: "0", CpusetMems: "0",
		PidsLimit: 100, BlkioWeight: 600,
	}
	s, warnings, err := Generate(image(nil, sl("sh")), "", "abc", &Options{Resources: r})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings %q", warnings)
	}
	res := s.Linux.Resources
	m := res.Memory
	if *m.Limit != 200<<20 || *m.Swap != 400<<20 || *m.Reservation != 100<<20 || !*m.DisableOOMKiller {
		t.Fatalf("memory %+v", m)
	}
	c := res.CPU
	if *c.Shares != 512 || *c.Quota != 150000 || *c.Period != 100000 || c.Cpus != "0" || c.Mems != "0" {
		t.Fatalf("cpu %+v", c)
	}
	if *res.Pids.Limit != 100 || *res.BlockIO.Weight != 600 {
		t.Fatalf("pids/blkio %+v %+v", res.Pids, res.BlockIO)
	}
	if s.Linux.CgroupsPath != "berth/abc" {
		t.Fatalf("cgroups path %s", s.Linux.CgroupsPath)
	}
	// Default device rules: Docker's and runc's implicit ones.
	want := DeviceCgroupRules(cgroups.DefaultDeviceRules())
	if len(res.Devices) != len(want) || res.Devices[0].Allow || res.Devices[0].Type != "" || res.Devices[0].Access != "rwm" {
		t.Fatalf("device rules %+v", res.Devices)
	}
	null := res.Devices[3]
	if !null.Allow || null.Type != "c" || *null.Major != 1 || *null.Minor != 3 || null.Access != "rwm" {
		t.Fatalf("null rule %+v", null)
	}
	if pts := res.Devices[11]; pts.Type != "c" || *pts.Major != 136 || pts.Minor != nil {
		t.Fatalf("pts rule %+v", pts)
	}

	// Explicit swap, quota/period, unlimited pids, no memory at all.
	s, _, err = Generate(image(nil, sl("sh")), "", "abc", &Options{CgroupParent: "/custom/parent/", Resources: &cgroups.Resources{
		Memory: 64 << 20, MemorySwap: -1, CPUQuota: 50000, CPUPeriod: 200000, PidsLimit: -5}})
	if err != nil {
		t.Fatal(err)
	}
	res = s.Linux.Resources
	if *res.Memory.Swap != -1 || res.Memory.Reservation != nil || res.Memory.DisableOOMKiller != nil {
		t.Fatalf("memory %+v", res.Memory)
	}
	if *res.CPU.Quota != 50000 || *res.CPU.Period != 200000 || res.CPU.Shares != nil {
		t.Fatalf("cpu %+v", res.CPU)
	}
	if *res.Pids.Limit != -1 || res.BlockIO != nil {
		t.Fatalf("pids %+v", res.Pids)
	}
	if s.Linux.CgroupsPath != "custom/parent/abc" {
		t.Fatalf("cgroups path %s", s.Linux.CgroupsPath)
	}

	// Warnings and clamping as the daemon does.
	s, warnings, err = Generate(image(nil, sl("sh")), "", "abc", &Options{Resources: &cgroups.Resources{CPUShares: 1 << 20, OomKillDisable: true}})
	if err != nil {
		t.Fatal(err)
	}
	if *s.Linux.Resources.CPU.Shares != cgroups.MaxCPUShares || len(warnings) != 2 ||
		!strings.Contains(warnings[0], "maximum allowed of 262144") || !strings.Contains(warnings[1], "OOM killer is disabled") {
		t.Fatalf("warnings %q", warnings)
	}

	// Docker's validation errors.
	for _, r := range []*cgroups.Resources{
		{Memory: 1 << 20},
		{Memory: 100 << 20, MemorySwap: 50 << 20},
		{MemorySwap: 50 << 20},
		{NanoCPUs: 1e9, CPUQuota: 10000},
	} {
		if _, _, err := Generate(image(nil, sl("sh")), "", "abc", &Options{Resources: r}); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if _, _, err := Generate(image(nil, sl("sh")), "", "abc", &Options{CgroupParent: "../escape"}); err == nil {
		t.Error("cgroup parent with .. accepted")
	}

	// No resources: only the device rules.
	res = gen(t, nil).Linux.Resources
	if res.Memory != nil || res.CPU != nil || res.Pids != nil || res.BlockIO != nil || len(res.Devices) == 0 {
		t.Fatalf("empty resources %+v", res)
	}
	// Explicit device rules replace the default ones.
	s = gen(t, &Options{Resources: &cgroups.Resources{Devices: []cgroups.DeviceRule{{Allow: true, Type: 'a', Major: -1, Minor: -1, Access: "rwm"}}}})
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Type != "" {
		t.Fatalf("devices %+v", d)
	}
}

func TestConvertResourcesNil(t *testing.T) {
	r, w, err := ConvertResources(nil)
	if err != nil || w != nil || r == nil || r.Memory != nil {
		t.Fatalf("%+v %v %v", r, w, err)
	}
}

func TestNetworkNamespace(t *testing.T) {
	netns := func(s *specs.Spec) (bool, string) {
		for _, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				return true, n.Path
			}
		}
		return false, ""
	}
	if ok, p := netns(gen(t, &Options{NetNSPath: ""})); !ok || p != "" {
		t.Fatalf("new netns: %v %q", ok, p)
	}
	s := gen(t, &Options{NetNSPath: "host"})
	if ok, _ := netns(s); ok {
		t.Fatal("host network has a network namespace entry")
	}
	if h, _ := os.Hostname(); s.Hostname != h {
		t.Fatalf("host network hostname %q, want the host's %q", s.Hostname, h)
	}
	if len(s.Linux.Namespaces) != 4 {
		t.Fatalf("namespaces %+v", s.Linux.Namespaces)
	}
	if s := gen(t, &Options{NetNSPath: "host", Hostname: "mine"}); s.Hostname != "mine" {
		t.Fatalf("hostname %q", s.Hostname)
	}
	if ok, p := netns(gen(t, &Options{NetNSPath: "/run/berth/netns/abc"})); !ok || p != "/run/berth/netns/abc" {
		t.Fatalf("join netns: %v %q", ok, p)
	}
	if ok, p := netns(gen(t, &Options{NetNSPath: "/proc/123/ns/net"})); !ok || p != "/proc/123/ns/net" {
		t.Fatalf("join netns: %v %q", ok, p)
	}
	for _, bad := range sl("none", "bridge", "relative/path") {
		if err := genErr(t, &Options{NetNSPath: bad}); err == nil {
			t.Errorf("netns %q accepted", bad)
		}
	}
}

func TestSysctls(t *testing.T) {
	ok := map[string]string{"net.ipv4.ip_forward": "1", "net.core.somaxconn": "1024", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20", "kernel.sem": "250 32000 100 128"}
	s := gen(t, &Options{Sysctls: ok})
	if len(s.Linux.Sysctl) != len(ok) || s.Linux.Sysctl["kernel.sem"] != "250 32000 100 128" {
		t.Fatalf("sysctls %v", s.Linux.Sysctl)
	}
	if gen(t, nil).Linux.Sysctl != nil {
		t.Fatal("sysctls without --sysctl")
	}
	for _, k := range sl("kernel.hostname", "vm.swappiness", "kernel.shm", "net", "net./../../etc/x", "net..ipv4", "net.ipv4.", "fs.mqueue./x", "net.a\x00b") {
		if err := genErr(t, &Options{Sysctls: map[string]string{k: "1"}}); err == nil {
			t.Errorf("sysctl %q accepted", k)
		}
	}
	if err := genErr(t, &Options{NetNSPath: "host", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}); err == nil {
		t.Error("net sysctl with host network accepted")
	}
	if err := genErr(t, &Options{NetNSPath: "host", Sysctls: map[string]string{"kernel.msgmax": "1"}}); err != nil {
		t.Errorf("ipc sysctl with host network: %v", err)
	}
}

func TestHostnameAndMisc(t *testing.T) {
	s := gen(t, &Options{Hostname: "web", Domainname: "example.org", TTY: true, OpenStdin: true, OomScoreAdj: 500})
	if s.Hostname != "web" || s.Domainname != "example.org" || !s.Process.Terminal || *s.Process.OOMScoreAdj != 500 {
		t.Fatalf("%+v", s)
	}
	if s := gen(t, &Options{}); s.Hostname != "0123456789ab" {
		t.Fatalf("hostname %q", s.Hostname)
	}
	if s, _, err := Generate(image(nil, sl("sh")), "", "short", nil); err != nil || s.Hostname != "short" {
		t.Fatalf("%v", err)
	}
	for _, o := range []*Options{
		{Hostname: strings.Repeat("a", 65)},
		{Hostname: "a b"},
		{Hostname: "a/b"},
		{Domainname: "x\ny"},
		{OomScoreAdj: 1001},
		{OomScoreAdj: -1001},
	} {
		if err := genErr(t, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, id := range sl("", "../x", "a/b", ".hidden", "a b") {
		if _, _, err := Generate(image(nil, sl("sh")), "", id, nil); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
}

func TestLabelsAndAnnotations(t *testing.T) {
	img := image(nil, sl("sh"))
	img.Config.Labels = map[string]string{"a": "image", "b": "image", AnnotationPrivileged: "true"}
	img.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}, "443/tcp": {}, "53/udp": {}}
	img.Config.StopSignal = "SIGQUIT"
	s, _, err := Generate(img, "", "abc", &Options{Labels: map[string]string{"b": "cli", "c": "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	a := s.Annotations
	if a["a"] != "image" || a["b"] != "cli" || a["c"] != "cli" {
		t.Fatalf("labels %v", a)
	}
	if _, ok := a[AnnotationPrivileged]; ok {
		t.Fatal("an image label set Berth's privileged annotation")
	}
	if a[AnnotationExposedPorts] != "443/tcp,53/udp,80/tcp" || a[AnnotationStopSignal] != "SIGQUIT" {
		t.Fatalf("annotations %v", a)
	}
	s, _, err = Generate(img, "", "abc", &Options{StopSignal: "9"})
	if err != nil || s.Annotations[AnnotationStopSignal] != "SIGKILL" {
		t.Fatalf("%v %v", s.Annotations, err)
	}
	if _, _, err := Generate(img, "", "abc", &Options{StopSignal: "SIGNOPE"}); err == nil {
		t.Fatal("bad stop signal accepted")
	}
}

func TestStopSignalAndParseSignal(t *testing.T) {
	img := image(nil, nil)
	if sig, err := StopSignal(nil, nil); err != nil || sig != syscall.SIGTERM {
		t.Fatal(sig, err)
	}
	img.Config.StopSignal = "SIGUSR1"
	if sig, _ := StopSignal(img, &Options{}); sig != syscall.SIGUSR1 {
		t.Fatal(sig)
	}
	if sig, _ := StopSignal(img, &Options{StopSignal: "hup"}); sig != syscall.SIGHUP {
		t.Fatal(sig)
	}
	for in, want := range map[string]syscall.Signal{
		"SIGTERM": 15, "TERM": 15, "term": 15, "sigkill": 9, "9": 9, "SIGRTMIN": 34,
		"RTMIN+3": 37, "SIGRTMAX": 64, "SIGRTMAX-2": 62, "64": 64, "SIGWINCH": syscall.SIGWINCH,
	} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range sl("", "0", "65", "-1", "SIGFOO", "RTMIN+", "RTMIN+40", "RTMIN-1", "RTMAX+1") {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
	for sig, want := range map[syscall.Signal]string{15: "SIGTERM", 34: "SIGRTMIN", 37: "SIGRTMIN+3", 64: "SIGRTMAX"} {
		if got := SignalName(sig); got != want {
			t.Errorf("SignalName(%d) = %s", sig, got)
		}
	}
}

func TestDevices(t *testing.T) {
	for _, c := range []struct {
		in   string
		want DeviceMapping
		err  bool
	}{
		{"/dev/null", DeviceMapping{"/dev/null", "/dev/null", "rwm"}, false},
		{"/dev/null:/dev/mynull", DeviceMapping{"/dev/null", "/dev/mynull", "rwm"}, false},
		{"/dev/null:r", DeviceMapping{"/dev/null", "/dev/null", "r"}, false},
		{"/dev/null:/dev/x:rw", DeviceMapping{"/dev/null", "/dev/x", "rw"}, false},
		{"/dev/null:/dev/x:rwx", DeviceMapping{}, true},
		{"/dev/null:/dev/x:rw:extra", DeviceMapping{}, true},
		{"dev/null", DeviceMapping{}, true},
		{"/dev/null:relative", DeviceMapping{}, true},
	} {
		got, err := ParseDevice(c.in)
		if c.err {
			if err == nil {
				t.Errorf("%s accepted", c.in)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v", c.in, got, err)
		}
	}

	d, _ := ParseDevice("/dev/null:/dev/mynull:rw")
	s := gen(t, &Options{Devices: []DeviceMapping{d}})
	last := s.Linux.Devices[len(s.Linux.Devices)-1]
	if last.Path != "/dev/mynull" || last.Type != "c" || last.Major != 1 || last.Minor != 3 {
		t.Fatalf("device %+v", last)
	}
	rule := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !rule.Allow || rule.Type != "c" || *rule.Major != 1 || *rule.Minor != 3 || rule.Access != "rw" {
		t.Fatalf("rule %+v", rule)
	}
	if len(s.Linux.Devices) != len(DefaultDevices())+1 {
		t.Fatalf("devices %+v", s.Linux.Devices)
	}
	// Default device nodes.
	var paths []string
	for _, d := range gen(t, nil).Linux.Devices {
		paths = append(paths, d.Path)
	}
	if !slices.Equal(paths, sl("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")) {
		t.Fatalf("default devices %q", paths)
	}
	for _, bad := range []DeviceMapping{{"/etc/hostname", "/dev/x", "rwm"}, {"/does/not/exist", "/dev/x", "rwm"}} {
		if err := genErr(t, &Options{Devices: []DeviceMapping{bad}}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestGenerateDoesNotModifyInputs(t *testing.T) {
	mounts := []specs.Mount{{Destination: "/data/", Type: "bind", Source: "/d", Options: sl("rbind")}}
	img := &ocispec.Image{Config: ocispec.ImageConfig{Cmd: sl("sh"), Env: sl("A=1")}}
	o := &Options{Mounts: mounts, ReadOnly: true, Env: sl("B=2")}
	gen1, _, err := Generate(img, "", "abc", o)
	if err != nil {
		t.Fatal(err)
	}
	if mounts[0].Destination != "/data/" || len(mounts[0].Options) != 1 || len(img.Config.Env) != 1 {
		t.Fatal("inputs modified")
	}
	gen2, _, _ := Generate(img, "", "abc", o)
	j1, _ := json.Marshal(gen1)
	j2, _ := json.Marshal(gen2)
	if string(j1) != string(j2) {
		t.Fatal("Generate is not deterministic")
	}
}
