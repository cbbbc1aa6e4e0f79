package image

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry/client"
)

// pushLog records the blob requests a registry saw.
type pushLog struct {
	mu    sync.Mutex
	calls []string // "HEAD <digest>", "POST mount=<d>", "POST", "PATCH", "PUT <digest>"
}

func (l *pushLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *pushLog) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (tr *testRegistry) logPushes() *pushLog {
	l := &pushLog{}
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		switch {
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/sha256:"):
			l.add("HEAD " + r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "":
			l.add("POST mount=" + r.URL.Query().Get("mount"))
		case r.Method == http.MethodPost:
			l.add("POST")
		case r.Method == http.MethodPatch:
			l.add("PATCH")
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/"):
			l.add("PUT " + r.URL.Query().Get("digest"))
		}
		return false
	})
	return l
}

func pushOpts(c *client.Client, events *[]string, mu *sync.Mutex) PushOptions {
	o := PushOptions{Client: c}
	if events != nil {
		o.Progress = ReporterFunc(func(p Progress) {
			if p.Status == StatusPushing {
				return
			}
			mu.Lock()
			*events = append(*events, p.ID+": "+string(p.Status))
			mu.Unlock()
		})
	}
	return o
}

func TestPushMountsExistingAndRefetches(t *testing.T) {
	src := newTestRegistry(t)
	app := layerTar(t, entry{name: "app", body: strings.Repeat("a", 3000)})
	img := newImage(t, "amd64", [][]byte{baseTar(t), app})
	src.push(img, "team/app", "v1")
	s := openStore(t, t.TempDir(), Options{})
	if _, err := s.Pull(ctx, src.host+"/team/app:v1", src.pullOpts()); err != nil {
		t.Fatal(err)
	}

	// Same registry, other repository: both layers are mounted, the config uploaded.
	log := src.logPushes()
	target := src.host + "/other/app:v2"
	if err := s.Tag(src.host+"/team/app:v1", target); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	res, err := s.Push(ctx, target, pushOpts(src.c, &events, &mu))
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Digest != img.mdesc.Digest || res.Size != img.mdesc.Size || res.Tag != "v2" {
		t.Errorf("result %+v, want digest %s", res, img.mdesc.Digest)
	}
	if res.Mounted != 2 || res.Uploaded != 1 || res.Existing != 0 {
		t.Errorf("mounted %d uploaded %d existing %d", res.Mounted, res.Uploaded, res.Existing)
	}
	if n := log.count("HEAD"); n != 3 {
		t.Errorf("%d HEADs, want 3 (%v)", n, log.calls)
	}
	diff0 := ShortDigest(img.diffIDs[0])
	if !slices.Contains(events, diff0+": Mounted from team/app") || !slices.Contains(events, diff0+": Preparing") {
		t.Errorf("events %v", events)
	}
	// The pushed image is the same image.
	if got, _ := src.c.BlobExists(ctx, mustRepo(t, src.host+"/other/app"), img.layers[1]); !got {
		t.Error("layer not in the target repository")
	}
	after, _ := s.Lookup(target)
	if !slices.Contains(after.RepoDigests, src.host+"/other/app@"+img.mdesc.Digest.String()) {
		t.Errorf("RepoDigests %v", after.RepoDigests)
	}

	// Again: every blob exists, nothing is uploaded.
	events = nil
	res, err = s.Push(ctx, target, pushOpts(src.c, &events, &mu))
	if err != nil {
		t.Fatal(err)
	}
	if res.Existing != 3 || res.Uploaded != 0 || res.Mounted != 0 || !slices.Contains(events, diff0+": Layer already exists") {
		t.Errorf("second push: %+v %v", res, events)
	}

	// Another registry: the layers are fetched again from the source and uploaded; the
	// manifest digest is unchanged.
	dst := newTestRegistry(t)
	dlog := dst.logPushes()
	if err := s.Tag(target, dst.host+"/copy/app:v1"); err != nil {
		t.Fatal(err)
	}
	before := src.blobGets(img.layers[0].Digest)
	res, err = s.Push(ctx, dst.host+"/copy/app:v1", pushOpts(src.c, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != img.mdesc.Digest || res.Uploaded != 3 {
		t.Errorf("push to another registry: %+v", res)
	}
	if src.blobGets(img.layers[0].Digest) != before+1 {
		t.Errorf("layer fetched %d times from the source", src.blobGets(img.layers[0].Digest)-before)
	}
	if dlog.count("POST mount=") != 0 {
		t.Error("mount attempted across registries")
	}
	s2 := openStore(t, t.TempDir(), Options{})
	pulled, err := s2.Pull(ctx, dst.host+"/copy/app:v1", dst.pullOpts())
	if err != nil || pulled.ID != img.id() {
		t.Fatalf("pull back: %v %v", pulled, err)
	}
}

func mustRepo(t *testing.T, s string) client.Reference {
	r, err := client.ParseRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// createdImage makes an image of n layers of incompressible random data.
func createdImage(t *testing.T, s *Store, ref string, n, size int) *Image {
	t.Helper()
	var layers []io.Reader
	for i := range n {
		b := make([]byte, size)
		rand.Read(b)
		layers = append(layers, bytes.NewReader(layerTar(t, entry{name: fmt.Sprintf("f%d", i), body: string(b)})))
	}
	img, err := s.Create(ctx, CreateOptions{Config: createConfig("x"), Layers: layers, Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPushConcurrencyLimit(t *testing.T) {
	dst := newTestRegistry(t)
	s := openStore(t, t.TempDir(), Options{})
	ref := dst.host + "/many/layers:v1"
	img := createdImage(t, s, ref, 9, 100)
	var active, peak atomic.Int32
	dst.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
			n := active.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(60 * time.Millisecond)
			active.Add(-1)
		}
		return false
	})
	var mu sync.Mutex
	var events []string
	res, err := s.Push(ctx, ref, pushOpts(dst.c, &events, &mu))
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 10 {
		t.Errorf("uploaded %d, want 10", res.Uploaded)
	}
	if p := peak.Load(); p != DefaultPushConcurrency {
		t.Errorf("peak %d blobs at once, want %d", p, DefaultPushConcurrency)
	}
	waiting := 0
	for _, e := range events {
		if strings.HasSuffix(e, ": Waiting") {
			waiting++
		}
	}
	if waiting != 4 {
		t.Errorf("%d layers waited, want 4: %v", waiting, events)
	}
	// The upload came from the kept blobs: the registry has exactly them.
	for _, l := range img.Layers {
		if ok, err := dst.c.BlobExists(ctx, mustRepo(t, dst.host+"/many/layers"), l.Descriptor); !ok || err != nil {
			t.Errorf("layer %s missing: %v", l.Digest, err)
		}
	}
}

func TestPushResumesChunkedUpload(t *testing.T) {
	// The connection breaks during the third PATCH, after the registry stored the chunk
	// (the client learns it has it all) or before it read it (the client resends from the
	// registry's offset).
	for _, stored := range []bool{true, false} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			dst := newTestRegistry(t)
			s := openStore(t, t.TempDir(), Options{})
			ref := dst.host + "/big/layer:v1"
			img := createdImage(t, s, ref, 1, 200<<10)
			var patches, dropped atomic.Int32
			dst.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if r.Method != http.MethodPatch || patches.Add(1) != 3 {
					return false
				}
				if stored {
					next.ServeHTTP(&discardWriter{h: http.Header{}}, r)
				}
				dropped.Add(1)
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return true
			})
			c := client.New(client.Options{ChunkSize: 32 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			res, err := s.Push(ctx, ref, PushOptions{Client: c})
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if dropped.Load() != 1 || patches.Load() < 8 {
				t.Errorf("dropped %d, %d PATCHes", dropped.Load(), patches.Load())
			}
			s2 := openStore(t, t.TempDir(), Options{})
			pulled, err := s2.Pull(ctx, ref, dst.pullOpts())
			if err != nil || pulled.ID != img.ID || res.Digest != img.Manifest.Digest {
				t.Fatalf("pull back: %v %v", pulled, err)
			}
		})
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func TestPushRefused(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		want string
		is   error
	}{
		{401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "unauthorized: authentication required", client.ErrUnauthorized},
		{403, `{"errors":[{"code":"DENIED","message":"no"}]}`, "denied: requested access to the resource is denied", client.ErrDenied},
		{413, ``, "blob upload too large", nil},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			dst := newTestRegistry(t)
			s := openStore(t, t.TempDir(), Options{})
			ref := dst.host + "/refused/app:v1"
			img := createdImage(t, s, ref, 2, 100)
			dst.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if r.Method == http.MethodGet && r.URL.Path == "/v2/" {
					return false
				}
				if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
					w.Header().Set("Content-Type", "application/json")
					if tc.code == 401 {
						w.Header().Set("WWW-Authenticate", `Basic realm="berth"`)
					}
					w.WriteHeader(tc.code)
					io.WriteString(w, tc.body)
					return true
				}
				return false
			})
			_, err := s.Push(ctx, ref, PushOptions{Client: dst.c})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			after, _ := s.Lookup(ref)
			if len(after.RepoDigests) != 0 || after.ID != img.ID {
				t.Errorf("local state changed: %+v", after)
			}
		})
	}
}

