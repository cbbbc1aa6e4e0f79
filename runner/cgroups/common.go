package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
)

// common is what the v1 and v2 managers share: the options, the cgroup's
// path, a construction error, and the warnings of the last Create/Update.
type common struct {
	o    options
	path string // relative to the hierarchy (each hierarchy on v1), cleaned
	err  error  // construction error, returned by every method

	mu   sync.Mutex
	warn warnings
}

// Warnings returns the warnings of the last Create or Update.
func (m *common) Warnings() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.warn...)
}

// begin validates res for Create (create=true) or Update, applies the
// defaults, takes m.mu and records the defaults' warnings. On success the
// caller holds m.mu and must call unlock.
func (m *common) begin(res *Resources, create bool) (r Resources, unlock func(), err error) {
	if m.err != nil {
		return r, nil, m.err
	}
	if res == nil {
		res = &Resources{}
	}
	if create {
		err = res.Validate()
	} else {
		err = res.ValidateUpdate()
	}
	if err != nil {
		return r, nil, err
	}
	r, w := res.withDefaults(create)
	m.mu.Lock()
	m.warn = nil
	for _, s := range w {
		m.warn.add(s)
	}
	return r, m.mu.Unlock, nil
}

// noCFS handles a CFS quota or period the kernel cannot apply, as Docker does: --cpus is
// an error, --cpu-quota and --cpu-period are dropped with a warning. The caller holds m.mu.
func (m *common) noCFS(r *Resources, quota, period int64) error {
	if r.NanoCPUs > 0 {
		return errors.New("NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted")
	}
	if period != 0 {
		m.warn.add(WarnCPUPeriod)
	}
	if quota != 0 {
		m.warn.add(WarnCPUQuota)
	}
	return nil
}

// mkdirs creates the cgroup's path below root one level at a time, calling
// before(parent) ahead of each level and after(parent, dir) once it exists.
// Directories it made are appended to *made, so a failed Create can remove
// them (see rollback).
func (m *common) mkdirs(root string, made *[]string, before func(parent string), after func(parent, dir string) error) error {
	cur := root
	for _, part := range strings.Split(m.path, "/") {
		parent := cur
		if before != nil {
			before(parent)
		}
		cur = filepath.Join(cur, part)
		if err := m.o.k.mkdir(cur); err == nil {
			*made = append(*made, cur)
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cgroups: create %s: %w", cur, err)
		}
		if after != nil {
			if err := after(parent, cur); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollback removes, deepest first, the directories a failed Create made.
func (m *common) rollback(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		_ = m.o.k.rmdir(made[i])
	}
}
