package registry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry/store"
	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/memory"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testRegistry is the registry handler over a memory driver, served by an
// httptest server.
type testRegistry struct {
	t      *testing.T
	srv    *httptest.Server
	drv    *memory.Driver
	st     *store.Store
	client *http.Client
}

func newTestRegistry(t *testing.T) *testRegistry {
	return newTestRegistryOpts(t, store.Options{DeleteEnabled: true})
}

func newTestRegistryOpts(t *testing.T, opts store.Options) *testRegistry {
	t.Helper()
	drv := memory.New()
	st := store.New(drv, opts)
	srv := httptest.NewServer(New(st, Options{AccessLogDisabled: true}))
	t.Cleanup(srv.Close)
	client := &http.Client{
		// Redirects are answers under test, not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return &testRegistry{t: t, srv: srv, drv: drv, st: st, client: client}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	b := r.body
	if len(b) > 300 {
		b = b[:300]
	}
	return http.StatusText(r.status) + " " + string(b)
}

// hdr builds a header from name/value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// do sends a request. target is a path with an optional query, sent exactly
// as written (no cleaning, no re-encoding). A string or []byte body is sent
// with its Content-Length, an io.Reader without one (chunked). Content-Length
// in h overrides the request's length.
func (r *testRegistry) do(method, target string, h http.Header, body any) *response {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		r.t.Fatalf("body of type %T", body)
	}
	req, err := http.NewRequestWithContext(r.t.Context(), method, r.srv.URL+"/", rd)
	if err != nil {
		r.t.Fatal(err)
	}
	path, query, _ := strings.Cut(target, "?")
	req.URL.Opaque = path
	req.URL.RawQuery = query
	if _, ok := body.(io.Reader); ok {
		req.ContentLength = -1
	}
	for k, vs := range h {
		if http.CanonicalHeaderKey(k) == "Content-Length" {
			continue
		}
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, truncateForLog(target), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("%s %s: reading body: %v", method, truncateForLog(target), err)
	}
	res := &response{status: resp.StatusCode, header: resp.Header, body: b}
	if res.status >= 500 {
		r.t.Errorf("%s %s: server error %s", method, truncateForLog(target), res)
	}
	return res
}

func truncateForLog(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// ociErrorBody is the error JSON of the distribution spec.
type ociErrorBody struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// wantError checks the status and, unless the request was HEAD, that the
// body is OCI error JSON whose first code is code.
func wantError(t *testing.T, res *response, status int, code string) {
	t.Helper()
	if res.status != status {
		t.Errorf("status %d, want %d (%s; Location %q)", res.status, status, res, res.header.Get("Location"))
		return
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	if len(res.body) == 0 && code == "" {
		return
	}
	var e ociErrorBody
	if err := json.Unmarshal(res.body, &e); err != nil || len(e.Errors) == 0 {
		t.Errorf("body is not OCI error JSON: %q (%v)", res.body, err)
		return
	}
	if e.Errors[0].Code != code {
		t.Errorf("error code %q, want %q (%s)", e.Errors[0].Code, code, e.Errors[0].Message)
	}
	if e.Errors[0].Message == "" {
		t.Errorf("error without a message")
	}
}

// wantStatus fails unless the response has the status.
func wantStatus(t *testing.T, res *response, status int) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d, want %d (%s)", res.status, status, res)
	}
}

// wantHeader checks one header value.
func wantHeader(t *testing.T, res *response, name, value string) {
	t.Helper()
	if got := res.header.Get(name); got != value {
		t.Errorf("%s: %q, want %q", name, got, value)
	}
}

// pushBlob stores b in repository name with a monolithic POST.
func (r *testRegistry) pushBlob(name string, b []byte) digest.Digest {
	r.t.Helper()
	d := digest.FromBytes(b)
	res := r.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+d.String(), hdr("Content-Type", "application/octet-stream"), b)
	if res.status != http.StatusCreated {
		r.t.Fatalf("push blob to %s: %s", name, res)
	}
	return d
}

// pushManifest stores a manifest and returns the response.
func (r *testRegistry) pushManifest(name, ref, contentType string, body []byte) *response {
	r.t.Helper()
	res := r.do(http.MethodPut, "/v2/"+name+"/manifests/"+ref, hdr("Content-Type", contentType), body)
	if res.status != http.StatusCreated {
		r.t.Fatalf("push manifest %s:%s: %s", name, ref, res)
	}
	return res
}

// testImage is an image whose blobs are pushed and whose manifest is not.
type testImage struct {
	config, layer []byte
	manifest      []byte
	digest        digest.Digest // of the manifest
}

// pushImageBlobs pushes a config and a layer to name and returns the image.
func (r *testRegistry) pushImageBlobs(name, seed string) testImage {
	r.t.Helper()
	img := testImage{config: []byte(`{"os":"linux","seed":"` + seed + `"}`), layer: []byte("layer of " + seed)}
	cfg, layer := r.pushBlob(name, img.config), r.pushBlob(name, img.layer)
	img.manifest = mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        descriptor(ocispec.MediaTypeImageConfig, cfg, len(img.config)),
		"layers":        []any{descriptor(ocispec.MediaTypeImageLayer, layer, len(img.layer))},
	})
	img.digest = digest.FromBytes(img.manifest)
	return img
}

func descriptor(mediaType string, d digest.Digest, size int) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": d.String(), "size": size}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// snapshot is every file of the storage with its content.
func (r *testRegistry) snapshot() map[string]string {
	r.t.Helper()
	out := map[string]string{}
	err := storage.Walk(r.t.Context(), r.drv, "/", func(fi storage.FileInfo) error {
		b, err := storage.GetContent(r.t.Context(), r.drv, fi.Path)
		if err != nil {
			return err
		}
		out[fi.Path] = string(b)
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		r.t.Fatal(err)
	}
	return out
}

// restore puts the storage back as it was in snap, so that one failed case
// does not make every later one fail too.
func (r *testRegistry) restore(snap map[string]string) {
	r.t.Helper()
	ctx := r.t.Context()
	for p := range r.snapshot() {
		if _, ok := snap[p]; !ok {
			if err := r.drv.Delete(ctx, p); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	for p, c := range snap {
		if err := storage.PutContent(ctx, r.drv, p, []byte(c)); err != nil {
			r.t.Fatal(err)
		}
	}
}

// sameSnapshot reports the differences between two snapshots.
func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if b, ok := before[p]; !ok {
			t.Errorf("storage: %s created", p)
		} else if b != after[p] {
			t.Errorf("storage: %s changed", p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[p]; !ok {
			t.Errorf("storage: %s removed", p)
		}
	}
}

// rawRequest writes a request on a fresh TCP connection exactly as given,
// half-closes the connection and returns the response and its body (nil
// when the server answered nothing).
func (r *testRegistry) rawRequest(raw string) (*http.Response, []byte) {
	r.t.Helper()
	conn, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		r.t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		r.t.Errorf("server error %d: %s", resp.StatusCode, b)
	}
	return resp, b
}

// startUpload opens an upload session in name and returns its path.
func (r *testRegistry) startUpload(name string) string {
	r.t.Helper()
	res := r.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/", nil, nil)
	if res.status != http.StatusAccepted || res.header.Get("Location") == "" {
		r.t.Fatalf("start upload: %s", res)
	}
	return res.header.Get("Location")
}

// withQuery appends a query to a Location that may already have one.
func withQuery(loc, q string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + q
	}
	return loc + "?" + q
}
