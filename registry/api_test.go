package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/registry/store"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBase(t *testing.T) {
	r := newTestRegistry(t)
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/v2/", "{}"},
		{http.MethodGet, "/v2", "{}"},
		{http.MethodHead, "/v2/", ""},
	} {
		res := r.do(tc.method, tc.path, nil, nil)
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
		wantHeader(t, res, "Content-Type", "application/json")
		if string(res.body) != tc.body {
			t.Errorf("%s %s: body %q", tc.method, tc.path, res.body)
		}
	}
	// Every /v2 answer carries the version header, errors included.
	res := r.do(http.MethodGet, "/v2/nosuch/manifests/latest", nil, nil)
	wantError(t, res, http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
}

func TestBlobGet(t *testing.T) {
	r := newTestRegistry(t)
	data := []byte("0123456789")
	d := r.pushBlob("repo", data)
	other := r.pushBlob("other", []byte("not in repo"))
	path := "/v2/repo/blobs/" + d.String()

	tests := []struct {
		name         string
		method       string
		path         string
		rng          string
		status       int
		body         string
		contentRange string
		code         string
	}{
		{"head", http.MethodHead, path, "", 200, "", "", ""},
		{"get", http.MethodGet, path, "", 200, "0123456789", "", ""},
		{"range", http.MethodGet, path, "bytes=2-5", 206, "2345", "bytes 2-5/10", ""},
		{"single byte", http.MethodGet, path, "bytes=0-0", 206, "0", "bytes 0-0/10", ""},
		{"last byte", http.MethodGet, path, "bytes=9-9", 206, "9", "bytes 9-9/10", ""},
		{"suffix range", http.MethodGet, path, "bytes=-3", 206, "789", "bytes 7-9/10", ""},
		{"suffix larger than blob", http.MethodGet, path, "bytes=-30", 206, "0123456789", "bytes 0-9/10", ""},
		{"open range", http.MethodGet, path, "bytes=4-", 206, "456789", "bytes 4-9/10", ""},
		{"clamped end", http.MethodGet, path, "bytes=8-100", 206, "89", "bytes 8-9/10", ""},
		{"whole blob as a range", http.MethodGet, path, "bytes=0-9", 206, "0123456789", "bytes 0-9/10", ""},
		{"start at size", http.MethodGet, path, "bytes=10-", 416, "", "bytes */10", "RANGE_INVALID"},
		{"start beyond size", http.MethodGet, path, "bytes=20-30", 416, "", "bytes */10", "RANGE_INVALID"},
		{"end before start", http.MethodGet, path, "bytes=5-2", 416, "", "bytes */10", "RANGE_INVALID"},
		{"empty suffix", http.MethodGet, path, "bytes=-0", 416, "", "bytes */10", "RANGE_INVALID"},
		{"multi-range ignored", http.MethodGet, path, "bytes=0-1,4-5", 200, "0123456789", "", ""},
		{"other unit ignored", http.MethodGet, path, "items=0-1", 200, "0123456789", "", ""},
		{"head ignores range", http.MethodHead, path, "bytes=2-5", 200, "", "", ""},
		{"unknown blob", http.MethodGet, "/v2/repo/blobs/" + digest.FromString("nope").String(), "", 404, "", "", "BLOB_UNKNOWN"},
		{"unknown blob head", http.MethodHead, "/v2/repo/blobs/" + digest.FromString("nope").String(), "", 404, "", "", ""},
		{"blob of another repository", http.MethodGet, "/v2/repo/blobs/" + other.String(), "", 404, "", "", "BLOB_UNKNOWN"},
		{"unknown repository", http.MethodGet, "/v2/nosuch/blobs/" + d.String(), "", 404, "", "", "BLOB_UNKNOWN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr()
			if tc.rng != "" {
				h.Set("Range", tc.rng)
			}
			res := r.do(tc.method, tc.path, h, nil)
			if tc.status >= 400 {
				wantError(t, res, tc.status, tc.code)
				if tc.contentRange != "" {
					wantHeader(t, res, "Content-Range", tc.contentRange)
				}
				return
			}
			wantStatus(t, res, tc.status)
			if string(res.body) != tc.body {
				t.Errorf("body %q, want %q", res.body, tc.body)
			}
			wantHeader(t, res, "Content-Range", tc.contentRange)
			wantHeader(t, res, "Docker-Content-Digest", d.String())
			wantHeader(t, res, "Content-Type", "application/octet-stream")
			wantLen := len(tc.body)
			if tc.method == http.MethodHead {
				wantLen = len(data)
			}
			wantHeader(t, res, "Content-Length", itoa(int64(wantLen)))
		})
	}
}

