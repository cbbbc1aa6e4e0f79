//go:build e2e

package e2e

// End-to-end tests of the network store (runner/network) and of `pull-run network create,
// ls, inspect, rm, prune`: real bridges, veth pairs and iptables rules on this host, network
// namespaces made with unshare, endpoints attached by separate processes (this test binary
// re-executed as a helper), and the host's links and iptables rules compared before and
// after.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/network"
	"golang.org/x/sys/unix"
)

// The helper process: the test binary re-executed with BERTH_NETSTORE_HELPER set runs one
// store operation and exits, before TestMain (which would build the registry).
func init() {
	if os.Getenv("BERTH_NETSTORE_HELPER") == "" {
		return
	}
	os.Exit(netStoreHelper())
}

// netStoreHelper runs NS_OP (attach | detach) with NS_ROOT, NS_RUNROOT, NS_NET, NS_CID,
// NS_PID and prints the endpoint as JSON.
func netStoreHelper() int {
	s, err := network.Open(os.Getenv("NS_ROOT"), os.Getenv("NS_RUNROOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	ctx := context.Background()
	switch os.Getenv("NS_OP") {
	case "attach":
		pid, _ := strconv.Atoi(os.Getenv("NS_PID"))
		e, err := s.Attach(ctx, os.Getenv("NS_NET"), network.EndpointRequest{
			ContainerID: os.Getenv("NS_CID"), ContainerName: "c-" + os.Getenv("NS_CID"), OwnerPid: pid,
			Aliases: []string{"alias-" + os.Getenv("NS_CID")},
		}, fmt.Sprintf("/proc/%d/ns/net", pid), "eth0", true)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		json.NewEncoder(os.Stdout).Encode(e)
	case "detach":
		if err := s.Detach(ctx, os.Getenv("NS_NET"), os.Getenv("NS_CID")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown NS_OP")
		return 2
	}
	return 0
}

// nstHost is a pull-run state root for network tests.
type nstHost struct {
	t             *testing.T
	bin           string
	root, runroot string
	tag           string   // the alias/comment tag of the root's links and rules
	env           []string // added to the environment of pull-run and the helper
}

func nstNewHost(t *testing.T) *nstHost {
	t.Helper()
	need(t, "iptables-save")
	need(t, "ip")
	dir, err := os.MkdirTemp("/var/tmp", "berth-netstore-")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	sum := sha256.Sum256([]byte(root))
	h := &nstHost{t: t, bin: pullRunBin(t), root: root, runroot: filepath.Join(dir, "run"),
		tag: "berth:" + hex.EncodeToString(sum[:])[:8]}
	// Runs last (after the namespaces' processes are killed): whatever a failed test left,
	// prune removes.
	t.Cleanup(func() {
		cmd := exec.Command(h.bin, "--root", h.root, "--runroot", h.runroot, "network", "prune", "-f")
		cmd.Env = append(os.Environ(), h.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cleanup: network prune: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	})
	return h
}

func (h *nstHost) run(stdin string, args ...string) (string, string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"--root", h.root, "--runroot", h.runroot}, args...)...)
	cmd.Env = append(os.Environ(), h.env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	if err != nil {
		code = exitCode(err)
		if code < 0 {
			h.t.Fatalf("pull-run %s: %v", strings.Join(args, " "), err)
		}
	}
	h.t.Logf("$ pull-run %s → %d\n%s%s", strings.Join(args, " "), code, tail(out.String(), 30), tail(errb.String(), 10))
	return out.String(), errb.String(), code
}

func (h *nstHost) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run("", args...)
	if code != 0 {
		h.t.Fatalf("pull-run %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// fails runs a command that must fail with exit 1 and a message containing each part.
func (h *nstHost) fails(args []string, parts ...string) {
	h.t.Helper()
	out, errs, code := h.run("", args...)
	if code != 1 {
		h.t.Errorf("pull-run %s: exit %d, want 1\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	for _, p := range parts {
		if !strings.Contains(errs, p) {
			h.t.Errorf("pull-run %s: stderr %q does not contain %q", strings.Join(args, " "), errs, p)
		}
	}
}

func (h *nstHost) inspect(name string) network.Inspect {
	h.t.Helper()
	var arr []network.Inspect
	out := h.must("network", "inspect", name)
	if err := json.Unmarshal([]byte(out), &arr); err != nil || len(arr) != 1 {
		h.t.Fatalf("network inspect %s: %v\n%s", name, err, out)
	}
	return arr[0]
}

// helper runs the store helper process.
func (h *nstHost) helper(op, netName, cid string, pid int) (*network.Endpoint, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), h.env...), "BERTH_NETSTORE_HELPER=1", "NS_OP="+op, "NS_ROOT="+h.root,
		"NS_RUNROOT="+h.runroot, "NS_NET="+netName, "NS_CID="+cid, "NS_PID="+strconv.Itoa(pid))
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helper %s %s %s: %v: %s", op, netName, cid, err, errb.String())
	}
	if op != "attach" {
		return nil, nil
	}
	var e network.Endpoint
	if err := json.Unmarshal(out, &e); err != nil {
		return nil, fmt.Errorf("helper output %q: %v", out, err)
	}
	return &e, nil
}

// nstSnapshot is what the tests compare before and after: link names and iptables rules.
type nstSnapshot struct {
	links []string
	rules []string
}

func nstTakeSnapshot(t *testing.T) nstSnapshot {
	t.Helper()
	// Under the host-wide network lock, so that another root's half-made rules (other
	// tests running at the same time) are never seen.
	lock, err := os.OpenFile("/run/lock/berth-network.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var s nstSnapshot
	for _, l := range strings.Split(run(t, "ip", "-o", "link"), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			s.links = append(s.links, name)
		}
	}
	counters := regexp.MustCompile(`\[\d+:\d+\]`)
	for _, l := range strings.Split(run(t, "iptables-save"), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		s.rules = append(s.rules, counters.ReplaceAllString(l, ""))
	}
	sort.Strings(s.links)
	return s
}

// nstLineDiff returns the lines only in a and only in b.
func nstLineDiff(a, b []string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	for l, c := range count {
		for ; c > 0; c-- {
			onlyA = append(onlyA, l)
		}
		for ; c < 0; c++ {
			onlyB = append(onlyB, l)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return onlyA, onlyB
}

// assertHostRestored compares the host with before. Differences that are this test's (its
// root's tag, its links, Berth's chain) fail; others (other tests of the machine that
// run at the same time) are logged.
func (h *nstHost) assertHostRestored(before nstSnapshot, ours []string) {
	h.t.Helper()
	after := nstTakeSnapshot(h.t)
	isOurs := func(l string) bool {
		if strings.Contains(l, h.tag) || strings.Contains(l, network.DefaultRoot) {
			return true
		}
		for _, o := range ours {
			if o != "" && strings.Contains(l, o) {
				return true
			}
		}
		return false
	}
	gone, added := nstLineDiff(before.links, after.links)
	for _, l := range append(gone, added...) {
		if isOurs(l) {
			h.t.Errorf("link %s differs before/after", l)
		} else {
			h.t.Logf("link %s differs (not this test's)", l)
		}
	}
	gone, added = nstLineDiff(before.rules, after.rules)
	berthRules := 0
	for _, l := range after.rules {
		if strings.HasPrefix(l, "-A BERTH-FORWARD ") {
			berthRules++
		}
	}
	for _, l := range append(gone, added...) {
		chainLeft := strings.Contains(l, "BERTH-FORWARD") && berthRules == 0
		if isOurs(l) || chainLeft {
			h.t.Errorf("iptables rule differs before/after: %s", l)
		} else {
			h.t.Logf("iptables rule differs (not this test's): %s", l)
		}
	}
}

func TestNetworkStoreCLI(t *testing.T) {
	h := nstNewHost(t)
	before := nstTakeSnapshot(t)

	out := h.must("network", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^[0-9a-f]{12}\s+bridge\s+bridge\s+local$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^[0-9a-f]{12}\s+host\s+host\s+local$`).MatchString(lines[2]) ||
		!regexp.MustCompile(`^[0-9a-f]{12}\s+none\s+null\s+local$`).MatchString(lines[3]) {
		t.Errorf("network ls of a new root:\n%s", out)
	}

	id := strings.TrimSpace(h.must("network", "create", "web"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("create printed %q", id)
	}
	bridge := "br-" + id[:12]
	web := h.inspect("web")
	if web.ID != id || web.Name != "web" || web.Driver != "bridge" || web.Scope != "local" || web.EnableIPv6 ||
		web.IPAM.Driver != "default" || len(web.IPAM.Config) != 1 || web.Options["com.docker.network.bridge.name"] != bridge {
		t.Errorf("inspect web: %+v", web)
	}
	_, subnet, err := net.ParseCIDR(web.IPAM.Config[0].Subnet)
	if err != nil {
		t.Fatalf("subnet %q: %v", web.IPAM.Config[0].Subnet, err)
	}
	// The subnet overlaps none of the host's other routes, and the bridge has the gateway.
	for _, l := range strings.Split(run(t, "ip", "-4", "-o", "route", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] == "default" || strings.Contains(l, "dev "+bridge+" ") {
			continue
		}
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if _, rn, err := net.ParseCIDR(dst); err == nil && (rn.Contains(subnet.IP) || subnet.Contains(rn.IP)) {
			t.Errorf("subnet %s overlaps host route %q", subnet, l)
		}
	}
	ones, _ := subnet.Mask.Size()
	if addr := run(t, "ip", "-4", "-o", "addr", "show", "dev", bridge); !strings.Contains(addr, web.IPAM.Config[0].Gateway+"/"+strconv.Itoa(ones)) {
		t.Errorf("bridge %s address: %s (gateway %s)", bridge, addr, web.IPAM.Config[0].Gateway)
	}
	if ipt := run(t, "iptables-save"); !strings.Contains(ipt, "-A POSTROUTING -s "+subnet.String()+" ! -o "+bridge) ||
		!strings.Contains(ipt, "-A FORWARD -j BERTH-FORWARD") || !strings.Contains(ipt, "-A BERTH-FORWARD -i "+bridge+" -o "+bridge) {
		t.Errorf("iptables rules of %s missing:\n%s", bridge, ipt)
	}

	id2 := strings.TrimSpace(h.must("network", "create", "--subnet", "10.123.0.0/24", "--gateway", "10.123.0.254",
		"--ip-range", "10.123.0.128/25", "--internal", "--label", "team=a", "-o", "com.docker.network.driver.mtu=1400", "db"))
	db := h.inspect("db")
	cfg := db.IPAM.Config[0]
	if cfg.Subnet != "10.123.0.0/24" || cfg.Gateway != "10.123.0.254" || cfg.IPRange != "10.123.0.128/25" || !db.Internal || db.Labels["team"] != "a" {
		t.Errorf("inspect db: %+v", db)
	}
	if l := run(t, "ip", "-o", "link", "show", "br-"+id2[:12]); !strings.Contains(l, "mtu 1400") {
		t.Errorf("db bridge: %s", l)
	}
	if ipt := run(t, "iptables-save"); strings.Contains(ipt, "-s 10.123.0.0/24") {
		t.Error("internal network db has a MASQUERADE rule")
	}

	// ls: the new networks, -q, filters, json.
	if out := h.must("network", "ls", "-q", "--filter", "name=we"); strings.TrimSpace(out) != id[:12] {
		t.Errorf("ls -q --filter name=we: %q", out)
	}
	if out := h.must("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"); out != "db\nweb\n" {
		t.Errorf("ls type=custom: %q", out)
	}
	if out := h.must("network", "ls", "--filter", "label=team=a", "--format", "json"); !strings.Contains(out, `"Name":"db"`) || strings.Contains(out, `"web"`) {
		t.Errorf("ls --format json label=team=a: %q", out)
	}

	// Bad input: clear errors, nothing made.
	h.fails([]string{"network", "create", "--subnet", "10.123.0.128/25", "x"}, "Pool overlaps with other one on this address space", `network "db" (10.123.0.0/24)`)
	for _, l := range strings.Split(run(t, "ip", "-4", "-o", "route", "show", "scope", "link"), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && strings.Contains(f[0], "/") && !strings.Contains(l, "dev br-") && !strings.Contains(l, "dev berth") {
			h.fails([]string{"network", "create", "--subnet", f[0], "x"}, "Pool overlaps", "route "+f[0])
			break
		}
	}
	h.fails([]string{"network", "create", "web"}, "network with name web already exists")
	h.fails([]string{"network", "create", "--subnet", "10.124.0.5/16", "x"}, "it should be 10.124.0.0/16")
	h.fails([]string{"network", "create", "--subnet", "10.124.0/16", "x"}, "not a CIDR")
	h.fails([]string{"network", "create", "--subnet", "10.124.0.0/16", "--gateway", "10.125.0.1", "x"}, "not within subnet 10.124.0.0/16")
	h.fails([]string{"network", "create", "--subnet", "10.124.0.0/16", "--ip-range", "10.126.0.0/24", "x"}, "not within subnet")
	h.fails([]string{"network", "create", "--gateway", "10.125.0.1", "x"}, "must have a corresponding subnet")
	h.fails([]string{"network", "create", "--driver", "overlay", "x"}, `network driver "overlay" is not supported`)
	h.fails([]string{"network", "inspect", "nosuch"}, "network nosuch not found")
	h.fails([]string{"network", "rm", "bridge"}, "bridge is a pre-defined network and cannot be removed")
	h.fails([]string{"network", "rm", "nosuch"}, "network nosuch not found")
	if out := h.must("network", "ls", "-q"); len(strings.Fields(out)) != 5 {
		t.Errorf("failed creates left networks:\n%s", out)
	}

	// rm, prune.
	if out := h.must("network", "rm", "web"); out != "web\n" {
		t.Errorf("rm web printed %q", out)
	}
	if out, _, _ := h.run("n\n", "network", "prune"); !strings.Contains(out, "Are you sure you want to continue? [y/N]") || strings.Contains(out, "Deleted") {
		t.Errorf("prune answered n: %q", out)
	}
	if out := h.must("network", "prune", "-f"); out != "Deleted Networks:\ndb\n\n" {
		t.Errorf("prune -f printed %q", out)
	}
	if out := h.must("network", "prune", "-f"); out != "" {
		t.Errorf("second prune printed %q", out)
	}

	// What a crash leaves behind (a veth and a rule of this root that no state names) goes
	// with prune; another root's does not.
	run(t, "ip", "link", "add", "vethb3rthx1", "type", "veth", "peer", "name", "vethb3rthx2")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "vethb3rthx1").Run() })
	run(t, "ip", "link", "set", "vethb3rthx1", "alias", h.tag)
	run(t, "ip", "link", "add", "vethb3rthy1", "type", "veth", "peer", "name", "vethb3rthy2")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "vethb3rthy1").Run() })
	run(t, "ip", "link", "set", "vethb3rthy1", "alias", "berth:00000000")
	orphanRule := []string{"POSTROUTING", "-s", "10.233.0.0/24", "!", "-o", "br-0rphan000000", "-m", "comment", "--comment", h.tag, "-j", "MASQUERADE"}
	run(t, "iptables", append([]string{"-w", "-t", "nat", "-A"}, orphanRule...)...)
	t.Cleanup(func() { exec.Command("iptables", append([]string{"-w", "-t", "nat", "-D"}, orphanRule...)...).Run() })
	h.must("network", "prune", "-f")
	if err := exec.Command("ip", "link", "show", "vethb3rthx1").Run(); err == nil {
		t.Error("prune kept an orphaned veth of this root")
	}
	if err := exec.Command("ip", "link", "show", "vethb3rthy1").Run(); err != nil {
		t.Error("prune deleted another root's veth")
	}
	run(t, "ip", "link", "del", "vethb3rthy1")
	if err := exec.Command("iptables", append([]string{"-w", "-t", "nat", "-C"}, orphanRule...)...).Run(); err == nil {
		t.Error("prune kept an orphaned iptables rule of this root")
	}
	h.assertHostRestored(before, []string{bridge, "br-" + id2[:12], "vethb3rth"})
}

// nstProc is a process in a new network namespace (a container's stand-in).
type nstProc struct {
	cmd *exec.Cmd
	pid int
}

func nstStartNetns(t *testing.T) *nstProc {
	t.Helper()
	cmd := exec.Command(need(t, "unshare"), "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nstProc{cmd: cmd, pid: cmd.Process.Pid}
	t.Cleanup(p.stop)
	// unshare execs sleep once the namespace exists.
	deadline := time.Now().Add(10 * time.Second)
	for {
		self, _ := os.Readlink("/proc/self/ns/net")
		their, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.pid))
		if err == nil && their != self {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("unshare --net: no new namespace for pid %d", p.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *nstProc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// nsExec runs a command in the process's network namespace.
func (p *nstProc) exec(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(need(t, "nsenter"), append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", p.pid), "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestNetworkStoreEndpoints(t *testing.T) {
	h := nstNewHost(t)
	busybox := need(t, "busybox")
	before := nstTakeSnapshot(t)
	var ours []string

	id := strings.TrimSpace(h.must("network", "create", "--subnet", "10.231.0.0/24", "app"))
	ours = append(ours, "br-"+id[:12], "10.231.0.0/24")

	// 20 attaches at once, each from its own process, on one network.
	const n = 20
	procs := make([]*nstProc, n)
	for i := range procs {
		procs[i] = nstStartNetns(t)
	}
	eps := make([]*network.Endpoint, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eps[i], errs[i] = h.helper("attach", "app", fmt.Sprintf("c%02d", i), procs[i].pid)
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i, e := range eps {
		if errs[i] != nil {
			t.Fatalf("attach %d: %v", i, errs[i])
		}
		ours = append(ours, e.HostIfName)
		if prev, dup := seen[e.IP.String()]; dup {
			t.Errorf("attach %d and %d both got %s", prev, i, e.IP)
		}
		seen[e.IP.String()] = i
		if !strings.HasPrefix(e.IP.String(), "10.231.0.") || e.IP.String() == "10.231.0.1" || e.PrefixLen != 24 {
			t.Errorf("attach %d: address %s/%d", i, e.IP, e.PrefixLen)
		}
		if !regexp.MustCompile(`^veth[0-9a-f]{7}$`).MatchString(e.HostIfName) {
			t.Errorf("host veth name %q", e.HostIfName)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct addresses for %d endpoints", len(seen), n)
	}

	// Inside a namespace: eth0 with its address and MAC, lo up, the default route; it reaches
	// the gateway and another endpoint over the bridge.
	out, err := procs[0].exec(t, "ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, eps[0].CIDR()) {
		t.Errorf("eth0 in the namespace: %v\n%s", err, out)
	}
	if out, _ := procs[0].exec(t, "ip", "link", "show", "eth0"); !strings.Contains(out, eps[0].MAC.String()) || !strings.Contains(out, "mtu 1500") {
		t.Errorf("eth0 link: %s", out)
	}
	if out, _ := procs[0].exec(t, "ip", "route"); !strings.Contains(out, "default via 10.231.0.1 dev eth0") {
		t.Errorf("routes in the namespace: %s", out)
	}
	for _, target := range []string{"10.231.0.1", eps[1].IP.String(), "127.0.0.1"} {
		if out, err := procs[0].exec(t, busybox, "ping", "-c1", "-W2", target); err != nil {
			t.Errorf("ping %s from the namespace: %v\n%s", target, err, out)
		}
	}

	// inspect lists the endpoints; rm refuses the network.
	app := h.inspect("app")
	if c, ok := app.Containers["c00"]; len(app.Containers) != n || !ok || c.IPv4Address != eps[0].CIDR() || c.Name != "c-c00" || c.EndpointID != eps[0].EndpointID {
		t.Errorf("inspect app: %d containers, c00 %+v", len(app.Containers), c)
	}
	h.fails([]string{"network", "rm", "app"}, "error while removing network: network app id "+id+" has active endpoints")

	// Names resolve on the network (the store's side of the embedded DNS).
	s, err := network.Open(h.root, h.runroot)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []string{"c-c03", "ALIAS-c03.", "c03"} {
		if ips := s.Resolve(id, q); len(ips) != 1 || !ips[0].Equal(eps[3].IP) {
			t.Errorf("resolve %q: %v, want %s", q, ips, eps[3].IP)
		}
	}

	// The default network: its bridge appears with the first endpoint and goes with the last.
	extra := nstStartNetns(t)
	def, err := h.helper("attach", "bridge", "d1", extra.pid)
	if err != nil {
		t.Fatal(err)
	}
	defBridge := s.DefaultBridge()
	ours = append(ours, defBridge, def.HostIfName)
	if out := run(t, "ip", "-4", "-o", "addr", "show", "dev", defBridge); !strings.Contains(out, def.Gateway.String()+"/") {
		t.Errorf("default bridge %s: %s", defBridge, out)
	}
	if out, err := extra.exec(t, busybox, "ping", "-c1", "-W2", def.Gateway.String()); err != nil {
		t.Errorf("ping the default gateway: %v\n%s", err, out)
	}
	if _, err := h.helper("detach", "bridge", "d1", 0); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "link", "show", defBridge).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("default bridge after its last endpoint: %s", out)
	}
	if out, _ := extra.exec(t, "ip", "link", "show", "eth0"); !strings.Contains(out, "does not exist") {
		t.Errorf("eth0 after detach: %s", out)
	}

	// A namespace that died: its veth is gone with it; Detach still works and frees the
	// address.
	procs[5].stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := exec.Command("ip", "link", "show", eps[5].HostIfName).Run(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("veth %s outlived its namespace", eps[5].HostIfName)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := h.helper("detach", "app", "c05", 0); err != nil {
		t.Errorf("detach after the namespace died: %v", err)
	}
	if _, err := h.helper("detach", "app", "c05", 0); err != nil {
		t.Errorf("detach twice: %v", err)
	}
	if got := len(h.inspect("app").Containers); got != n-1 {
		t.Errorf("%d endpoints after detaching one of %d", got, n)
	}

	// Everything stops: prune frees the dead endpoints and removes the network, and the
	// host is as before.
	for _, p := range procs {
		p.stop()
	}
	if out := h.must("network", "prune", "-f"); out != "Deleted Networks:\napp\n\n" {
		t.Errorf("prune printed %q", out)
	}
	h.assertHostRestored(before, ours)
}

// TestNetworkStoreNft runs a network with the nftables backend (what a host without iptables
// gets): Berth's table holds the network's rules while it exists and goes with it.
func TestNetworkStoreNft(t *testing.T) {
	h := nstNewHost(t)
	nftPath := need(t, "nft")
	busybox := need(t, "busybox")
	h.env = []string{"BERTH_NETWORK_NAT=nft"}
	before := nstTakeSnapshot(t)

	id := strings.TrimSpace(h.must("network", "create", "--subnet", "10.232.0.0/24", "nftnet"))
	bridge := "br-" + id[:12]
	table := run(t, nftPath, "list", "table", "ip", "berth")
	for _, want := range []string{
		`iifname "` + bridge + `" oifname "` + bridge + `" accept comment "` + h.tag + `"`,
		`ip saddr 10.232.0.0/24 oifname != "` + bridge + `" masquerade comment "` + h.tag + `"`,
	} {
		if !strings.Contains(table, want) {
			t.Errorf("nft table lacks %q:\n%s", want, table)
		}
	}
	if ipt := run(t, "iptables-save"); strings.Contains(ipt, h.tag) {
		t.Errorf("the nft backend made iptables rules:\n%s", ipt)
	}
	p := nstStartNetns(t)
	e, err := h.helper("attach", "nftnet", "n1", p.pid)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := p.exec(t, busybox, "ping", "-c1", "-W2", "10.232.0.1"); err != nil {
		t.Errorf("ping the gateway: %v\n%s", err, out)
	}
	p.stop()
	if out := h.must("network", "prune", "-f"); out != "Deleted Networks:\nnftnet\n\n" {
		t.Errorf("prune printed %q", out)
	}
	if out, err := exec.Command(nftPath, "list", "table", "ip", "berth").CombinedOutput(); err == nil && strings.Contains(string(out), h.tag) {
		t.Errorf("rules left in Berth's nft table:\n%s", out)
	} else if err == nil {
		t.Logf("Berth's nft table is still there (another root uses it):\n%s", out)
	}
	h.assertHostRestored(before, []string{bridge, e.HostIfName})
}
