package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Hooks are the seam for what the lifecycle does not do itself (networks, volumes). A
// container is started by its monitor, another process than the command that created it,
// so a hook cannot be a closure handed to Create: it is registered by name, in an init
// function of the package that provides it (the same binary runs the commands and the
// monitors), and a container names the hooks it uses, each with its own data, in its
// config (CreateOptions.Hooks).
//
// The monitor calls Prestart for every start (restarts included) when the container's
// init is in its namespaces and before the command runs (the init's host pid gives its
// network namespace: /proc/<pid>/ns/net), and Poststop after every exit. Poststop is also
// called by whichever command finds that the container died without its monitor. Remove
// is called when the container is removed (volumes: rm -v). A hook must be idempotent:
// Poststop and Remove may run more than once for one run after crashes.

// HookRef names a registered hook and its data in a container's config.
type HookRef struct {
	Name string          `json:"Name"`
	Data json.RawMessage `json:"Data,omitempty"`
}

// HookEnv is what a hook is told.
type HookEnv struct {
	// ID and Name are the container's; Dir its state directory (for files of the hook).
	ID, Name, Dir string
	// Data is the HookRef's data.
	Data json.RawMessage
	// Pid is the host pid of the container's init (Prestart only).
	Pid int
}

// Hook is a registered hook; nil functions are skipped.
type Hook struct {
	Prestart func(env HookEnv) error
	Poststop func(env HookEnv) error
	Remove   func(env HookEnv, volumes bool) error
	// Inspect completes what inspect shows of the container (its network settings); running
	// tells whether the container is running. Summary does the same for ps.
	Inspect func(env HookEnv, running bool, r *InspectResult)
	Summary func(env HookEnv, running bool, s *Summary)
}

var hookRegistry struct {
	sync.RWMutex
	m map[string]Hook
}

// RegisterHook makes a hook known under name (from an init function). It panics when the
// name is taken.
func RegisterHook(name string, h Hook) {
	hookRegistry.Lock()
	defer hookRegistry.Unlock()
	if hookRegistry.m == nil {
		hookRegistry.m = map[string]Hook{}
	}
	if _, dup := hookRegistry.m[name]; dup {
		panic("container: hook " + name + " registered twice")
	}
	hookRegistry.m[name] = h
}

func lookupHook(name string) (Hook, bool) {
	hookRegistry.RLock()
	defer hookRegistry.RUnlock()
	h, ok := hookRegistry.m[name]
	return h, ok
}

func (c *Container) hookEnv(ref HookRef, pid int, dir string) HookEnv {
	return HookEnv{ID: c.ID, Name: c.Name, Dir: dir, Data: ref.Data, Pid: pid}
}

// checkHooks verifies that every hook of refs is registered.
func checkHooks(refs []HookRef) error {
	for _, r := range refs {
		if _, ok := lookupHook(r.Name); !ok {
			return fmt.Errorf("unknown container hook %q", r.Name)
		}
	}
	return nil
}

// prestartHooks are the container's Prestart hooks as runtime hooks.
func (c *Container) prestartHooks(dir string) ([]func(pid int) error, error) {
	var out []func(pid int) error
	for _, r := range c.Hooks {
		h, ok := lookupHook(r.Name)
		if !ok {
			return nil, fmt.Errorf("unknown container hook %q", r.Name)
		}
		if h.Prestart == nil {
			continue
		}
		r := r
		out = append(out, func(pid int) error {
			if err := h.Prestart(c.hookEnv(r, pid, dir)); err != nil {
				return fmt.Errorf("hook %s: %w", r.Name, err)
			}
			return nil
		})
	}
	return out, nil
}

// runPoststop runs the Poststop hooks (in reverse order) and joins their errors.
func (c *Container) runPoststop(dir string) error {
	var errs []error
	for i := len(c.Hooks) - 1; i >= 0; i-- {
		r := c.Hooks[i]
		if h, ok := lookupHook(r.Name); ok && h.Poststop != nil {
			if err := h.Poststop(c.hookEnv(r, 0, dir)); err != nil {
				errs = append(errs, fmt.Errorf("hook %s: %w", r.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// runRemoveHooks runs the Remove hooks (in reverse order).
func (c *Container) runRemoveHooks(dir string, volumes bool) error {
	var errs []error
	for i := len(c.Hooks) - 1; i >= 0; i-- {
		r := c.Hooks[i]
		if h, ok := lookupHook(r.Name); ok && h.Remove != nil {
			if err := h.Remove(c.hookEnv(r, 0, dir), volumes); err != nil {
				errs = append(errs, fmt.Errorf("hook %s: %w", r.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// decorateInspect lets the container's hooks complete an inspect result.
func (c *Container) decorateInspect(dir string, running bool, r *InspectResult) {
	for _, ref := range c.Hooks {
		if h, ok := lookupHook(ref.Name); ok && h.Inspect != nil {
			h.Inspect(c.hookEnv(ref, 0, dir), running, r)
		}
	}
}

// decorateSummary lets the container's hooks complete a ps line.
func (c *Container) decorateSummary(dir string, running bool, s *Summary) {
	for _, ref := range c.Hooks {
		if h, ok := lookupHook(ref.Name); ok && h.Summary != nil {
			h.Summary(c.hookEnv(ref, 0, dir), running, s)
		}
	}
}
