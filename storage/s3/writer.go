package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-registry/berth/storage"
	"github.com/minio/minio-go/v7"
)

// partsPerDoubling is how many parts are sent at one part size before the
// size doubles.
const partsPerDoubling = 1000

// abortTimeout bounds the clean-up of a writer closed without a context.
const abortTimeout = time.Minute

// PartSize returns the size of part n (1-based) of a multipart upload whose
// final size is not known in advance: chunk bytes for parts 1-1000, twice
// that for parts 1001-2000, and so on, capped at 5 GiB. The 10,000 parts S3
// allows then hold chunk*1000*1023 bytes (about 5 TiB from 5 MiB parts, 10
// TiB from the default 10 MiB), while a small file never buffers more than
// one chunk.
func PartSize(chunk int64, n int) int64 {
	if n < 1 {
		n = 1
	}
	shift := (n - 1) / partsPerDoubling
	if shift > 30 || chunk<<shift > MaxPartSize || chunk<<shift <= 0 {
		return MaxPartSize
	}
	return chunk << shift
}

// MaxFileSize returns how many bytes a writer with the given chunk size can
// store in S3's 10,000 parts.
func MaxFileSize(chunk int64) int64 {
	var total int64
	for n := 1; n <= MaxParts; n++ {
		total += PartSize(chunk, n)
	}
	return total
}

// newBytesReader returns a seekable reader over a part, so that minio-go
// can retry its upload.
func newBytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// partResult is the outcome of one part upload.
type partResult struct {
	part minio.CompletePart
	buf  []byte
	err  error
}

// writer streams a file into one object: a single PUT at Commit when it is
// smaller than one part, a multipart upload (one part in flight while the
// next fills) otherwise. With appendMode it writes the segment at offset
// base of the file.
type writer struct {
	d    *Driver
	ctx  context.Context // of Writer(): carries the part uploads
	path string
	key  string // the object written: the file, or its new segment

	appendMode bool
	base       int64             // existing size (append)
	exists     bool              // the file existed (append)
	plain      *minio.ObjectInfo // plain object to turn into segment 0 (append)
	stale      []string          // leftover segments to remove at Commit (append)

	buf      []byte // the part being filled
	spare    []byte // a buffer to reuse
	n        int64  // bytes written by this writer
	uploadID string
	nextPart int
	parts    []minio.CompletePart
	inflight chan partResult // the part being uploaded, if any
	err      error           // sticky failure of a part upload
	done     bool
}

func (d *Driver) newWriter(ctx context.Context, p, key string) *writer {
	return &writer{d: d, ctx: ctx, path: p, key: key, nextPart: 1}
}

// Size is the file's size so far.
func (w *writer) Size() int64 { return w.base + w.n }

// Write buffers p, uploading each part as it fills.
func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, storage.ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		limit := int(PartSize(w.d.chunk, w.nextPart))
		k := min(limit-len(w.buf), len(p))
		if w.buf == nil && w.spare != nil {
			w.buf, w.spare = w.spare[:0], nil
		}
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		written += k
		w.n += int64(k)
		if len(w.buf) == limit {
			if err := w.flushPart(); err != nil {
				w.err = err
				return written, err
			}
		}
	}
	return written, nil
}

// flushPart starts the upload of the full buffer as the next part, after
// the previous one has finished.
func (w *writer) flushPart() error {
	if w.nextPart > MaxParts {
		return fmt.Errorf("s3: %s: file larger than %d bytes, the most %d parts hold", w.path, MaxFileSize(w.d.chunk), MaxParts)
	}
	if w.uploadID == "" {
		id, err := w.d.core.NewMultipartUpload(w.ctx, w.d.bucket, w.key, minio.PutObjectOptions{})
		if err != nil {
			return w.d.wrap("write", w.path, err)
		}
		w.uploadID = id
	}
	if err := w.wait(); err != nil {
		return err
	}
	buf, num := w.buf, w.nextPart
	w.buf = nil
	w.nextPart++
	ch := make(chan partResult, 1)
	w.inflight = ch
	ctx, d, key, id := w.ctx, w.d, w.key, w.uploadID
	go func() {
		p, err := d.core.PutObjectPart(ctx, d.bucket, key, id, num, newBytesReader(buf), int64(len(buf)), minio.PutObjectPartOptions{})
		ch <- partResult{part: completePart(p), buf: buf, err: err}
	}()
	return nil
}

