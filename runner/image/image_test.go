package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var ctx = context.Background()

func baseTar(t *testing.T) []byte {
	return layerTar(t, entry{name: "bin/", dir: true}, entry{name: "bin/tool", body: "base tool"},
		entry{name: "etc/", dir: true}, entry{name: "etc/os-release", body: "ID=berth"},
		entry{name: "bin/alias", link: "tool"}, entry{name: "bin/hard", hard: "bin/tool"})
}

func TestPullAndRepull(t *testing.T) {
	tr := newTestRegistry(t)
	app := layerTar(t, entry{name: "app/", dir: true}, entry{name: "app/main", body: strings.Repeat("x", 5000)})
	img := newImage(t, "amd64", [][]byte{baseTar(t), app})
	tr.push(img, "team/app", "v1")
	s := openStore(t, t.TempDir(), Options{})

	var mu sync.Mutex
	var events []string
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	opts.Progress = ReporterFunc(func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Status != StatusDownloading {
			events = append(events, p.ID+" "+string(p.Status))
		}
	})
	ref := tr.host + "/team/app:v1"
	got, err := s.Pull(ctx, ref, opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got.ID != img.id() || got.Manifest.Digest != img.mdesc.Digest || len(got.Layers) != 2 {
		t.Fatalf("Pull = %+v", got)
	}
	if pi := got.PullInfo; pi == nil || !pi.Updated || pi.Downloaded != 2 || pi.Digest != img.mdesc.Digest || pi.Reference != ref {
		t.Fatalf("PullInfo = %+v", got.PullInfo)
	}
	if !slices.Equal(got.RepoTags, []string{ref}) || !slices.Equal(got.RepoDigests, []string{tr.host + "/team/app@" + img.mdesc.Digest.String()}) {
		t.Fatalf("RepoTags %v RepoDigests %v", got.RepoTags, got.RepoDigests)
	}
	if got.Size != int64(len("base tool")+len("ID=berth")+5000) {
		t.Errorf("Size = %d", got.Size)
	}
	for _, l := range got.Layers {
		if !slices.Equal(l.Sources, []string{tr.host + "/team/app"}) {
			t.Errorf("layer sources %v", l.Sources)
		}
	}
	chains := chainIDsOf(img)
	if ids := snapshotIDs(t, s); !slices.Equal(ids, union(chains)) {
		t.Fatalf("snapshots %v, want %v", ids, chains)
	}
	if b := readSnapshotFile(t, s, chains[1], "app/main"); len(b) != 5000 {
		t.Errorf("app/main has %d bytes", len(b))
	}
	if b := readSnapshotFile(t, s, chains[0], "bin/hard"); b != "base tool" {
		t.Errorf("bin/hard = %q", b)
	}
	// Content is kept: manifest and config.
	for _, d := range []digest.Digest{img.mdesc.Digest, img.id()} {
		if _, err := s.Content(d); err != nil {
			t.Errorf("content %s: %v", d, err)
		}
	}
	mu.Lock()
	for _, l := range img.layers {
		id := ShortDigest(l.Digest)
		var seq []string
		for _, e := range events {
			if strings.HasPrefix(e, id+" ") {
				seq = append(seq, strings.TrimPrefix(e, id+" "))
			}
		}
		want := []string{"Pulling fs layer", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"}
		if !slices.Equal(seq, want) {
			t.Errorf("layer %s events %q, want %q", id, seq, want)
		}
	}
	events = nil
	mu.Unlock()

	// Lookups: reference, short ID, full ID, digest reference.
	for _, q := range []string{ref, got.ShortID(), got.ID.String(), got.ID.Encoded()[:5], tr.host + "/team/app@" + img.mdesc.Digest.String()} {
		if li, err := s.Lookup(q); err != nil || li.ID != got.ID {
			t.Errorf("Lookup(%q) = %v, %v", q, li, err)
		}
	}
	if _, err := s.Lookup("nothere"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(nothere) = %v", err)
	}

	// Re-pull: nothing downloaded, up to date.
	before := tr.blobGets(img.layers[0].Digest) + tr.blobGets(img.layers[1].Digest)
	again, err := s.Pull(ctx, ref, opts)
	if err != nil {
		t.Fatalf("re-Pull: %v", err)
	}
	if again.PullInfo.Updated || again.PullInfo.Downloaded != 0 {
		t.Errorf("re-pull PullInfo = %+v", again.PullInfo)
	}
	if after := tr.blobGets(img.layers[0].Digest) + tr.blobGets(img.layers[1].Digest); after != before {
		t.Errorf("re-pull fetched layers: %d GETs, before %d", after, before)
	}
	if again.Size != got.Size {
		t.Errorf("re-pull Size %d, first %d", again.Size, got.Size)
	}
	mu.Lock()
	if len(events) != 2 || !strings.HasSuffix(events[0], "Already exists") {
		t.Errorf("re-pull events %q", events)
	}
	mu.Unlock()
	imgs, err := s.Images()
	if err != nil || len(imgs) != 1 {
		t.Fatalf("Images = %v, %v", imgs, err)
	}
	if len(leftovers(t, s)) != 0 {
		t.Errorf("leftovers %v", leftovers(t, s))
	}

	// The store is rebuilt from disk by another Open.
	s2 := openStore(t, s.StateRoot(), Options{})
	li, err := s2.Lookup(ref)
	if err != nil || li.ID != got.ID || li.Size != got.Size {
		t.Fatalf("reopened Lookup = %+v, %v", li, err)
	}
	paths, err := s2.LowerPaths(li)
	if err != nil || len(paths) != 2 {
		t.Fatalf("LowerPaths = %v, %v", paths, err)
	}
}

func TestInspect(t *testing.T) {
	tr := newTestRegistry(t)
	img := newImage(t, "amd64", [][]byte{baseTar(t)}, func(cfg *ocispec.Image, m *ocispec.Manifest) {
		cfg.Config.Labels = map[string]string{"a": "b"}
		cfg.Config.WorkingDir = "/w"
		cfg.Author = "me"
	})
	tr.push(img, "x/y", "latest")
	s := openStore(t, t.TempDir(), Options{})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	if _, err := s.Pull(ctx, tr.host+"/x/y", opts); err != nil {
		t.Fatal(err)
	}
	r, err := s.Inspect(tr.host + "/x/y:latest")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"Id", "RepoTags", "RepoDigests", "Created", "Architecture", "Os", "Size", "Config", "RootFS", "GraphDriver", "Metadata", "Author"} {
		if _, ok := m[k]; !ok {
			t.Errorf("inspect JSON lacks %s: %s", k, b)
		}
	}
	if r.ID != img.id().String() || r.Architecture != "amd64" || r.Os != "linux" || r.Author != "me" ||
		r.Config.WorkingDir != "/w" || r.Config.Labels["a"] != "b" || r.Config.Cmd[0] != "/bin/sh" ||
		r.RootFS.Type != "layers" || !slices.Equal(r.RootFS.Layers, []string{img.diffIDs[0].String()}) ||
		r.Created != "2024-01-02T03:04:05Z" || !slices.Equal(r.RepoTags, []string{tr.host + "/x/y:latest"}) {
		t.Errorf("inspect = %s", b)
	}
}

