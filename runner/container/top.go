package container

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc's times (100 on every Linux architecture Go
// supports).
const clockTicks = 100

// TopResult is docker top's output: column titles and one row per process.
type TopResult struct {
	Titles    []string   `json:"Titles"`
	Processes [][]string `json:"Processes"`
}

// Top lists the container's processes as `ps -ef` shows them (docker top): UID PID PPID
// C STIME TTY TIME CMD, read from /proc for every process of the container's cgroup.
func (m *Manager) Top(ctx context.Context, nameOrID string) (*TopResult, error) {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return nil, err
	}
	if st.Status != StatusRunning && st.Status != StatusPaused {
		return nil, errNotRunning(c.ID)
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	pids, err := cg.Procs()
	if err != nil {
		return nil, err
	}
	res := &TopResult{Titles: []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}, Processes: [][]string{}}
	boot := bootTime()
	uptime := uptimeTicks()
	users := hostUsers()
	now := time.Now()
	for _, pid := range pids {
		row, ok := psRow(pid, boot, uptime, users, now)
		if ok {
			res.Processes = append(res.Processes, row)
		}
	}
	return res, nil
}

func psRow(pid int, boot time.Time, uptime uint64, users map[string]string, now time.Time) ([]string, bool) {
	p := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(p + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(stat)
	open := strings.IndexByte(s, '(')
	close := strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return nil, false
	}
	comm := s[open+1 : close]
	f := strings.Fields(s[close+1:])
	if len(f) < 20 {
		return nil, false
	}
	// f[0] is field 3 (state): field n is f[n-3].
	ppid := f[1]
	ttyNr, _ := strconv.Atoi(f[4])
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	uid := "?"
	if status, err := os.ReadFile(p + "/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if fs := strings.Fields(v); len(fs) > 0 {
					uid = fs[0]
				}
			}
		}
	}
	if name, ok := users[uid]; ok {
		uid = name
	}
	cpu := utime + stime
	c := "0"
	if uptime > start {
		c = strconv.FormatUint(cpu*100/(uptime-start), 10)
	}
	started := boot.Add(time.Duration(start) * time.Second / clockTicks)
	stimeStr := started.Format("15:04")
	if y1, m1, d1 := started.Date(); true {
		if y2, m2, d2 := now.Date(); y1 != y2 || m1 != m2 || d1 != d2 {
			stimeStr = started.Format("Jan02")
		}
	}
	secs := cpu / clockTicks
	cmd := comm
	if b, err := os.ReadFile(p + "/cmdline"); err == nil && len(b) > 0 {
		cmd = strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
	} else {
		cmd = "[" + comm + "]"
	}
	return []string{
		uid, strconv.Itoa(pid), ppid, c, stimeStr, ttyName(ttyNr),
		fmt.Sprintf("%02d:%02d:%02d", secs/3600, secs/60%60, secs%60), cmd,
	}, true
}

func ttyName(nr int) string {
	if nr == 0 {
		return "?"
	}
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return "pts/" + strconv.Itoa(minor+(major-136)*256)
	case major == 4:
		return "tty" + strconv.Itoa(minor)
	case major == 5 && minor == 1:
		return "console"
	}
	return "?"
}

func bootTime() time.Time {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(n, 0)
		}
	}
	return time.Time{}
}

func uptimeTicks() uint64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	up, _ := strconv.ParseFloat(f[0], 64)
	return uint64(up * clockTicks)
}

func hostUsers() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 {
			if _, dup := out[f[2]]; !dup {
				out[f[2]] = f[0]
			}
		}
	}
	return out
}

// StatsResult is one sample of docker stats --no-stream.
type StatsResult struct {
	ID   string `json:"ID"`
	Name string `json:"Name"`
	// CPUPercent is the container's CPU use over the interval, in percent of one CPU
	// (Docker's: up to 100 × the number of CPUs).
	CPUPercent float64 `json:"CPUPercent"`
	// MemoryUsage is the memory charged less the inactive page cache (Docker's figure);
	// MemoryLimit the limit, or the host's memory when there is none.
	MemoryUsage   uint64    `json:"MemoryUsage"`
	MemoryLimit   uint64    `json:"MemoryLimit"`
	MemoryPercent float64   `json:"MemoryPercent"`
	PIDs          uint64    `json:"PIDs"`
	Read          time.Time `json:"Read"`
}

// Stats samples the container's cgroup twice, interval apart (≤ 0: one second), and
// returns CPU %, memory usage and limit, and pids. A container that is not running has
// zero figures.
func (m *Manager) Stats(ctx context.Context, nameOrID string, interval time.Duration) (*StatsResult, error) {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return nil, err
	}
	res := &StatsResult{ID: c.ID, Name: "/" + c.Name, Read: time.Now().UTC()}
	if st.Status != StatusRunning && st.Status != StatusPaused {
		return res, nil
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	if interval <= 0 {
		interval = time.Second
	}
	s1, err := cg.Stats()
	if err != nil {
		return nil, err
	}
	sys1 := systemCPUNS()
	select {
	case <-time.After(interval):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s2, err := cg.Stats()
	if err != nil {
		return res, nil // it stopped meanwhile
	}
	sys2 := systemCPUNS()
	res.Read = time.Now().UTC()
	if sys2 > sys1 && s2.CPU.UsageNS >= s1.CPU.UsageNS {
		res.CPUPercent = float64(s2.CPU.UsageNS-s1.CPU.UsageNS) / float64(sys2-sys1) * float64(runtime.NumCPU()) * 100
	}
	res.MemoryUsage = s2.Memory.Usage
	if s2.Memory.InactiveFile < res.MemoryUsage {
		res.MemoryUsage -= s2.Memory.InactiveFile
	}
	res.MemoryLimit = s2.Memory.Limit
	if total := hostMemory(); res.MemoryLimit == 0 || total > 0 && res.MemoryLimit > total {
		res.MemoryLimit = total
	}
	if res.MemoryLimit > 0 {
		res.MemoryPercent = float64(res.MemoryUsage) / float64(res.MemoryLimit) * 100
	}
	res.PIDs = s2.Pids.Current
	return res, nil
}

// systemCPUNS is the host's total CPU time (all CPUs, all modes) in nanoseconds.
func systemCPUNS() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 1 && fs[0] == "cpu" {
			var ticks uint64
			for _, v := range fs[1:8] {
				n, _ := strconv.ParseUint(v, 10, 64)
				ticks += n
			}
			return ticks * (1e9 / clockTicks)
		}
	}
	return 0
}

func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseUint(fs[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}
