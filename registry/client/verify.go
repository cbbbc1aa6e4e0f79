package client

import (
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// VerifyingReader passes a blob through while counting and hashing it. It
// fails as soon as more than desc.Size bytes arrive (without returning the
// excess), and at EOF when fewer arrived or the digest differs; only then
// does it return io.EOF. Errors wrap ErrSizeMismatch or ErrDigestMismatch
// and name the digest. A negative desc.Size skips the size checks.
type VerifyingReader struct {
	r    io.Reader
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
	err  error
	done bool
}

// NewVerifyingReader returns a VerifyingReader over r for the blob desc.
// An invalid or unsupported digest makes the first Read fail.
func NewVerifyingReader(r io.Reader, desc ocispec.Descriptor) *VerifyingReader {
	v := &VerifyingReader{r: r, desc: desc}
	if err := desc.Digest.Validate(); err != nil {
		v.err = fmt.Errorf("blob %q: %w", desc.Digest, err)
		return v
	}
	v.h = desc.Digest.Algorithm().Hash()
	return v
}

// Resume feeds the bytes of the blob already received (for example the
// partial file of an interrupted download) into the count and hash, so that
// r can be the rest fetched with FetchBlob(…, offset). Call it before Read;
// it returns the number of bytes consumed.
func (v *VerifyingReader) Resume(prefix io.Reader) (int64, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.n > 0 || v.done {
		return 0, errors.New("VerifyingReader.Resume called after Read")
	}
	var lim io.Reader = prefix
	if v.desc.Size >= 0 {
		lim = io.LimitReader(prefix, v.desc.Size+1)
	}
	n, err := io.Copy(v.h, lim)
	v.n = n
	if err != nil {
		return n, err
	}
	if v.desc.Size >= 0 && n > v.desc.Size {
		v.err = fmt.Errorf("blob %s: %w: more than the expected %d bytes", v.desc.Digest, ErrSizeMismatch, v.desc.Size)
		return n, v.err
	}
	return n, nil
}

// Read reads from the underlying reader, checking as described on the type.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.done {
		return 0, io.EOF
	}
	if v.desc.Size >= 0 {
		// Read at most one byte beyond the expected size: enough to notice
		// an overlong blob without reading an endless one.
		if room := v.desc.Size + 1 - v.n; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := v.r.Read(p)
	if v.desc.Size >= 0 && v.n+int64(n) > v.desc.Size {
		keep := int(v.desc.Size - v.n)
		v.h.Write(p[:keep])
		v.n += int64(keep)
		v.err = fmt.Errorf("blob %s: %w: more than the expected %d bytes", v.desc.Digest, ErrSizeMismatch, v.desc.Size)
		return keep, v.err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case err == io.EOF:
		if verr := v.check(); verr != nil {
			v.err = verr
			return n, verr
		}
		v.done = true
		return n, io.EOF
	case err != nil:
		v.err = fmt.Errorf("blob %s: after %d bytes: %w", v.desc.Digest, v.n, err)
		return n, v.err
	}
	return n, nil
}

// check verifies size and digest at EOF.
func (v *VerifyingReader) check() error {
	if v.desc.Size >= 0 && v.n < v.desc.Size {
		return fmt.Errorf("blob %s: %w: truncated, got %d of %d bytes", v.desc.Digest, ErrSizeMismatch, v.n, v.desc.Size)
	}
	if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
		return fmt.Errorf("blob %s: %w: the content's digest is %s", v.desc.Digest, ErrDigestMismatch, got)
	}
	return nil
}

// Verified reports whether the whole blob was read and matched its size
// and digest.
func (v *VerifyingReader) Verified() bool { return v.done && v.err == nil }

// N returns the number of bytes counted so far (including Resume's).
func (v *VerifyingReader) N() int64 { return v.n }

// Close closes the underlying reader when it is an io.Closer.
func (v *VerifyingReader) Close() error {
	if c, ok := v.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
