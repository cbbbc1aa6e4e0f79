package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/runner/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func createConfig(comment string) ocispec.Image {
	created := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	return ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:  ocispec.ImageConfig{Cmd: []string{"/bin/sh"}},
		History: []ocispec.History{{Created: &created, CreatedBy: "test", Comment: comment}}}
}

// contentFiles lists the content store.
func contentFiles(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "content", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestCreateReproducible(t *testing.T) {
	layer := layerTar(t, entry{name: "app/", dir: true}, entry{name: "app/main", body: strings.Repeat("hello ", 1000)},
		entry{name: "app/.wh.gone", body: ""})
	var first *Image
	for run := 0; run < 2; run++ {
		s := openStore(t, t.TempDir(), Options{})
		img, err := s.Create(ctx, CreateOptions{Config: createConfig("one"), Layers: []io.Reader{bytes.NewReader(layer)}, Ref: "created/app:v1"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if img.Manifest.MediaType != MediaTypeDockerManifest || img.Config.MediaType != MediaTypeDockerConfig ||
			img.Layers[0].MediaType != MediaTypeDockerLayerGzip {
			t.Errorf("media types: %s %s %s", img.Manifest.MediaType, img.Config.MediaType, img.Layers[0].MediaType)
		}
		if img.Layers[0].DiffID != digest.FromBytes(layer) || img.Layers[0].ChainID != img.Layers[0].DiffID {
			t.Errorf("DiffID %s, want %s", img.Layers[0].DiffID, digest.FromBytes(layer))
		}
		if !s.HasBlob(img.Layers[0].Digest) {
			t.Error("the compressed blob is not kept")
		}
		f, err := s.OpenBlob(img.Layers[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if digest.FromBytes(b) != img.Layers[0].Digest || int64(len(b)) != img.Layers[0].Size {
			t.Error("kept blob does not match its descriptor")
		}
		if got := readSnapshotFile(t, s, img.Layers[0].ChainID.String(), "app/main"); got != strings.Repeat("hello ", 1000) {
			t.Errorf("snapshot content %q", got[:20])
		}
		looked, err := s.Lookup("created/app:v1")
		if err != nil || looked.ID != img.ID || !slices.Equal(looked.RepoTags, []string{"docker.io/created/app:v1"}) {
			t.Fatalf("Lookup = %+v, %v", looked, err)
		}
		cfg, _, err := s.ConfigOf(img)
		if err != nil || cfg.RootFS.Type != "layers" || !slices.Equal(cfg.RootFS.DiffIDs, []digest.Digest{img.Layers[0].DiffID}) {
			t.Fatalf("config rootfs %+v, %v", cfg, err)
		}
		if img.Size != 6000 || img.Layers[0].UnpackedSize != 6000 {
			t.Errorf("size %d / %d, want 6000", img.Size, img.Layers[0].UnpackedSize)
		}
		if first == nil {
			first = img
			continue
		}
		if img.ID != first.ID || img.Manifest.Digest != first.Manifest.Digest || img.Layers[0].Digest != first.Layers[0].Digest {
			t.Errorf("second run differs: %s %s %s vs %s %s %s", img.ID, img.Manifest.Digest, img.Layers[0].Digest,
				first.ID, first.Manifest.Digest, first.Layers[0].Digest)
		}
	}
}

func TestCreateOnBaseReusesSnapshots(t *testing.T) {
	tr := newTestRegistry(t)
	base := newImage(t, "amd64", [][]byte{baseTar(t)})
	tr.push(base, "team/base", "v1")
	s := openStore(t, t.TempDir(), Options{})
	bimg, err := s.Pull(ctx, tr.host+"/team/base:v1", tr.pullOpts())
	if err != nil {
		t.Fatal(err)
	}
	layer := layerTar(t, entry{name: "etc/", dir: true}, entry{name: "etc/motd", body: "committed"})
	a, err := s.Create(ctx, CreateOptions{Base: bimg, Config: createConfig("a"), Layers: []io.Reader{bytes.NewReader(layer)}})
	if err != nil {
		t.Fatal(err)
	}
	// The base is OCI: so is the new image; the base layer keeps its descriptor and source.
	if a.Manifest.MediaType != ocispec.MediaTypeImageManifest || a.Layers[1].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("media types %s %s", a.Manifest.MediaType, a.Layers[1].MediaType)
	}
	if a.Layers[0].Descriptor.Digest != bimg.Layers[0].Digest || !slices.Equal(a.Layers[0].Sources, []string{tr.host + "/team/base"}) {
		t.Errorf("base layer %+v", a.Layers[0])
	}
	want := snapshot.ChainID([]digest.Digest{bimg.Layers[0].DiffID, digest.FromBytes(layer)})
	if a.Layers[1].ChainID != want {
		t.Errorf("chain ID %s, want %s", a.Layers[1].ChainID, want)
	}
	if len(a.RepoTags) != 0 {
		t.Errorf("untagged image has tags %v", a.RepoTags)
	}
	snaps := snapshotIDs(t, s)
	// Same layer on the same base, other config: a new image, no new snapshot nor blob.
	blobs := len(contentFiles(t, s))
	b, err := s.Create(ctx, CreateOptions{Base: bimg, Config: createConfig("b"), Layers: []io.Reader{bytes.NewReader(layer)}, Ref: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == a.ID || b.Layers[1].Digest != a.Layers[1].Digest {
		t.Errorf("b: %s %s", b.ID, b.Layers[1].Digest)
	}
	if got := snapshotIDs(t, s); !slices.Equal(got, snaps) {
		t.Errorf("snapshots %v, want %v", got, snaps)
	}
	if got := len(contentFiles(t, s)); got != blobs+2 { // config + manifest
		t.Errorf("content files %d, want %d", got, blobs+2)
	}
	if b.Layers[1].UnpackedSize != int64(len("committed")) {
		t.Errorf("reused layer size %d", b.Layers[1].UnpackedSize)
	}
	// Removing both frees the kept blob with the snapshot.
	if _, err := s.Remove(a.ID.String(), false); err != nil {
		t.Fatal(err)
	}
	if !s.HasBlob(b.Layers[1].Digest) {
		t.Fatal("blob freed while b uses it")
	}
	if _, err := s.Remove("b", false); err != nil {
		t.Fatal(err)
	}
	if s.HasBlob(b.Layers[1].Digest) || s.Snapshots().Exists(b.Layers[1].ChainID) {
		t.Error("blob or snapshot of removed images kept")
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestCreateLeavesNothingOnError(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	good := layerTar(t, entry{name: "ok", body: "fine"})
	boom := errors.New("boom")
	_, err := s.Create(ctx, CreateOptions{Config: createConfig("x"), Ref: "x",
		Layers: []io.Reader{bytes.NewReader(good), &failingReader{r: bytes.NewReader(good), err: boom}}})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	// The second layer unpacks outside the root: the first one's snapshot and blob were
	// already made and must go again.
	bad := layerTar(t, entry{name: "../escape", body: "x"})
	_, err = s.Create(ctx, CreateOptions{Config: createConfig("x"), Ref: "x",
		Layers: []io.Reader{bytes.NewReader(good), bytes.NewReader(bad)}})
	if !errors.Is(err, snapshot.ErrUnsafeEntry) {
		t.Fatalf("err = %v", err)
	}
	imgs, _ := s.Images()
	if len(imgs) != 0 {
		t.Errorf("images %v", imgs)
	}
	if got := snapshotIDs(t, s); len(got) != 0 {
		t.Errorf("snapshots left: %v", got)
	}
	if got := contentFiles(t, s); len(got) != 0 {
		t.Errorf("content left: %v", got)
	}
	if got := leftovers(t, s); len(got) != 0 {
		t.Errorf("leftovers: %v", got)
	}
	tmp, _ := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp files left: %d", len(tmp))
	}
}
