package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry"
	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/registry/store"
	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/filesystem"
	"github.com/berth-registry/berth/storage/memory"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testRegistry is an in-process Berth with a hook in front of it and blob GET counters.
type testRegistry struct {
	t    *testing.T
	host string
	c    *client.Client

	mu    sync.Mutex
	gets  map[digest.Digest]int // GET /v2/…/blobs/<digest>
	hook  func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
	delay time.Duration // before serving each blob GET
}

var blobGetRE = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	var d storage.Driver = memory.New()
	if !memorySizeOK(t) {
		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d = fs
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := store.New(d, store.Options{DeleteEnabled: true, Logger: quiet})
	h := registry.New(st, registry.Options{AccessLogDisabled: true, Logger: quiet})
	tr := &testRegistry{t: t, gets: map[digest.Digest]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := blobGetRE.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			tr.mu.Lock()
			tr.gets[digest.Digest(m[2])]++
			delay := tr.delay
			tr.mu.Unlock()
			time.Sleep(delay)
		}
		tr.mu.Lock()
		hook := tr.hook
		tr.mu.Unlock()
		if hook != nil && hook(w, r, h) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	tr.host = u.Host
	tr.c = client.New(client.Options{Logger: quiet, Credentials: client.CredentialFunc(func(string) (string, string, error) { return "", "", nil })})
	return tr
}

func memorySizeOK(t *testing.T) bool {
	ctx := context.Background()
	w, err := memory.New().Writer(ctx, "/probe", true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("abc"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return w.Size() == 3
}

func (tr *testRegistry) blobGets(d digest.Digest) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.gets[d]
}

func (tr *testRegistry) setHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	tr.mu.Lock()
	tr.hook = h
	tr.mu.Unlock()
}

// ---------------------------------------------------------------------------------------------
// building images

type entry struct {
	name string
	body string
	dir  bool
	link string // symlink target
	hard string // hardlink target
}

func layerTar(t *testing.T, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, ModTime: mt, Mode: 0o644, Uid: os.Getuid(), Gid: os.Getgid()}
		switch {
		case e.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		case e.hard != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hard
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// testImage is an image built in memory: layers are uncompressed tars, stored gzipped.
type testImage struct {
	config   []byte
	manifest []byte
	mdesc    ocispec.Descriptor
	layers   []ocispec.Descriptor
	blobs    map[digest.Digest][]byte
	diffIDs  []digest.Digest
}

type imageOpt func(cfg *ocispec.Image, m *ocispec.Manifest)

func newImage(t *testing.T, arch string, tars [][]byte, opts ...imageOpt) testImage {
	t.Helper()
	img := testImage{blobs: map[digest.Digest][]byte{}}
	for _, tb := range tars {
		z := gz(t, tb)
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(z), Size: int64(len(z))}
		img.layers = append(img.layers, d)
		img.blobs[d.Digest] = z
		img.diffIDs = append(img.diffIDs, digest.FromBytes(tb))
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs}}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: img.layers}
	m.SchemaVersion = 2
	for _, o := range opts {
		o(&cfg, &m)
	}
	var err error
	img.config, err = json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))}
	img.blobs[m.Config.Digest] = img.config
	img.manifest, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.layers = m.Layers
	img.mdesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(img.manifest), Size: int64(len(img.manifest))}
	return img
}

func (img testImage) id() digest.Digest { return digest.FromBytes(img.config) }

// push pushes the image's blobs and its manifest under repo:tag ("" tag: by digest only).
func (tr *testRegistry) push(img testImage, repo, tag string) {
	tr.t.Helper()
	ctx := context.Background()
	r, err := client.ParseRepository(tr.host + "/" + repo)
	if err != nil {
		tr.t.Fatal(err)
	}
	for d, b := range img.blobs {
		desc := ocispec.Descriptor{Digest: d, Size: int64(len(b))}
		if ok, _ := tr.c.BlobExists(ctx, r, desc); ok {
			continue
		}
		if err := tr.c.PushBlob(ctx, r, desc, bytes.NewReader(b)); err != nil {
			tr.t.Fatalf("push blob: %v", err)
		}
	}
	ref := r.WithDigest(img.mdesc.Digest)
	if tag != "" {
		ref = r.WithTag(tag)
	}
	if _, err := tr.c.PutManifest(ctx, ref, img.mdesc.MediaType, img.manifest); err != nil {
		tr.t.Fatalf("push manifest: %v", err)
	}
}

// pushIndex pushes an index of the given (already pushed) images under repo:tag.
func (tr *testRegistry) pushIndex(repo, tag string, imgs ...testImage) digest.Digest {
	tr.t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, img := range imgs {
		var cfg ocispec.Image
		json.Unmarshal(img.config, &cfg)
		d := img.mdesc
		d.Platform = &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, _ := json.Marshal(idx)
	r, _ := client.ParseRepository(tr.host + "/" + repo)
	if _, err := tr.c.PutManifest(context.Background(), r.WithTag(tag), ocispec.MediaTypeImageIndex, b); err != nil {
		tr.t.Fatalf("push index: %v", err)
	}
	return digest.FromBytes(b)
}

// ---------------------------------------------------------------------------------------------
// the store under test

func openStore(t *testing.T, root string, opts Options) *Store {
	t.Helper()
	s, err := Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (tr *testRegistry) pullOpts() PullOptions {
	return PullOptions{Client: tr.c}
}

func snapshotIDs(t *testing.T, s *Store) []string {
	t.Helper()
	infos, err := s.Snapshots().List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, i.ChainID.String())
	}
	sort.Strings(out)
	return out
}

func chainIDsOf(img testImage) []string {
	var out []string
	var prev digest.Digest
	for i, d := range img.diffIDs {
		if i == 0 {
			prev = d
		} else {
			prev = digest.FromString(prev.String() + " " + d.String())
		}
		out = append(out, prev.String())
	}
	return out
}

func union(lists ...[]string) []string {
	m := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			m[s] = true
		}
	}
	var out []string
	for s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func mustErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got nil", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func readSnapshotFile(t *testing.T, s *Store, chainID string, name string) string {
	t.Helper()
	dir, err := s.Snapshots().Path(digest.Digest(chainID))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// leftovers lists what is in the snapshot store's tmp dir and the image store's leases.
func leftovers(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	for _, d := range []string{filepath.Join(s.Snapshots().Root(), "tmp"), filepath.Join(s.Root(), "leases")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	return out
}
