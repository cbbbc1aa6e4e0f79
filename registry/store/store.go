// Package store implements the OCI distribution rules on top of a
// storage.Driver: blobs stored once by digest, per-repository links, upload
// sessions, manifests, tags and referrers, in distribution's v2 layout
// (see paths.go).
//
// Everything the store caches in memory (blob sizes, manifest bytes) is an
// immutable fact keyed by digest and can be rebuilt from storage; tags and
// links are read from storage on every request, so replicas sharing one
// storage backend stay consistent.
package store

import (
	"log/slog"
	"sync"

	"github.com/berth-registry/berth/storage"
)

// Options tune a Store.
type Options struct {
	// DeleteEnabled allows deleting blobs and manifests (storage.delete.enabled).
	DeleteEnabled bool
	// Redirect hands out driver URLs for blob reads when the driver can.
	Redirect bool
	// Logger receives background warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the registry's view of a storage.Driver. It is safe for concurrent use.
type Store struct {
	d    storage.Driver
	opts Options

	sizes     sizeCache
	links     linkCache
	manifests manifestCache

	sessMu   sync.Mutex
	sessions map[string]*session
}

// New returns a Store over d.
func New(d storage.Driver, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Store{d: d, opts: opts, sessions: make(map[string]*session)}
}

// Driver returns the storage driver under the store.
func (s *Store) Driver() storage.Driver { return s.d }
