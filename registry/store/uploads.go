package store

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // register sha512 for digest.SHA512
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/berth-registry/berth/storage"
	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
)

// An upload session lives entirely in storage (data, start time and the
// running hash state after each chunk), so any replica can continue it. This
// process also keeps the running hash of sessions it served in memory, to
// avoid reading the state back on the next chunk.
type session struct {
	mu     sync.Mutex
	hash   hash.Hash // sha256 of data[0:offset], nil when unknown
	offset int64
}

// copyBufPool holds the buffers uploads stream through.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Upload describes an upload session.
type Upload struct {
	ID        string
	Size      int64
	StartedAt time.Time
}

// ParseUploadID validates an upload session id (a UUID) before it touches a path.
func ParseUploadID(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return "", detailf(ErrUploadUnknown, id, "malformed upload id")
	}
	return id, nil
}

// maxSessions bounds the in-memory hash cache; sessions beyond it are
// evicted (their state is in storage).
const maxSessions = 4096

// session returns the in-memory state of an upload known to exist.
func (s *Store) session(id string) *session {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	ss, ok := s.sessions[id]
	if !ok {
		if len(s.sessions) >= maxSessions {
			for k, v := range s.sessions {
				if v.mu.TryLock() { // idle: safe to forget
					v.mu.Unlock()
					delete(s.sessions, k)
				}
			}
		}
		ss = &session{}
		s.sessions[id] = ss
	}
	return ss
}

func (s *Store) dropSession(id string) {
	s.sessMu.Lock()
	delete(s.sessions, id)
	s.sessMu.Unlock()
}

// StartUpload opens a new upload session in repository name.
func (s *Store) StartUpload(ctx context.Context, name string) (*Upload, error) {
	id := uuid.NewString()
	now := time.Now().UTC()
	if err := storage.PutContent(ctx, s.d, uploadStartedAtPath(name, id), []byte(now.Format(time.RFC3339))); err != nil {
		return nil, err
	}
	return &Upload{ID: id, StartedAt: now}, nil
}

// UploadStatus returns the session's current size.
func (s *Store) UploadStatus(ctx context.Context, name, id string) (*Upload, error) {
	if err := s.checkUpload(ctx, name, id); err != nil {
		return nil, err
	}
	fi, err := s.d.Stat(ctx, uploadDataPath(name, id))
	if errors.Is(err, storage.ErrNotFound) {
		return &Upload{ID: id}, nil // no chunk yet
	}
	if err != nil {
		return nil, err
	}
	return &Upload{ID: id, Size: fi.Size}, nil
}

// checkUpload makes sure the session exists (its start time is written
// when it opens; the data only with the first chunk).
func (s *Store) checkUpload(ctx context.Context, name, id string) error {
	_, err := storage.StatFile(ctx, s.d, uploadStartedAtPath(name, id))
	if errors.Is(err, storage.ErrNotFound) {
		return detailf(ErrUploadUnknown, id, "%s", id)
	}
	return err
}

// CancelUpload removes the session and everything it wrote.
func (s *Store) CancelUpload(ctx context.Context, name, id string) error {
	s.dropSession(id)
	err := s.d.Delete(ctx, uploadPath(name, id))
	if errors.Is(err, storage.ErrNotFound) {
		return detailf(ErrUploadUnknown, id, "%s", id)
	}
	return err
}

// AppendUpload appends r to the session. start is where the client says the
// chunk begins (-1: wherever the upload is); a chunk that does not begin at
// the current size is ErrRangeInvalid and changes nothing. length is the
// number of bytes the client declared (-1: read to EOF); fewer bytes is
// ErrSizeInvalid and the chunk is dropped. It returns the new size.
func (s *Store) AppendUpload(ctx context.Context, name, id string, start int64, r io.Reader, length int64) (int64, error) {
	if err := s.checkUpload(ctx, name, id); err != nil {
		return 0, err
	}
	ss := s.session(id)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n, _, err := s.appendLocked(ctx, ss, name, id, start, r, length, true)
	return n, err
}

func (s *Store) appendLocked(ctx context.Context, ss *session, name, id string, start int64, r io.Reader, length int64, saveState bool) (int64, hash.Hash, error) {
	w, err := s.d.Writer(ctx, uploadDataPath(name, id), true)
	if err != nil {
		return 0, nil, err
	}
	defer w.Close()
	offset := w.Size()
	if start >= 0 && start != offset {
		_ = w.Cancel(ctx)
		return offset, nil, detailf(ErrRangeInvalid, nil, "chunk starts at %d, upload is at %d", start, offset)
	}
	h, err := s.hashAt(ctx, ss, name, id, offset)
	if err != nil {
		_ = w.Cancel(ctx)
		return offset, nil, err
	}
	ss.hash = nil // invalid until the chunk is safely written
	if r != nil && length != 0 {
		src := r
		if length > 0 {
			src = io.LimitReader(r, length)
		}
		bp := copyBufPool.Get().(*[]byte)
		copied, err := io.CopyBuffer(io.MultiWriter(w, h), src, *bp)
		copyBufPool.Put(bp)
		if err == nil && length > 0 && copied != length {
			err = detailf(ErrSizeInvalid, nil, "received %d of %d bytes", copied, length)
		}
		if err != nil {
			_ = w.Cancel(ctx)
			if !errors.Is(err, ErrSizeInvalid) {
				err = fmt.Errorf("%w: reading chunk: %w", ErrUploadInvalid, err)
			}
			return offset, nil, err
		}
	}
	size := w.Size()
	if err := w.Commit(ctx); err != nil {
		return offset, nil, err
	}
	if saveState {
		if err := s.saveHashState(ctx, name, id, offset, size, h); err != nil {
			return size, nil, err
		}
	}
	ss.hash, ss.offset = h, size
	return size, h, nil
}

