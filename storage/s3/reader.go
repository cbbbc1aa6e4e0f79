package s3

import (
	"context"
	"errors"
	"io"

	"github.com/berth-registry/berth/storage"
)

// maxResumes is how many times a Reader reopens an object whose connection
// broke mid-stream.
const maxResumes = 3

// objectReader reads one object from pos to end (end < 0: to EOF). When the
// connection breaks it reopens the object at pos, requiring the same ETag
// so that a replaced object is never spliced in.
type objectReader struct {
	d       *Driver
	ctx     context.Context
	key     string
	etag    string
	pos     int64
	end     int64
	body    io.ReadCloser // nil until opened, or after a broken read
	resumes int
	closed  bool
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, storage.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.end >= 0 && r.pos >= r.end {
			return 0, io.EOF
		}
		if r.body == nil {
			length := int64(-1)
			if r.end >= 0 {
				length = r.end - r.pos
			}
			body, _, err := r.d.getObject(r.ctx, r.key, r.pos, length, r.etag)
			if err != nil {
				return 0, r.d.wrap("read", "/"+r.key, err)
			}
			r.body = body
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && (r.end < 0 || r.pos >= r.end):
			return n, io.EOF
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF
		}
		// The stream broke: resume from r.pos with a new request.
		r.body.Close()
		r.body = nil
		if r.end < 0 || r.resumes >= maxResumes || r.ctx.Err() != nil {
			return n, err
		}
		r.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

func (r *objectReader) Close() error {
	r.closed = true
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}

// segmentReader reads a segmented file from pos, one segment after the
// other, each with its own GET.
type segmentReader struct {
	d      *Driver
	ctx    context.Context
	segs   []segment
	pos    int64 // offset in the file
	cur    *objectReader
	closed bool
}

func (r *segmentReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, storage.ErrClosed
	}
	for {
		if r.cur == nil {
			// Find the segment holding pos.
			for len(r.segs) > 0 && r.segs[0].off+r.segs[0].size <= r.pos {
				r.segs = r.segs[1:]
			}
			if len(r.segs) == 0 {
				return 0, io.EOF
			}
			s := r.segs[0]
			r.cur = &objectReader{d: r.d, ctx: r.ctx, key: s.key, etag: s.etag, pos: r.pos - s.off, end: s.size}
		}
		n, err := r.cur.Read(p)
		r.pos += int64(n)
		if errors.Is(err, io.EOF) {
			r.cur.Close()
			r.cur = nil
			r.segs = r.segs[1:]
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (r *segmentReader) Close() error {
	r.closed = true
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}
