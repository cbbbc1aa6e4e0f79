package snapshot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer media types understood by Decompress, besides the OCI ones of image-spec.
const (
	MediaTypeDockerLayer            = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd        = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Compression of a layer blob.
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "uncompressed"
}

// ErrUnknownMediaType is returned for a media type that is not a layer type Decompress knows.
var ErrUnknownMediaType = errors.New("unsupported layer media type")

//nolint:staticcheck // the non-distributable types are deprecated but still found in the wild
var layerMediaTypes = map[string]Compression{
	ocispec.MediaTypeImageLayer:                            Uncompressed,
	ocispec.MediaTypeImageLayerGzip:                        Gzip,
	ocispec.MediaTypeImageLayerZstd:                        Zstd,
	ocispec.MediaTypeImageLayerNonDistributable:            Uncompressed,
	ocispec.MediaTypeImageLayerNonDistributableGzip:        Gzip,
	ocispec.MediaTypeImageLayerNonDistributableZstd:        Zstd,
	MediaTypeDockerLayer:                                   Uncompressed,
	MediaTypeDockerLayerGzip:                               Gzip,
	MediaTypeDockerLayerZstd:                               Zstd,
	MediaTypeDockerForeignLayerGzip:                        Gzip,
	"application/vnd.docker.image.rootfs.foreign.diff.tar": Uncompressed,
}

// LayerCompression returns the compression a layer media type declares, or an error wrapping
// ErrUnknownMediaType.
func LayerCompression(mediaType string) (Compression, error) {
	mt := strings.ToLower(strings.TrimSpace(mediaType))
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	c, ok := layerMediaTypes[mt]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownMediaType, mediaType)
	}
	return c, nil
}

// DecompressOptions tunes Decompress.
type DecompressOptions struct {
	// ZstdConcurrency is the number of goroutines the zstd decoder uses (0: GOMAXPROCS,
	// at most 4). 1 decodes synchronously.
	ZstdConcurrency int
	// NoReadAhead turns off the goroutine that inflates gzip ahead of the reader (which
	// lets decompression and unpacking run on two cores).
	NoReadAhead bool
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress returns the uncompressed tar stream of a layer blob of the given media type.
// The compression is detected from the first bytes as well (as Docker does): a gzip or zstd
// stream is decompressed whatever the type says, so a mislabelled blob still works; the media
// type must still be a known layer type. Close releases the decoder; it does not close r.
func Decompress(r io.Reader, mediaType string) (io.ReadCloser, error) {
	return DecompressWithOptions(r, mediaType, DecompressOptions{})
}

// DecompressWithOptions is Decompress with options.
func DecompressWithOptions(r io.Reader, mediaType string, opts DecompressOptions) (io.ReadCloser, error) {
	declared, err := LayerCompression(mediaType)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		if err == bufio.ErrBufferFull {
			err = nil
		} else {
			return nil, fmt.Errorf("read layer: %w", err)
		}
	}
	comp := Uncompressed
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		comp = Gzip
	case bytes.HasPrefix(magic, zstdMagic):
		comp = Zstd
	case declared != Uncompressed:
		return nil, fmt.Errorf("layer declared as %s (%s) does not start with %s magic bytes", declared, mediaType, declared)
	}
	switch comp {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip layer: %w", err)
		}
		if opts.NoReadAhead {
			return zr, nil
		}
		ra := newReadAhead(zr, zr.Close)
		ra.heavy = true
		return ra, nil
	case Zstd:
		n := opts.ZstdConcurrency
		if n <= 0 {
			n = min(runtime.GOMAXPROCS(0), 4)
		}
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(n), zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, fmt.Errorf("zstd layer: %w", err)
		}
		if opts.NoReadAhead {
			return &zstdReadCloser{zr}, nil
		}
		return newReadAhead(&zstdReadCloser{zr}, func() error { zr.Close(); return nil }), nil
	}
	return io.NopCloser(br), nil
}

type zstdReadCloser struct{ d *zstd.Decoder }

func (z *zstdReadCloser) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("zstd: %w", err)
	}
	return n, err
}

func (z *zstdReadCloser) Close() error {
	z.d.Close()
	return nil
}

// readAhead runs a reader (a decoder) in its own goroutine, a few 1 MiB chunks ahead of the
// consumer, optionally hashing what it reads there: decompression, hashing and unpacking
// then use two cores. The goroutine starts at the first Read, so that ApplyLayer can still
// attach its DiffID hash to a reader that Decompress returned.
type readAhead struct {
	src    io.Reader
	closer func() error
	h      hash.Hash // hashes everything read from src, in the goroutine
	heavy  bool      // src costs more CPU than unpacking (gzip): hash on the consumer side

	chunks    chan *raChunk
	free      chan *raChunk
	done      chan struct{}
	startOnce sync.Once
	started   atomic.Bool
	closeOnce sync.Once
	cur       *raChunk
	err       error
}

type raChunk struct {
	buf []byte
	n   int
	off int
	err error
}

const (
	raChunkSize = 1 << 20
	raChunks    = 4
)

func newReadAhead(src io.Reader, closer func() error) *readAhead {
	return &readAhead{
		src:    src,
		closer: closer,
		chunks: make(chan *raChunk, raChunks),
		free:   make(chan *raChunk, raChunks),
		done:   make(chan struct{}),
	}
}

// hashWith makes the goroutine hash the stream with h; false if reading already started.
func (ra *readAhead) hashWith(h hash.Hash) bool {
	if ra.started.Load() {
		return false
	}
	ra.h = h
	return true
}

func (ra *readAhead) start() {
	ra.started.Store(true)
	for range raChunks {
		ra.free <- &raChunk{buf: make([]byte, raChunkSize)}
	}
	go ra.fill()
}

func (ra *readAhead) fill() {
	defer close(ra.chunks)
	if ra.closer != nil {
		defer ra.closer() // here, not in Close: the decoder is only ever used by this goroutine
	}
	for {
		var c *raChunk
		select {
		case c = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := io.ReadFull(ra.src, c.buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if ra.h != nil && n > 0 {
			ra.h.Write(c.buf[:n])
		}
		c.n, c.off, c.err = n, 0, err
		select {
		case ra.chunks <- c:
		case <-ra.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	ra.startOnce.Do(ra.start)
	for {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.cur == nil {
			c, ok := <-ra.chunks
			if !ok {
				ra.err = io.ErrClosedPipe
				return 0, ra.err
			}
			ra.cur = c
		}
		c := ra.cur
		if c.off < c.n {
			n := copy(p, c.buf[c.off:c.n])
			c.off += n
			return n, nil
		}
		if c.err != nil {
			ra.err = c.err
			continue
		}
		ra.cur = nil
		ra.free <- c
	}
}

// Close stops the goroutine and releases the decoder. It does not wait: a read of the
// source in progress finishes in the background (the source is never read again), so that
// closing never blocks on a stalled network read.
func (ra *readAhead) Close() error {
	ra.closeOnce.Do(func() {
		close(ra.done)
		ra.startOnce.Do(func() { // never started: nothing else uses the decoder
			close(ra.chunks)
			if ra.closer != nil {
				ra.closer()
			}
		})
	})
	return nil
}