func TestPushWithoutSource(t *testing.T) {
	src := newTestRegistry(t)
	img := newImage(t, "amd64", [][]byte{baseTar(t)})
	src.push(img, "team/app", "v1")
	s := openStore(t, t.TempDir(), Options{})
	if _, err := s.Pull(ctx, src.host+"/team/app:v1", src.pullOpts()); err != nil {
		t.Fatal(err)
	}
	// The source loses the blob: the push cannot get the compressed bytes again.
	src.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, img.layers[0].Digest.String()) {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, http.StatusNotFound)
			return true
		}
		return false
	})
	dst := newTestRegistry(t)
	if err := s.Tag(src.host+"/team/app:v1", dst.host+"/x/y"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Push(ctx, dst.host+"/x/y", PushOptions{Client: src.c})
	if !errors.Is(err, ErrNoSource) {
		t.Fatalf("err = %v", err)
	}
	mustErr(t, err, img.layers[0].Digest.String())
}

func TestPushCreatedOnPulledBase(t *testing.T) {
	src := newTestRegistry(t)
	base := newImage(t, "amd64", [][]byte{baseTar(t)})
	src.push(base, "team/base", "v1")
	s := openStore(t, t.TempDir(), Options{})
	bimg, err := s.Pull(ctx, src.host+"/team/base:v1", src.pullOpts())
	if err != nil {
		t.Fatal(err)
	}
	// The committed layer comes from content, the base layer from the source registry.
	layer := layerTar(t, entry{name: "etc/", dir: true}, entry{name: "etc/motd", body: "committed"})
	dst := newTestRegistry(t)
	ref := dst.host + "/team/derived:v1"
	img, err := s.Create(ctx, CreateOptions{Base: bimg, Config: createConfig("c"), Layers: []io.Reader{bytes.NewReader(layer)}, Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Push(ctx, ref, PushOptions{Client: src.c})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != img.Manifest.Digest || res.Uploaded != 3 {
		t.Errorf("push %+v, want %s and 3 uploads", res, img.Manifest.Digest)
	}
	s2 := openStore(t, t.TempDir(), Options{})
	pulled, err := s2.Pull(ctx, ref, dst.pullOpts())
	if err != nil || pulled.ID != img.ID {
		t.Fatalf("pull back: %+v %v", pulled, err)
	}
	if got := readSnapshotFile(t, s2, pulled.Layers[1].ChainID.String(), "etc/motd"); got != "committed" {
		t.Errorf("pulled layer has %q", got)
	}
	// The pushed layers now name the target as a source too.
	after, _ := s.Lookup(ref)
	if !slices.Contains(after.Layers[0].Sources, dst.host+"/team/derived") {
		t.Errorf("sources %v", after.Layers[0].Sources)
	}
}
