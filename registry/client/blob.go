package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func blobPath(repo Reference, desc ocispec.Descriptor) string {
	return "/v2/" + repo.Repository + "/blobs/" + desc.Digest.String()
}

// FetchBlob opens the blob desc of repository repo (its tag and digest are
// ignored) from byte offset on. With offset > 0 it sends
// "Range: bytes=<offset>-" and accepts 206, or a 200 whose first offset bytes
// it skips. Redirects to blob storage are followed without credentials.
//
// desc.Size must be the real size (negative when unknown): a registry
// announcing another size is an ErrSizeMismatch error. When the stream
// breaks, the reader resumes transparently with a Range request, at most
// Options.MaxRetries times per FetchBlob.
//
// The reader does not verify the digest: wrap it in NewVerifyingReader
// (with Resume for the bytes before offset) and commit the content only
// after it returned io.EOF.
func (c *Client) FetchBlob(ctx context.Context, repo Reference, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := repo.validate(); err != nil {
		return nil, err
	}
	op := "fetching blob " + desc.Digest.String() + " of"
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s %s: invalid digest: %w", op, repo.Name(), err)
	}
	if offset < 0 || (desc.Size >= 0 && offset > desc.Size) {
		return nil, fmt.Errorf("%s %s: offset %d out of range (size %d)", op, repo.Name(), offset, desc.Size)
	}
	if desc.Size > 0 && offset == desc.Size {
		return io.NopCloser(strings.NewReader("")), nil
	}
	b := &blobReader{c: c, ctx: ctx, repo: repo, desc: desc, op: op, pos: offset}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

// blobReader is the body of a blob download that resumes after errors.
type blobReader struct {
	c       *Client
	ctx     context.Context
	repo    Reference
	desc    ocispec.Descriptor
	op      string
	pos     int64 // absolute offset of the next byte
	body    io.ReadCloser
	resumes int
	err     error
}

// errClosed is returned by Read after Close.
var errClosed = errors.New("read of closed blob reader")

// open requests the blob from b.pos on.
func (b *blobReader) open() error {
	name := b.repo.Name()
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if b.pos > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(b.pos, 10)+"-")
	}
	resp, err := b.c.do(b.ctx, &request{
		method: http.MethodGet, registry: b.repo.Registry, target: blobPath(b.repo, b.desc), header: hdr,
		scopes: []string{repoScope(b.repo.Repository, false)}, op: b.op, ref: name,
	})
	if err != nil {
		return err
	}
	fail := func(format string, args ...any) error {
		resp.Body.Close()
		return fmt.Errorf("%s %s: "+format, append([]any{b.op, name}, args...)...)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 && b.desc.Size >= 0 && resp.ContentLength != b.desc.Size {
			return fail("%w: the registry sends %d bytes, the descriptor says %d", ErrSizeMismatch, resp.ContentLength, b.desc.Size)
		}
		if b.pos > 0 {
			// The server ignored Range: skip what we already have.
			if n, err := io.CopyN(io.Discard, resp.Body, b.pos); err != nil {
				return fail("skipping %d bytes of a full response (Range ignored): %w after %d bytes", b.pos, err, n)
			}
		}
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != b.pos {
			return fail("%w: asked for bytes from %d, got Content-Range %q", ErrInvalidResponse, b.pos, sanitize(resp.Header.Get("Content-Range"), 80))
		}
		if total >= 0 && b.desc.Size >= 0 && total != b.desc.Size {
			return fail("%w: the registry says the blob is %d bytes, the descriptor says %d", ErrSizeMismatch, total, b.desc.Size)
		}
	default:
		return responseError(resp, b.op, name)
	}
	b.body = resp.Body
	return nil
}

// parseContentRange parses "bytes start-end/total" (total "*" → -1).
func parseContentRange(h string) (start, total int64, ok bool) {
	h = strings.TrimSpace(h)
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total = t
	}
	return s, total, true
}

// Read reads the blob, resuming with a Range request after a broken stream.
func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.body == nil {
			if err := sleep(b.ctx, b.c.backoff(b.resumes-1)); err != nil {
				b.err = err
				return 0, err
			}
			b.c.log.Debug("resuming blob download", "repo", b.repo.Name(), "digest", b.desc.Digest, "offset", b.pos)
			if err := b.open(); err != nil {
				b.err = err
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		b.pos += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		b.body.Close()
		b.body = nil
		if cerr := b.ctx.Err(); cerr != nil {
			b.err = cerr
			return n, cerr
		}
		if b.resumes >= b.c.maxRetries || (b.desc.Size >= 0 && b.pos >= b.desc.Size) {
			b.err = fmt.Errorf("%s %s: download broken after %d bytes: %w", b.op, b.repo.Name(), b.pos, err)
			return n, b.err
		}
		b.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

// Close ends the download.
func (b *blobReader) Close() error {
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
	if b.err == nil {
		b.err = errClosed
	}
	return nil
}

// BlobExists reports whether repository repo has the blob desc (HEAD).
// A size different from desc.Size (when known) is an ErrSizeMismatch error.
func (c *Client) BlobExists(ctx context.Context, repo Reference, desc ocispec.Descriptor) (bool, error) {
	if err := repo.validate(); err != nil {
		return false, err
	}
	op := "checking blob " + desc.Digest.String() + " in"
	if err := desc.Digest.Validate(); err != nil {
		return false, fmt.Errorf("%s %s: invalid digest: %w", op, repo.Name(), err)
	}
	resp, err := c.do(ctx, &request{
		method: http.MethodHead, registry: repo.Registry, target: blobPath(repo, desc),
		scopes: []string{repoScope(repo.Repository, false)}, op: op, ref: repo.Name(),
	})
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		drain(resp)
		if resp.ContentLength >= 0 && desc.Size >= 0 && resp.ContentLength != desc.Size {
			return false, fmt.Errorf("%s %s: %w: the registry has %d bytes, the descriptor says %d", op, repo.Name(), ErrSizeMismatch, resp.ContentLength, desc.Size)
		}
		return true, nil
	case http.StatusNotFound:
		drain(resp)
		return false, nil
	}
	return false, responseError(resp, op, repo.Name())
}

// ReadBlob fetches a small blob (an image config, typically) into memory and
// verifies it; blobs larger than maxSize are refused with ErrTooLarge.
func (c *Client) ReadBlob(ctx context.Context, repo Reference, desc ocispec.Descriptor, maxSize int64) ([]byte, error) {
	op := "fetching blob " + desc.Digest.String() + " of"
	if desc.Size > maxSize {
		return nil, fmt.Errorf("%s %s: %w: %d bytes, more than the limit of %d", op, repo.Name(), ErrTooLarge, desc.Size, maxSize)
	}
	rc, err := c.FetchBlob(ctx, repo, desc, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r io.Reader = NewVerifyingReader(rc, desc)
	if desc.Size < 0 {
		r = io.LimitReader(r, maxSize+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, repo.Name(), err)
	}
	if int64(len(b)) > maxSize {
		return nil, fmt.Errorf("%s %s: %w: more than the limit of %d bytes", op, repo.Name(), ErrTooLarge, maxSize)
	}
	return b, nil
}
