package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry"
	"github.com/berth-registry/berth/registry/store"
	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/filesystem"
	"github.com/berth-registry/berth/storage/memory"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newTestClient returns a client with short backoffs for tests.
func newTestClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := New(opts)
	c.baseDelay = time.Millisecond
	c.maxDelay = 5 * time.Millisecond
	return c
}

// newBerth starts an in-process Berth registry and returns its registry
// name ("127.0.0.1:port").
//
// It runs on storage/memory. While the memory driver's FileWriter reports a
// wrong Size after Commit (the store then records blobs as 0 bytes), it
// falls back to storage/filesystem in a temporary directory and says so.
func newBerth(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	var d storage.Driver = memory.New()
	if !memorySizeAfterCommitOK(t) {
		t.Log("storage/memory: FileWriter.Size() is wrong after Commit; using storage/filesystem instead")
		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d = fs
	}
	st := store.New(d, store.Options{DeleteEnabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(registry.New(st, registry.Options{AccessLogDisabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	return srv, hostOf(srv)
}

// memorySizeAfterCommitOK checks the FileWriter contract the store relies
// on: Size is the file's size, also after Commit.
func memorySizeAfterCommitOK(t *testing.T) bool {
	ctx := context.Background()
	w, err := memory.New().Writer(ctx, "/probe", true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return w.Size() == 3
}

// hostOf returns the host:port of a test server.
func hostOf(srv *httptest.Server) string {
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func descOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// testImage is a small OCI image: config, layers and manifest.
type testImage struct {
	config   []byte
	layers   [][]byte
	manifest []byte
	mdesc    ocispec.Descriptor
}

func makeImage(t *testing.T, layerSizes ...int) testImage {
	t.Helper()
	img := testImage{config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: descOf(ocispec.MediaTypeImageConfig, img.config)}
	m.SchemaVersion = 2
	for _, n := range layerSizes {
		l := randomBytes(t, n)
		img.layers = append(img.layers, l)
		m.Layers = append(m.Layers, descOf(ocispec.MediaTypeImageLayerGzip, l))
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.manifest = b
	img.mdesc = descOf(ocispec.MediaTypeImageManifest, b)
	return img
}

// readAllVerified fetches a blob and verifies it.
func readAllVerified(rc io.ReadCloser, desc ocispec.Descriptor) ([]byte, error) {
	defer rc.Close()
	var buf bytes.Buffer
	_, err := io.Copy(&buf, NewVerifyingReader(rc, desc))
	return buf.Bytes(), err
}

// mustContain fails unless err's message contains every part.
func mustContain(t *testing.T, err error, parts ...string) {
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

// fakeRegistry is an httptest server with a mux, for behaviour Berth does
// not have.
func fakeRegistry(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, hostOf(srv)
}
