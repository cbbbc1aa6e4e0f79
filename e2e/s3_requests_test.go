//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/registry"
	"github.com/berth-registry/berth/registry/store"
	"github.com/berth-registry/berth/storage/s3"
	"github.com/minio/minio-go/v7"
)

// s3Counter is an http.RoundTripper under the S3 client that records every request.
type s3Counter struct {
	base   http.RoundTripper
	bucket string
	mu     sync.Mutex
	reqs   []string
}

func (c *s3Counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, c.describe(r))
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// describe names a request as METHOD key [operation], the key shortened to below
// docker/registry/v2.
func (c *s3Counter) describe(r *http.Request) string {
	key := strings.TrimPrefix(r.URL.Path, "/"+c.bucket)
	if i := strings.Index(key, "docker/registry/v2/"); i >= 0 {
		key = key[i+len("docker/registry/v2/"):]
	}
	q := r.URL.Query()
	var op []string
	for _, k := range []string{"uploads", "uploadId", "partNumber", "delete", "list-type", "prefix", "location"} {
		if q.Has(k) {
			if k == "prefix" {
				op = append(op, "prefix="+q.Get(k))
			} else {
				op = append(op, k)
			}
		}
	}
	if r.Header.Get("X-Amz-Copy-Source") != "" {
		op = append(op, "copy")
	}
	s := r.Method + " " + key
	if len(op) > 0 {
		s += " [" + strings.Join(op, " ") + "]"
	}
	return s
}

