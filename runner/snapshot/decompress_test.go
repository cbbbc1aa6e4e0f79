package snapshot

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func gzipStd(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipK(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := kgzip.NewWriterLevel(&buf, kgzip.BestSpeed)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdK(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sampleTar makes a layer with files of mixed sizes and compressibility.
func sampleTar(t testing.TB, nfiles int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	ents := []ent{dirEnt("d/")}
	for i := range nfiles {
		size := rng.Intn(40_000)
		if i%50 == 0 {
			size = 1<<20 + rng.Intn(1<<20)
		}
		body := make([]byte, size)
		if i%3 == 0 {
			rng.Read(body) // incompressible
		} else {
			for j := range body {
				body[j] = "abcdefgh \n"[rng.Intn(10)]
			}
		}
		ents = append(ents, file(fmt.Sprintf("d/%d/f%d", i%17, i), string(body)))
	}
	return mkTar(t, ents...)
}

func sha(b []byte) digest.Digest { return digest.FromBytes(b) }

func TestDecompressRoundTrips(t *testing.T) {
	raw := sampleTar(t, 120, 1)
	cases := []struct {
		name, mediaType string
		blob            []byte
		opts            DecompressOptions
	}{
		{"plain oci", ocispec.MediaTypeImageLayer, raw, DecompressOptions{}},
		{"plain docker", MediaTypeDockerLayer, raw, DecompressOptions{}},
		{"gzip stdlib oci", ocispec.MediaTypeImageLayerGzip, gzipStd(t, raw), DecompressOptions{}},
		{"gzip klauspost docker", MediaTypeDockerLayerGzip, gzipK(t, raw), DecompressOptions{}},
		{"gzip docker foreign", MediaTypeDockerForeignLayerGzip, gzipK(t, raw), DecompressOptions{}},
		{"gzip non-distributable", ocispec.MediaTypeImageLayerNonDistributableGzip, gzipStd(t, raw), DecompressOptions{}}, //nolint:staticcheck
		{"gzip no read-ahead", ocispec.MediaTypeImageLayerGzip, gzipStd(t, raw), DecompressOptions{NoReadAhead: true}},
		{"gzip multi-member", ocispec.MediaTypeImageLayerGzip, append(gzipStd(t, raw[:len(raw)/2]), gzipK(t, raw[len(raw)/2:])...), DecompressOptions{}},
		{"zstd oci", ocispec.MediaTypeImageLayerZstd, zstdK(t, raw), DecompressOptions{}},
		{"zstd concurrency 1", ocispec.MediaTypeImageLayerZstd, zstdK(t, raw), DecompressOptions{ZstdConcurrency: 1}},
		{"zstd concurrency 4", ocispec.MediaTypeImageLayerZstd, zstdK(t, raw), DecompressOptions{ZstdConcurrency: 4}},
		{"zstd docker", MediaTypeDockerLayerZstd, zstdK(t, raw), DecompressOptions{}},
		{"zstd non-distributable", ocispec.MediaTypeImageLayerNonDistributableZstd, zstdK(t, raw), DecompressOptions{}}, //nolint:staticcheck
		// Detected by magic bytes whatever the media type says (Docker does the same).
		{"gzip labelled plain", ocispec.MediaTypeImageLayer, gzipK(t, raw), DecompressOptions{}},
		{"zstd labelled gzip", ocispec.MediaTypeImageLayerGzip, zstdK(t, raw), DecompressOptions{}},
		{"media type with parameters", ocispec.MediaTypeImageLayerGzip + "; foo=bar", gzipK(t, raw), DecompressOptions{}},
	}
	want := sha(raw)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc, err := DecompressWithOptions(bytes.NewReader(c.blob), c.mediaType, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if sha(got) != want {
				t.Fatalf("decompressed %d bytes differ from the %d of the tar", len(got), len(raw))
			}
		})
	}
}

func TestDecompressErrors(t *testing.T) {
	raw := mkTar(t, file("a", strings.Repeat("hello ", 10000)))
	gz := gzipK(t, raw)
	for _, mt := range []string{"", "application/octet-stream", "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+bzip2", "application/vnd.docker.image.rootfs.diff.tar.bzip2"} {
		if _, err := Decompress(bytes.NewReader(gz), mt); !errors.Is(err, ErrUnknownMediaType) {
			t.Errorf("media type %q: err = %v", mt, err)
		}
	}
	// Declared compressed, but it is not (or is empty).
	for _, mt := range []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd} {
		if _, err := Decompress(bytes.NewReader(nil), mt); err == nil {
			t.Errorf("empty blob as %s: no error", mt)
		}
	}
	if _, err := Decompress(bytes.NewReader(raw), ocispec.MediaTypeImageLayerGzip); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Errorf("plain tar as gzip: err = %v", err)
	}
	// Corrupt and truncated streams fail while reading, and ApplyLayer reports it.
	corrupt := append([]byte{}, gz...)
	corrupt[len(corrupt)-6] ^= 0xff // CRC32 of the trailer
	truncated := gz[:len(gz)/2]
	zs := zstdK(t, raw)
	zcorrupt := append([]byte{}, zs...)
	zcorrupt[len(zcorrupt)/2] ^= 0x55
	for name, c := range map[string]struct {
		blob []byte
		mt   string
	}{
		"gzip bad crc":   {corrupt, ocispec.MediaTypeImageLayerGzip},
		"gzip truncated": {truncated, ocispec.MediaTypeImageLayerGzip},
		"zstd truncated": {zs[:len(zs)/2], ocispec.MediaTypeImageLayerZstd},
		"zstd corrupt":   {zcorrupt, ocispec.MediaTypeImageLayerZstd},
		"trailing junk":  {append(append([]byte{}, gz...), "junk after the gzip member"...), ocispec.MediaTypeImageLayerGzip},
	} {
		t.Run(name, func(t *testing.T) {
			_, dir, _ := newSnapDir(t)
			rc, err := Decompress(bytes.NewReader(c.blob), c.mt)
			if err != nil {
				return // refused up front: fine
			}
			defer rc.Close()
			if _, _, err := ApplyLayer(context.Background(), dir, rc, ApplyOptions{}); err == nil {
				t.Fatal("ApplyLayer of a broken stream succeeded")
			} else {
				t.Logf("error: %v", err)
			}
		})
	}
}

