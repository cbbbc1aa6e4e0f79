package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// leaseData is what a pull in progress is about to record.
type leaseData struct {
	ChainIDs []digest.Digest `json:"chainIDs"`
	Content  []digest.Digest `json:"content"`
}

// lease is held by a pull from the moment it knows its layers until its image is recorded:
// a flock on the lease file tells other processes that it is alive.
type lease struct {
	f    *os.File
	path string
}

var leaseSeq atomic.Int64

// newLease writes and locks a lease. It is created under the store lock, so a garbage
// collection (which runs under the store lock too) either sees it or finished before the
// pull looks at which snapshots exist.
func (s *Store) newLease(chainIDs, content []digest.Digest) (*lease, error) {
	unlock, err := s.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b, err := json.Marshal(leaseData{ChainIDs: chainIDs, Content: content})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(s.root, "leases", fmt.Sprintf("%d-%d.json", os.Getpid(), leaseSeq.Add(1)))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: lease: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("image store: lock lease %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("image store: lease: %w", err)
	}
	return &lease{f: f, path: path}, nil
}

// release deletes the lease (unlink before unlock, so nobody sees it free and present).
func (l *lease) release() {
	os.Remove(l.path)
	l.f.Close()
}

// liveLeases returns what live pulls hold and deletes the leases of dead ones. Call it under
// the exclusive store lock.
func (s *Store) liveLeases() ([]leaseData, error) {
	dir := filepath.Join(s.root, "leases")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []leaseData
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// Nobody holds it: its pull died.
			os.Remove(p)
			f.Close()
			continue
		}
		var d leaseData
		b, rerr := os.ReadFile(p)
		f.Close()
		if rerr != nil {
			if errors.Is(rerr, fs.ErrNotExist) {
				continue
			}
			return nil, rerr
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("image store: corrupt lease %s: %w", p, err)
		}
		out = append(out, d)
	}
	return out, nil
}