// take returns the requests recorded since the last call.
func (c *s3Counter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

// countedRegistry is Berth's registry in this process, over an S3 driver whose requests are
// counted.
type countedRegistry struct {
	name string
	addr string
	c    *s3Counter
}

// newCountedRegistry starts one; redirect hands out presigned URLs for blob GETs
// (storage.redirect.disable: false).
func newCountedRegistry(t *testing.T, m *minioServer, bucket, name string, redirect bool) *countedRegistry {
	t.Helper()
	base, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	c := &s3Counter{base: base, bucket: bucket}
	d, err := s3.New(context.Background(), s3.Params{
		AccessKey:      minioUser,
		SecretKey:      minioPassword,
		Region:         "us-east-1",
		RegionEndpoint: "http://" + m.Addr,
		Bucket:         bucket,
		ForcePathStyle: true,
		ChunkSize:      s3ChunkSize,
		Transport:      c,
	})
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := store.New(d, store.Options{DeleteEnabled: true, Redirect: redirect, Logger: logger})
	srv := httptest.NewServer(registry.New(st, registry.Options{Logger: logger, AccessLogDisabled: true}))
	t.Cleanup(srv.Close)
	if cl, ok := any(d).(io.Closer); ok {
		t.Cleanup(func() { cl.Close() })
	}
	c.take() // start-up checks
	return &countedRegistry{name: name, addr: strings.TrimPrefix(srv.URL, "http://"), c: c}
}

// TestS3RequestCounts counts the S3 requests behind registry operations: a blob HEAD or GET
// costs at most one once the registry has seen the blob; a manifest GET by tag reads the tag
// from storage every time and sees a retag done by another instance on the same bucket.
func TestS3RequestCounts(t *testing.T) {
	m := startMinio(t)
	bucket := m.NewBucket(t, "counts")
	a := newCountedRegistry(t, m, bucket, "A", false)
	b := newCountedRegistry(t, m, bucket, "B", false)
	c := newCountedRegistry(t, m, bucket, "C, redirect", true)
	repo := "e2e/s3/counts"

	type row struct {
		op   string
		reqs []string
	}
	var table []row
	measure := func(r *countedRegistry, op string, fn func()) []string {
		t.Helper()
		r.c.take()
		fn()
		reqs := r.c.take()
		table = append(table, row{fmt.Sprintf("%-54s", op+" ("+r.name+")"), reqs})
		return reqs
	}
	atMost := func(op string, reqs []string, n int) {
		t.Helper()
		if len(reqs) > n {
			t.Errorf("%s cost %d S3 requests, want at most %d:\n  %s", op, len(reqs), n, strings.Join(reqs, "\n  "))
		}
	}
	defer func() {
		var sb strings.Builder
		for _, r := range table {
			fmt.Fprintf(&sb, "  %s %2d  %s\n", r.op, len(r.reqs), strings.Join(r.reqs, "; "))
		}
		t.Logf("S3 requests per registry operation:\n%s", sb.String())
	}()

	blob := randomBytes(31, 1<<20)
	dgst := digestOf(blob)
	blobURL := func(r *countedRegistry) string {
		return fmt.Sprintf("http://%s/v2/%s/blobs/%s", r.addr, repo, dgst)
	}
	getBlob := func(r *countedRegistry, method string) {
		t.Helper()
		resp, body := httpDo(t, method, blobURL(r), nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s: %.300s", method, blobURL(r), resp.Status, body)
		}
		if method == http.MethodGet && digestOf(body) != dgst {
			t.Fatalf("GET %s: content digest %s", blobURL(r), digestOf(body))
		}
	}

	// Monolithic upload on A.
	measure(a, "monolithic POST ?digest= (1 MiB)", func() {
		url := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", a.addr, repo, dgst)
		resp, body := httpDo(t, http.MethodPost, url, map[string]string{"Content-Type": "application/octet-stream"}, blob)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %s: %s", url, resp.Status, body)
		}
	})

	// B has never seen the blob; then it has.
	measure(b, "blob HEAD, cold", func() { getBlob(b, http.MethodHead) })
	atMost("blob HEAD once seen", measure(b, "blob HEAD, warm", func() { getBlob(b, http.MethodHead) }), 1)
	atMost("blob GET once seen", measure(b, "blob GET, warm", func() { getBlob(b, http.MethodGet) }), 1)
	atMost("blob HEAD once seen", measure(b, "blob HEAD, warm (again)", func() { getBlob(b, http.MethodHead) }), 1)
	// A wrote it: it has seen it.
	atMost("blob HEAD on the writer", measure(a, "blob HEAD after own upload", func() { getBlob(a, http.MethodHead) }), 1)
	atMost("blob GET on the writer", measure(a, "blob GET after own upload", func() { getBlob(a, http.MethodGet) }), 1)

	// With redirects, the registry's part of a GET is the link check; the client then reads
	// the data from MinIO itself (that request is not the registry's and is not counted).
	measure(c, "blob HEAD, cold", func() { getBlob(c, http.MethodHead) })
	atMost("blob GET with redirect, once seen", measure(c, "blob GET, warm, 307 to presigned URL", func() {
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(blobURL(c))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, m.Addr) {
			t.Fatalf("GET %s with redirects on: %s, Location %q; want 307 to MinIO", blobURL(c), resp.Status, loc)
		}
		presigned, body := httpDo(t, http.MethodGet, loc, nil, nil)
		if presigned.StatusCode != http.StatusOK || digestOf(body) != dgst {
			t.Fatalf("GET of the presigned URL: %s, content digest %s", presigned.Status, digestOf(body))
		}
	}), 1)

	// A chunked upload on A: 6 MiB (more than one part), 1 MiB, and an empty PUT.
	chunks := [][]byte{randomBytes(32, 6<<20), randomBytes(33, 1<<20)}
	chunked := append(append([]byte{}, chunks[0]...), chunks[1]...)
	var loc string
	measure(a, "POST (start upload)", func() { loc = startUpload(t, a.addr, repo) })
	measure(a, "PATCH chunk 1 (6 MiB)", func() { loc = mustPatch(t, a.addr, loc, 0, chunks[0]) })
	measure(a, "PATCH chunk 2 (1 MiB)", func() { loc = mustPatch(t, a.addr, loc, int64(len(chunks[0])), chunks[1]) })
	measure(a, "PUT ?digest= completion (no body, 7 MiB)", func() {
		completeUpload(t, a.addr, loc, digestOf(chunked), int64(len(chunked)), nil)
	})
	measure(b, "PATCH on another instance (1 MiB)", func() {
		loc := startUpload(t, a.addr, repo)
		b.c.take()
		mustPatch(t, b.addr, loc, 0, chunks[1])
	})

	// Manifests: v1 pushed on A, read by tag on A, retagged on B, read again on A.
	pushManifest := func(r *countedRegistry, label string) string {
		t.Helper()
		cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Labels":{"l":%q}},"rootfs":{"type":"layers","diff_ids":[]}}`, label))
		cd := digestOf(cfg)
		url := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", r.addr, repo, cd)
		if resp, body := httpDo(t, http.MethodPost, url, nil, cfg); resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %s: %s", url, resp.Status, body)
		}
		man, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
			"layers":        []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": dgst, "size": len(blob)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var md string
		measure(r, "manifest PUT by tag", func() {
			url := fmt.Sprintf("http://%s/v2/%s/manifests/v1", r.addr, repo)
			resp, body := httpDo(t, http.MethodPut, url, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, man)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT %s: %s: %s", url, resp.Status, body)
			}
			md = resp.Header.Get("Docker-Content-Digest")
		})
		if md != digestOf(man) {
			t.Fatalf("manifest PUT: Docker-Content-Digest %q, want %s", md, digestOf(man))
		}
		return md
	}
	getByTag := func(r *countedRegistry, op, want string) {
		t.Helper()
		var got string
		reqs := measure(r, op, func() { _, _, got = getManifest(t, r.addr, repo, "v1") })
		if got != want {
			t.Errorf("%s: GET %s:v1 on %s is %s, want %s", op, repo, r.name, got, want)
		}
		readsTag := false
		for _, q := range reqs {
			readsTag = readsTag || strings.Contains(q, "_manifests/tags/v1/")
		}
		if len(reqs) < 1 || !readsTag {
			t.Errorf("%s: %d S3 requests, none reading the tag: a tag must be read fresh on every GET:\n  %s", op, len(reqs), strings.Join(reqs, "\n  "))
		}
	}
	m1 := pushManifest(a, "one")
	for i := range 3 {
		getByTag(a, fmt.Sprintf("manifest GET by tag #%d", i+1), m1)
	}
	measure(a, "manifest GET by digest", func() { getManifest(t, a.addr, repo, m1) })
	m2 := pushManifest(b, "two")
	if m2 == m1 {
		t.Fatal("the two manifests are the same")
	}
	getByTag(a, "manifest GET by tag after a retag on B", m2)
	getByTag(a, "manifest GET by tag (again)", m2)
}
