package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/registry/client"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarEntries lists an archive's entries and reads the named ones.
func tarEntries(t *testing.T, b []byte) (names []string, files map[string][]byte) {
	t.Helper()
	files = map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		body, _ := io.ReadAll(tr)
		files[h.Name] = body
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	src := newTestRegistry(t)
	base := newImage(t, "amd64", [][]byte{baseTar(t)})
	src.push(base, "team/base", "v1")
	s := openStore(t, t.TempDir(), Options{})
	bimg, err := s.Pull(ctx, src.host+"/team/base:v1", src.pullOpts())
	if err != nil {
		t.Fatal(err)
	}
	layer := layerTar(t, entry{name: "etc/", dir: true}, entry{name: "etc/motd", body: "saved"})
	img, err := s.Create(ctx, CreateOptions{Base: bimg, Config: createConfig("s"), Layers: []io.Reader{bytes.NewReader(layer)}, Ref: "saved/app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(ctx, &buf, []string{"saved/app:v1", src.host + "/team/base:v1"}, SaveOptions{Client: src.c}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	names, files := tarEntries(t, buf.Bytes())
	for _, want := range []string{"index.json", "manifest.json", "oci-layout", "repositories", blobName(img.ID), blobName(img.Manifest.Digest),
		blobName(img.Layers[0].Digest), blobName(img.Layers[1].Digest)} {
		if !slices.Contains(names, want) {
			t.Errorf("archive lacks %s (%v)", want, names)
		}
	}
	// The base layer is stored once though both images have it.
	n := 0
	for _, name := range names {
		if name == blobName(bimg.Layers[0].Digest) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("base layer stored %d times", n)
	}
	var mj []dockerManifestEntry
	if err := json.Unmarshal(files["manifest.json"], &mj); err != nil || len(mj) != 2 {
		t.Fatalf("manifest.json %s: %v", files["manifest.json"], err)
	}
	if !slices.Equal(mj[0].RepoTags, []string{"saved/app:v1"}) || mj[0].Config != blobName(img.ID) || len(mj[0].Layers) != 2 {
		t.Errorf("manifest.json entry %+v", mj[0])
	}
	var idx ocispec.Index
	json.Unmarshal(files["index.json"], &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[0].Digest != img.Manifest.Digest ||
		idx.Manifests[0].Annotations[AnnotationImageName] != "docker.io/saved/app:v1" || idx.Manifests[0].Annotations[AnnotationRefName] != "v1" {
		t.Errorf("index.json %s", files["index.json"])
	}

	// Loaded into another store: same IDs, same manifests, same layers.
	s2 := openStore(t, t.TempDir(), Options{})
	loaded, err := s2.Load(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(loaded) != 2 || loaded[0].ID != img.ID || !slices.Equal(loaded[0].Tags, []string{"docker.io/saved/app:v1"}) || loaded[1].ID != bimg.ID {
		t.Fatalf("loaded %+v", loaded)
	}
	got, err := s2.Lookup("saved/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest.Digest != img.Manifest.Digest || got.Layers[1].Digest != img.Layers[1].Digest || got.Layers[0].ChainID != bimg.Layers[0].ChainID {
		t.Errorf("loaded image %+v", got)
	}
	if readSnapshotFile(t, s2, got.Layers[1].ChainID.String(), "etc/motd") != "saved" {
		t.Error("layer not unpacked")
	}
	// Loaded layers keep their blobs: the loaded base can be pushed though never pulled.
	lb, _ := s2.Lookup(src.host + "/team/base:v1")
	if lb == nil || lb.Manifest.Digest != bimg.Manifest.Digest || !s2.HasBlob(lb.Layers[0].Digest) {
		t.Errorf("loaded base %+v", lb)
	}
}

// archive builds a tar of the given entries (a "->" in a body makes a symlink).
type archEntry struct {
	name string
	body []byte
	link string
}

func archive(t *testing.T, ents ...archEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

// dockerArchive is a docker-archive (Docker < 25 style) of one image with the given layer.
func dockerArchive(t *testing.T, layer []byte, diffID digest.Digest) (cfg []byte, ents []archEntry) {
	c := createConfig("d")
	c.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}
	cfg, _ = json.Marshal(c)
	id := digest.FromBytes(cfg).Encoded()
	mj, _ := json.Marshal([]dockerManifestEntry{{Config: id + ".json", RepoTags: []string{"old/style:v1"}, Layers: []string{"abc/layer.tar"}}})
	return cfg, []archEntry{{name: id + ".json", body: cfg}, {name: "abc/layer.tar", body: layer}, {name: "manifest.json", body: mj}}
}

func TestLoadDockerArchive(t *testing.T) {
	layer := layerTar(t, entry{name: "hello", body: "world"})
	cfg, ents := dockerArchive(t, layer, digest.FromBytes(layer))
	s := openStore(t, t.TempDir(), Options{})
	loaded, err := s.Load(ctx, bytes.NewReader(archive(t, ents...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != digest.FromBytes(cfg) {
		t.Fatalf("loaded %+v", loaded)
	}
	img, err := s.Lookup("old/style:v1")
	if err != nil || img.Manifest.MediaType != MediaTypeDockerManifest || !s.HasBlob(img.Layers[0].Digest) {
		t.Fatalf("image %+v %v", img, err)
	}
}

func TestLoadRefusesBadArchives(t *testing.T) {
	layer := layerTar(t, entry{name: "hello", body: "world"})
	_, good := dockerArchive(t, layer, digest.FromBytes(layer))
	other := layerTar(t, entry{name: "hello", body: "other"})
	_, wrongDiff := dockerArchive(t, other, digest.FromBytes(layer))
	fake := digest.FromString("not this")
	for name, tc := range map[string]struct {
		tar  []byte
		want string
		is   error
	}{
		"dotdot":       {archive(t, append(slices.Clone(good), archEntry{name: "../escape", body: []byte("x")})...), `unsafe entry name "../escape"`, ErrBadArchive},
		"inner dotdot": {archive(t, append([]archEntry{{name: "a/../../b", body: []byte("x")}}, good...)...), "unsafe entry name", ErrBadArchive},
		"absolute":     {archive(t, append(slices.Clone(good), archEntry{name: "/etc/x", body: []byte("x")})...), "unsafe entry name", ErrBadArchive},
		"symlink":      {archive(t, append([]archEntry{{name: "abc/layer.tar", link: "/etc/passwd"}}, good[0], good[2])...), "links are refused", ErrBadArchive},
		"blob digest":  {archive(t, append(slices.Clone(good), archEntry{name: blobName(fake), body: []byte("tampered")})...), "digest mismatch", client.ErrDigestMismatch},
		"diffid":       {archive(t, wrongDiff...), "DiffID", ErrDiffIDMismatch},
		"not archive":  {archive(t, archEntry{name: "hello", body: []byte("x")}), "no manifest.json", ErrBadArchive},
	} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			_, err := s.Load(ctx, bytes.NewReader(tc.tar))
			mustErr(t, err, tc.want)
			if !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			imgs, _ := s.Images()
			if len(imgs) != 0 || len(snapshotIDs(t, s)) != 0 || len(contentFiles(t, s)) != 0 {
				t.Errorf("left in the store: %d images, %v, %v", len(imgs), snapshotIDs(t, s), contentFiles(t, s))
			}
		})
	}
}

func TestImport(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	rootfs := layerTar(t, entry{name: "bin/", dir: true}, entry{name: "bin/sh", body: "#!"})
	img, err := s.Import(ctx, bytes.NewReader(gz(t, rootfs)), ImportOptions{Ref: "imported:v1",
		Changes: []string{`CMD ["/bin/sh", "-c", "echo hi"]`, "ENV A=1 B='two words'", "WORKDIR /bin", "EXPOSE 80", "LABEL k=v"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 1 || img.Layers[0].DiffID != digest.FromBytes(rootfs) || img.RepoTags[0] != "docker.io/library/imported:v1" {
		t.Fatalf("image %+v", img)
	}
	cfg, _, _ := s.ConfigOf(img)
	c := cfg.Config
	if !slices.Equal(c.Cmd, []string{"/bin/sh", "-c", "echo hi"}) || !slices.Equal(c.Env, []string{"A=1", "B=two words"}) ||
		c.WorkingDir != "/bin" || c.Labels["k"] != "v" || len(c.ExposedPorts) != 1 {
		t.Errorf("config %+v", c)
	}
	if cfg.OS != "linux" || len(cfg.History) != 1 || !strings.HasPrefix(cfg.History[0].Comment, "Imported from") {
		t.Errorf("config %+v", cfg)
	}
	if _, err := s.Import(ctx, bytes.NewReader(rootfs), ImportOptions{Changes: []string{"RUN x"}}); err == nil {
		t.Error("RUN accepted as a change")
	}
}