func TestDecompressCloseEarly(t *testing.T) {
	raw := sampleTar(t, 60, 2)
	before := runtime.NumGoroutine()
	for range 20 {
		rc, err := Decompress(bytes.NewReader(gzipK(t, raw)), ocispec.MediaTypeImageLayerGzip)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(rc, make([]byte, 1000))
		rc.Close()
		rz, err := Decompress(bytes.NewReader(zstdK(t, raw)), ocispec.MediaTypeImageLayerZstd)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(rz, make([]byte, 1000))
		rz.Close()
	}
	// The read-ahead goroutines end on their own once Close is called.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines left after Close (was %d)", n, before)
	}
}

func TestApplyLayerDiffID(t *testing.T) {
	raw := sampleTar(t, 40, 3)
	raw = append(raw, make([]byte, 7*512)...) // padding after the end marker counts
	want := digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(raw)))
	for name, blob := range map[string][]byte{"plain": raw, "gzip": gzipK(t, raw), "zstd": zstdK(t, raw)} {
		t.Run(name, func(t *testing.T) {
			_, dir, _ := newSnapDir(t)
			mt := map[string]string{"plain": ocispec.MediaTypeImageLayer, "gzip": ocispec.MediaTypeImageLayerGzip, "zstd": ocispec.MediaTypeImageLayerZstd}[name]
			rc, err := Decompress(bytes.NewReader(blob), mt)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, st, err := ApplyLayer(context.Background(), dir, rc, ApplyOptions{ExpectDiffID: want})
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("DiffID %s, want %s", got, want)
			}
			if st.TarBytes != int64(len(raw)) || st.Files != 40 {
				t.Errorf("stats %+v", st)
			}
			if readFile(t, filepath.Join(dir, "d/0/f0")) == "" {
				t.Error("d/0/f0 is empty")
			}
		})
	}
	t.Run("mismatch", func(t *testing.T) {
		_, dir, _ := newSnapDir(t)
		wrong := digest.FromString("something else")
		got, _, err := ApplyLayer(context.Background(), dir, bytes.NewReader(raw), ApplyOptions{ExpectDiffID: wrong})
		if !errors.Is(err, ErrDiffIDMismatch) || got != want {
			t.Fatalf("got %s, %v", got, err)
		}
		if !strings.Contains(err.Error(), want.String()) || !strings.Contains(err.Error(), wrong.String()) {
			t.Errorf("error does not name both digests: %v", err)
		}
	})
}

func TestChainID(t *testing.T) {
	// Values computed independently: printf '%s %s' "$chain" "$diff" | sha256sum
	a := digest.Digest("sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb") // sha256("a")
	b := digest.Digest("sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d") // sha256("b")
	c := digest.Digest("sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6") // sha256("c")
	ab := digest.Digest("sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676")
	abc := digest.Digest("sha256:2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106")
	if got := ChainID(nil); got != "" {
		t.Errorf("ChainID() = %q", got)
	}
	if got := ChainID([]digest.Digest{a}); got != a {
		t.Errorf("ChainID(a) = %s", got)
	}
	if got := ChainID([]digest.Digest{a, b}); got != ab {
		t.Errorf("ChainID(a,b) = %s, want %s", got, ab)
	}
	if got := ChainID([]digest.Digest{a, b, c}); got != abc {
		t.Errorf("ChainID(a,b,c) = %s, want %s", got, abc)
	}
	ids := ChainIDs([]digest.Digest{a, b, c})
	if len(ids) != 3 || ids[0] != a || ids[1] != ab || ids[2] != abc {
		t.Errorf("ChainIDs = %v", ids)
	}
}
