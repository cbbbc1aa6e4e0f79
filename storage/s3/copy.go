package s3

import (
	"context"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
)

// copySource is an object (or segment) to copy, pinned by its ETag.
type copySource struct {
	key  string
	etag string
	size int64
}

// copyRange is a byte range of a source, one part of a server-side copy.
type copyRange struct {
	src       copySource
	off, size int64
}

// copyPlan splits sources into UploadPartCopy ranges: each source in as few
// equal ranges of at most 5 GiB as possible. ok is false when the sources
// cannot be joined server-side: a range other than the last would be under
// the 5 MiB minimum part size, or more than 10,000 parts would be needed.
func copyPlan(srcs []copySource) (ranges []copyRange, ok bool) {
	lastSrc := -1 // the last non-empty source
	for i, s := range srcs {
		if s.size > 0 {
			lastSrc = i
		}
	}
	if lastSrc < 0 {
		return nil, false
	}
	for i, s := range srcs[:lastSrc+1] {
		if s.size == 0 {
			continue // adds nothing
		}
		pieces := (s.size + MaxPartSize - 1) / MaxPartSize
		piece := (s.size + pieces - 1) / pieces
		for off := int64(0); off < s.size; off += piece {
			n := min(piece, s.size-off)
			last := i == lastSrc && off+n == s.size
			if n < MinChunkSize && !last {
				return nil, false
			}
			ranges = append(ranges, copyRange{src: s, off: off, size: n})
		}
	}
	return ranges, len(ranges) <= MaxParts
}

// copyInto writes the concatenation of srcs to dstKey: CopyObject for one
// source of at most 5 GiB (1 request), UploadPartCopy ranges when the
// sources allow it (parts+2 requests), and otherwise by streaming them
// through a new writer (one GET per source, uploads as for any write).
func (d *Driver) copyInto(ctx context.Context, dstKey string, srcs []copySource) error {
	if len(srcs) == 1 && srcs[0].size <= MaxPartSize {
		s := srcs[0]
		_, err := d.client.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: d.bucket, Object: dstKey},
			minio.CopySrcOptions{Bucket: d.bucket, Object: s.key, MatchETag: s.etag})
		return err
	}
	if ranges, ok := copyPlan(srcs); ok {
		return d.copyParts(ctx, dstKey, ranges)
	}
	return d.copyStream(ctx, dstKey, srcs)
}

// copyParts joins ranges into dstKey with a multipart upload of
// UploadPartCopy parts.
func (d *Driver) copyParts(ctx context.Context, dstKey string, ranges []copyRange) (err error) {
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, dstKey, minio.PutObjectOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = d.core.AbortMultipartUpload(context.WithoutCancel(ctx), d.bucket, dstKey, id)
		}
	}()
	parts := make([]minio.CompletePart, 0, len(ranges))
	for i, r := range ranges {
		hdr := map[string]string{"x-amz-copy-source-if-match": r.src.etag}
		if r.src.etag == "" {
			hdr = nil
		}
		p, err := d.core.CopyObjectPart(ctx, d.bucket, r.src.key, d.bucket, dstKey, id, i+1, r.off, r.size, hdr)
		if err != nil {
			return fmt.Errorf("copy part %d from %s: %w", i+1, r.src.key, err)
		}
		parts = append(parts, p)
	}
	_, err = d.core.CompleteMultipartUpload(ctx, d.bucket, dstKey, id, parts, minio.PutObjectOptions{})
	return err
}

// copyStream reads srcs one after the other into a new object at dstKey.
func (d *Driver) copyStream(ctx context.Context, dstKey string, srcs []copySource) error {
	w := d.newWriter(ctx, "/"+dstKey, dstKey)
	defer w.Close()
	for _, s := range srcs {
		r := &objectReader{d: d, ctx: ctx, key: s.key, etag: s.etag, end: s.size}
		_, err := io.Copy(w, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return w.Commit(ctx)
}
