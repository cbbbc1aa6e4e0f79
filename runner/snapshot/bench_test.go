package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchLayer is a ~100 MB layer shaped like a root filesystem: 400 directories, ~4000 files
// (mostly small, a few MB-sized; mean ~25 KB as in a Debian or Go toolchain tree), 500
// symlinks and 50 hardlinks, with contents that compress about 3:1 like binaries and text.
type benchBlobs struct{ raw, gz, zs []byte }

var benchLayerOnce = sync.OnceValue(func() benchBlobs {
	rng := rand.New(rand.NewSource(42))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	uid, gid := os.Geteuid(), os.Getegid()
	// A pool of "words" gives realistic, compressible but not trivial content.
	words := make([][]byte, 1024)
	for i := range words {
		w := make([]byte, 2+rng.Intn(10))
		for j := range w {
			w[j] = byte('a' + rng.Intn(26))
		}
		words[i] = w
	}
	fill := func(b []byte) {
		for i := 0; i < len(b); {
			if rng.Intn(100) == 0 { // some incompressible runs
				n := min(len(b)-i, 16+rng.Intn(48))
				rng.Read(b[i : i+n])
				i += n
				continue
			}
			i += copy(b[i:], words[rng.Intn(len(words))])
			if i < len(b) {
				b[i] = ' '
				i++
			}
		}
	}
	var dirs []string
	for i := range 400 {
		d := fmt.Sprintf("usr/lib/pkg%02d/sub%03d", i%40, i)
		dirs = append(dirs, d)
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid, ModTime: testTime})
	}
	total := 0
	var files []string
	body := make([]byte, 4<<20)
	for i := 0; total < 100<<20; i++ {
		var size int
		switch r := rng.Intn(1000); { // mean ~25 KB, like a Debian or Go toolchain tree
		case r < 800:
			size = rng.Intn(8 << 10)
		case r < 985:
			size = 8<<10 + rng.Intn(56<<10)
		default:
			size = 64<<10 + rng.Intn(2<<20-64<<10)
		}
		name := fmt.Sprintf("%s/file%05d", dirs[rng.Intn(len(dirs))], i)
		fill(body[:size])
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size), Uid: uid, Gid: gid, ModTime: testTime})
		tw.Write(body[:size])
		files = append(files, name)
		total += size
	}
	for i := range 500 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/link%03d", dirs[i%len(dirs)], i), Typeflag: tar.TypeSymlink,
			Linkname: "../" + filepath.Base(files[rng.Intn(len(files))]), Mode: 0o777, Uid: uid, Gid: gid, ModTime: testTime})
	}
	for i := range 50 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/hard%03d", dirs[i], i), Typeflag: tar.TypeLink,
			Linkname: files[i], Mode: 0o644, Uid: uid, Gid: gid, ModTime: testTime})
	}
	tw.Close()
	raw := buf.Bytes()
	var gz bytes.Buffer
	w, _ := kgzip.NewWriterLevel(&gz, kgzip.DefaultCompression) // what docker push uses
	w.Write(raw)
	w.Close()
	return benchBlobs{raw, gz.Bytes(), zstdK(nil, raw)}
})

func benchLayer() (raw, gz, zs []byte) {
	b := benchLayerOnce()
	return b.raw, b.gz, b.zs
}

func benchDir(b *testing.B) string {
	if d := os.Getenv("BERTH_BENCH_DIR"); d != "" {
		d, err := os.MkdirTemp(d, "snapbench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

// BenchmarkApply unpacks a ~100 MB layer (see benchLayer) into a fresh directory per
// iteration. Sub-benchmarks: the plain tar with Apply and with ApplyLayer (sha256 DiffID),
// through gzip and zstd decompression, and, side by side as anchors, GNU tar extracting
// the same streams and klauspost gzip alone. Set BERTH_BENCH_DIR to unpack elsewhere than
// the test temp dir: /dev/shm takes the disk out, a directory away from /tmp avoids the ext4
// effect described below. Use -count=1 (e.g. -benchtime=5x): the trees of one run are
// deleted when it ends.
func BenchmarkApply(b *testing.B) {
	raw, gz, zs := benchLayer()
	b.Logf("layer: %d MB tar, %d MB gzip, %d MB zstd", len(raw)>>20, len(gz)>>20, len(zs)>>20)
	// Trees are removed at the very end, not between iterations: ext4 without a journal (as
	// here) skips inodes freed in the last 60-360 s when allocating (recently_deleted()),
	// which makes creating files in a block group full of them many times slower. Measuring
	// after mass deletions (or in /tmp, where every test deletes its temp dirs) measures that.
	base := benchDir(b)
	n := 0
	run := func(b *testing.B, f func(dir string) error) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			b.StopTimer()
			n++
			dir := filepath.Join(base, fmt.Sprint(n))
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := f(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	b.Run("tar", func(b *testing.B) {
		run(b, func(dir string) error {
			_, err := Apply(ctx, dir, bytes.NewReader(raw), ApplyOptions{})
			return err
		})
	})
	b.Run("tar+diffid", func(b *testing.B) {
		run(b, func(dir string) error {
			_, _, err := ApplyLayer(ctx, dir, bytes.NewReader(raw), ApplyOptions{})
			return err
		})
	})
	for _, c := range []struct {
		name, mt string
		blob     []byte
		opts     DecompressOptions
	}{
		{"gzip+diffid", ocispec.MediaTypeImageLayerGzip, gz, DecompressOptions{}},
		{"gzip-noreadahead+diffid", ocispec.MediaTypeImageLayerGzip, gz, DecompressOptions{NoReadAhead: true}},
		{"zstd+diffid", ocispec.MediaTypeImageLayerZstd, zs, DecompressOptions{}},
		{"zstd-c1+diffid", ocispec.MediaTypeImageLayerZstd, zs, DecompressOptions{ZstdConcurrency: 1}},
		{"zstd-c2+diffid", ocispec.MediaTypeImageLayerZstd, zs, DecompressOptions{ZstdConcurrency: 2}},
		{"zstd-c4+diffid", ocispec.MediaTypeImageLayerZstd, zs, DecompressOptions{ZstdConcurrency: 4}},
	} {
		b.Run(c.name, func(b *testing.B) {
			run(b, func(dir string) error {
				rc, err := DecompressWithOptions(bytes.NewReader(c.blob), c.mt, c.opts)
				if err != nil {
					return err
				}
				defer rc.Close()
				_, _, err = ApplyLayer(ctx, dir, rc, ApplyOptions{})
				return err
			})
		})
	}
	// Anchors.
	b.Run("anchor-gunzip-only", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			rc, err := DecompressWithOptions(bytes.NewReader(gz), ocispec.MediaTypeImageLayerGzip, DecompressOptions{NoReadAhead: true})
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
		}
	})
	gnutar, err := exec.LookPath("tar")
	if err != nil {
		b.Logf("no GNU tar: anchors skipped")
		return
	}
	for _, c := range []struct {
		name string
		blob []byte
		args []string
	}{
		{"anchor-gnutar", raw, []string{"-x"}},
		{"anchor-gnutar-gzip", gz, []string{"-xz"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			run(b, func(dir string) error {
				cmd := exec.Command(gnutar, append(c.args, "-C", dir)...)
				cmd.Stdin = bytes.NewReader(c.blob)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		})
	}
}