// Two images sharing their base layer, pulled at once, by one store and by two stores on
// the same root (as two processes would): the base layer is fetched once.
func TestConcurrentPullsShareLayer(t *testing.T) {
	for _, mode := range []string{"one store", "two stores"} {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t)
			tr.delay = 50 * time.Millisecond // keep the downloads overlapping
			base := layerTar(t, entry{name: "big", body: strings.Repeat("b", 1<<20)})
			a := newImage(t, "amd64", [][]byte{base, layerTar(t, entry{name: "a", body: "a"})})
			b := newImage(t, "amd64", [][]byte{base, layerTar(t, entry{name: "b", body: "b"})})
			tr.push(a, "r/a", "1")
			tr.push(b, "r/b", "1")
			root := t.TempDir()
			s1 := openStore(t, root, Options{})
			s2 := s1
			if mode == "two stores" {
				s2 = openStore(t, root, Options{})
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, job := range []struct {
				s   *Store
				ref string
			}{{s1, tr.host + "/r/a:1"}, {s2, tr.host + "/r/b:1"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					opts := tr.pullOpts()
					opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
					_, errs[i] = job.s.Pull(ctx, job.ref, opts)
				}()
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("pulls: %v, %v", errs[0], errs[1])
			}
			if n := tr.blobGets(a.layers[0].Digest); n != 1 {
				t.Errorf("shared base layer fetched %d times, want 1", n)
			}
			if n := tr.blobGets(a.layers[1].Digest) + tr.blobGets(b.layers[1].Digest); n != 2 {
				t.Errorf("top layers fetched %d times, want 2", n)
			}
			if ids := snapshotIDs(t, s1); !slices.Equal(ids, union(chainIDsOf(a), chainIDsOf(b))) {
				t.Errorf("snapshots %v", ids)
			}
			imgs, _ := s1.Images()
			if len(imgs) != 2 {
				t.Errorf("%d images", len(imgs))
			}
			for _, img := range imgs {
				if img.Size != 1<<20+1 {
					t.Errorf("image %s size %d", img.ShortID(), img.Size)
				}
			}
		})
	}
}

