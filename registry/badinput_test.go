package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixture is a registry holding library/app:v1, its blobs, and an upload in
// progress with 5 bytes; every bad request must leave all of it as it is.
type fixture struct {
	*testRegistry
	img       testImage
	layer     digest.Digest
	upload    string // Location of the upload in progress
	uploadID  string
	partial   []byte // what the upload holds
	otherBlob digest.Digest
}

func newFixture(t *testing.T) *fixture {
	r := newTestRegistry(t)
	f := &fixture{testRegistry: r, partial: []byte("01234")}
	f.img = r.pushImageBlobs("library/app", "fixture")
	f.layer = digest.FromBytes(f.img.layer)
	r.pushManifest("library/app", "v1", ocispec.MediaTypeImageManifest, f.img.manifest)
	f.otherBlob = r.pushBlob("other", []byte("other blob"))
	f.upload = r.startUpload("library/app")
	f.uploadID = f.upload[strings.LastIndex(f.upload, "/")+1:]
	res := r.do(http.MethodPatch, f.upload, hdr("Content-Range", "0-4"), f.partial)
	wantStatus(t, res, http.StatusAccepted)
	return f
}

// intact checks, through the API, that the fixture's content is served as
// before.
func (f *fixture) intact(t *testing.T) {
	t.Helper()
	for _, ref := range []string{"v1", f.img.digest.String()} {
		res := f.do(http.MethodGet, "/v2/library/app/manifests/"+ref, nil, nil)
		if res.status != http.StatusOK || !bytes.Equal(res.body, f.img.manifest) ||
			res.header.Get("Docker-Content-Digest") != f.img.digest.String() {
			t.Errorf("manifest %s: %s", ref, res)
		}
	}
	res := f.do(http.MethodGet, "/v2/library/app/blobs/"+f.layer.String(), nil, nil)
	if res.status != http.StatusOK || !bytes.Equal(res.body, f.img.layer) {
		t.Errorf("layer: %s", res)
	}
	res = f.do(http.MethodGet, f.upload, nil, nil)
	if res.status != http.StatusNoContent || res.header.Get("Range") != fmt.Sprintf("0-%d", len(f.partial)-1) {
		t.Errorf("upload status: %s, Range %q", res, res.header.Get("Range"))
	}
	res = f.do(http.MethodGet, "/v2/library/app/tags/list", nil, nil)
	if res.status != http.StatusOK || string(res.body) != `{"name":"library/app","tags":["v1"]}` {
		t.Errorf("tags: %s", res)
	}
}

type badCase struct {
	name   string
	method string
	path   string // sent verbatim, query included
	header http.Header
	body   any
	status int
	code   string
}

// runBad sends each request and checks the answer and that nothing changed.
func (f *fixture) runBad(t *testing.T, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.snapshot()
			defer f.restore(before)
			res := f.do(tc.method, tc.path, tc.header, tc.body)
			wantError(t, res, tc.status, tc.code)
			if res.status == tc.status && strings.HasPrefix(tc.path, "/v2/") {
				wantHeader(t, res, "Docker-Distribution-API-Version", "registry/2.0")
			}
			sameSnapshot(t, before, f.snapshot())
			f.intact(t)
		})
	}
}

var (
	longName = strings.Repeat("a", 300)
	longTag  = strings.Repeat("t", 129)
)

