package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBerthPushPullEndToEnd(t *testing.T) {
	ctx := context.Background()
	_, host := newBerth(t)
	c := newTestClient(t, Options{ChunkSize: 64 << 10})
	if err := c.Ping(ctx, host); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	repo, err := ParseRepository(host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	// One layer below the chunk size (monolithic PUT), one far above
	// (several PATCH chunks, last one partial).
	img := makeImage(t, 1000, 300<<10+123)
	cfgDesc := descOf(ocispec.MediaTypeImageConfig, img.config)
	blobs := [][]byte{img.config, img.layers[0], img.layers[1]}
	for _, b := range blobs {
		d := descOf("", b)
		ok, err := c.BlobExists(ctx, repo, d)
		if err != nil || ok {
			t.Fatalf("BlobExists before push = %v, %v", ok, err)
		}
		if err := c.PushBlob(ctx, repo, d, bytes.NewReader(b)); err != nil {
			t.Fatalf("PushBlob(%d bytes): %v", len(b), err)
		}
		ok, err = c.BlobExists(ctx, repo, d)
		if err != nil || !ok {
			t.Fatalf("BlobExists after push = %v, %v", ok, err)
		}
	}
	ref := repo.WithTag("v1")
	desc, err := c.PutManifest(ctx, ref, ocispec.MediaTypeImageManifest, img.manifest)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	if desc.Digest != img.mdesc.Digest || desc.Size != img.mdesc.Size {
		t.Fatalf("PutManifest desc = %+v, want %+v", desc, img.mdesc)
	}

	// Pull by tag, by digest, and HEAD.
	got, body, err := c.GetManifest(ctx, ref)
	if err != nil {
		t.Fatalf("GetManifest by tag: %v", err)
	}
	if got.Digest != img.mdesc.Digest || got.MediaType != ocispec.MediaTypeImageManifest || !bytes.Equal(body, img.manifest) {
		t.Fatalf("GetManifest by tag = %+v", got)
	}
	got, body, err = c.ResolveManifest(ctx, repo.WithDigest(img.mdesc.Digest))
	if err != nil || got.Digest != img.mdesc.Digest || !bytes.Equal(body, img.manifest) {
		t.Fatalf("GetManifest by digest = %+v, %v", got, err)
	}
	hd, err := c.HeadManifest(ctx, ref)
	if err != nil || hd.Digest != img.mdesc.Digest || hd.Size != img.mdesc.Size || hd.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("HeadManifest = %+v, %v", hd, err)
	}
	cfg, err := c.ReadBlob(ctx, repo, cfgDesc, 1<<20)
	if err != nil || !bytes.Equal(cfg, img.config) {
		t.Fatalf("ReadBlob config: %v", err)
	}
	for _, l := range img.layers {
		d := descOf(ocispec.MediaTypeImageLayerGzip, l)
		rc, err := c.FetchBlob(ctx, repo, d, 0)
		if err != nil {
			t.Fatalf("FetchBlob: %v", err)
		}
		b, err := readAllVerified(rc, d)
		if err != nil || !bytes.Equal(b, l) {
			t.Fatalf("FetchBlob content: %v", err)
		}
	}

	// An index pointing at the manifest, by digest.
	idx := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		img.mdesc.Digest.String() + `","size":` + strconv.FormatInt(img.mdesc.Size, 10) + `,"platform":{"architecture":"amd64","os":"linux"}}]}`)
	idxRef := repo.WithDigest(digest.FromBytes(idx))
	if _, err := c.PutManifest(ctx, idxRef, ocispec.MediaTypeImageIndex, idx); err != nil {
		t.Fatalf("PutManifest index by digest: %v", err)
	}
	got, _, err = c.GetManifest(ctx, idxRef)
	if err != nil || got.MediaType != ocispec.MediaTypeImageIndex || !IsIndex(got.MediaType) {
		t.Fatalf("GetManifest index = %+v, %v", got, err)
	}

	tags, err := c.Tags(ctx, repo)
	if err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	repos, err := c.Catalog(ctx, host)
	if err != nil || !slices.Equal(repos, []string{"team/app"}) {
		t.Fatalf("Catalog = %v, %v", repos, err)
	}

	// Mount a layer into another repository.
	other := Reference{Registry: host, Repository: "team/other"}
	d0 := descOf("", img.layers[0])
	mounted, err := c.MountBlob(ctx, other, "team/app", d0)
	if err != nil || !mounted {
		t.Fatalf("MountBlob = %v, %v", mounted, err)
	}
	if ok, err := c.BlobExists(ctx, other, d0); err != nil || !ok {
		t.Fatalf("mounted blob missing: %v, %v", ok, err)
	}
	unknown := descOf("", []byte("not pushed anywhere"))
	mounted, err = c.MountBlob(ctx, other, "team/app", unknown)
	if err != nil || mounted {
		t.Fatalf("MountBlob of unknown blob = %v, %v", mounted, err)
	}
}

