package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/berth-registry/berth/storage"
	"github.com/opencontainers/go-digest"
)

// sizeCache remembers the size of blobs seen in storage. A blob's bytes never
// change once stored under their digest, so the fact is immutable; the cache
// is only bounded, never invalidated, except when this process deletes data.
type sizeCache struct {
	mu sync.RWMutex
	m  map[digest.Digest]int64
}

const sizeCacheMax = 1 << 18

func (c *sizeCache) get(d digest.Digest) (int64, bool) {
	c.mu.RLock()
	n, ok := c.m[d]
	c.mu.RUnlock()
	return n, ok
}

func (c *sizeCache) put(d digest.Digest, n int64) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= sizeCacheMax {
		c.m = make(map[digest.Digest]int64)
	}
	c.m[d] = n
	c.mu.Unlock()
}

// blobSize returns the size of the stored blob d, from the cache when known.
func (s *Store) blobSize(ctx context.Context, d digest.Digest) (int64, error) {
	if n, ok := s.sizes.get(d); ok {
		return n, nil
	}
	fi, err := storage.StatFile(ctx, s.d, blobDataPath(d))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, detailf(ErrBlobUnknown, d, "%s", d)
	}
	if err != nil {
		return 0, err
	}
	s.sizes.put(d, fi.Size)
	return fi.Size, nil
}

// linked reports whether the blob or manifest d is linked into repository name.
func (s *Store) linked(ctx context.Context, name string, d digest.Digest) (bool, error) {
	for _, p := range []string{layerLinkPath(name, d), revisionLinkPath(name, d)} {
		_, err := storage.StatFile(ctx, s.d, p)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

// linkCache remembers, for a few seconds, that a repository links a blob, so
// a GET that follows a HEAD costs one backend read. Only downloads use it:
// HEAD and every write path check storage, so a delete made through another
// replica is seen by HEAD at once and by GET within linkTTL.
type linkCache struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const (
	linkTTL      = 5 * time.Second
	linkCacheMax = 1 << 16
)

func linkKey(name string, d digest.Digest) string { return name + "@" + string(d) }

func (c *linkCache) fresh(name string, d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[linkKey(name, d)]
	return ok && time.Since(t) < linkTTL
}

func (c *linkCache) add(name string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= linkCacheMax {
		c.m = make(map[string]time.Time)
	}
	c.m[linkKey(name, d)] = time.Now()
}

func (c *linkCache) forget(name string, d digest.Digest) {
	c.mu.Lock()
	delete(c.m, linkKey(name, d))
	c.mu.Unlock()
}

// StatBlobForRead is StatBlob for a download: it may trust a link seen in
// the last few seconds instead of reading it again.
func (s *Store) StatBlobForRead(ctx context.Context, name string, d digest.Digest) (int64, error) {
	if s.links.fresh(name, d) {
		if n, ok := s.sizes.get(d); ok {
			return n, nil
		}
	}
	return s.StatBlob(ctx, name, d)
}

// StatBlob returns the size of blob d as seen from repository name.
func (s *Store) StatBlob(ctx context.Context, name string, d digest.Digest) (int64, error) {
	ok, err := s.linked(ctx, name, d)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, detailf(ErrBlobUnknown, d, "%s", d)
	}
	s.links.add(name, d)
	return s.blobSize(ctx, d)
}

// BlobURL returns a URL the client may fetch blob d from directly, or "" when
// the driver cannot redirect.
func (s *Store) BlobURL(ctx context.Context, method string, d digest.Digest) (string, error) {
	r, ok := s.d.(storage.URLRedirector)
	if !ok || !s.opts.Redirect {
		return "", nil
	}
	return r.RedirectURL(ctx, method, blobDataPath(d))
}

// DeleteBlob unlinks blob d from repository name. The bytes stay in the
// blob store until garbage collection, as in registry:2.
func (s *Store) DeleteBlob(ctx context.Context, name string, d digest.Digest) error {
	if !s.opts.DeleteEnabled {
		return fmt.Errorf("%w: deletes are disabled", ErrUnsupported)
	}
	s.links.forget(name, d)
	err := s.d.Delete(ctx, layerLinkDir(name, d))
	if errors.Is(err, storage.ErrNotFound) {
		return detailf(ErrBlobUnknown, d, "%s", d)
	}
	return err
}

// linkBlob records that repository name holds blob d.
func (s *Store) linkBlob(ctx context.Context, name string, d digest.Digest) error {
	return storage.PutContent(ctx, s.d, layerLinkPath(name, d), []byte(d.String()))
}

// MountBlob links blob d into repository name. With from set, the blob must
// be linked in repository from; without it, it must exist in the registry.
// It returns the blob's size, or ErrBlobUnknown when it cannot be mounted.
func (s *Store) MountBlob(ctx context.Context, name, from string, d digest.Digest) (int64, error) {
	var size int64
	var err error
	if from != "" {
		size, err = s.StatBlob(ctx, from, d)
	} else {
		size, err = s.blobSize(ctx, d)
	}
	if err != nil {
		return 0, err
	}
	if err := s.linkBlob(ctx, name, d); err != nil {
		return 0, err
	}
	return size, nil
}

// OpenBlobAt opens the stored blob d at offset, without checking any
// repository link (callers check with StatBlob first).
func (s *Store) OpenBlobAt(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := s.d.Reader(ctx, blobDataPath(d), offset)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, detailf(ErrBlobUnknown, d, "%s", d)
	}
	return rc, err
}