func TestBlobEmpty(t *testing.T) {
	r := newTestRegistry(t)
	d := r.pushBlob("repo", nil)
	res := r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil, nil)
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Content-Length", "0")
	res = r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), hdr("Range", "bytes=0-"), nil)
	wantError(t, res, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
	wantHeader(t, res, "Content-Range", "bytes */0")
}

func TestMonolithicUpload(t *testing.T) {
	r := newTestRegistry(t)
	data := []byte("monolithic upload")
	d := digest.FromBytes(data)
	res := r.do(http.MethodPost, "/v2/a/b/blobs/uploads/", nil, nil)
	wantStatus(t, res, http.StatusAccepted)
	loc := res.header.Get("Location")
	id := res.header.Get("Docker-Upload-UUID")
	if loc != "/v2/a/b/blobs/uploads/"+id || id == "" {
		t.Fatalf("Location %q, Docker-Upload-UUID %q", loc, id)
	}
	wantHeader(t, res, "Range", "0-0")
	res = r.do(http.MethodPut, withQuery(loc, "digest="+d.String()), hdr("Content-Type", "application/octet-stream"), data)
	wantStatus(t, res, http.StatusCreated)
	wantHeader(t, res, "Location", "/v2/a/b/blobs/"+d.String())
	wantHeader(t, res, "Docker-Content-Digest", d.String())
	res = r.do(http.MethodGet, "/v2/a/b/blobs/"+d.String(), nil, nil)
	wantStatus(t, res, http.StatusOK)
	if !bytes.Equal(res.body, data) {
		t.Fatalf("blob %q", res.body)
	}
	// The session is finished.
	wantError(t, r.do(http.MethodGet, loc, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

func TestPostWithDigest(t *testing.T) {
	r := newTestRegistry(t)
	data := []byte("single post")
	d := digest.FromBytes(data)
	for _, body := range []any{data, io.Reader(bytes.NewReader(data))} { // with Content-Length, then chunked
		res := r.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+d.String(), nil, body)
		wantStatus(t, res, http.StatusCreated)
		wantHeader(t, res, "Location", "/v2/repo/blobs/"+d.String())
		wantHeader(t, res, "Docker-Content-Digest", d.String())
	}
	res := r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil, nil)
	if res.status != 200 || !bytes.Equal(res.body, data) {
		t.Fatalf("GET blob: %s", res)
	}
}

func TestChunkedUpload(t *testing.T) {
	r := newTestRegistry(t)
	data := []byte("0123456789abcdefghij")
	d := digest.FromBytes(data)
	loc := r.startUpload("repo")
	id := loc[strings.LastIndex(loc, "/")+1:]

	steps := []struct {
		name         string
		contentRange string
		body         []byte
		status       int
		rng          string // Range answered
		code         string
	}{
		{"first chunk", "0-4", data[0:5], 202, "0-4", ""},
		{"out of order", "10-14", data[10:15], 416, "0-4", "BLOB_UPLOAD_INVALID"},
		{"overlapping", "2-6", data[2:7], 416, "0-4", "BLOB_UPLOAD_INVALID"},
		{"second chunk", "5-9", data[5:10], 202, "0-9", ""},
		{"bytes prefix and total", "bytes 10-14/*", data[10:15], 202, "0-14", ""},
	}
	for _, st := range steps {
		res := r.do(http.MethodPatch, loc, hdr("Content-Range", st.contentRange, "Content-Type", "application/octet-stream"), st.body)
		if st.status >= 400 {
			wantError(t, res, st.status, st.code)
		} else {
			wantStatus(t, res, st.status)
		}
		wantHeader(t, res, "Range", st.rng)
		wantHeader(t, res, "Location", loc)
		wantHeader(t, res, "Docker-Upload-UUID", id)
		if t.Failed() {
			t.Fatalf("step %q", st.name)
		}
	}
	res := r.do(http.MethodGet, loc, nil, nil)
	wantStatus(t, res, http.StatusNoContent)
	wantHeader(t, res, "Range", "0-14")
	wantHeader(t, res, "Location", loc)
	wantHeader(t, res, "Docker-Upload-UUID", id)

	// The last chunk comes with the PUT.
	res = r.do(http.MethodPut, withQuery(loc, "digest="+d.String()), hdr("Content-Range", "15-19"), data[15:])
	wantStatus(t, res, http.StatusCreated)
	wantHeader(t, res, "Docker-Content-Digest", d.String())
	res = r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil, nil)
	if res.status != 200 || !bytes.Equal(res.body, data) {
		t.Fatalf("GET blob: %s", res)
	}
	res = r.do(http.MethodHead, "/v2/repo/blobs/"+d.String(), nil, nil)
	wantHeader(t, res, "Content-Length", itoa(int64(len(data))))
}

