package cgroups

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel plays cgroupfs on a plain directory tree: mkdir populates a new cgroup with
// the files a real kernel shows (with their defaults), writes follow the kernel's rules
// where the order of operations matters (memory ≤ memory+swap, freezer and cgroup.events
// transitions, subtree_control, cgroup.kill), and rmdir refuses a populated cgroup.
type fakeKernel struct {
	t    *testing.T
	root string
	v2   bool

	noMemsw     bool          // v1: no memory.memsw.* (swap accounting off)
	weightFile  string        // v1 "blkio.weight"/"blkio.bfq.weight", v2 "io.weight"/"io.bfq.weight"; "" none
	rootWeight  bool          // v1: blkio.weight at the hierarchy root (CFQ kernels)
	noCgroupKil bool          // v2: kernel < 5.14
	freezeDelay time.Duration // FREEZING → FROZEN (v1) / frozen 0 → 1 (v2)
	stuckFreeze bool          // never reaches FROZEN
	v2Offered   string        // v2 root cgroup.controllers

	mu     sync.Mutex
	writes []string // "relative/path=data", in order
	wg     sync.WaitGroup
}

const unlimitedV1 = "9223372036854771712"

type fakeOpt func(*fakeKernel)

// newFakeV1 builds a v1 tree like systemd's: one directory per hierarchy, cpu and cpuacct
// combined in "cpu,cpuacct" with "cpu" and "cpuacct" symlinks to it.
func newFakeV1(t *testing.T, opts ...fakeOpt) *fakeKernel {
	t.Helper()
	k := &fakeKernel{t: t, root: t.TempDir(), weightFile: "blkio.weight", rootWeight: true, freezeDelay: 50 * time.Millisecond}
	for _, o := range opts {
		o(k)
	}
	for _, h := range []string{"cpuset", "cpu,cpuacct", "memory", "pids", "blkio", "freezer", "devices"} {
		dir := filepath.Join(k.root, h)
		must(t, os.Mkdir(dir, 0o755))
		k.populate(dir, strings.Split(h, ","), true)
	}
	must(t, os.Symlink("cpu,cpuacct", filepath.Join(k.root, "cpu")))
	must(t, os.Symlink("cpu,cpuacct", filepath.Join(k.root, "cpuacct")))
	t.Cleanup(k.wg.Wait)
	return k
}

// newFakeV2 builds a unified hierarchy root offering the usual controllers.
func newFakeV2(t *testing.T, opts ...fakeOpt) *fakeKernel {
	t.Helper()
	k := &fakeKernel{t: t, root: t.TempDir(), v2: true, weightFile: "io.weight", freezeDelay: 50 * time.Millisecond,
		v2Offered: "cpuset cpu io memory hugetlb pids rdma misc"}
	for _, o := range opts {
		o(k)
	}
	k.put(k.root, map[string]string{
		"cgroup.controllers":     k.v2Offered,
		"cgroup.subtree_control": "",
		"cgroup.procs":           "1",
		"cpuset.cpus.effective":  "0-3",
		"cpuset.mems.effective":  "0",
		"cgroup.max.depth":       "max",
	})
	t.Cleanup(k.wg.Wait)
	return k
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// opts are the Manager options that put this fake kernel in place of the host's.
func (k *fakeKernel) opts(extra ...Option) []Option {
	return append([]Option{func(o *options) {
		o.k = k
		o.mountinfo = "/nonexistent"
		o.freezeTimeout = 5 * time.Second
		o.killTimeout = 5 * time.Second
	}}, extra...)
}

func (k *fakeKernel) put(dir string, files map[string]string) {
	for name, v := range files {
		if v != "" && !strings.HasSuffix(v, "\n") {
			v += "\n"
		}
		must(k.t, os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644))
	}
}

// set replaces a file's content atomically (readers never see it half-written).
func (k *fakeKernel) set(path, v string) {
	if v != "" && !strings.HasSuffix(v, "\n") {
		v += "\n"
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".fake-")
	if err != nil {
		panic(err)
	}
	f.WriteString(v)
	f.Close()
	if err := os.Rename(f.Name(), path); err != nil {
		panic(err)
	}
}

