package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-registry/berth/runner/cgroups"
)

// What the kernel supports, decided as Docker's sysinfo does (at the hierarchy's root),
// so that run and create can discard what cannot be applied with Docker's warning, before
// the container exists (its cgroup is made later, by its monitor, at each start).

// cgroupV1Mount returns the mount point of the cgroup v1 hierarchy that has controller.
func cgroupV1Mount(controller string) (string, bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if opt == controller {
				return pf[4], true
			}
		}
	}
	return "", false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// blkioWeightSupported: v1 needs blkio.weight (CFQ) or blkio.bfq.weight at the blkio
// hierarchy's root; v2 the io controller.
func blkioWeightSupported() bool {
	if v2, err := cgroups.IsV2(); err == nil && v2 {
		b, err := os.ReadFile(filepath.Join(cgroups.DefaultRoot, "cgroup.controllers"))
		return err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " io ")
	}
	mnt, ok := cgroupV1Mount("blkio")
	return ok && (fileExists(filepath.Join(mnt, "blkio.weight")) || fileExists(filepath.Join(mnt, "blkio.bfq.weight")))
}

// swapLimitSupported: v1 needs memory.memsw.limit_in_bytes (swap accounting); v2 always
// has memory.swap.max in child cgroups.
func swapLimitSupported() bool {
	if v2, err := cgroups.IsV2(); err == nil && v2 {
		return true
	}
	mnt, ok := cgroupV1Mount("memory")
	return ok && fileExists(filepath.Join(mnt, "memory.memsw.limit_in_bytes"))
}