// hashAt returns the sha256 state of the upload's first offset bytes: from
// memory, from the state saved in storage, or by hashing the data again.
func (s *Store) hashAt(ctx context.Context, ss *session, name, id string, offset int64) (hash.Hash, error) {
	if ss.hash != nil && ss.offset == offset {
		return ss.hash, nil
	}
	h := sha256.New()
	if offset == 0 {
		return h, nil
	}
	state, err := storage.GetContent(ctx, s.d, path.Join(uploadHashStateDir(name, id, digest.SHA256), strconv.FormatInt(offset, 10)))
	if err == nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err == nil {
			return h, nil
		}
		h.Reset()
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	rc, err := s.d.Reader(ctx, uploadDataPath(name, id), 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.CopyN(h, rc, offset); err != nil {
		return nil, fmt.Errorf("rehashing upload %s: %w", id, err)
	}
	return h, nil
}

// saveHashState stores the hash state at offset and drops the one at prev
// (the chunk's start), which is no longer needed to resume.
func (s *Store) saveHashState(ctx context.Context, name, id string, prev, offset int64, h hash.Hash) error {
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	dir := uploadHashStateDir(name, id, digest.SHA256)
	if err := storage.PutContent(ctx, s.d, path.Join(dir, strconv.FormatInt(offset, 10)), state); err != nil {
		return err
	}
	if prev > 0 && prev != offset {
		_ = s.d.Delete(ctx, path.Join(dir, strconv.FormatInt(prev, 10)))
	}
	return nil
}

// CompleteUpload appends the final chunk (r may be nil), checks the whole
// upload against d and, when it matches, stores it as blob d linked into
// repository name. On a digest mismatch the session is removed and nothing
// becomes visible.
func (s *Store) CompleteUpload(ctx context.Context, name, id string, d digest.Digest, start int64, r io.Reader, length int64) (int64, error) {
	if err := s.checkUpload(ctx, name, id); err != nil {
		return 0, err
	}
	ss := s.session(id)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	size, h, err := s.appendLocked(ctx, ss, name, id, start, r, length, false)
	if err != nil {
		return size, err
	}
	var got digest.Digest
	if d.Algorithm() == digest.SHA256 {
		got = digest.NewDigest(digest.SHA256, h)
	} else {
		got, err = s.digestOf(ctx, uploadDataPath(name, id), d.Algorithm())
		if err != nil {
			return size, err
		}
	}
	if got != d {
		s.dropSession(id)
		_ = s.d.Delete(ctx, uploadPath(name, id))
		return size, detailf(ErrDigestInvalid, d, "upload has digest %s, not %s", got, d)
	}
	if _, err := s.blobSize(ctx, d); errors.Is(err, ErrBlobUnknown) {
		if err := s.d.Move(ctx, uploadDataPath(name, id), blobDataPath(d)); err != nil {
			return size, err
		}
	} else if err != nil {
		return size, err
	}
	s.sizes.put(d, size)
	if err := s.linkBlob(ctx, name, d); err != nil {
		return size, err
	}
	s.dropSession(id)
	if err := s.d.Delete(ctx, uploadPath(name, id)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.opts.Logger.Warn("removing finished upload", "repo", name, "upload", id, "err", err)
	}
	return size, nil
}

func (s *Store) digestOf(ctx context.Context, p string, alg digest.Algorithm) (digest.Digest, error) {
	rc, err := s.d.Reader(ctx, p, 0)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return alg.FromReader(rc)
}

// PutBlob stores r as blob d in one go (a monolithic POST with ?digest=):
// the bytes are written once, straight to their final place, and become
// visible only when they match d. length is the declared size or -1.
func (s *Store) PutBlob(ctx context.Context, name string, d digest.Digest, r io.Reader, length int64) (int64, error) {
	if !d.Algorithm().Available() {
		return 0, detailf(ErrDigestInvalid, d, "unsupported digest algorithm")
	}
	src := r
	if length >= 0 {
		src = io.LimitReader(r, length)
	}
	h := d.Algorithm().Hash()
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	check := func(n int64, err error) error {
		if err != nil {
			return fmt.Errorf("%w: reading body: %w", ErrUploadInvalid, err)
		}
		if length >= 0 && n != length {
			return detailf(ErrSizeInvalid, nil, "received %d of %d bytes", n, length)
		}
		if got := digest.NewDigest(d.Algorithm(), h); got != d {
			return detailf(ErrDigestInvalid, d, "content has digest %s, not %s", got, d)
		}
		return nil
	}
	if size, err := s.blobSize(ctx, d); err == nil {
		// Known blob: verify what the client sent, keep the stored copy.
		n, err := io.CopyBuffer(h, src, *bp)
		if err := check(n, err); err != nil {
			return 0, err
		}
		return size, s.linkBlob(ctx, name, d)
	} else if !errors.Is(err, ErrBlobUnknown) {
		return 0, err
	}
	w, err := s.d.Writer(ctx, blobDataPath(d), false)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), src, *bp)
	if err := check(n, err); err != nil {
		_ = w.Cancel(ctx)
		return 0, err
	}
	if err := w.Commit(ctx); err != nil {
		return 0, err
	}
	s.sizes.put(d, n)
	return n, s.linkBlob(ctx, name, d)
}