// A registry serving other bytes than the digest says: an error naming the reference, the
// layer and the mismatch; no snapshot, no image, no leftovers.
func TestPullDigestMismatch(t *testing.T) {
	tr := newTestRegistry(t)
	good := layerTar(t, entry{name: "ok", body: "fine"})
	bad := layerTar(t, entry{name: "data", body: strings.Repeat("payload ", 20000)})
	img := newImage(t, "amd64", [][]byte{good, bad})
	tr.push(img, "t/bad", "1")
	target := img.layers[1].Digest
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, target.String()) {
			return false
		}
		b := bytes.Clone(img.blobs[target])
		b[len(b)/2] ^= 0xff
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
		return true
	})
	s := openStore(t, t.TempDir(), Options{})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	ref := tr.host + "/t/bad:1"
	_, err := s.Pull(ctx, ref, opts)
	mustErr(t, err, ref, target.String(), "digest mismatch")
	if !errors.Is(err, client.ErrDigestMismatch) {
		t.Errorf("error does not wrap ErrDigestMismatch: %v", err)
	}
	chains := chainIDsOf(img)
	if s.Snapshots().Exists(digest.Digest(chains[1])) {
		t.Error("the tampered layer's snapshot exists")
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("images after a failed pull: %v", imgs)
	}
	if l := leftovers(t, s); len(l) != 0 {
		t.Errorf("leftovers %v", l)
	}
	// The registry fixed: the pull completes, reusing the good layer.
	tr.setHook(nil)
	got, err := s.Pull(ctx, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.PullInfo.Downloaded > 2 {
		t.Errorf("downloaded %d", got.PullInfo.Downloaded)
	}
}

// A config whose diff_ids do not match the layers.
func TestPullDiffIDMismatch(t *testing.T) {
	tr := newTestRegistry(t)
	l := layerTar(t, entry{name: "f", body: "content"})
	img := newImage(t, "amd64", [][]byte{l}, func(cfg *ocispec.Image, m *ocispec.Manifest) {
		cfg.RootFS.DiffIDs = []digest.Digest{digest.FromString("something else")}
	})
	tr.push(img, "t/diff", "1")
	s := openStore(t, t.TempDir(), Options{})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	ref := tr.host + "/t/diff:1"
	_, err := s.Pull(ctx, ref, opts)
	mustErr(t, err, ref, img.layers[0].Digest.String(), "DiffID", digest.FromBytes(l).String())
	if !errors.Is(err, ErrDiffIDMismatch) {
		t.Errorf("not ErrDiffIDMismatch: %v", err)
	}
	if ids := snapshotIDs(t, s); len(ids) != 0 {
		t.Errorf("snapshots left: %v", ids)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("images: %v", imgs)
	}
	if l := leftovers(t, s); len(l) != 0 {
		t.Errorf("leftovers %v", l)
	}
}