func (k *fakeKernel) get(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// read returns a file of the tree, relative to the root.
func (k *fakeKernel) read(rel string) string {
	k.t.Helper()
	b, err := os.ReadFile(filepath.Join(k.root, rel))
	if err != nil {
		k.t.Fatalf("read %s: %v", rel, err)
	}
	return strings.TrimSpace(string(b))
}

// populate creates the files of a new v1 cgroup for the given controllers.
func (k *fakeKernel) populate(dir string, subs []string, isRoot bool) {
	files := map[string]string{"cgroup.procs": "", "tasks": "", "cgroup.clone_children": "0", "notify_on_release": "0"}
	for _, s := range subs {
		switch s {
		case "memory":
			files["memory.limit_in_bytes"] = unlimitedV1
			files["memory.soft_limit_in_bytes"] = unlimitedV1
			files["memory.usage_in_bytes"] = "0"
			files["memory.max_usage_in_bytes"] = "0"
			files["memory.failcnt"] = "0"
			files["memory.swappiness"] = "60"
			files["memory.use_hierarchy"] = "1"
			files["memory.oom_control"] = "oom_kill_disable 0\nunder_oom 0\noom_kill 0"
			files["memory.stat"] = "cache 0\nrss 0\ninactive_file 0\ntotal_cache 0\ntotal_rss 0\ntotal_inactive_file 0"
			if !k.noMemsw {
				files["memory.memsw.limit_in_bytes"] = unlimitedV1
				files["memory.memsw.usage_in_bytes"] = "0"
				files["memory.memsw.max_usage_in_bytes"] = "0"
			}
		case "cpu":
			files["cpu.shares"] = "1024"
			files["cpu.cfs_period_us"] = "100000"
			files["cpu.cfs_quota_us"] = "-1"
			files["cpu.stat"] = "nr_periods 0\nnr_throttled 0\nthrottled_time 0"
		case "cpuacct":
			files["cpuacct.usage"] = "0"
			files["cpuacct.usage_user"] = "0"
			files["cpuacct.usage_sys"] = "0"
			files["cpuacct.stat"] = "user 0\nsystem 0"
		case "cpuset":
			files["cpuset.cpus"], files["cpuset.mems"] = "", ""
			if isRoot {
				files["cpuset.cpus"], files["cpuset.mems"] = "0-3", "0"
			}
		case "pids":
			if !isRoot {
				files["pids.max"] = "max"
				files["pids.current"] = "0"
				files["pids.events"] = "max 0"
			}
		case "blkio":
			files["blkio.throttle.read_bps_device"] = ""
			if isRoot && k.rootWeight {
				files["blkio.weight"] = "500"
			}
			if !isRoot && k.weightFile != "" {
				files[k.weightFile] = "100"
			}
		case "freezer":
			if !isRoot {
				files["freezer.state"] = "THAWED"
				files["freezer.self_freezing"] = "0"
				files["freezer.parent_freezing"] = "0"
			}
		case "devices":
			files["devices.allow"], files["devices.deny"] = "", ""
			files["devices.list"] = "a *:* rwm"
		}
	}
	k.put(dir, files)
}

// populateV2 creates the files of a new v2 cgroup whose parent enabled controllers.
func (k *fakeKernel) populateV2(dir string, controllers string) {
	files := map[string]string{
		"cgroup.controllers":     controllers,
		"cgroup.subtree_control": "",
		"cgroup.procs":           "",
		"cgroup.events":          "populated 0\nfrozen 0",
		"cgroup.freeze":          "0",
		"cgroup.type":            "domain",
	}
	if !k.noCgroupKil {
		files["cgroup.kill"] = ""
	}
	for _, c := range strings.Fields(controllers) {
		switch c {
		case "cpu":
			files["cpu.weight"] = "100"
			files["cpu.max"] = "max 100000"
			files["cpu.stat"] = "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0"
		case "memory":
			files["memory.max"], files["memory.high"], files["memory.low"], files["memory.min"] = "max", "max", "0", "0"
			files["memory.current"], files["memory.peak"] = "0", "0"
			files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0"
			files["memory.stat"] = "anon 0\nfile 0\nactive_file 0\ninactive_file 0"
			if !k.noMemsw {
				files["memory.swap.max"], files["memory.swap.current"] = "max", "0"
			}
		case "pids":
			files["pids.max"], files["pids.current"], files["pids.events"] = "max", "0", "max 0"
		case "io":
			files["io.max"], files["io.stat"] = "", ""
			if k.weightFile != "" {
				files[k.weightFile] = "default 100"
			}
		case "cpuset":
			files["cpuset.cpus"], files["cpuset.mems"] = "", ""
			files["cpuset.cpus.effective"] = k.get(filepath.Join(filepath.Dir(dir), "cpuset.cpus.effective"))
			files["cpuset.mems.effective"] = k.get(filepath.Join(filepath.Dir(dir), "cpuset.mems.effective"))
		}
	}
	k.put(dir, files)
}

func (k *fakeKernel) mkdir(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	if k.v2 {
		k.populateV2(path, k.get(filepath.Join(filepath.Dir(path), "cgroup.subtree_control")))
		return nil
	}
	rel, _ := filepath.Rel(k.root, path)
	hier := strings.Split(rel, string(filepath.Separator))[0]
	k.populate(path, strings.Split(hier, ","), false)
	return nil
}

func errno(op, path string, e syscall.Errno) error { return &fs.PathError{Op: op, Path: path, Err: e} }

func (k *fakeKernel) rmdir(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			return errno("rmdir", path, unix.EBUSY)
		}
	}
	if k.get(filepath.Join(path, "cgroup.procs")) != "" {
		return errno("rmdir", path, unix.EBUSY)
	}
	return os.RemoveAll(path)
}

// writesTo lists what was written to files with this base name, in order.
func (k *fakeKernel) writesTo(base string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, w := range k.writes {
		p, d, _ := strings.Cut(w, "=")
		if filepath.Base(p) == base {
			out = append(out, d)
		}
	}
	return out
}

