package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// networkData is a Network as stored (the default JSON encoding, not inspect's).
type networkData Network

// storedNetwork is one network in the state file.
type storedNetwork struct {
	Network networkData `json:"network"`
	// LastIP is the IPAM cursor: the address allocated last (the next one follows it).
	LastIP string `json:"lastIP,omitempty"`
	// Endpoints by container ID.
	Endpoints map[string]*Endpoint `json:"endpoints,omitempty"`
}

// state is the state file of a root.
type state struct {
	Version  int              `json:"version"`
	Networks []*storedNetwork `json:"networks"`
}

func (sn *storedNetwork) net() *Network { return (*Network)(&sn.Network) }

// public returns a copy of the network for callers, with its live endpoints.
func (sn *storedNetwork) public() *Network {
	n := *sn.net()
	n.Labels = copyMap(n.Labels)
	n.Options = copyMap(n.Options)
	n.Endpoints = nil
	for _, e := range sn.sortedEndpoints() {
		if e.alive() {
			c := *e
			n.Endpoints = append(n.Endpoints, &c)
		}
	}
	return &n
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// stateFile and lockFile are the names under <root>/network.
const (
	stateFile = "networks.json"
	lockFile  = "lock"
)

// readState reads the state file; a missing file is an empty state.
func readState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read network state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("network state %s is corrupt: %w", path, err)
	}
	if st.Version > stateVersion {
		return nil, fmt.Errorf("network state %s has version %d, newer than this pull-run's %d", path, st.Version, stateVersion)
	}
	st.Version = stateVersion
	return &st, nil
}

// writeState replaces the state file atomically (temporary file, fsync, rename).
func writeState(path string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".networks-*.tmp")
	if err != nil {
		return fmt.Errorf("write network state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write network state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write network state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write network state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write network state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// flock takes an exclusive lock on f, waiting for it (interrupted waits are retried).
func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func funlock(f *os.File) { unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// randomHex returns n random hex digits.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)[:n]
}

// newID is a random 64-hex network or endpoint ID that is not all digits (Docker avoids
// those too: they read as numbers in some places).
func newID() string {
	for {
		id := randomHex(64)
		for _, c := range id[:12] {
			if c > '9' {
				return id
			}
		}
	}
}

// now is the clock (UTC, like Docker's timestamps).
func now() time.Time { return time.Now().UTC() }