func TestPullPlatforms(t *testing.T) {
	tr := newTestRegistry(t)
	amd := newImage(t, "amd64", [][]byte{layerTar(t, entry{name: "arch", body: "amd64"})})
	arm := newImage(t, "arm64", [][]byte{layerTar(t, entry{name: "arch", body: "arm64"})})
	s390 := newImage(t, "s390x", [][]byte{layerTar(t, entry{name: "arch", body: "s390x"})})
	tr.push(amd, "multi", "")
	tr.push(arm, "multi", "")
	tr.push(s390, "multi", "")
	idx := tr.pushIndex("multi", "all", amd, arm)
	tr.pushIndex("multi", "odd", s390)
	s := openStore(t, t.TempDir(), Options{})

	for _, tc := range []struct {
		platform string
		want     testImage
	}{{"linux/amd64", amd}, {"linux/arm64/v8", arm}, {"linux/aarch64", arm}} {
		p, err := ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		opts := tr.pullOpts()
		opts.Platform = &p
		got, err := s.Pull(ctx, tr.host+"/multi:all", opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.platform, err)
		}
		if got.ID != tc.want.id() || got.Index == nil || got.Index.Digest != idx || got.PullInfo.Digest != idx {
			t.Errorf("%s: got %s (index %v)", tc.platform, got.ID, got.Index)
		}
		if got.Platform.Architecture != p.Architecture {
			t.Errorf("%s: platform %+v", tc.platform, got.Platform)
		}
	}
	// The tag moved from the amd64 image to the arm64 one; both stay (amd64 keeps its
	// digest reference).
	a, err := s.Lookup(tr.host + "/multi:all")
	if err != nil || a.ID != arm.id() {
		t.Fatalf("multi:all = %v, %v", a, err)
	}

	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "riscv64"}
	_, err = s.Pull(ctx, tr.host+"/multi:all", opts)
	mustErr(t, err, tr.host+"/multi:all", "no matching manifest for linux/riscv64", "linux/amd64", "linux/arm64")
	if !errors.Is(err, ErrNoMatchingPlatform) {
		t.Errorf("not ErrNoMatchingPlatform: %v", err)
	}
	// A single-platform image of another platform than the one asked for.
	tr.push(s390, "single", "1")
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	_, err = s.Pull(ctx, tr.host+"/single:1", opts)
	mustErr(t, err, "does not match the specified platform", "linux/s390x")
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "linux/x86_64": "linux/amd64", "linux/arm64/v8": "linux/arm64",
		"linux/arm": "linux/arm/v7", "linux/arm/v6": "linux/arm/v6", "arm64": "linux/arm64", "Linux/AMD64": "linux/amd64",
	} {
		p, err := ParsePlatform(in)
		if err != nil || FormatPlatform(p) != want {
			t.Errorf("ParsePlatform(%q) = %s, %v; want %s", in, FormatPlatform(p), err, want)
		}
	}
	for _, bad := range []string{"", "linux/", "a/b/c/d", "linux//v7"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) succeeded", bad)
		}
	}
}

// A connection cut in the middle of a layer: the client resumes with Range.
func TestPullResumesTruncatedDownload(t *testing.T) {
	tr := newTestRegistry(t)
	noise := make([]byte, 1<<20)
	for i := range noise {
		noise[i] = byte(i*7919 ^ i>>8*31 ^ i>>13)
	}
	big := layerTar(t, entry{name: "big", body: string(noise)})
	img := newImage(t, "amd64", [][]byte{big})
	tr.push(img, "t/cut", "1")
	target := img.layers[0].Digest
	var mu sync.Mutex
	cuts, ranges := 0, 0
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, target.String()) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Range") != "" {
			ranges++
			return false
		}
		cuts++
		b := img.blobs[target]
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusOK)
		w.Write(b[:len(b)/3])
		w.(http.Flusher).Flush()
		// Abort the connection mid-body.
		panic(http.ErrAbortHandler)
	})
	s := openStore(t, t.TempDir(), Options{})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	if _, err := s.Pull(ctx, tr.host+"/t/cut:1", opts); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if cuts != 1 || ranges < 1 {
		t.Errorf("cuts %d, ranged requests %d", cuts, ranges)
	}
}

// Bad input refused before any layer is fetched.
func TestPullBadInput(t *testing.T) {
	tr := newTestRegistry(t)
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	s := openStore(t, t.TempDir(), Options{})

	unknown := newImage(t, "amd64", [][]byte{layerTar(t, entry{name: "f", body: "x"})}, func(cfg *ocispec.Image, m *ocispec.Manifest) {
		m.Layers[0].MediaType = "application/vnd.example.layer.v1+weird"
	})
	tr.push(unknown, "t/unknown", "1")
	_, err := s.Pull(ctx, tr.host+"/t/unknown:1", opts)
	mustErr(t, err, tr.host+"/t/unknown:1", "unsupported layer media type", "application/vnd.example.layer.v1+weird")
	if n := tr.blobGets(unknown.layers[0].Digest); n != 0 {
		t.Errorf("layer fetched %d times", n)
	}

	notImage := newImage(t, "amd64", nil, func(cfg *ocispec.Image, m *ocispec.Manifest) {})
	var m ocispec.Manifest
	json.Unmarshal(notImage.manifest, &m)
	m.Config.MediaType = "application/vnd.example.helm.config+json"
	notImage.manifest, _ = json.Marshal(m)
	notImage.mdesc.Digest, notImage.mdesc.Size = digest.FromBytes(notImage.manifest), int64(len(notImage.manifest))
	tr.push(notImage, "t/helm", "1")
	_, err = s.Pull(ctx, tr.host+"/t/helm:1", opts)
	mustErr(t, err, tr.host+"/t/helm:1", "not a container image", "application/vnd.example.helm.config+json")

	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if strings.Contains(r.URL.Path, "/html/") {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><body>Welcome to our portal</body></html>")
			return true
		}
		return false
	})
	_, err = s.Pull(ctx, tr.host+"/html/page:1", opts)
	mustErr(t, err, tr.host+"/html/page:1", "HTML")

	_, err = s.Pull(ctx, tr.host+"/t/missing:1", opts)
	mustErr(t, err, tr.host+"/t/missing:1")
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("images: %v", imgs)
	}
}

