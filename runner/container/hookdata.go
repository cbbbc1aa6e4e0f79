package container

import (
	"context"
	"encoding/json"
)

// UpdateHook changes the data of the container's hook called name, under the container's
// lock (docker network connect and disconnect change what the network hook does at the next
// starts). f is given the hook's current data (nil when the container does not use the
// hook) and the host pid of the container's init (0 when it is not running), and returns the
// new data; nil data removes the hook from the container. An error of f changes nothing.
//
// The change applies from the container's next start: by a command, or by its monitor,
// which reads the configuration again before each restart of its policy.
func (m *Manager) UpdateHook(ctx context.Context, nameOrID, name string, f func(data json.RawMessage, pid int) (json.RawMessage, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := lookupHook(name); !ok {
		return invalidf("unknown container hook %q", name)
	}
	e, err := m.lock(nameOrID)
	if err != nil {
		return err
	}
	defer e.unlock()
	pid := 0
	if e.st.Status.Active() {
		pid = e.st.Pid
	}
	idx := -1
	var cur json.RawMessage
	for i, r := range e.c.Hooks {
		if r.Name == name {
			idx, cur = i, r.Data
			break
		}
	}
	data, err := f(cur, pid)
	if err != nil {
		return err
	}
	switch {
	case data == nil && idx >= 0:
		e.c.Hooks = append(e.c.Hooks[:idx:idx], e.c.Hooks[idx+1:]...)
	case data == nil:
		return nil
	case idx >= 0:
		e.c.Hooks[idx].Data = data
	default:
		e.c.Hooks = append(e.c.Hooks, HookRef{Name: name, Data: data})
	}
	return m.s.saveConfig(e.c, false)
}

// HookData returns the data of the container's hook called name (nil when it has none) and
// the host pid of its init (0 when not running), without a lock.
func (m *Manager) HookData(nameOrID, name string) (id string, data json.RawMessage, pid int, err error) {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return "", nil, 0, err
	}
	if st.Status.Active() {
		pid = st.Pid
	}
	for _, r := range c.Hooks {
		if r.Name == name {
			return c.ID, r.Data, pid, nil
		}
	}
	return c.ID, nil, pid, nil
}
