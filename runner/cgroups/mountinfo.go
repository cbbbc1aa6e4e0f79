package cgroups

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// v1Subsystems are the cgroup v1 controllers a container uses, in the order they are set up.
var v1Subsystems = []string{"cpuset", "cpu", "cpuacct", "memory", "pids", "blkio", "freezer", "devices"}

func isV1Subsystem(s string) bool {
	for _, x := range v1Subsystems {
		if x == s {
			return true
		}
	}
	return false
}

// parseMountinfo returns, for each v1 controller we use, the mount point of its hierarchy
// among the cgroup (v1) mounts of a /proc/<pid>/mountinfo that lie under root. The first
// mount of a controller wins.
func parseMountinfo(r io.Reader, root string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		mnt := unescapeMountinfo(pf[4])
		if mnt != root && !strings.HasPrefix(mnt, strings.TrimSuffix(root, "/")+"/") {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if isV1Subsystem(opt) {
				if _, dup := out[opt]; !dup {
					out[opt] = mnt
				}
			}
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// scanV1Root finds the controllers' directories in a tree laid out like /sys/fs/cgroup:
// each entry (a directory, or a symlink to one) names the controllers it holds, separated
// by commas ("memory", "cpu,cpuacct"). Symlinks resolve to their target, so "cpu" →
// "cpu,cpuacct" and the combined directory give one directory for both controllers.
func scanV1Root(root string) (map[string]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	// Real directories first, so that a symlink never wins over the directory it names.
	for _, pass := range []bool{false, true} {
		for _, e := range entries {
			isLink := e.Type()&os.ModeSymlink != 0
			if isLink != pass {
				continue
			}
			dir := filepath.Join(root, e.Name())
			if isLink {
				target, err := filepath.EvalSymlinks(dir)
				if err != nil {
					continue
				}
				if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
					continue
				}
				// Prefer the name the link points at when it lies in root.
				if filepath.Dir(target) == filepath.Clean(root) {
					dir = target
				}
			} else if !e.IsDir() {
				continue
			}
			for _, s := range strings.Split(e.Name(), ",") {
				if _, dup := out[s]; isV1Subsystem(s) && !dup {
					out[s] = dir
				}
			}
		}
	}
	return out, nil
}