// rmi frees exactly the snapshots no remaining image uses.
func TestRemoveFreesUnsharedSnapshots(t *testing.T) {
	tr := newTestRegistry(t)
	base := baseTar(t)
	a := newImage(t, "amd64", [][]byte{base, layerTar(t, entry{name: "a", body: "aaa"})})
	b := newImage(t, "amd64", [][]byte{base, layerTar(t, entry{name: "b", body: "b"}), layerTar(t, entry{name: "c", body: "c"})})
	tr.push(a, "r/a", "1")
	tr.push(b, "r/b", "1")
	s := openStore(t, t.TempDir(), Options{})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	for _, r := range []string{"/r/a:1", "/r/b:1"} {
		if _, err := s.Pull(ctx, tr.host+r, opts); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := chainIDsOf(a), chainIDsOf(b)
	// A second tag: removing one only untags.
	if err := s.Tag(tr.host+"/r/a:1", tr.host+"/r/a:2"); err != nil {
		t.Fatal(err)
	}
	items, err := s.Remove(tr.host+"/r/a:1", false)
	if err != nil || len(items) != 1 || items[0].Untagged != tr.host+"/r/a:1" {
		t.Fatalf("Remove a:1 = %+v, %v", items, err)
	}
	items, err = s.Remove(tr.host+"/r/a:2", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeleteItem{{Untagged: tr.host + "/r/a:2"}, {Untagged: tr.host + "/r/a@" + a.mdesc.Digest.String()},
		{Deleted: a.id().String()}, {Deleted: ca[1]}}
	if !slices.Equal(items, want) {
		t.Errorf("Remove a:2 = %+v\nwant %+v", items, want)
	}
	if ids := snapshotIDs(t, s); !slices.Equal(ids, union(cb)) {
		t.Errorf("snapshots after rmi a: %v, want %v", ids, cb)
	}
	if _, err := s.Content(a.mdesc.Digest); err == nil {
		t.Error("a's manifest is still stored")
	}
	if _, err := s.Remove(tr.host+"/r/a:1", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second rmi: %v", err)
	}
	// By short ID.
	items, err = s.Remove(ShortDigest(b.id()), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2+1+3 {
		t.Errorf("rmi b = %+v", items)
	}
	if ids := snapshotIDs(t, s); len(ids) != 0 {
		t.Errorf("snapshots after rmi b: %v", ids)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "content", "sha256"))
	if len(ents) != 0 {
		t.Errorf("content left: %v", ents)
	}
}

func TestRemoveConflicts(t *testing.T) {
	tr := newTestRegistry(t)
	img := newImage(t, "amd64", [][]byte{baseTar(t)})
	tr.push(img, "r/a", "1")
	tr.push(img, "r/b", "1")
	var used sync.Map
	s := openStore(t, t.TempDir(), Options{InUse: func(id digest.Digest) (bool, error) {
		_, ok := used.Load(id)
		return ok, nil
	}})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	for _, r := range []string{"/r/a:1", "/r/b:1"} {
		if _, err := s.Pull(ctx, tr.host+r, opts); err != nil {
			t.Fatal(err)
		}
	}
	// By ID with references in two repositories: must force.
	_, err := s.Remove(img.id().Encoded()[:12], false)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "referenced in multiple repositories") {
		t.Fatalf("rmi by ID = %v", err)
	}
	used.Store(img.id(), true)
	if _, err := s.Remove(tr.host+"/r/a:1", false); err != nil {
		t.Fatalf("untag one of two repositories of a used image: %v", err)
	}
	_, err = s.Remove(tr.host+"/r/b:1", false)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "must force") {
		t.Fatalf("rmi last ref of used image = %v", err)
	}
	// Forced: untagged, but the image and its layers stay while the container uses them.
	items, err := s.Remove(tr.host+"/r/b:1", true)
	if err != nil || slices.ContainsFunc(items, func(i DeleteItem) bool { return i.Deleted != "" }) {
		t.Fatalf("forced rmi of used image = %+v, %v", items, err)
	}
	if len(snapshotIDs(t, s)) != 1 {
		t.Fatal("snapshot of a used image freed")
	}
	// Prune -a skips it while used.
	rep, err := s.Prune(true)
	if err != nil || len(rep.ImagesDeleted) != 0 {
		t.Fatalf("prune -a of a used image = %+v, %v", rep, err)
	}
	used.Delete(img.id())
	rep, err = s.Prune(false)
	if err != nil || len(rep.ImagesDeleted) != 2 || rep.SpaceReclaimed <= 0 {
		t.Fatalf("prune = %+v, %v", rep, err)
	}
	if len(snapshotIDs(t, s)) != 0 {
		t.Fatal("snapshots left after prune")
	}
}