func completePart(p minio.ObjectPart) minio.CompletePart {
	return minio.CompletePart{
		PartNumber:        p.PartNumber,
		ETag:              p.ETag,
		ChecksumCRC32:     p.ChecksumCRC32,
		ChecksumCRC32C:    p.ChecksumCRC32C,
		ChecksumSHA1:      p.ChecksumSHA1,
		ChecksumSHA256:    p.ChecksumSHA256,
		ChecksumCRC64NVME: p.ChecksumCRC64NVME,
	}
}

// wait waits for the part in flight, if any.
func (w *writer) wait() error {
	if w.inflight == nil {
		return nil
	}
	r := <-w.inflight
	w.inflight = nil
	w.spare = r.buf[:0]
	if r.err != nil {
		return w.d.wrap("write", w.path, r.err)
	}
	w.parts = append(w.parts, r.part)
	return nil
}

// Commit publishes the file (or the appended segment).
func (w *writer) Commit(ctx context.Context) error {
	if w.done {
		return storage.ErrClosed
	}
	w.done = true
	err := w.err
	if err == nil {
		err = w.commit(ctx)
	}
	if err != nil {
		w.abort(ctx)
		return err
	}
	w.buf, w.spare = nil, nil
	return nil
}

func (w *writer) commit(ctx context.Context) error {
	d := w.d
	if w.appendMode {
		if w.exists && w.n == 0 {
			return nil // nothing to append
		}
		if err := d.removeKeys(ctx, w.stale); err != nil {
			return d.wrap("append: remove stale segments of", w.path, err)
		}
		if w.plain != nil && w.plain.Size > 0 {
			// Appending to a plain object: it becomes segment 0 first
			// (hidden as long as the plain object exists).
			fileKey := d.key(w.path)
			src := []copySource{{key: w.plain.Key, etag: w.plain.ETag, size: w.plain.Size}}
			if err := d.copyInto(ctx, segKey(fileKey, 0), src); err != nil {
				return d.wrap("append: convert", w.path, err)
			}
		}
	}
	if err := w.finish(ctx); err != nil {
		return err
	}
	if w.appendMode && w.plain != nil {
		// The segments take over from the plain object.
		if err := d.client.RemoveObject(ctx, d.bucket, w.plain.Key, minio.RemoveObjectOptions{}); err != nil {
			return d.wrap("append: remove plain object", w.path, err)
		}
	}
	return nil
}

// finish makes w.key visible with everything written.
func (w *writer) finish(ctx context.Context) error {
	d := w.d
	if w.uploadID == "" {
		if err := d.putObject(ctx, w.key, w.buf); err != nil {
			return d.wrap("write", w.path, err)
		}
		return nil
	}
	if err := w.wait(); err != nil {
		return err
	}
	if len(w.buf) > 0 {
		p, err := d.core.PutObjectPart(ctx, d.bucket, w.key, w.uploadID, w.nextPart, newBytesReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
		if err != nil {
			return d.wrap("write", w.path, err)
		}
		w.parts = append(w.parts, completePart(p))
		w.nextPart++
	}
	if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, w.key, w.uploadID, w.parts, minio.PutObjectOptions{}); err != nil {
		return d.wrap("write", w.path, err)
	}
	w.uploadID = ""
	return nil
}

// Cancel drops what the writer wrote.
func (w *writer) Cancel(ctx context.Context) error {
	if w.done {
		return storage.ErrClosed
	}
	w.done = true
	return w.abort(ctx)
}

// Close without Commit equals Cancel, for new files and appends alike.
func (w *writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_ = w.abort(ctx)
	return nil
}

// abort stops the multipart upload, if any, and drops the buffers.
func (w *writer) abort(ctx context.Context) error {
	_ = w.wait()
	w.buf, w.spare = nil, nil
	if w.uploadID == "" {
		return nil
	}
	id := w.uploadID
	w.uploadID = ""
	err := w.d.core.AbortMultipartUpload(ctx, w.d.bucket, w.key, id)
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code == "NoSuchUpload" {
		return nil
	}
	if err != nil {
		return w.d.wrap("cancel", w.path, err)
	}
	return nil
}
