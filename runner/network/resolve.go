package network

import (
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// resolveCache is the parsed state file, kept while the file does not change.
type resolveCache struct {
	mtime time.Time
	size  int64
	ino   uint64
	ok    bool
	// names maps network ID -> lower-case name -> endpoints answering to it.
	names map[string]map[string][]*Endpoint
	// ids maps network names to IDs (Resolve also takes a name).
	ids map[string]string
}

// Resolve answers the embedded DNS: the IPv4 addresses, on the network with ID networkID
// (a network name is accepted too),
// of the live containers whose name, alias, short (12 hex) or full ID is name
// (case-insensitive, a trailing dot allowed). The state file is parsed again only when it
// changed; it is read without the lock (it is always replaced whole).
func (s *Store) Resolve(networkID, name string) []net.IP {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" {
		return nil
	}
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	if !s.refreshResolve() {
		return nil
	}
	m, ok := s.resolve.names[networkID]
	if !ok {
		m = s.resolve.names[s.resolve.ids[networkID]]
	}
	var out []net.IP
	for _, e := range m[name] {
		if e.alive() {
			out = append(out, append(net.IP(nil), e.IP...))
		}
	}
	return out
}

// refreshResolve reloads the cache when the state file changed. It reports whether a cache
// is usable.
func (s *Store) refreshResolve() bool {
	path := s.statePath()
	fi, err := os.Stat(path)
	if err != nil {
		s.resolve = resolveCache{}
		return false
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	c := &s.resolve
	if c.ok && c.mtime.Equal(fi.ModTime()) && c.size == fi.Size() && c.ino == ino {
		return true
	}
	st, err := readState(path)
	if err != nil {
		return c.ok // keep the last good view
	}
	names := map[string]map[string][]*Endpoint{}
	ids := map[string]string{}
	for _, sn := range st.Networks {
		ids[sn.Network.Name] = sn.Network.ID
		m := map[string][]*Endpoint{}
		for _, e := range sn.Endpoints {
			keys := map[string]bool{}
			add := func(k string) {
				k = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(k, "/"), "."))
				if k != "" && !keys[k] {
					keys[k] = true
					m[k] = append(m[k], e)
				}
			}
			add(e.ContainerName)
			add(e.ContainerID)
			if len(e.ContainerID) > 12 {
				add(e.ContainerID[:12])
			}
			for _, a := range e.Aliases {
				add(a)
			}
		}
		names[sn.Network.ID] = m
	}
	*c = resolveCache{mtime: fi.ModTime(), size: fi.Size(), ino: ino, ok: true, names: names, ids: ids}
	return true
}
