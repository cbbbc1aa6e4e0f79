package cgroups

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"200M", 209715200, ""},
		{"300M", 314572800, ""},
		{"1g", 1073741824, ""},
		{"1G", 1073741824, ""},
		{"512k", 524288, ""},
		{"512K", 524288, ""},
		{"1048576", 1048576, ""},
		{"0", 0, ""},
		{"10b", 10, ""},
		{"10B", 10, ""},
		{"1.5g", 1610612736, ""},
		{"2GiB", 2147483648, ""},
		{"64mb", 67108864, ""},
		{"64 MB", 67108864, ""},
		{"1t", 1 << 40, ""},
		{"1p", 1 << 50, ""},
		{"1x", 0, "invalid suffix: 'x'"},
		{"1kbb", 0, "invalid suffix: 'kbb'"},
		{"1bb", 0, "invalid suffix: 'bb'"},
		{"1mx", 0, "invalid suffix: 'mx'"},
		{"", 0, "invalid size: ''"},
		{"m", 0, "invalid size: 'm'"},
		{"-1", 0, "invalid size: '-1'"},
		{"-200M", 0, "invalid size: '-200M'"},
		{"1.2.3m", 0, "invalid size: '1.2.3m'"},
		{"99999999999p", 0, "too large"},
	} {
		got, err := ParseSize(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseSize(%q) = %d, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseMemorySwap(t *testing.T) {
	if v, err := ParseMemorySwap("-1"); err != nil || v != -1 {
		t.Errorf("ParseMemorySwap(-1) = %d, %v", v, err)
	}
	if v, err := ParseMemorySwap("300M"); err != nil || v != 314572800 {
		t.Errorf("ParseMemorySwap(300M) = %d, %v", v, err)
	}
	if _, err := ParseMemorySwap("-2"); err == nil {
		t.Error("ParseMemorySwap(-2) accepted")
	}
}

func TestParseCPUs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"1.5", 1500000000, ""},
		{"0.01", 10000000, ""},
		{"2", 2000000000, ""},
		{"-1", -1000000000, ""}, // rejected by Validate, as Docker's daemon does
		{"0.0000000001", 0, "value is too precise"},
		{"abc", 0, "failed to parse abc as a rational number"},
	} {
		got, err := ParseCPUs(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseCPUs(%q) = %d, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseCPUs(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestCFS(t *testing.T) {
	var r Resources
	r.SetCPUs(1.5)
	if q, p := r.CFS(); q != 150000 || p != 100000 {
		t.Errorf("--cpus 1.5: quota %d period %d, want 150000 100000", q, p)
	}
	r.SetCPUs(0.5)
	if q, p := r.CFS(); q != 50000 || p != 100000 {
		t.Errorf("--cpus 0.5: quota %d period %d", q, p)
	}
	r = Resources{CPUQuota: 25000, CPUPeriod: 50000}
	if q, p := r.CFS(); q != 25000 || p != 50000 {
		t.Errorf("quota/period: %d %d", q, p)
	}
}

func TestValidate(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		name   string
		r      Resources
		update bool
		err    string
	}{
		{"empty", Resources{}, false, ""},
		{"-m 200M --memory-swap 300M", Resources{Memory: 200 * mb, MemorySwap: 300 * mb}, false, ""},
		{"-m 6M", Resources{Memory: 6 * mb}, false, ""},
		{"-m 4M", Resources{Memory: 4 * mb}, false, "Minimum memory limit allowed is 6MB"},
		{"-m 1", Resources{Memory: 1}, false, "Minimum memory limit allowed is 6MB"},
		{"swap below memory", Resources{Memory: 300 * mb, MemorySwap: 200 * mb}, false,
			"Minimum memoryswap limit should be larger than memory limit, see usage"},
		{"swap without memory", Resources{MemorySwap: 200 * mb}, false,
			"You should always set the Memory limit when using Memoryswap limit, see usage"},
		{"update: swap alone", Resources{MemorySwap: 200 * mb}, true, ""},
		{"--memory-swap -1", Resources{Memory: 200 * mb, MemorySwap: -1}, false, ""},
		{"--memory-swap -1 alone", Resources{MemorySwap: -1}, false, ""},
		{"--memory-swap -2", Resources{Memory: 200 * mb, MemorySwap: -2}, false, "invalid memory swap limit"},
		{"reservation 1M", Resources{MemoryReservation: mb}, false, "Minimum memory reservation allowed is 6MB"},
		{"reservation above memory", Resources{Memory: 100 * mb, MemoryReservation: 200 * mb}, false,
			"Minimum memory limit can not be less than memory reservation limit, see usage"},
		{"--cpus 1.5", Resources{NanoCPUs: 1500000000}, false, ""},
		{"--cpus 2 on 2", Resources{NanoCPUs: 2000000000}, false, ""},
		{"--cpus -1", Resources{NanoCPUs: -1000000000}, false,
			"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{"--cpus 3 on 2", Resources{NanoCPUs: 3000000000}, false,
			"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{"--cpus with --cpu-period", Resources{NanoCPUs: 1e9, CPUPeriod: 100000}, false,
			"Conflicting options: Nano CPUs and CPU Period cannot both be set"},
		{"--cpus with --cpu-quota", Resources{NanoCPUs: 1e9, CPUQuota: 100000}, false,
			"Conflicting options: Nano CPUs and CPU Quota cannot both be set"},
		{"--cpu-period 500", Resources{CPUPeriod: 500}, false,
			"CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{"--cpu-period 2000000", Resources{CPUPeriod: 2000000}, false,
			"CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{"--cpu-quota 999", Resources{CPUQuota: 999}, false, "CPU cfs quota can not be less than 1ms (i.e. 1000)"},
		{"--cpu-quota -1", Resources{CPUQuota: -1}, false, ""},
		{"--cpu-quota -5", Resources{CPUQuota: -5}, false, "invalid CPU cfs quota"},
		{"-c -5 (clamped, not an error)", Resources{CPUShares: -5}, false, ""},
		{"--cpuset-cpus 0-1", Resources{CpusetCpus: "0-1"}, false, ""},
		{"--cpuset-cpus 1-x", Resources{CpusetCpus: "1-x"}, false, "Invalid value 1-x for cpuset cpus: invalid format: 1-x"},
		{"--cpuset-cpus 3-1", Resources{CpusetCpus: "3-1"}, false, "Invalid value 3-1 for cpuset cpus"},
		{"--cpuset-mems a", Resources{CpusetMems: "a"}, false, "Invalid value a for cpuset mems"},
		{"--blkio-weight 600", Resources{BlkioWeight: 600}, false, ""},
		{"--blkio-weight 5", Resources{BlkioWeight: 5}, false, "Range of blkio weight is from 10 to 1000"},
		{"--blkio-weight 1001", Resources{BlkioWeight: 1001}, false, "Range of blkio weight is from 10 to 1000"},
		{"--pids-limit -1", Resources{PidsLimit: -1}, false, ""},
		{"bad device rule", Resources{Devices: []DeviceRule{{Type: 'x', Access: "r"}}}, false, "invalid device rule type"},
		{"default device rules", Resources{Devices: DefaultDeviceRules()}, false, ""},
	} {
		err := c.r.validate(2, c.update)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: unexpected error %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	r, w := (&Resources{Memory: 100 << 20}).withDefaults(true)
	if r.MemorySwap != 200<<20 || len(w) != 0 {
		t.Errorf("-m 100M: swap %d warnings %v; want Docker's default of twice the memory", r.MemorySwap, w)
	}
	r, _ = (&Resources{Memory: 100 << 20}).withDefaults(false)
	if r.MemorySwap != 0 {
		t.Errorf("update -m 100M: swap %d, want unchanged (0)", r.MemorySwap)
	}
	r, w = (&Resources{CPUShares: -5}).withDefaults(true)
	if r.CPUShares != 2 || len(w) != 1 {
		t.Errorf("-c -5: %d %v", r.CPUShares, w)
	}
	r, w = (&Resources{CPUShares: 500000}).withDefaults(true)
	if r.CPUShares != 262144 || len(w) != 1 {
		t.Errorf("-c 500000: %d %v", r.CPUShares, w)
	}
	_, w = (&Resources{OomKillDisable: true}).withDefaults(true)
	if len(w) != 1 || !strings.Contains(w[0], "OOM killer is disabled for the container, but no memory limit is set") {
		t.Errorf("--oom-kill-disable without -m: %v", w)
	}
}

func TestCPUSharesToWeight(t *testing.T) {
	for _, c := range []struct{ shares, want, legacy uint64 }{
		{0, 0, 0},
		{1, 1, 1},
		{2, 1, 1},
		{512, 59, 20},
		{1024, 100, 39},
		{2000, 170, 77},
		{262144, 10000, 10000},
		{300000, 10000, 10000},
	} {
		if got := CPUSharesToWeight(c.shares); got != c.want {
			t.Errorf("CPUSharesToWeight(%d) = %d, want %d", c.shares, got, c.want)
		}
		if got := LegacyCPUSharesToWeight(c.shares); got != c.legacy {
			t.Errorf("LegacyCPUSharesToWeight(%d) = %d, want %d", c.shares, got, c.legacy)
		}
	}
	// Monotonic over the whole range and always within [1, 10000].
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s++ {
		w := CPUSharesToWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("CPUSharesToWeight(%d) = %d after %d", s, w, prev)
		}
		prev = w
	}
}

func TestBlkioWeightToIOWeight(t *testing.T) {
	for _, c := range []struct {
		in   uint16
		want uint64
	}{{0, 0}, {10, 1}, {500, 4950}, {600, 5960}, {1000, 10000}} {
		if got := BlkioWeightToIOWeight(c.in); got != c.want {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestSwapToV2(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		swap, mem, want int64
		err             bool
	}{
		{300 * mb, 200 * mb, 100 * mb, false},
		{400 * mb, 200 * mb, 200 * mb, false},
		{200 * mb, 200 * mb, 0, false},
		{-1, 200 * mb, -1, false},
		{0, 200 * mb, 0, false},
		{0, -1, -1, false},
		{300 * mb, 0, 0, true},
		{100 * mb, 200 * mb, 0, true},
	} {
		got, err := SwapToV2(c.swap, c.mem)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("SwapToV2(%d, %d) = %d, %v; want %d (error %v)", c.swap, c.mem, got, err, c.want, c.err)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := ParseCPUList("0-2,5,7-8,1")
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5, 7, 8}) {
		t.Errorf("ParseCPUList = %v, %v", got, err)
	}
	for _, bad := range []string{"a", "1-", "-1", "2-1", "1,,2"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) accepted", bad)
		}
	}
	if ok, _ := listSubset("1-2", "0-3"); !ok {
		t.Error("1-2 not in 0-3")
	}
	if ok, _ := listSubset("4", "0-3"); ok {
		t.Error("4 in 0-3")
	}
}

func TestDeviceRuleString(t *testing.T) {
	rules := DefaultDeviceRules()
	want := []string{"a *:* rwm", "c *:* m", "b *:* m", "c 1:3 rwm"}
	for i, w := range want {
		if got := rules[i].String(); got != w {
			t.Errorf("rule %d = %q, want %q", i, got, w)
		}
	}
	if rules[0].Allow {
		t.Error("the first default rule must deny everything")
	}
}