func TestBerthFetchBlobResume(t *testing.T) {
	ctx := context.Background()
	_, host := newBerth(t)
	c := newTestClient(t, Options{})
	repo := Reference{Registry: host, Repository: "resume/me"}
	data := randomBytes(t, 200_000)
	d := descOf("", data)
	if err := c.PushBlob(ctx, repo, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// A first download broken after 70000 bytes, then resumed with an offset.
	const cut = 70_000
	prefix := data[:cut]
	rc, err := c.FetchBlob(ctx, repo, d, cut)
	if err != nil {
		t.Fatalf("FetchBlob with offset: %v", err)
	}
	v := NewVerifyingReader(rc, d)
	if n, err := v.Resume(bytes.NewReader(prefix)); err != nil || n != cut {
		t.Fatalf("Resume = %d, %v", n, err)
	}
	rest, err := io.ReadAll(v)
	rc.Close()
	if err != nil {
		t.Fatalf("resumed download: %v", err)
	}
	if !bytes.Equal(rest, data[cut:]) || !v.Verified() {
		t.Fatal("resumed content differs")
	}
	// Offset at the end: nothing left to read.
	rc, err = c.FetchBlob(ctx, repo, d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); len(b) != 0 {
		t.Fatalf("read %d bytes past the end", len(b))
	}
	if _, err := c.FetchBlob(ctx, repo, d, int64(len(data))+1); err == nil {
		t.Fatal("offset beyond the size accepted")
	}
}

// TestBerthChunkResume breaks one chunk of a chunked upload half-way: the
// registry receives only the first half, the client is told it failed, and
// must resume from the server's Range.
func TestBerthChunkResume(t *testing.T) {
	ctx := context.Background()
	berth, _ := newBerth(t)
	var patches, broken atomic.Int32
	srv, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			n := patches.Add(1)
			if n == 2 && broken.Add(1) == 1 {
				body, _ := io.ReadAll(r.Body)
				start, _, _ := strings.Cut(r.Header.Get("Content-Range"), "-")
				s, _ := strconv.ParseInt(start, 10, 64)
				half := body[:len(body)/2]
				r2 := r.Clone(r.Context())
				r2.Body = io.NopCloser(bytes.NewReader(half))
				r2.ContentLength = int64(len(half))
				r2.Header.Set("Content-Range", strconv.FormatInt(s, 10)+"-"+strconv.FormatInt(s+int64(len(half))-1, 10))
				rec := &discardWriter{h: http.Header{}}
				berth.Config.Handler.ServeHTTP(rec, r2)
				if rec.status != http.StatusAccepted {
					t.Errorf("half chunk: status %d", rec.status)
				}
				http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"backend hiccup"}]}`, http.StatusInternalServerError)
				return
			}
		}
		berth.Config.Handler.ServeHTTP(w, r)
	})
	_ = srv
	c := newTestClient(t, Options{ChunkSize: 32 << 10})
	repo := Reference{Registry: host, Repository: "chunky/blob"}
	data := randomBytes(t, 100_000) // 4 chunks: 32K, 32K, 32K, 1696
	d := descOf("", data)
	if err := c.PushBlob(ctx, repo, d, bytes.NewReader(data)); err != nil {
		t.Fatalf("PushBlob with a broken chunk: %v", err)
	}
	if broken.Load() != 1 {
		t.Fatal("the chunk was never broken")
	}
	rc, err := c.FetchBlob(ctx, repo, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := readAllVerified(rc, d); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("pulled back: %v", err)
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(b), nil
}
func (d *discardWriter) WriteHeader(s int) {
	if d.status == 0 {
		d.status = s
	}
}

func TestBerthErrors(t *testing.T) {
	ctx := context.Background()
	_, host := newBerth(t)
	c := newTestClient(t, Options{})
	ref, err := ParseReference(host + "/no/such:tag")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.GetManifest(ctx, ref)
	var re *Error
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetManifest of missing tag: %v", err)
	}
	if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrDenied) {
		t.Fatalf("404 matches the wrong sentinel: %v", err)
	}
	mustContain(t, err, ref.String(), "404")
	if re.Code == "" {
		t.Errorf("no OCI code parsed: %+v", re)
	}
	if _, err := c.HeadManifest(ctx, ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("HeadManifest of missing tag: %v", err)
	}
	d := descOf("", []byte("nope"))
	_, err = c.FetchBlob(ctx, ref.Repo(), d, 0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("FetchBlob of missing blob: %v", err)
	}
	mustContain(t, err, ref.Name(), d.Digest.String())

	// Pushing a blob whose content does not match its digest fails before
	// completing the upload; so does a manifest naming missing blobs.
	repo := ref.Repo()
	bad := ocispec.Descriptor{Digest: digest.FromString("other"), Size: 4}
	err = c.PushBlob(ctx, repo, bad, strings.NewReader("data"))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("PushBlob with wrong digest: %v", err)
	}
	if ok, _ := c.BlobExists(ctx, repo, bad); ok {
		t.Fatal("blob with wrong digest stored")
	}
	img := makeImage(t, 10)
	_, err = c.PutManifest(ctx, repo.WithTag("x"), ocispec.MediaTypeImageManifest, img.manifest)
	if err == nil {
		t.Fatal("manifest with missing blobs accepted")
	}
	mustContain(t, err, repo.Name()+":x")
}