func TestPrune(t *testing.T) {
	tr := newTestRegistry(t)
	old := newImage(t, "amd64", [][]byte{baseTar(t), layerTar(t, entry{name: "v", body: "1"})})
	cur := newImage(t, "amd64", [][]byte{baseTar(t), layerTar(t, entry{name: "v", body: "2"})})
	other := newImage(t, "amd64", [][]byte{layerTar(t, entry{name: "o", body: "o"})})
	tr.push(old, "r/app", "latest")
	tr.push(other, "r/other", "1")
	s := openStore(t, t.TempDir(), Options{})
	opts := tr.pullOpts()
	opts.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	for _, r := range []string{"/r/app:latest", "/r/other:1"} {
		if _, err := s.Pull(ctx, tr.host+r, opts); err != nil {
			t.Fatal(err)
		}
	}
	tr.push(cur, "r/app", "latest")
	if _, err := s.Pull(ctx, tr.host+"/r/app:latest", opts); err != nil {
		t.Fatal(err)
	}
	// old is now dangling (digest reference only).
	o, err := s.Lookup(old.id().String())
	if err != nil || len(o.RepoTags) != 0 || len(o.RepoDigests) != 1 {
		t.Fatalf("old image = %+v, %v", o, err)
	}
	rep, err := s.Prune(false)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeleteItem{{Untagged: tr.host + "/r/app@" + old.mdesc.Digest.String()}, {Deleted: old.id().String()}, {Deleted: chainIDsOf(old)[1]}}
	if !slices.Equal(rep.ImagesDeleted, want) || rep.SpaceReclaimed != 1 {
		t.Errorf("prune = %+v, want %+v", rep, want)
	}
	if ids := snapshotIDs(t, s); !slices.Equal(ids, union(chainIDsOf(cur), chainIDsOf(other))) {
		t.Errorf("snapshots %v", ids)
	}
	rep, err = s.Prune(true)
	if err != nil || len(snapshotIDs(t, s)) != 0 {
		t.Fatalf("prune -a = %+v, %v; snapshots %v", rep, err, snapshotIDs(t, s))
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("images after prune -a: %v", imgs)
	}
}

// A snapshot committed by a pull that died before recording its image is freed by the next
// collection; one held by a live pull's lease is not.
func TestCollectSparesLiveLeases(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	live, dead := digest.FromString("live"), digest.FromString("dead")
	for _, c := range []digest.Digest{live, dead} {
		dir, commit, _, err := s.Snapshots().Prepare(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
		if err := commit(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.newLease([]digest.Digest{live}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A stale lease file (no lock held) names dead: it does not protect it.
	os.WriteFile(filepath.Join(s.Root(), "leases", "1-1.json"), []byte(`{"chainIDs":["`+dead.String()+`"]}`), 0o600)
	if _, err := s.Prune(false); err != nil {
		t.Fatal(err)
	}
	if ids := snapshotIDs(t, s); !slices.Equal(ids, []string{live.String()}) {
		t.Errorf("snapshots %v, want only the leased one", ids)
	}
	l.release()
	if _, err := s.Prune(false); err != nil {
		t.Fatal(err)
	}
	if ids := snapshotIDs(t, s); len(ids) != 0 {
		t.Errorf("snapshots %v after the lease ended", ids)
	}
	if l := leftovers(t, s); len(l) != 0 {
		t.Errorf("leftovers %v", l)
	}
}

var _ = snapshot.ChainID