func TestBadNames(t *testing.T) {
	f := newFixture(t)
	m := f.img.manifest
	ct := hdr("Content-Type", ocispec.MediaTypeImageManifest)
	var cases []badCase
	for _, name := range []string{
		"Library/app",                  // uppercase
		"library/App",                  // uppercase
		"library/../library/app",       // dot-dot component
		"../library/app",               // leading dot-dot
		"library/app/..",               // trailing dot-dot... as a name
		"library/./app",                // dot component
		"library//app",                 // empty component
		"_x",                           // leading underscore
		"library/_app",                 // leading underscore in a component
		"library/app_",                 // trailing separator
		"library/app-",                 // trailing separator
		"library/a___b",                // three underscores
		longName,                       // over 255 characters
		"%2e%2e",                       // encoded "..": decoded before routing
		"%2e%2e/library/app",           // encoded "../library/app"
		"library%2F..%2Flibrary%2Fapp", // encoded slashes and dot-dot
		"library/%2E%2E/app",           // upper-case escapes
		"lib%00rary/app",               // NUL
		"library/app%20",               // space
		"library/ap%C3%BC",             // non-ASCII
	} {
		cases = append(cases,
			badCase{"GET manifest " + name, http.MethodGet, "/v2/" + name + "/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			badCase{"PUT manifest " + name, http.MethodPut, "/v2/" + name + "/manifests/v1", ct, m, 400, "NAME_INVALID"},
			badCase{"DELETE manifest " + name, http.MethodDelete, "/v2/" + name + "/manifests/" + f.img.digest.String(), nil, nil, 400, "NAME_INVALID"},
			badCase{"GET blob " + name, http.MethodGet, "/v2/" + name + "/blobs/" + f.layer.String(), nil, nil, 400, "NAME_INVALID"},
			badCase{"DELETE blob " + name, http.MethodDelete, "/v2/" + name + "/blobs/" + f.layer.String(), nil, nil, 400, "NAME_INVALID"},
			badCase{"POST upload " + name, http.MethodPost, "/v2/" + name + "/blobs/uploads/", nil, nil, 400, "NAME_INVALID"},
			badCase{"POST blob " + name, http.MethodPost, "/v2/" + name + "/blobs/uploads/?digest=" + f.layer.String(), nil, f.img.layer, 400, "NAME_INVALID"},
			badCase{"PATCH upload " + name, http.MethodPatch, "/v2/" + name + "/blobs/uploads/" + f.uploadID, nil, "56789", 400, "NAME_INVALID"},
			badCase{"PUT upload " + name, http.MethodPut, "/v2/" + name + "/blobs/uploads/" + f.uploadID + "?digest=" + f.layer.String(), nil, nil, 400, "NAME_INVALID"},
			badCase{"DELETE upload " + name, http.MethodDelete, "/v2/" + name + "/blobs/uploads/" + f.uploadID, nil, nil, 400, "NAME_INVALID"},
			badCase{"tags " + name, http.MethodGet, "/v2/" + name + "/tags/list", nil, nil, 400, "NAME_INVALID"},
			badCase{"referrers " + name, http.MethodGet, "/v2/" + name + "/referrers/" + f.img.digest.String(), nil, nil, 400, "NAME_INVALID"},
		)
	}
	// Mount sources are names too.
	for _, from := range []string{"Library/app", "../library/app", "library/../library/app", "library//app", "_x", longName, "library%2F..%2Fapp"} {
		cases = append(cases, badCase{"mount from " + from, http.MethodPost,
			"/v2/library/copy/blobs/uploads/?mount=" + f.layer.String() + "&from=" + from, nil, nil, 400, "NAME_INVALID"})
	}
	f.runBad(t, cases)
}

func TestBadReferences(t *testing.T) {
	f := newFixture(t)
	m := f.img.manifest
	ct := hdr("Content-Type", ocispec.MediaTypeImageManifest)
	d := f.img.digest.String()
	hexd := f.img.digest.Encoded()
	otherID := "3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b"
	cases := []badCase{
		// Malformed tags.
		{"PUT tag starting with a dash", http.MethodPut, "/v2/library/app/manifests/-v1", ct, m, 400, "TAG_INVALID"},
		{"PUT tag starting with a dot", http.MethodPut, "/v2/library/app/manifests/.v1", ct, m, 400, "TAG_INVALID"},
		{"PUT tag too long", http.MethodPut, "/v2/library/app/manifests/" + longTag, ct, m, 400, "TAG_INVALID"},
		{"PUT tag with a space", http.MethodPut, "/v2/library/app/manifests/v%201", ct, m, 400, "TAG_INVALID"},
		{"PUT tag non-ASCII", http.MethodPut, "/v2/library/app/manifests/v%C3%BC", ct, m, 400, "TAG_INVALID"},
		{"PUT tag dot-dot", http.MethodPut, "/v2/library/app/manifests/..", ct, m, 400, "TAG_INVALID"},
		{"PUT tag dot", http.MethodPut, "/v2/library/app/manifests/.", ct, m, 400, "TAG_INVALID"},
		{"PUT tag encoded dot-dot", http.MethodPut, "/v2/library/app/manifests/%2e%2e", ct, m, 400, "TAG_INVALID"},
		{"PUT tag traversal", http.MethodPut, "/v2/library/app/manifests/../../x", ct, m, 404, "NOT_FOUND"},
		{"PUT tag encoded traversal", http.MethodPut, "/v2/library/app/manifests/..%2F..%2Fx", ct, m, 404, "NOT_FOUND"},
		{"PUT tag encoded slash", http.MethodPut, "/v2/library/app/manifests/v1%2F..%2F..%2Fx", ct, m, 404, "NOT_FOUND"},
		{"PUT ?tag= malformed", http.MethodPut, "/v2/library/app/manifests/" + d + "?tag=ok&tag=-bad", ct, m, 400, "TAG_INVALID"},
		{"PUT ?tag= traversal", http.MethodPut, "/v2/library/app/manifests/" + d + "?tag=..%2F..%2Fx", ct, m, 400, "TAG_INVALID"},
		{"PUT ?tag= dot-dot", http.MethodPut, "/v2/library/app/manifests/v2?tag=..", ct, m, 400, "TAG_INVALID"},
		{"PUT ?tag= empty", http.MethodPut, "/v2/library/app/manifests/v2?tag=", ct, m, 400, "TAG_INVALID"},
		{"GET tag malformed", http.MethodGet, "/v2/library/app/manifests/-v1", nil, nil, 400, "TAG_INVALID"},
		{"GET tag dot-dot", http.MethodGet, "/v2/library/app/manifests/..", nil, nil, 400, "TAG_INVALID"},
		{"DELETE tag malformed", http.MethodDelete, "/v2/library/app/manifests/-v1", nil, nil, 400, "TAG_INVALID"},
		{"DELETE tag dot-dot", http.MethodDelete, "/v2/library/app/manifests/..", nil, nil, 400, "TAG_INVALID"},
		{"DELETE tag traversal", http.MethodDelete, "/v2/library/app/manifests/..%2F_manifests", nil, nil, 404, "NOT_FOUND"},

		// Malformed digests, in every place a digest goes.
		{"GET blob sha256:xyz", http.MethodGet, "/v2/library/app/blobs/sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob md5", http.MethodGet, "/v2/library/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob uppercase hex", http.MethodGet, "/v2/library/app/blobs/sha256:" + strings.ToUpper(hexd), nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob uppercase algorithm", http.MethodGet, "/v2/library/app/blobs/SHA256:" + hexd, nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob short", http.MethodGet, "/v2/library/app/blobs/sha256:" + hexd[:63], nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob long", http.MethodGet, "/v2/library/app/blobs/sha256:" + hexd + "0", nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob sha512 of sha256 length", http.MethodGet, "/v2/library/app/blobs/sha512:" + hexd, nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob no algorithm", http.MethodGet, "/v2/library/app/blobs/" + hexd, nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob empty hex", http.MethodGet, "/v2/library/app/blobs/sha256:", nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob sha256:..", http.MethodGet, "/v2/library/app/blobs/sha256:..", nil, nil, 400, "DIGEST_INVALID"},
		{"GET blob traversal", http.MethodGet, "/v2/library/app/blobs/sha256:../../", nil, nil, 404, "NOT_FOUND"},
		{"GET blob traversal to a layer", http.MethodGet, "/v2/library/app/blobs/sha256:../../blobs/" + f.layer.String(), nil, nil, 400, "NAME_INVALID"},
		{"GET blob encoded traversal", http.MethodGet, "/v2/library/app/blobs/sha256:..%2F..%2F" + hexd, nil, nil, 404, "NOT_FOUND"},
		{"GET blob dot-dot", http.MethodGet, "/v2/library/app/blobs/..", nil, nil, 400, "DIGEST_INVALID"},
		{"HEAD blob malformed", http.MethodHead, "/v2/library/app/blobs/sha256:xyz", nil, nil, 400, ""},
		{"DELETE blob malformed", http.MethodDelete, "/v2/library/app/blobs/sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"DELETE blob traversal", http.MethodDelete, "/v2/library/app/blobs/sha256:..%2F..%2F_layers", nil, nil, 404, "NOT_FOUND"},
		{"GET manifest sha256:xyz", http.MethodGet, "/v2/library/app/manifests/sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"GET manifest md5", http.MethodGet, "/v2/library/app/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", nil, nil, 400, "DIGEST_INVALID"},
		{"GET manifest uppercase hex", http.MethodGet, "/v2/library/app/manifests/sha256:" + strings.ToUpper(hexd), nil, nil, 400, "DIGEST_INVALID"},
		{"PUT manifest sha256:xyz", http.MethodPut, "/v2/library/app/manifests/sha256:xyz", ct, m, 400, "DIGEST_INVALID"},
		{"PUT manifest wrong digest", http.MethodPut, "/v2/library/app/manifests/" + f.layer.String(), ct, m, 400, "DIGEST_INVALID"},
		{"PUT manifest sha256:..", http.MethodPut, "/v2/library/app/manifests/sha256:..", ct, m, 400, "DIGEST_INVALID"},
		{"DELETE manifest sha256:xyz", http.MethodDelete, "/v2/library/app/manifests/sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"DELETE manifest uppercase", http.MethodDelete, "/v2/library/app/manifests/sha256:" + strings.ToUpper(hexd), nil, nil, 400, "DIGEST_INVALID"},
		{"referrers malformed", http.MethodGet, "/v2/library/app/referrers/sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"referrers tag", http.MethodGet, "/v2/library/app/referrers/v1", nil, nil, 400, "DIGEST_INVALID"},
		{"referrers traversal", http.MethodGet, "/v2/library/app/referrers/sha256:..%2F..%2Fx", nil, nil, 404, "NOT_FOUND"},
		{"POST ?digest= malformed", http.MethodPost, "/v2/library/app/blobs/uploads/?digest=sha256:xyz", nil, "x", 400, "DIGEST_INVALID"},
		{"POST ?digest= traversal", http.MethodPost, "/v2/library/app/blobs/uploads/?digest=sha256:..%2F..%2Fx", nil, "x", 400, "DIGEST_INVALID"},
		{"POST ?mount= malformed", http.MethodPost, "/v2/library/copy/blobs/uploads/?mount=sha256:xyz&from=library/app", nil, nil, 400, "DIGEST_INVALID"},
		{"PUT upload ?digest= malformed", http.MethodPut, f.upload + "?digest=sha256:xyz", nil, nil, 400, "DIGEST_INVALID"},
		{"PUT upload ?digest= md5", http.MethodPut, f.upload + "?digest=md5:d41d8cd98f00b204e9800998ecf8427e", nil, nil, 400, "DIGEST_INVALID"},
		{"PUT upload without digest", http.MethodPut, f.upload, nil, "56789", 400, "DIGEST_INVALID"},

		// Upload ids.
		{"PATCH upload id not a uuid", http.MethodPatch, "/v2/library/app/blobs/uploads/x", nil, "5", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH upload id uppercase", http.MethodPatch, "/v2/library/app/blobs/uploads/" + strings.ToUpper(f.uploadID), nil, "5", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH upload id braces", http.MethodPatch, "/v2/library/app/blobs/uploads/%7B" + f.uploadID + "%7D", nil, "5", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH upload id dot-dot", http.MethodPatch, "/v2/library/app/blobs/uploads/..", nil, "5", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH upload id traversal", http.MethodPatch, "/v2/library/app/blobs/uploads/../../x", nil, "5", 404, "NOT_FOUND"},
		{"PATCH upload id encoded traversal", http.MethodPatch, "/v2/library/app/blobs/uploads/..%2F..%2Fx", nil, "5", 404, "NOT_FOUND"},
		{"PATCH upload id encoded slash", http.MethodPatch, "/v2/library/app/blobs/uploads/" + f.uploadID + "%2F..%2F" + f.uploadID, nil, "5", 404, "NOT_FOUND"},
		{"PATCH unknown upload", http.MethodPatch, "/v2/library/app/blobs/uploads/" + otherID, nil, "5", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET unknown upload", http.MethodGet, "/v2/library/app/blobs/uploads/" + otherID, nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PUT unknown upload", http.MethodPut, "/v2/library/app/blobs/uploads/" + otherID + "?digest=" + f.layer.String(), nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"DELETE unknown upload", http.MethodDelete, "/v2/library/app/blobs/uploads/" + otherID, nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET upload of another repository", http.MethodGet, "/v2/other/blobs/uploads/" + f.uploadID, nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH upload of another repository", http.MethodPatch, "/v2/other/blobs/uploads/" + f.uploadID, nil, "56789", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PUT upload of another repository", http.MethodPut, "/v2/other/blobs/uploads/" + f.uploadID + "?digest=" + digest.FromBytes(f.partial).String(), nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"DELETE upload of another repository", http.MethodDelete, "/v2/other/blobs/uploads/" + f.uploadID, nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
	}
	f.runBad(t, cases)
}

func TestBadContent(t *testing.T) {
	f := newFixture(t)
	ct := hdr("Content-Type", ocispec.MediaTypeImageManifest)
	valid := f.img.manifest
	withField := func(k string, v any) []byte {
		var fields map[string]any
		if err := json.Unmarshal(valid, &fields); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(fields, k)
		} else {
			fields[k] = v
		}
		return mustJSON(fields)
	}
	missing := descriptor(ocispec.MediaTypeImageLayer, digest.FromString("missing"), 7)
	cases := []badCase{
		// Manifests: every refusal leaves tag v1 where it was.
		{"manifest invalid JSON", http.MethodPut, "/v2/library/app/manifests/v1", ct, "{", 400, "MANIFEST_INVALID"},
		{"manifest empty", http.MethodPut, "/v2/library/app/manifests/v1", ct, "", 400, "MANIFEST_INVALID"},
		{"manifest JSON array", http.MethodPut, "/v2/library/app/manifests/v1", ct, "[]", 400, "MANIFEST_INVALID"},
		{"manifest JSON null", http.MethodPut, "/v2/library/app/manifests/v1", ct, "null", 400, "MANIFEST_INVALID"},
		{"manifest JSON string", http.MethodPut, "/v2/library/app/manifests/v1", ct, `"x"`, 400, "MANIFEST_INVALID"},
		{"manifest trailing garbage", http.MethodPut, "/v2/library/app/manifests/v1", ct, string(valid) + "x", 400, "MANIFEST_INVALID"},
		{"manifest trailing brace", http.MethodPut, "/v2/library/app/manifests/v1", ct, string(valid) + "}", 400, "MANIFEST_INVALID"},
		{"manifest two objects", http.MethodPut, "/v2/library/app/manifests/v1", ct, string(valid) + string(valid), 400, "MANIFEST_INVALID"},
		{"manifest unknown media type", http.MethodPut, "/v2/library/app/manifests/v1", hdr("Content-Type", "application/vnd.oci.artifact.manifest.v1+json"),
			withField("mediaType", "application/vnd.oci.artifact.manifest.v1+json"), 400, "MANIFEST_INVALID"},
		{"manifest unknown media type, no Content-Type", http.MethodPut, "/v2/library/app/manifests/v1", nil,
			withField("mediaType", "application/vnd.example+json"), 400, "MANIFEST_INVALID"},
		{"manifest media type mismatch", http.MethodPut, "/v2/library/app/manifests/v1", hdr("Content-Type", "application/vnd.docker.distribution.manifest.v2+json"), valid, 400, "MANIFEST_INVALID"},
		{"manifest schema 1", http.MethodPut, "/v2/library/app/manifests/v1", hdr("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
			`{"schemaVersion":1,"name":"library/app","tag":"v1","fsLayers":[],"history":[],"signatures":[]}`, 400, "MANIFEST_INVALID"},
		{"manifest without config", http.MethodPut, "/v2/library/app/manifests/v1", ct, withField("config", nil), 400, "MANIFEST_INVALID"},
		{"manifest negative size", http.MethodPut, "/v2/library/app/manifests/v1", ct,
			withField("layers", []any{descriptor(ocispec.MediaTypeImageLayer, f.layer, -1)}), 400, "MANIFEST_INVALID"},
		{"manifest bad layer digest", http.MethodPut, "/v2/library/app/manifests/v1", ct,
			withField("layers", []any{map[string]any{"mediaType": ocispec.MediaTypeImageLayer, "digest": "sha256:../../x", "size": 1}}), 400, "MANIFEST_INVALID"},
		{"manifest missing blob", http.MethodPut, "/v2/library/app/manifests/v1", ct, withField("layers", []any{missing}), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"manifest blob of another repository", http.MethodPut, "/v2/library/app/manifests/v1", ct,
			withField("layers", []any{descriptor(ocispec.MediaTypeImageLayer, f.otherBlob, 10)}), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"manifest by digest, missing blob", http.MethodPut, "/v2/library/app/manifests/" + digest.FromBytes(withField("layers", []any{missing})).String(), ct,
			withField("layers", []any{missing}), 400, "MANIFEST_BLOB_UNKNOWN"},

		// Content-Range of chunks.
		{"Content-Range garbage", http.MethodPatch, f.upload, hdr("Content-Range", "abc"), "56789", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range end before start", http.MethodPatch, f.upload, hdr("Content-Range", "5-2"), "5678", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range negative", http.MethodPatch, f.upload, hdr("Content-Range", "-1-3"), "56789", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range no end", http.MethodPatch, f.upload, hdr("Content-Range", "5-"), "56789", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range mismatch with Content-Length", http.MethodPatch, f.upload, hdr("Content-Range", "5-9"), "567", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range too short for body", http.MethodPatch, f.upload, hdr("Content-Range", "5-5"), "56789", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range out of order", http.MethodPatch, f.upload, hdr("Content-Range", "0-4"), "01234", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range beyond the end", http.MethodPatch, f.upload, hdr("Content-Range", "7-11"), "78901", 416, "BLOB_UPLOAD_INVALID"},
		{"Content-Range overflow", http.MethodPatch, f.upload, hdr("Content-Range", "5-99999999999999999999"), "5", 416, "BLOB_UPLOAD_INVALID"},
		{"PUT Content-Range garbage", http.MethodPut, f.upload + "?digest=" + digest.FromString("0123456789").String(), hdr("Content-Range", "abc"), "56789", 416, "BLOB_UPLOAD_INVALID"},
		{"PUT Content-Range out of order", http.MethodPut, f.upload + "?digest=" + digest.FromString("0123456789").String(), hdr("Content-Range", "3-7"), "34567", 416, "BLOB_UPLOAD_INVALID"},

		// Range headers of blob reads.
		{"Range garbage", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=abc"), nil, 416, "RANGE_INVALID"},
		{"Range not numbers", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=a-b"), nil, 416, "RANGE_INVALID"},
		{"Range bare dash", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=-"), nil, 416, "RANGE_INVALID"},
		{"Range end before start", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=5-2"), nil, 416, "RANGE_INVALID"},
		{"Range beyond the blob", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=1000-"), nil, 416, "RANGE_INVALID"},
		{"Range negative suffix", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=--5"), nil, 416, "RANGE_INVALID"},
		{"Range overflow", http.MethodGet, "/v2/library/app/blobs/" + f.layer.String(), hdr("Range", "bytes=0-99999999999999999999"), nil, 416, "RANGE_INVALID"},

		// Wrong digests of content.
		{"POST ?digest= wrong", http.MethodPost, "/v2/library/app/blobs/uploads/?digest=" + digest.FromString("not this").String(), nil, "this", 400, "DIGEST_INVALID"},
		{"POST ?digest= of a known blob, wrong content", http.MethodPost, "/v2/library/app/blobs/uploads/?digest=" + f.layer.String(), nil,
			bytes.ToUpper(f.img.layer), 400, "DIGEST_INVALID"},
		{"POST ?digest= to another repository, wrong content", http.MethodPost, "/v2/third/blobs/uploads/?digest=" + f.layer.String(), nil,
			bytes.ToUpper(f.img.layer), 400, "DIGEST_INVALID"},

		// Pagination.
		{"tags n negative", http.MethodGet, "/v2/library/app/tags/list?n=-1", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
		{"catalog n garbage", http.MethodGet, "/v2/_catalog?n=x", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
	}
	f.runBad(t, cases)
}

func TestBadRoutesAndMethods(t *testing.T) {
	f := newFixture(t)
	d := f.img.digest.String()
	cases := []badCase{
		{"root", http.MethodGet, "/", nil, nil, 404, "NOT_FOUND"},
		{"v1", http.MethodGet, "/v1/_ping", nil, nil, 404, "NOT_FOUND"},
		{"v3", http.MethodGet, "/v3/", nil, nil, 404, "NOT_FOUND"},
		{"repository alone", http.MethodGet, "/v2/library/app", nil, nil, 404, "NOT_FOUND"},
		{"repository with slash", http.MethodGet, "/v2/library/app/", nil, nil, 404, "NOT_FOUND"},
		{"unknown endpoint", http.MethodGet, "/v2/library/app/layers/" + d, nil, nil, 404, "NOT_FOUND"},
		{"empty reference", http.MethodGet, "/v2/library/app/manifests/", nil, nil, 404, "NOT_FOUND"},
		{"empty digest", http.MethodGet, "/v2/library/app/blobs/", nil, nil, 404, "NOT_FOUND"},
		{"reference with slash", http.MethodGet, "/v2/library/app/manifests/v1/x", nil, nil, 404, "NOT_FOUND"},
		{"catalog with slash", http.MethodGet, "/v2/_catalog/", nil, nil, 404, "NOT_FOUND"},
		{"storage internals", http.MethodGet, "/v2/library/app/_manifests/tags/v1/current/link", nil, nil, 404, "NOT_FOUND"},
		{"prefix not a path segment", http.MethodGet, "/v2library/app/manifests/v1", nil, nil, 404, "NOT_FOUND"},
		{"prefix not a path segment, catalog", http.MethodGet, "/v2x_catalog", nil, nil, 404, "NOT_FOUND"},
		{"v20", http.MethodGet, "/v20/library/app/manifests/v1", nil, nil, 404, "NOT_FOUND"},

		{"PATCH base", http.MethodPatch, "/v2/", nil, nil, 405, "UNSUPPORTED"},
		{"DELETE base", http.MethodDelete, "/v2/", nil, nil, 405, "UNSUPPORTED"},
		{"PUT catalog", http.MethodPut, "/v2/_catalog", nil, "{}", 405, "UNSUPPORTED"},
		{"DELETE tags list", http.MethodDelete, "/v2/library/app/tags/list", nil, nil, 405, "UNSUPPORTED"},
		{"POST manifest", http.MethodPost, "/v2/library/app/manifests/v1", nil, f.img.manifest, 405, "UNSUPPORTED"},
		{"PATCH manifest", http.MethodPatch, "/v2/library/app/manifests/v1", nil, f.img.manifest, 405, "UNSUPPORTED"},
		{"PUT blob", http.MethodPut, "/v2/library/app/blobs/" + f.layer.String(), nil, "x", 405, "UNSUPPORTED"},
		{"POST blob", http.MethodPost, "/v2/library/app/blobs/" + f.layer.String(), nil, "x", 405, "UNSUPPORTED"},
		{"PATCH blob", http.MethodPatch, "/v2/library/app/blobs/" + f.layer.String(), nil, "x", 405, "UNSUPPORTED"},
		{"GET uploads", http.MethodGet, "/v2/library/app/blobs/uploads/", nil, nil, 405, "UNSUPPORTED"},
		{"PUT uploads", http.MethodPut, "/v2/library/app/blobs/uploads/", nil, nil, 405, "UNSUPPORTED"},
		{"DELETE uploads", http.MethodDelete, "/v2/library/app/blobs/uploads/", nil, nil, 405, "UNSUPPORTED"},
		{"POST upload session", http.MethodPost, f.upload, nil, nil, 405, "UNSUPPORTED"},
		{"POST referrers", http.MethodPost, "/v2/library/app/referrers/" + d, nil, nil, 405, "UNSUPPORTED"},
		{"OPTIONS manifest", http.MethodOptions, "/v2/library/app/manifests/v1", nil, nil, 405, "UNSUPPORTED"},
		{"unknown method", "FROB", "/v2/library/app/manifests/v1", nil, nil, 405, "UNSUPPORTED"},
		{"TRACE", http.MethodTrace, "/v2/", nil, nil, 405, "UNSUPPORTED"},
	}
	f.runBad(t, cases)
}

// TestShortBody sends requests whose body ends before their Content-Length,
// on a raw connection that the client then half-closes: the registry must
// answer with an error and keep no part of the body.
func TestShortBody(t *testing.T) {
	f := newFixture(t)
	host := f.srv.Listener.Addr().String()
	blob := []byte("a blob that will be cut short")
	bd := digest.FromBytes(blob)
	full := []byte("0123456789")
	tests := []struct {
		name         string
		method, path string
		headers      string
		declared     int
		sent         []byte
		status       int
		code         string
	}{
		{"PATCH chunk", http.MethodPatch, f.upload, "", 100, []byte("56789"), 400, "BLOB_UPLOAD_INVALID"},
		{"PATCH chunk with Content-Range", http.MethodPatch, f.upload, "Content-Range: 5-104\r\n", 100, []byte("56789"), 400, "BLOB_UPLOAD_INVALID"},
		{"PUT final chunk", http.MethodPut, f.upload + "?digest=" + digest.FromBytes(full).String(), "", 100, []byte("56789"), 400, "BLOB_UPLOAD_INVALID"},
		{"POST monolithic", http.MethodPost, "/v2/library/app/blobs/uploads/?digest=" + bd.String(), "", len(blob), blob[:10], 400, "BLOB_UPLOAD_INVALID"},
		{"POST monolithic, known blob", http.MethodPost, "/v2/third/blobs/uploads/?digest=" + f.layer.String(), "", len(f.img.layer), f.img.layer[:3], 400, "BLOB_UPLOAD_INVALID"},
		{"PUT manifest", http.MethodPut, "/v2/library/app/manifests/v1", "Content-Type: " + ocispec.MediaTypeImageManifest + "\r\n",
			len(f.img.manifest) + 50, f.img.manifest, 400, "MANIFEST_INVALID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.snapshot()
			defer f.restore(before)
			raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s", tc.method, tc.path, host, tc.headers, tc.declared, tc.sent)
			resp, body := f.rawRequest(raw)
			if resp == nil {
				t.Fatalf("no answer before the connection closed")
			}
			wantError(t, &response{status: resp.StatusCode, header: resp.Header, body: body}, tc.status, tc.code)
			sameSnapshot(t, before, f.snapshot())
			f.intact(t)
		})
	}
	// The interrupted upload continues normally.
	res := f.do(http.MethodPut, f.upload+"?digest="+digest.FromBytes(full).String(), hdr("Content-Range", "5-9"), full[5:])
	wantStatus(t, res, http.StatusCreated)
	res = f.do(http.MethodGet, "/v2/library/app/blobs/"+digest.FromBytes(full).String(), nil, nil)
	if !bytes.Equal(res.body, full) {
		t.Fatalf("blob %q", res.body)
	}
	wantError(t, f.do(http.MethodHead, "/v2/library/app/blobs/"+bd.String(), nil, nil), http.StatusNotFound, "")
}

// TestUploadUsableAfterErrors: refused chunks leave the session usable.
func TestUploadUsableAfterErrors(t *testing.T) {
	r := newTestRegistry(t)
	data := []byte("abcdefghij")
	loc := r.startUpload("repo")
	wantStatus(t, r.do(http.MethodPatch, loc, hdr("Content-Range", "0-2"), data[:3]), http.StatusAccepted)
	for _, h := range []http.Header{
		hdr("Content-Range", "5-7"),
		hdr("Content-Range", "0-2"),
		hdr("Content-Range", "x-y"),
		hdr("Content-Range", "3-9"), // longer than the body
	} {
		res := r.do(http.MethodPatch, loc, h, data[3:6])
		wantError(t, res, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
		wantHeader(t, res, "Range", "0-2")
		wantHeader(t, res, "Location", loc)
	}
	wantStatus(t, r.do(http.MethodPatch, loc, hdr("Content-Range", "3-5"), data[3:6]), http.StatusAccepted)
	res := r.do(http.MethodPut, withQuery(loc, "digest="+digest.FromBytes(data).String()), hdr("Content-Range", "6-9"), data[6:])
	wantStatus(t, res, http.StatusCreated)
	res = r.do(http.MethodGet, "/v2/repo/blobs/"+digest.FromBytes(data).String(), nil, nil)
	if !bytes.Equal(res.body, data) {
		t.Fatalf("blob %q", res.body)
	}
}
