package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const ociManifestJSON = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`

func TestRetry503ThenSuccess(t *testing.T) {
	var calls atomic.Int32
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		fmt.Fprint(w, ociManifestJSON)
	})
	c := newTestClient(t, Options{})
	ref := Reference{Registry: host, Repository: "a/b", Tag: "t"}
	desc, _, err := c.GetManifest(context.Background(), ref)
	if err != nil || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("GetManifest after 503s: %+v %v", desc, err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3", calls.Load())
	}
	// Always 503: gives up after MaxRetries retries with the 503 error.
	calls.Store(-100)
	c = newTestClient(t, Options{MaxRetries: 2})
	_, _, err = c.GetManifest(context.Background(), ref)
	var re *Error
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("persistent 503: %v", err)
	}
	if n := calls.Load() + 100; n != 3 {
		t.Errorf("%d calls with MaxRetries 2, want 3", n)
	}
	// Negative MaxRetries: no retry at all.
	calls.Store(-100)
	c = newTestClient(t, Options{MaxRetries: -1})
	if _, _, err := c.GetManifest(context.Background(), ref); err == nil {
		t.Fatal("no error")
	}
	if n := calls.Load() + 100; n != 1 {
		t.Errorf("%d calls with MaxRetries -1, want 1", n)
	}
}

func TestRetry429RetryAfter(t *testing.T) {
	var calls atomic.Int32
	var first time.Time
	var gap time.Duration
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return
		}
		gap = time.Since(first)
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		fmt.Fprint(w, ociManifestJSON)
	})
	c := newTestClient(t, Options{})
	if _, _, err := c.GetManifest(context.Background(), Reference{Registry: host, Repository: "a", Tag: "t"}); err != nil {
		t.Fatal(err)
	}
	if gap < 900*time.Millisecond {
		t.Errorf("retried after %v, Retry-After said 1s", gap)
	}
	// A Retry-After beyond the context's deadline is not waited for.
	calls.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.GetManifest(ctx, Reference{Registry: host, Repository: "a", Tag: "t"})
	var re *Error
	if !errors.As(err, &re) || re.StatusCode != http.StatusTooManyRequests || re.Code != "TOOMANYREQUESTS" {
		t.Fatalf("429 with short deadline: %v", err)
	}
	if time.Since(start) > 250*time.Millisecond {
		t.Errorf("waited %v although the deadline was shorter than Retry-After", time.Since(start))
	}
	if d, ok := retryAfter(time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat), time.Now()); !ok || d < time.Second || d > 3*time.Second {
		t.Errorf("retryAfter(HTTP date) = %v, %v", d, ok)
	}
}

func TestRetryConnectionErrors(t *testing.T) {
	var calls atomic.Int32
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // connection reset before any answer
			}
			return
		}
		fmt.Fprint(w, "{}")
	})
	c := newTestClient(t, Options{})
	if err := c.Ping(context.Background(), host); err != nil {
		t.Fatalf("Ping after a dropped connection: %v", err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d calls, want 2", calls.Load())
	}
}

func TestNoRetryWithoutReplayableBody(t *testing.T) {
	var calls atomic.Int32
	srv, _ := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	c := newTestClient(t, Options{})
	ctx := context.Background()
	build := func() (*http.Request, error) {
		// A body that cannot be replayed: no GetBody.
		return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v2/x/blobs/uploads/", io.MultiReader(strings.NewReader("once")))
	}
	resp, err := c.send(ctx, build)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || calls.Load() != 1 {
		t.Fatalf("status %d after %d calls; a non-replayable POST must be sent once", resp.StatusCode, calls.Load())
	}
	// The same with a replayable body is retried.
	calls.Store(0)
	build = func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v2/x/blobs/uploads/", bytes.NewReader([]byte("again")))
	}
	resp, err = c.send(ctx, build)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if calls.Load() != int32(DefaultMaxRetries+1) {
		t.Fatalf("%d calls for a replayable body, want %d", calls.Load(), DefaultMaxRetries+1)
	}
}

// manifestServer serves body with contentType (and optional headers) for
// every manifest request.
func manifestServer(t *testing.T, status int, contentType string, body []byte, headers map[string]string) string {
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		w.Write(body)
	})
	return host
}

func TestManifestBadResponses(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, Options{})
	html := []byte("<!DOCTYPE html>\n<html><head><title>Sign in – Corporate Proxy</title></head><body>please log in</body></html>")
	big := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`), bytes.Repeat([]byte("a"), MaxManifestSize)...)
	big = append(big, `"}}`...)
	good := []byte(ociManifestJSON)
	tests := []struct {
		name        string
		status      int
		contentType string
		body        []byte
		headers     map[string]string
		ref         string
		is          error
		contains    []string
	}{
		{name: "HTML page 200", status: 200, contentType: "text/html; charset=utf-8", body: html, is: ErrInvalidResponse,
			contains: []string{"HTML page", "Sign in", "text/html"}},
		{name: "HTML page 404", status: 404, contentType: "text/html", body: html, is: ErrNotFound,
			contains: []string{"HTML page", "404"}},
		{name: "HTML without content type", status: 200, body: html, is: ErrInvalidResponse, contains: []string{"HTML page"}},
		{name: "plain text", status: 200, contentType: "text/plain", body: []byte("hello"), is: ErrInvalidResponse, contains: []string{"text/plain", "hello"}},
		{name: "empty body", status: 200, contentType: ocispec.MediaTypeImageManifest, is: ErrInvalidResponse},
		{name: "too large", status: 200, contentType: ocispec.MediaTypeImageManifest, body: big, is: ErrTooLarge, contains: []string{"4 MiB"}},
		{name: "schema1", status: 200, contentType: "application/vnd.docker.distribution.manifest.v1+prettyjws",
			body: []byte(`{"schemaVersion":1,"name":"a","tag":"t","fsLayers":[]}`), is: ErrUnsupportedMediaType, contains: []string{"schema 1"}},
		{name: "unknown mediaType in body", status: 200, contentType: "application/json",
			body: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}`), is: ErrUnsupportedMediaType,
			contains: []string{"application/vnd.example.thing+json"}},
		{name: "unknown content type", status: 200, contentType: "application/vnd.oci.image.config.v1+json",
			body: []byte(`{"architecture":"amd64"}`), is: ErrUnsupportedMediaType, contains: []string{"application/vnd.oci.image.config.v1+json"}},
		{name: "header digest mismatch", status: 200, contentType: ocispec.MediaTypeImageManifest, body: good,
			headers: map[string]string{"Docker-Content-Digest": digest.FromString("other").String()}, is: ErrDigestMismatch},
		{name: "by digest, wrong body", status: 200, contentType: ocispec.MediaTypeImageManifest, body: good,
			ref: "@" + digest.FromString("other").String(), is: ErrDigestMismatch, contains: []string{digest.FromBytes(good).String()}},
		{name: "denied", status: 403, contentType: "application/json", body: []byte(`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`),
			is: ErrDenied, contains: []string{"DENIED", "403"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := manifestServer(t, tt.status, tt.contentType, tt.body, tt.headers)
			s := host + "/some/repo:tag"
			if tt.ref != "" {
				s = host + "/some/repo" + tt.ref
			}
			ref, err := ParseReference(s)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.GetManifest(ctx, ref)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			mustContain(t, err, append([]string{ref.String()}, tt.contains...)...)
		})
	}
	// Without Content-Length (chunked) the limit holds too.
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		for i := 0; i < len(big); i += 1 << 20 {
			w.Write(big[i:min(i+1<<20, len(big))])
			w.(http.Flusher).Flush()
		}
	})
	if _, _, err := c.GetManifest(ctx, Reference{Registry: host, Repository: "x", Tag: "t"}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunked oversize manifest: %v", err)
	}
}

func TestManifestMediaTypeDetection(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, Options{})
	idx := []byte(`{"schemaVersion":2,"manifests":[]}`)
	noMT := []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	for _, tt := range []struct {
		ct   string
		body []byte
		want string
	}{
		{MediaTypeDockerManifestList, idx, MediaTypeDockerManifestList},
		{"application/json", idx, ocispec.MediaTypeImageIndex},
		{ocispec.MediaTypeImageManifest, noMT, ocispec.MediaTypeImageManifest},
		{"", noMT, ocispec.MediaTypeImageManifest},
		{"application/json", []byte(ociManifestJSON), ocispec.MediaTypeImageManifest},
		{MediaTypeDockerManifest + "; charset=utf-8", noMT, MediaTypeDockerManifest},
	} {
		host := manifestServer(t, 200, tt.ct, tt.body, map[string]string{"Docker-Content-Digest": digest.FromBytes(tt.body).String()})
		desc, body, err := c.GetManifest(ctx, Reference{Registry: host, Repository: "x", Tag: "t"})
		if err != nil || desc.MediaType != tt.want || desc.Digest != digest.FromBytes(tt.body) || !bytes.Equal(body, tt.body) {
			t.Errorf("Content-Type %q: %+v, %v; want %s", tt.ct, desc, err, tt.want)
		}
	}
}

func TestVerifyingReader(t *testing.T) {
	data := []byte("the quick brown fox")
	d := descOf("", data)
	read := func(r io.Reader, desc ocispec.Descriptor) ([]byte, error) {
		return io.ReadAll(NewVerifyingReader(r, desc))
	}
	if b, err := read(bytes.NewReader(data), d); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("good blob: %v", err)
	}
	wrong := bytes.ToUpper(data)
	if _, err := read(bytes.NewReader(wrong), d); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong content: %v", err)
	} else {
		mustContain(t, err, d.Digest.String())
	}
	if _, err := read(bytes.NewReader(data[:5]), d); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("short content: %v", err)
	} else {
		mustContain(t, err, "truncated", "5 of 19")
	}
	b, err := read(io.MultiReader(bytes.NewReader(data), strings.NewReader("EXTRA")), d)
	if !errors.Is(err, ErrSizeMismatch) || len(b) > len(data) {
		t.Fatalf("long content: %d bytes, %v", len(b), err)
	}
	// An endless stream stops at size+1.
	v := NewVerifyingReader(zeroReader{}, ocispec.Descriptor{Digest: d.Digest, Size: 10})
	if _, err := io.Copy(io.Discard, v); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("endless stream: %v", err)
	}
	// Unknown size: digest only.
	if _, err := read(bytes.NewReader(data), ocispec.Descriptor{Digest: d.Digest, Size: -1}); err != nil {
		t.Fatalf("unknown size: %v", err)
	}
	if _, err := read(bytes.NewReader(data), ocispec.Descriptor{Digest: "sha256:nothex", Size: 19}); err == nil {
		t.Fatal("invalid digest accepted")
	}
	// Resume with the first bytes.
	v = NewVerifyingReader(bytes.NewReader(data[7:]), d)
	if _, err := v.Resume(bytes.NewReader(data[:7])); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(v); err != nil || !v.Verified() || v.N() != int64(len(data)) {
		t.Fatalf("resumed: %v", err)
	}
	v = NewVerifyingReader(bytes.NewReader(data[7:]), d)
	v.Resume(bytes.NewReader(wrong[:7]))
	if _, err := io.ReadAll(v); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("resumed with a wrong prefix: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// blobServer serves one blob with a configurable misbehaviour.
func blobServer(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, call int)) string {
	var calls atomic.Int32
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, int(calls.Add(1)))
	})
	return host
}

func TestFetchBlobBadBodies(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t, Options{})
	data := randomBytes(t, 50_000)
	d := descOf("", data)
	fetch := func(host string, offset int64) ([]byte, error) {
		rc, err := c.FetchBlob(ctx, Reference{Registry: host, Repository: "r"}, d, offset)
		if err != nil {
			return nil, err
		}
		if offset > 0 {
			defer rc.Close()
			return io.ReadAll(rc)
		}
		return readAllVerified(rc, d)
	}
	// Wrong bytes under the right digest.
	host := blobServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		b := bytes.Clone(data)
		b[100] ^= 1
		w.Write(b)
	})
	if _, err := fetch(host, 0); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("corrupt blob: %v", err)
	}
	// Truncated without Content-Length: a clean EOF, caught by the size check.
	host = blobServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
	})
	if _, err := fetch(host, 0); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("truncated blob: %v", err)
	}
	// Content-Length disagreeing with the descriptor: refused up front.
	host = blobServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Content-Length", "10")
		w.Write(data[:10])
	})
	if _, err := fetch(host, 0); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("wrong Content-Length: %v", err)
	}
	// A connection cut mid-body every time: resumes, then gives up.
	var cuts atomic.Int32
	cut := func(w http.ResponseWriter, r *http.Request, n int) {
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		}
		end := min(start+8000, len(data))
		w.Write(data[start:end])
		if end < len(data) {
			cuts.Add(1)
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}
	host = blobServer(t, cut)
	if _, err := fetch(host, 0); err == nil {
		t.Fatal("endlessly cut download succeeded")
	} else if cuts.Load() != int32(DefaultMaxRetries+1) {
		t.Errorf("%d cuts, want %d (one per attempt)", cuts.Load(), DefaultMaxRetries+1)
	}
	// Cut twice, then served: the reader resumes transparently with Range.
	c = newTestClient(t, Options{MaxRetries: 10})
	cuts.Store(0)
	host = blobServer(t, cut)
	if b, err := fetch(host, 0); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("resumed download: %v", err)
	}
	if cuts.Load() < 2 {
		t.Errorf("only %d cuts", cuts.Load())
	}
	// A server ignoring Range: the client skips the first bytes itself.
	host = blobServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Write(data)
	})
	if b, err := fetch(host, 12345); err != nil || !bytes.Equal(b, data[12345:]) {
		t.Fatalf("Range ignored: %v", err)
	}
	// A 206 starting elsewhere is refused.
	host = blobServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data)
	})
	if _, err := fetch(host, 100); !errors.Is(err, ErrInvalidResponse) {
		t.Fatalf("wrong Content-Range: %v", err)
	}
	// ReadBlob refuses blobs over its limit before fetching.
	if _, err := c.ReadBlob(ctx, Reference{Registry: host, Repository: "r"}, d, 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadBlob over the limit: %v", err)
	}
}

func TestTagsPagination(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	var pages atomic.Int32
	_, host := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/x/y/tags/list" {
			http.NotFound(w, r)
			return
		}
		pages.Add(1)
		last := r.URL.Query().Get("last")
		i := 0
		for i < len(all) && last != "" && all[i] <= last {
			i++
		}
		page := all[i:min(i+2, len(all))]
		if i+2 < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/x/y/tags/list?last=%s&n=2>; rel="next"`, page[len(page)-1]))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name":"x/y","tags":["%s"]}`, strings.Join(page, `","`))
	})
	c := newTestClient(t, Options{})
	tags, err := c.Tags(context.Background(), Reference{Registry: host, Repository: "x/y"})
	if err != nil || !slices.Equal(tags, all) {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	if pages.Load() != 3 {
		t.Errorf("%d pages, want 3", pages.Load())
	}
	for in, want := range map[string]string{
		`</v2/a?n=1&last=b>; rel="next"`:                     "/v2/a?n=1&last=b",
		`<https://h/x>; rel="prev", <https://h/y>; rel=next`: "https://h/y",
		`<https://h/x>; rel="prev"`:                          "",
		`<https://h/x>; title="a;b"; rel="last next"`:        "https://h/x",
	} {
		if got := nextLink([]string{in}); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorParsing(t *testing.T) {
	mk := func(status int, ct, body string) *Error {
		return responseError(&http.Response{StatusCode: status, Header: http.Header{"Content-Type": {ct}},
			Body: io.NopCloser(strings.NewReader(body))}, "doing", "reg/repo:tag")
	}
	e := mk(404, "application/json", `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"NAME_UNKNOWN","message":"n"}]}`)
	if e.Code != "MANIFEST_UNKNOWN" || e.Message != "manifest unknown" || len(e.Errors) != 2 || !errors.Is(e, ErrNotFound) {
		t.Errorf("OCI error: %+v", e)
	}
	if got := e.Error(); got != "doing reg/repo:tag: manifest unknown (MANIFEST_UNKNOWN, HTTP 404)" {
		t.Errorf("Error() = %q", got)
	}
	if e := mk(400, "application/json", `{"errors":[{"code":"BLOB_UNKNOWN"}]}`); !errors.Is(e, ErrNotFound) {
		t.Errorf("BLOB_UNKNOWN with 400 is not ErrNotFound: %v", e)
	}
	if e := mk(401, "application/json", `{"details":"incorrect username or password"}`); !errors.Is(e, ErrUnauthorized) || e.Message != "incorrect username or password" {
		t.Errorf("token server error: %+v", e)
	}
	if e := mk(403, "text/plain", ``); !errors.Is(e, ErrDenied) || errors.Is(e, ErrNotFound) {
		t.Errorf("403: %v", e)
	}
	if e := mk(500, "text/plain", "oops\x1b[31m red"); strings.ContainsRune(e.Error(), 0x1b) {
		t.Errorf("control characters from the network kept: %q", e.Error())
	}
	var wrapped error = fmt.Errorf("pull: %w", mk(404, "", ""))
	var re *Error
	if !errors.As(wrapped, &re) || re.StatusCode != 404 {
		t.Error("errors.As through wrapping")
	}
}