func (k *fakeKernel) write(path, data string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := os.Stat(path); err != nil {
		return err // cgroupfs has no O_CREAT
	}
	rel, _ := filepath.Rel(k.root, path)
	k.writes = append(k.writes, rel+"="+data)
	dir, base := filepath.Dir(path), filepath.Base(path)
	einval := errno("write", path, unix.EINVAL)
	num := func(s string) (int64, error) { return strconv.ParseInt(strings.TrimSpace(s), 10, 64) }
	limit := func(s string) (string, int64, error) {
		n, err := num(s)
		if err != nil {
			return "", 0, einval
		}
		if n == -1 {
			n, _ = num(unlimitedV1)
		}
		return strconv.FormatInt(n, 10), n, nil
	}
	switch base {
	case "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes":
		s, n, err := limit(data)
		if err != nil {
			return err
		}
		mem, _ := num(k.get(filepath.Join(dir, "memory.limit_in_bytes")))
		if base == "memory.limit_in_bytes" && !k.noMemsw {
			if sw, _ := num(k.get(filepath.Join(dir, "memory.memsw.limit_in_bytes"))); n > sw {
				return einval
			}
		}
		if base == "memory.memsw.limit_in_bytes" && n < mem {
			return einval
		}
		k.set(path, s)
	case "memory.oom_control":
		kv, _ := readKeyValues(dir, base)
		k.set(path, fmt.Sprintf("oom_kill_disable %s\nunder_oom 0\noom_kill %d", strings.TrimSpace(data), kv["oom_kill"]))
	case "cpu.shares":
		n, err := num(data)
		if err != nil {
			return einval
		}
		k.set(path, strconv.FormatInt(min(max(n, 2), 262144), 10))
	case "cpu.cfs_period_us":
		if n, err := num(data); err != nil || n < 1000 || n > 1000000 {
			return einval
		}
		k.set(path, data)
	case "cpu.cfs_quota_us":
		if n, err := num(data); err != nil || (n != -1 && n < 1000) {
			return einval
		}
		k.set(path, data)
	case "cpu.max":
		f := strings.Fields(data)
		if len(f) == 1 {
			cur := strings.Fields(k.get(path))
			f = append(f, cur[1])
		}
		k.set(path, strings.Join(f, " "))
	case "freezer.state":
		switch data {
		case "FROZEN":
			if k.get(path) == "THAWED" {
				k.set(path, "FREEZING")
				if !k.stuckFreeze {
					k.later(func() {
						if k.get(path) == "FREEZING" {
							k.set(path, "FROZEN")
						}
					})
				}
			}
		case "THAWED":
			k.set(path, "THAWED")
		default:
			return einval
		}
	case "cgroup.freeze":
		ev := filepath.Join(dir, "cgroup.events")
		switch data {
		case "1":
			k.set(path, "1")
			if !k.stuckFreeze {
				k.later(func() {
					if k.get(path) == "1" {
						k.set(ev, "populated 0\nfrozen 1")
					}
				})
			}
		case "0":
			k.set(path, "0")
			k.set(ev, "populated 0\nfrozen 0")
		default:
			return einval
		}
	case "cgroup.subtree_control":
		avail := strings.Fields(k.get(filepath.Join(dir, "cgroup.controllers")))
		on := strings.Fields(k.get(path))
		for _, tok := range strings.Fields(data) {
			c := tok[1:]
			if !slices.Contains(avail, c) {
				return errno("write", path, unix.ENOENT)
			}
			if tok[0] == '+' && !slices.Contains(on, c) {
				on = append(on, c)
			} else if tok[0] == '-' {
				on = slices.DeleteFunc(on, func(x string) bool { return x == c })
			}
		}
		var ordered []string
		for _, c := range strings.Fields(k.v2Offered) {
			if slices.Contains(on, c) {
				ordered = append(ordered, c)
			}
		}
		k.set(path, strings.Join(ordered, " "))
	case "cgroup.procs":
		if _, err := strconv.Atoi(data); err != nil {
			return einval
		}
		k.set(path, strings.TrimSpace(k.get(path)+"\n"+data))
	case "cgroup.kill":
		for _, f := range strings.Fields(k.get(filepath.Join(dir, "cgroup.procs"))) {
			pid, _ := strconv.Atoi(f)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		k.set(filepath.Join(dir, "cgroup.procs"), "")
	case "devices.allow", "devices.deny":
		k.set(path, strings.TrimSpace(k.get(path)+"\n"+data))
	default:
		k.set(path, data)
	}
	return nil
}

// later runs f after the freeze delay, as the kernel finishes a transition asynchronously.
func (k *fakeKernel) later(f func()) {
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		time.Sleep(k.freezeDelay)
		k.mu.Lock()
		defer k.mu.Unlock()
		f()
	}()
}

// exit removes pid from every cgroup.procs of the tree, as the kernel does when it exits.
func (k *fakeKernel) exit(pid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	filepath.WalkDir(k.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "cgroup.procs" {
			return nil
		}
		var keep []string
		for _, f := range strings.Fields(k.get(p)) {
			if f != strconv.Itoa(pid) {
				keep = append(keep, f)
			}
		}
		k.set(p, strings.Join(keep, "\n"))
		return nil
	})
}