func TestStreamedUpload(t *testing.T) {
	r := newTestRegistry(t)
	data := bytes.Repeat([]byte("streamed "), 100000)
	d := digest.FromBytes(data)
	loc := r.startUpload("repo")
	// No Content-Range and no Content-Length: a chunked request body.
	res := r.do(http.MethodPatch, loc, nil, io.Reader(bytes.NewReader(data[:500000])))
	wantStatus(t, res, http.StatusAccepted)
	wantHeader(t, res, "Range", "0-499999")
	// And the rest with a Content-Length but no Content-Range.
	res = r.do(http.MethodPatch, loc, nil, data[500000:])
	wantStatus(t, res, http.StatusAccepted)
	wantHeader(t, res, "Range", "0-"+itoa(int64(len(data)-1)))
	res = r.do(http.MethodPut, withQuery(loc, "digest="+d.String()), nil, nil)
	wantStatus(t, res, http.StatusCreated)
	res = r.do(http.MethodHead, "/v2/repo/blobs/"+d.String(), nil, nil)
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Content-Length", itoa(int64(len(data))))
	res = r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil, nil)
	if !bytes.Equal(res.body, data) {
		t.Fatalf("blob differs: %d bytes", len(res.body))
	}
}

func TestCancelUpload(t *testing.T) {
	r := newTestRegistry(t)
	loc := r.startUpload("repo")
	wantStatus(t, r.do(http.MethodPatch, loc, nil, "some bytes"), http.StatusAccepted)
	before := r.snapshot()
	res := r.do(http.MethodDelete, loc, nil, nil)
	wantStatus(t, res, http.StatusNoContent)
	for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
		wantError(t, r.do(method, loc, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
	wantError(t, r.do(http.MethodPut, withQuery(loc, "digest="+digest.FromString("some bytes").String()), nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	for p := range r.snapshot() {
		if strings.Contains(p, "_uploads") {
			t.Errorf("left behind: %s (before: %d files)", p, len(before))
		}
	}
}

func TestUploadWrongDigest(t *testing.T) {
	r := newTestRegistry(t)
	data := []byte("the real content")
	wrong := digest.FromString("something else")
	loc := r.startUpload("repo")
	wantStatus(t, r.do(http.MethodPatch, loc, nil, data[:4]), http.StatusAccepted)
	res := r.do(http.MethodPut, withQuery(loc, "digest="+wrong.String()), nil, data[4:])
	wantError(t, res, http.StatusBadRequest, "DIGEST_INVALID")
	for _, d := range []digest.Digest{wrong, digest.FromBytes(data)} {
		wantError(t, r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
		// Not mountable from anywhere either.
		res := r.do(http.MethodPost, "/v2/other/blobs/uploads/?mount="+d.String(), nil, nil)
		wantStatus(t, res, http.StatusAccepted)
	}
	wantError(t, r.do(http.MethodGet, loc, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	// Monolithic POST with a wrong digest: same.
	res = r.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+wrong.String(), nil, data)
	wantError(t, res, http.StatusBadRequest, "DIGEST_INVALID")
	wantError(t, r.do(http.MethodGet, "/v2/repo/blobs/"+wrong.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
	for p := range r.snapshot() {
		if strings.Contains(p, "/blobs/") || strings.Contains(p, "_layers") {
			t.Errorf("visible after a digest mismatch: %s", p)
		}
	}
}

func TestMount(t *testing.T) {
	r := newTestRegistry(t)
	d := r.pushBlob("src", []byte("shared"))
	elsewhere := r.pushBlob("elsewhere", []byte("elsewhere"))
	unknown := digest.FromString("unknown")
	tests := []struct {
		name, to, query string
		d               digest.Digest
		status          int
	}{
		{"with from", "dst1", "mount=" + d.String() + "&from=src", d, 201},
		{"without from, known", "dst2", "mount=" + d.String(), d, 201},
		{"without from, unknown", "dst3", "mount=" + unknown.String(), unknown, 202},
		{"from a repository without it", "dst4", "mount=" + elsewhere.String() + "&from=src", elsewhere, 202},
		{"from an unknown repository", "dst5", "mount=" + d.String() + "&from=nosuch", d, 202},
		{"with from, unknown", "dst6", "mount=" + unknown.String() + "&from=src", unknown, 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := r.do(http.MethodPost, "/v2/"+tc.to+"/blobs/uploads/?"+tc.query, nil, nil)
			wantStatus(t, res, tc.status)
			blob := r.do(http.MethodHead, "/v2/"+tc.to+"/blobs/"+tc.d.String(), nil, nil)
			if tc.status == http.StatusCreated {
				wantHeader(t, res, "Location", "/v2/"+tc.to+"/blobs/"+tc.d.String())
				wantHeader(t, res, "Docker-Content-Digest", tc.d.String())
				wantStatus(t, blob, http.StatusOK)
				return
			}
			// Not mounted: an ordinary upload session instead.
			wantStatus(t, blob, http.StatusNotFound)
			loc := res.header.Get("Location")
			if !strings.HasPrefix(loc, "/v2/"+tc.to+"/blobs/uploads/") || res.header.Get("Docker-Upload-UUID") == "" {
				t.Fatalf("Location %q", loc)
			}
			content := []byte("uploaded instead of " + tc.name)
			res = r.do(http.MethodPut, withQuery(loc, "digest="+digest.FromBytes(content).String()), nil, content)
			wantStatus(t, res, http.StatusCreated)
		})
	}
}

func TestSHA512Blob(t *testing.T) {
	r := newTestRegistry(t)
	data := bytes.Repeat([]byte("sha512 content "), 1000)
	d := digest.SHA512.FromBytes(data)
	loc := r.startUpload("repo")
	wantStatus(t, r.do(http.MethodPatch, loc, hdr("Content-Range", "0-99"), data[:100]), http.StatusAccepted)
	res := r.do(http.MethodPut, withQuery(loc, "digest="+d.String()), nil, data[100:])
	wantStatus(t, res, http.StatusCreated)
	wantHeader(t, res, "Docker-Content-Digest", d.String())
	wantHeader(t, res, "Location", "/v2/repo/blobs/"+d.String())
	res = r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil, nil)
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Docker-Content-Digest", d.String())
	if !bytes.Equal(res.body, data) {
		t.Fatalf("blob differs")
	}
	res = r.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), hdr("Range", "bytes=-5"), nil)
	wantStatus(t, res, http.StatusPartialContent)
	if string(res.body) != "tent " {
		t.Errorf("range body %q", res.body)
	}
	// Monolithic, to another repository; and mounted.
	res = r.do(http.MethodPost, "/v2/other/blobs/uploads/?digest="+d.String(), nil, data)
	wantStatus(t, res, http.StatusCreated)
	wantStatus(t, r.do(http.MethodPost, "/v2/third/blobs/uploads/?mount="+d.String()+"&from=repo", nil, nil), http.StatusCreated)
	// A manifest can reference it.
	cfg := r.pushBlob("repo", []byte("{}"))
	m := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
		"config": descriptor(ocispec.MediaTypeImageConfig, cfg, 2),
		"layers": []any{descriptor(ocispec.MediaTypeImageLayer, d, len(data))}})
	r.pushManifest("repo", "sha512", ocispec.MediaTypeImageManifest, m)
	// And a manifest can be addressed by its sha512 digest.
	md := digest.SHA512.FromBytes(m)
	res = r.pushManifest("repo", md.String(), ocispec.MediaTypeImageManifest, m)
	wantHeader(t, res, "Docker-Content-Digest", md.String())
	res = r.do(http.MethodGet, "/v2/repo/manifests/"+md.String(), nil, nil)
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Docker-Content-Digest", md.String())
}

func TestManifests(t *testing.T) {
	r := newTestRegistry(t)
	img := r.pushImageBlobs("library/app", "m")
	res := r.pushManifest("library/app", "v1", ocispec.MediaTypeImageManifest, img.manifest)
	wantHeader(t, res, "Location", "/v2/library/app/manifests/"+img.digest.String())
	wantHeader(t, res, "Docker-Content-Digest", img.digest.String())
	wantHeader(t, res, "OCI-Subject", "")

	// Docker's media types are kept as sent.
	dockerM := bytes.ReplaceAll(img.manifest, []byte(ocispec.MediaTypeImageManifest), []byte(store.MediaTypeDockerManifest))
	dockerD := digest.FromBytes(dockerM)
	r.pushManifest("library/app", "docker", store.MediaTypeDockerManifest, dockerM)
	index := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex,
		"manifests": []any{descriptor(ocispec.MediaTypeImageManifest, img.digest, len(img.manifest))}})
	r.pushManifest("library/app", "index", ocispec.MediaTypeImageIndex, index)
	list := bytes.ReplaceAll(index, []byte(ocispec.MediaTypeImageIndex), []byte(store.MediaTypeDockerManifestList))
	r.pushManifest("library/app", "list", store.MediaTypeDockerManifestList, list)

	tests := []struct {
		ref       string
		body      []byte
		mediaType string
	}{
		{"v1", img.manifest, ocispec.MediaTypeImageManifest},
		{img.digest.String(), img.manifest, ocispec.MediaTypeImageManifest},
		{"docker", dockerM, store.MediaTypeDockerManifest},
		{dockerD.String(), dockerM, store.MediaTypeDockerManifest},
		{"index", index, ocispec.MediaTypeImageIndex},
		{"list", list, store.MediaTypeDockerManifestList},
	}
	for _, tc := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			res := r.do(method, "/v2/library/app/manifests/"+tc.ref, hdr("Accept", strings.Join([]string{
				ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, store.MediaTypeDockerManifest, store.MediaTypeDockerManifestList}, ", ")), nil)
			wantStatus(t, res, http.StatusOK)
			wantHeader(t, res, "Content-Type", tc.mediaType)
			wantHeader(t, res, "Docker-Content-Digest", digest.FromBytes(tc.body).String())
			wantHeader(t, res, "Content-Length", itoa(int64(len(tc.body))))
			if method == http.MethodGet && !bytes.Equal(res.body, tc.body) {
				t.Errorf("GET %s: body differs from what was pushed", tc.ref)
			}
		}
	}
	// Manifests can be read as blobs of their repository, as registry:2 does.
	res = r.do(http.MethodGet, "/v2/library/app/blobs/"+img.digest.String(), nil, nil)
	if res.status != 200 || !bytes.Equal(res.body, img.manifest) {
		t.Errorf("manifest as blob: %s", res)
	}

	for _, ref := range []string{"nosuch", digest.FromString("nosuch").String()} {
		wantError(t, r.do(http.MethodGet, "/v2/library/app/manifests/"+ref, nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		wantError(t, r.do(http.MethodHead, "/v2/library/app/manifests/"+ref, nil, nil), http.StatusNotFound, "")
		wantError(t, r.do(http.MethodGet, "/v2/other/manifests/"+ref, nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
	wantError(t, r.do(http.MethodGet, "/v2/other/manifests/"+img.digest.String(), nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestManifestTagParams(t *testing.T) {
	r := newTestRegistry(t)
	img := r.pushImageBlobs("repo", "tags")
	res := r.do(http.MethodPut, "/v2/repo/manifests/"+img.digest.String()+"?tag=b&tag=a&tag=b", hdr("Content-Type", ocispec.MediaTypeImageManifest), img.manifest)
	wantStatus(t, res, http.StatusCreated)
	if got := res.header.Values("OCI-Tag"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("OCI-Tag %v, want [a b]", got)
	}
	wantHeader(t, res, "Docker-Content-Digest", img.digest.String())
	res = r.do(http.MethodPut, "/v2/repo/manifests/c?tag=d", hdr("Content-Type", ocispec.MediaTypeImageManifest), img.manifest)
	wantStatus(t, res, http.StatusCreated)
	if got := res.header.Values("OCI-Tag"); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("OCI-Tag %v, want [c d]", got)
	}
	for _, tag := range []string{"a", "b", "c", "d"} {
		res := r.do(http.MethodGet, "/v2/repo/manifests/"+tag, nil, nil)
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Docker-Content-Digest", img.digest.String())
	}
}

func TestManifestMissingBlob(t *testing.T) {
	r := newTestRegistry(t)
	cfg := r.pushBlob("repo", []byte("{}"))
	for name, layers := range map[string][]any{
		"missing layer":  {descriptor(ocispec.MediaTypeImageLayer, digest.FromString("missing"), 7)},
		"missing config": nil,
	} {
		c := cfg
		if layers == nil {
			c = digest.FromString("missing config")
		}
		m := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
			"config": descriptor(ocispec.MediaTypeImageConfig, c, 2), "layers": layers})
		res := r.do(http.MethodPut, "/v2/repo/manifests/v1", hdr("Content-Type", ocispec.MediaTypeImageManifest), m)
		wantError(t, res, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
		if t.Failed() {
			t.Fatal(name)
		}
	}
	wantError(t, r.do(http.MethodGet, "/v2/repo/manifests/v1", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	// A non-distributable layer with URLs need not be pushed.
	m := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
		"config": descriptor(ocispec.MediaTypeImageConfig, cfg, 2),
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
			"digest": digest.FromString("foreign").String(), "size": 7, "urls": []string{"https://example.com/foreign"}}}})
	r.pushManifest("repo", "foreign", ocispec.MediaTypeImageManifest, m)
}

func TestManifestTooLarge(t *testing.T) {
	r := newTestRegistry(t)
	img := r.pushImageBlobs("repo", "large")
	r.pushManifest("repo", "v1", ocispec.MediaTypeImageManifest, img.manifest)
	before := r.snapshot()
	// Valid JSON, one byte over the limit.
	big := append(bytes.Clone(img.manifest), bytes.Repeat([]byte(" "), store.MaxManifestSize+1-len(img.manifest))...)
	for _, body := range []any{big, io.Reader(bytes.NewReader(big))} { // with Content-Length, then chunked
		res := r.do(http.MethodPut, "/v2/repo/manifests/v1", hdr("Content-Type", ocispec.MediaTypeImageManifest), body)
		wantError(t, res, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
	}
	// Exactly at the limit is fine.
	res := r.do(http.MethodPut, "/v2/repo/manifests/max", hdr("Content-Type", ocispec.MediaTypeImageManifest), big[:store.MaxManifestSize])
	wantStatus(t, res, http.StatusCreated)
	after := r.snapshot()
	for p := range after {
		if _, ok := before[p]; !ok && !strings.Contains(p, "/tags/max/") && !strings.Contains(p, digest.FromBytes(big[:store.MaxManifestSize]).Encoded()) {
			t.Errorf("unexpected file %s", p)
		}
	}
	res = r.do(http.MethodGet, "/v2/repo/manifests/v1", nil, nil)
	if !bytes.Equal(res.body, img.manifest) {
		t.Errorf("v1 changed")
	}
}

func TestReferrers(t *testing.T) {
	r := newTestRegistry(t)
	img := r.pushImageBlobs("repo", "subject")
	empty := r.pushBlob("repo", []byte("{}"))
	artifact := func(at, note string) []byte {
		return mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
			"artifactType": at, "config": descriptor(ocispec.MediaTypeEmptyJSON, empty, 2), "layers": []any{},
			"subject":     descriptor(ocispec.MediaTypeImageManifest, img.digest, len(img.manifest)),
			"annotations": map[string]string{"note": note}})
	}
	sig, sbom := artifact("application/vnd.example.sig", "sig"), artifact("application/vnd.example.sbom", "sbom")
	// Pushed before the subject itself.
	for _, b := range [][]byte{sig, sbom} {
		res := r.pushManifest("repo", digest.FromBytes(b).String(), ocispec.MediaTypeImageManifest, b)
		wantHeader(t, res, "OCI-Subject", img.digest.String())
	}
	r.pushManifest("repo", "v1", ocispec.MediaTypeImageManifest, img.manifest)

	tests := []struct {
		name, query string
		want        map[digest.Digest]string // digest -> artifactType
		filtered    bool
	}{
		{"all", "", map[digest.Digest]string{digest.FromBytes(sig): "application/vnd.example.sig", digest.FromBytes(sbom): "application/vnd.example.sbom"}, false},
		{"filtered", "?artifactType=application/vnd.example.sbom", map[digest.Digest]string{digest.FromBytes(sbom): "application/vnd.example.sbom"}, true},
		{"filtered, escaped", "?artifactType=application%2Fvnd.example.sig", map[digest.Digest]string{digest.FromBytes(sig): "application/vnd.example.sig"}, true},
		{"filtered to nothing", "?artifactType=application/none", map[digest.Digest]string{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := r.do(http.MethodGet, "/v2/repo/referrers/"+img.digest.String()+tc.query, nil, nil)
			wantStatus(t, res, http.StatusOK)
			wantHeader(t, res, "Content-Type", ocispec.MediaTypeImageIndex)
			if tc.filtered {
				wantHeader(t, res, "OCI-Filters-Applied", "artifactType")
			} else {
				wantHeader(t, res, "OCI-Filters-Applied", "")
			}
			var idx ocispec.Index
			if err := json.Unmarshal(res.body, &idx); err != nil {
				t.Fatal(err)
			}
			if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || idx.Manifests == nil {
				t.Errorf("index %s", res.body)
			}
			got := map[digest.Digest]string{}
			for _, d := range idx.Manifests {
				got[d.Digest] = d.ArtifactType
				if d.MediaType != ocispec.MediaTypeImageManifest || d.Size <= 0 || d.Annotations["note"] == "" {
					t.Errorf("descriptor %+v", d)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("referrers %v, want %v", got, tc.want)
			}
			for d, at := range tc.want {
				if got[d] != at {
					t.Errorf("referrer %s: artifactType %q, want %q", d, got[d], at)
				}
			}
		})
	}
	// Nothing refers to the layer: an empty index, 200.
	res := r.do(http.MethodGet, "/v2/repo/referrers/"+digest.FromString("nothing").String(), nil, nil)
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(string(res.body), `"manifests":[]`) {
		t.Errorf("empty referrers %s", res.body)
	}
	// Deleting a referrer removes it from the list.
	wantStatus(t, r.do(http.MethodDelete, "/v2/repo/manifests/"+digest.FromBytes(sig).String(), nil, nil), http.StatusAccepted)
	res = r.do(http.MethodGet, "/v2/repo/referrers/"+img.digest.String(), nil, nil)
	if strings.Contains(string(res.body), digest.FromBytes(sig).String()) {
		t.Errorf("deleted referrer still listed: %s", res.body)
	}
}

// pages follows n/last pagination through the Link header and returns each
// page and each Link.
func pages(t *testing.T, r *testRegistry, first, field string) (pages [][]string, links []string) {
	t.Helper()
	next := first
	for next != "" && len(pages) < 20 {
		res := r.do(http.MethodGet, next, nil, nil)
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Type", "application/json")
		var body map[string]json.RawMessage
		if err := json.Unmarshal(res.body, &body); err != nil {
			t.Fatal(err)
		}
		var page []string
		if err := json.Unmarshal(body[field], &page); err != nil || page == nil {
			t.Fatalf("%s: %s is %s", next, field, body[field])
		}
		pages = append(pages, page)
		link := res.header.Get("Link")
		links = append(links, link)
		next = ""
		if link != "" {
			u, rel, ok := strings.Cut(link, ">; ")
			if !ok || rel != `rel="next"` || !strings.HasPrefix(u, "<") {
				t.Fatalf("Link %q", link)
			}
			next = u[1:]
		}
	}
	return pages, links
}

func TestTagsList(t *testing.T) {
	r := newTestRegistry(t)
	img := r.pushImageBlobs("library/app", "tags")
	for _, tag := range []string{"e", "c", "a", "d", "b"} {
		r.pushManifest("library/app", tag, ocispec.MediaTypeImageManifest, img.manifest)
	}
	tests := []struct {
		name, first string
		pages       [][]string
		links       []string
	}{
		{"all", "/v2/library/app/tags/list", [][]string{{"a", "b", "c", "d", "e"}}, []string{""}},
		{"n=2", "/v2/library/app/tags/list?n=2", [][]string{{"a", "b"}, {"c", "d"}, {"e"}}, []string{
			`</v2/library/app/tags/list?last=b&n=2>; rel="next"`, `</v2/library/app/tags/list?last=d&n=2>; rel="next"`, ""}},
		{"n=5 exactly", "/v2/library/app/tags/list?n=5", [][]string{{"a", "b", "c", "d", "e"}}, []string{""}},
		{"n larger", "/v2/library/app/tags/list?n=100", [][]string{{"a", "b", "c", "d", "e"}}, []string{""}},
		{"last", "/v2/library/app/tags/list?last=c", [][]string{{"d", "e"}}, []string{""}},
		{"last not a tag", "/v2/library/app/tags/list?last=bb&n=1", [][]string{{"c"}, {"d"}, {"e"}}, []string{
			`</v2/library/app/tags/list?last=c&n=1>; rel="next"`, `</v2/library/app/tags/list?last=d&n=1>; rel="next"`, ""}},
		{"last after everything", "/v2/library/app/tags/list?last=z", [][]string{{}}, []string{""}},
		{"n=0", "/v2/library/app/tags/list?n=0", [][]string{{}}, []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, links := pages(t, r, tc.first, "tags")
			if !slices.EqualFunc(got, tc.pages, slices.Equal) {
				t.Errorf("pages %v, want %v", got, tc.pages)
			}
			if !slices.Equal(links, tc.links) {
				t.Errorf("links %q, want %q", links, tc.links)
			}
		})
	}
	res := r.do(http.MethodGet, "/v2/library/app/tags/list", nil, nil)
	if !strings.Contains(string(res.body), `"name":"library/app"`) {
		t.Errorf("tags list %s", res.body)
	}
	wantError(t, r.do(http.MethodGet, "/v2/nosuch/tags/list", nil, nil), http.StatusNotFound, "NAME_UNKNOWN")
	for _, n := range []string{"-1", "abc", "1.5", "99999999999999999999"} {
		wantError(t, r.do(http.MethodGet, "/v2/library/app/tags/list?n="+n, nil, nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	}
}

func TestCatalog(t *testing.T) {
	r := newTestRegistry(t)
	res := r.do(http.MethodGet, "/v2/_catalog", nil, nil)
	wantStatus(t, res, http.StatusOK)
	if string(res.body) != `{"repositories":[]}` {
		t.Errorf("empty catalog %s", res.body)
	}
	for _, name := range []string{"b", "a/x", "a", "c/d/e"} {
		img := r.pushImageBlobs(name, name)
		r.pushManifest(name, "v1", ocispec.MediaTypeImageManifest, img.manifest)
	}
	r.pushBlob("blobsonly", []byte("x"))
	tests := []struct {
		name, first string
		pages       [][]string
		links       []string
	}{
		{"all", "/v2/_catalog", [][]string{{"a", "a/x", "b", "c/d/e"}}, []string{""}},
		{"n=3", "/v2/_catalog?n=3", [][]string{{"a", "a/x", "b"}, {"c/d/e"}}, []string{`</v2/_catalog?last=b&n=3>; rel="next"`, ""}},
		{"n=1 with slashes", "/v2/_catalog?n=1&last=a", [][]string{{"a/x"}, {"b"}, {"c/d/e"}}, []string{
			`</v2/_catalog?last=a%2Fx&n=1>; rel="next"`, `</v2/_catalog?last=b&n=1>; rel="next"`, ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, links := pages(t, r, tc.first, "repositories")
			if !slices.EqualFunc(got, tc.pages, slices.Equal) {
				t.Errorf("pages %v, want %v", got, tc.pages)
			}
			if !slices.Equal(links, tc.links) {
				t.Errorf("links %q, want %q", links, tc.links)
			}
		})
	}
	wantError(t, r.do(http.MethodGet, "/v2/_catalog?n=-2", nil, nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
}

func TestDelete(t *testing.T) {
	r := newTestRegistry(t)
	img := r.pushImageBlobs("repo", "del")
	r.pushManifest("repo", "v1", ocispec.MediaTypeImageManifest, img.manifest)
	r.pushManifest("repo", "v2", ocispec.MediaTypeImageManifest, img.manifest)
	layer := digest.FromBytes(img.layer)

	wantStatus(t, r.do(http.MethodDelete, "/v2/repo/manifests/v2", nil, nil), http.StatusAccepted)
	wantError(t, r.do(http.MethodGet, "/v2/repo/manifests/v2", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, r.do(http.MethodDelete, "/v2/repo/manifests/v2", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantStatus(t, r.do(http.MethodGet, "/v2/repo/manifests/v1", nil, nil), http.StatusOK)

	wantStatus(t, r.do(http.MethodDelete, "/v2/repo/manifests/"+img.digest.String(), nil, nil), http.StatusAccepted)
	for _, ref := range []string{"v1", img.digest.String()} {
		wantError(t, r.do(http.MethodGet, "/v2/repo/manifests/"+ref, nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
	res := r.do(http.MethodGet, "/v2/repo/tags/list", nil, nil)
	if res.status == http.StatusOK && strings.Contains(string(res.body), "v1") {
		t.Errorf("tag of a deleted manifest listed: %s", res.body)
	}

	wantStatus(t, r.do(http.MethodDelete, "/v2/repo/blobs/"+layer.String(), nil, nil), http.StatusAccepted)
	wantError(t, r.do(http.MethodGet, "/v2/repo/blobs/"+layer.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantError(t, r.do(http.MethodDelete, "/v2/repo/blobs/"+layer.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
}

func TestDeletesDisabled(t *testing.T) {
	r := newTestRegistryOpts(t, store.Options{})
	img := r.pushImageBlobs("repo", "nodel")
	r.pushManifest("repo", "v1", ocispec.MediaTypeImageManifest, img.manifest)
	before := r.snapshot()
	for _, p := range []string{
		"/v2/repo/manifests/v1",
		"/v2/repo/manifests/" + img.digest.String(),
		"/v2/repo/blobs/" + digest.FromBytes(img.layer).String(),
	} {
		wantError(t, r.do(http.MethodDelete, p, nil, nil), http.StatusMethodNotAllowed, "UNSUPPORTED")
	}
	sameSnapshot(t, before, r.snapshot())
}

func TestHealthz(t *testing.T) {
	r := newTestRegistry(t)
	res := r.do(http.MethodGet, "/healthz", nil, nil)
	wantStatus(t, res, http.StatusOK)
	if string(res.body) != "ok\n" {
		t.Errorf("healthz %q", res.body)
	}
}
