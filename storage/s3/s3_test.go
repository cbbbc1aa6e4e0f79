package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/storagetest"
)

// TestDriver runs the conformance suite against MinIO, below a root
// directory.
func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		d, _ := newTestDriver(t, func(p *Params) { p.RootDirectory = "/berth/root/" })
		return d
	})
}

// TestDriverNoRootDirectory runs the suite with keys at the bucket's top.
func TestDriverNoRootDirectory(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		d, _ := newTestDriver(t, nil)
		return d
	})
}

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed*31+7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func appendCommit(t *testing.T, d storage.Driver, p string, b []byte) {
	t.Helper()
	ctx := t.Context()
	w, err := d.Writer(ctx, p, true)
	if err != nil {
		t.Fatalf("Writer(%s, append): %v", p, err)
	}
	before := w.Size()
	// Odd write sizes, to cross part boundaries.
	for off := 0; off < len(b); {
		n := min(len(b)-off, 777777)
		if _, err := w.Write(b[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if w.Size() != before+int64(len(b)) {
		t.Fatalf("Size = %d, want %d", w.Size(), before+int64(len(b)))
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	w.Close()
}

func mustContent(t *testing.T, d storage.Driver, p string, want []byte) {
	t.Helper()
	got, err := storage.GetContent(t.Context(), d, p)
	if err != nil {
		t.Fatalf("GetContent(%s): %v", p, err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at %d", p, len(got), len(want), i)
	}
}

func segmentKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.Contains(k, segSep) {
			out = append(out, k)
		}
	}
	return out
}

// TestSegmentsAndMove checks that appends become hidden segments, that the
// file reads as their concatenation from any offset, and that Move joins
// them server-side into exactly the bytes written, leaving no segment.
func TestSegmentsAndMove(t *testing.T) {
	ctx := t.Context()
	c := newCounter(t)
	d, p := newTestDriver(t, func(p *Params) { p.Transport = c; p.RootDirectory = "root" })
	chunks := [][]byte{pattern(1, 6<<20), pattern(2, 5<<20+1), pattern(3, 3)}
	const src = "/uploads/u1/data"
	var all []byte
	for _, b := range chunks {
		appendCommit(t, d, src, b)
		all = append(all, b...)
	}
	segs := segmentKeys(bucketKeys(t, p.Bucket))
	want := []string{
		"root/uploads/u1/data~seg~00000000000000000000",
		fmt.Sprintf("root/uploads/u1/data~seg~%020d", 6<<20),
		fmt.Sprintf("root/uploads/u1/data~seg~%020d", 11<<20+1),
	}
	if !slices.Equal(segs, want) {
		t.Fatalf("segment keys = %q, want %q", segs, want)
	}
	kids, err := d.List(ctx, "/uploads/u1")
	if err != nil || !slices.Equal(kids, []string{"/uploads/u1/data"}) {
		t.Fatalf("List = %q, %v", kids, err)
	}
	fi, err := d.Stat(ctx, src)
	if err != nil || fi.Size != int64(len(all)) || fi.IsDir {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	for _, off := range []int64{0, 1, 6<<20 - 1, 6 << 20, 6<<20 + 5, 11<<20 + 1, int64(len(all)) - 1, int64(len(all))} {
		rc, err := d.Reader(ctx, src, off)
		if err != nil {
			t.Fatalf("Reader(%d): %v", off, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, all[off:]) {
			t.Fatalf("Reader(%d): %d bytes, %v; want %d bytes", off, len(got), err, len(all)-int(off))
		}
	}
	if _, err := d.Reader(ctx, src, int64(len(all))+1); !errors.Is(err, storage.ErrInvalidOffset) {
		t.Fatalf("Reader past the end: %v", err)
	}

	c.take()
	const dst = "/blobs/sha256/ab/abcd/data"
	if err := d.Move(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	reqs := c.take()
	t.Logf("Move of 3 segments (server-side join): %d requests: %q", len(reqs), reqs)
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && !strings.Contains(r, "list-type") {
			t.Fatalf("Move read object data back (%s): it must copy server-side", r)
		}
	}
	mustContent(t, d, dst, all)
	if _, err := d.Stat(ctx, src); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(src) after Move: %v", err)
	}
	if segs := segmentKeys(bucketKeys(t, p.Bucket)); len(segs) != 0 {
		t.Fatalf("segments left after Move: %q", segs)
	}
	if keys := bucketKeys(t, p.Bucket); !slices.Equal(keys, []string{"root/blobs/sha256/ab/abcd/data"}) {
		t.Fatalf("bucket holds %q", keys)
	}
	// The destination is a plain object now: Stat is one HEAD.
	c.take()
	if _, err := d.Stat(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if reqs := c.take(); len(reqs) != 1 {
		t.Fatalf("Stat of the moved blob: %q", reqs)
	}
}

// TestMoveSmallSegments checks Move of a file whose segments are too small
// to be joined server-side: the bytes are streamed into the destination.
func TestMoveSmallSegments(t *testing.T) {
	ctx := t.Context()
	d, p := newTestDriver(t, nil)
	const src, dst = "/up/data", "/blob/data"
	var all []byte
	for i, n := range []int{1000, 1, 6 << 20, 4096, 0, 70000} {
		b := pattern(uint64(10+i), n)
		appendCommit(t, d, src, b)
		all = append(all, b...)
	}
	mustContent(t, d, src, all)
	if err := d.Move(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	mustContent(t, d, dst, all)
	if keys := bucketKeys(t, p.Bucket); !slices.Equal(keys, []string{"blob/data"}) {
		t.Fatalf("bucket holds %q after Move", keys)
	}

	// A file of one small segment is copied with one CopyObject.
	appendCommit(t, d, "/one/data", []byte("tiny"))
	if err := d.Move(ctx, "/one/data", "/one/moved"); err != nil {
		t.Fatal(err)
	}
	mustContent(t, d, "/one/moved", []byte("tiny"))

	// An empty append makes an empty file, which moves too.
	appendCommit(t, d, "/empty/data", nil)
	if err := d.Move(ctx, "/empty/data", "/empty/moved"); err != nil {
		t.Fatal(err)
	}
	mustContent(t, d, "/empty/moved", []byte{})
}

// TestAppendToPlainObject checks that appending to a file written in one
// go turns it into segments.
func TestAppendToPlainObject(t *testing.T) {
	ctx := t.Context()
	d, p := newTestDriver(t, nil)
	if err := storage.PutContent(ctx, d, "/f", []byte("base")); err != nil {
		t.Fatal(err)
	}
	appendCommit(t, d, "/f", []byte("+more"))
	mustContent(t, d, "/f", []byte("base+more"))
	keys := bucketKeys(t, p.Bucket)
	want := []string{"f~seg~00000000000000000000", "f~seg~00000000000000000004"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	// Replacing it with a plain object hides the segments; Delete removes all.
	if err := storage.PutContent(ctx, d, "/f", []byte("new")); err != nil {
		t.Fatal(err)
	}
	mustContent(t, d, "/f", []byte("new"))
	if err := d.Delete(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	if keys := bucketKeys(t, p.Bucket); len(keys) != 0 {
		t.Fatalf("keys after Delete = %q", keys)
	}
}

// TestRequestCounts measures how many S3 requests each operation costs.
func TestRequestCounts(t *testing.T) {
	ctx := t.Context()
	c := newCounter(t)
	d, _ := newTestDriver(t, func(p *Params) { p.Transport = c })
	c.take() // start-up checks

	// Each figure is exact: a change is a regression or needs a look.
	measure := func(what string, want int, fn func() error) {
		t.Helper()
		c.take()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		reqs := c.take()
		t.Logf("%-40s %d request(s): %q", what, len(reqs), reqs)
		if len(reqs) != want {
			t.Errorf("%s cost %d requests, want %d", what, len(reqs), want)
		}
	}
	content := pattern(5, 100000)
	measure("PutContent (small)", 1, func() error { return storage.PutContent(ctx, d, "/blob/data", content) })
	measure("Stat (plain object)", 1, func() error {
		fi, err := d.Stat(ctx, "/blob/data")
		if err == nil && fi.Size != int64(len(content)) {
			err = fmt.Errorf("size %d", fi.Size)
		}
		return err
	})
	measure("Reader+ReadAll (plain object)", 1, func() error {
		rc, err := d.Reader(ctx, "/blob/data", 10)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err == nil && !bytes.Equal(b, content[10:]) {
			err = errors.New("content differs")
		}
		return err
	})
	measure("Writer(append=false) small + Commit", 1, func() error {
		w, err := d.Writer(ctx, "/small", false)
		if err != nil {
			return err
		}
		w.Write(content)
		return w.Commit(ctx)
	})
	big := pattern(6, 3*MinChunkSize+5)
	measure("Writer(append=false) 15 MiB + Commit", 6, func() error { // init, 4 parts, complete
		w, err := d.Writer(ctx, "/big", false)
		if err != nil {
			return err
		}
		w.Write(big)
		return w.Commit(ctx)
	})
	measure("Writer(append=true) new + Commit", 2, func() error { // list, put
		w, err := d.Writer(ctx, "/up/data", true)
		if err != nil {
			return err
		}
		w.Write(content)
		return w.Commit(ctx)
	})
	measure("Writer(append=true) again + Commit", 2, func() error {
		w, err := d.Writer(ctx, "/up/data", true)
		if err != nil {
			return err
		}
		w.Write(content)
		return w.Commit(ctx)
	})
	measure("Stat (segmented)", 2, func() error { _, err := d.Stat(ctx, "/up/data"); return err })
	measure("Reader+ReadAll (2 segments)", 4, func() error { // get (404), list, 2 gets
		_, err := storage.GetContent(ctx, d, "/up/data")
		return err
	})
	measure("Stat (missing)", 2, func() error {
		_, err := d.Stat(ctx, "/missing")
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("Stat(/missing) = %v", err)
	})
	measure("StatFile (missing)", 1, func() error {
		_, err := d.StatFile(ctx, "/missing")
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("StatFile(/missing) = %v", err)
	})
	measure("StatFile (plain object)", 1, func() error { _, err := d.StatFile(ctx, "/blob/data"); return err })
	measure("Move (plain object)", 3, func() error { return d.Move(ctx, "/blob/data", "/blob/moved") })
	appendCommit(t, d, "/up2/data", content)
	measure("Move (1 segment)", 3, func() error { return d.Move(ctx, "/up2/data", "/blob/moved2") })
	measure("Move (2 small segments, streamed)", 5, func() error { return d.Move(ctx, "/up/data", "/blob/moved3") })
	measure("Delete (file)", 2, func() error { return d.Delete(ctx, "/blob/moved") })
	measure("List", 1, func() error { _, err := d.List(ctx, "/blob"); return err })
	measure("RedirectURL", 0, func() error { _, err := d.RedirectURL(ctx, http.MethodGet, "/blob/moved2"); return err })
}

// TestPartSize checks the part size schedule: 100 GiB (and far more) fit in
// S3's 10,000 parts, every part is within S3's limits and sizes never
// shrink.
func TestPartSize(t *testing.T) {
	const GiB = int64(1) << 30
	for _, chunk := range []int64{MinChunkSize, DefaultChunkSize, 64 << 20, MaxPartSize} {
		var total int64
		parts := 0
		prev := int64(0)
		for n := 1; n <= MaxParts; n++ {
			s := PartSize(chunk, n)
			if s < MinChunkSize || s > MaxPartSize || s < prev {
				t.Fatalf("PartSize(%d, %d) = %d (previous %d)", chunk, n, s, prev)
			}
			prev = s
			total += s
			if parts == 0 && total >= 100*GiB {
				parts = n
			}
		}
		if parts == 0 {
			t.Fatalf("chunk %d: 10,000 parts hold only %d bytes, less than 100 GiB", chunk, total)
		}
		if total != MaxFileSize(chunk) {
			t.Fatalf("MaxFileSize(%d) = %d, want %d", chunk, MaxFileSize(chunk), total)
		}
		t.Logf("chunk %3d MiB: 100 GiB in %5d parts (largest %4d MiB); 10,000 parts hold %.1f TiB",
			chunk>>20, parts, PartSize(chunk, parts)>>20, float64(total)/float64(1<<40))
	}
	if got := PartSize(MinChunkSize, 1000); got != MinChunkSize {
		t.Fatalf("part 1000 = %d", got)
	}
	if got := PartSize(MinChunkSize, 1001); got != 2*MinChunkSize {
		t.Fatalf("part 1001 = %d", got)
	}
	if got := MaxFileSize(MinChunkSize); got < 4<<40 {
		t.Fatalf("MaxFileSize(5 MiB) = %d, want > 4 TiB", got)
	}
}

// TestCopyPlan checks when segments can be joined server-side.
func TestCopyPlan(t *testing.T) {
	const MiB = 1 << 20
	src := func(sizes ...int64) []copySource {
		var out []copySource
		for i, s := range sizes {
			out = append(out, copySource{key: fmt.Sprint(i), size: s})
		}
		return out
	}
	for _, tc := range []struct {
		sizes  []int64
		ok     bool
		ranges int
	}{
		{[]int64{5 * MiB, 5 * MiB, 1}, true, 3},
		{[]int64{6 * MiB, 1}, true, 2},
		{[]int64{6 * MiB, 4 * MiB, 1}, false, 0},
		{[]int64{1, 6 * MiB}, false, 0},
		{[]int64{6 * MiB, 0}, true, 1},
		{[]int64{0, 6 * MiB, 7 * MiB}, true, 2},
		{[]int64{6 << 30}, true, 2},              // split in two 3 GiB ranges
		{[]int64{10<<30 + 1, 1}, true, 4},        // 3 ranges of ~3.3 GiB, then 1
		{[]int64{0, 0}, false, 0},                // nothing to copy
		{[]int64{(5 << 30) + 2*MiB, 1}, true, 3}, // two ranges over 5 MiB each
	} {
		ranges, ok := copyPlan(src(tc.sizes...))
		if ok != tc.ok || (ok && len(ranges) != tc.ranges) {
			t.Errorf("copyPlan(%v) = %d ranges, %v; want %d, %v", tc.sizes, len(ranges), ok, tc.ranges, tc.ok)
			continue
		}
		var total, want int64
		for i, r := range ranges {
			total += r.size
			if r.size > MaxPartSize || (r.size < MinChunkSize && i < len(ranges)-1) {
				t.Errorf("copyPlan(%v): range %d has size %d", tc.sizes, i, r.size)
			}
		}
		for _, s := range tc.sizes {
			want += s
		}
		if ok && total != want {
			t.Errorf("copyPlan(%v) covers %d bytes, want %d", tc.sizes, total, want)
		}
	}
}

// TestNewErrors checks that start-up failures say what is wrong.
func TestNewErrors(t *testing.T) {
	ctx := t.Context()
	p := testParams(t)
	cases := []struct {
		name string
		edit func(*Params)
		want string
	}{
		{"wrong secret", func(p *Params) { p.SecretKey = "not-the-secret" }, "access denied: check storage.s3.accesskey/secretkey"},
		{"unknown access key", func(p *Params) { p.AccessKey = "nobody" }, "access denied: check storage.s3.accesskey/secretkey"},
		{"missing bucket", func(p *Params) { p.Bucket = "no-such-bucket" }, `bucket "no-such-bucket" does not exist`},
		{"bad endpoint", func(p *Params) { p.RegionEndpoint = "ftp://x" }, "storage.s3.regionendpoint"},
		{"small chunk", func(p *Params) { p.ChunkSize = 1 << 20 }, "chunksize"},
		{"invalid bucket name", func(p *Params) { p.Bucket = "b" }, "storage.s3.bucket"},
		{"unreachable", func(p *Params) { p.RegionEndpoint = "http://127.0.0.1:1"; p.MaxRetries = 1 }, "cannot reach bucket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := p
			tc.edit(&q)
			d, err := New(ctx, q)
			if err == nil {
				t.Fatalf("New succeeded: %v", d)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
	// With no key configured the AWS environment variables are used.
	t.Setenv("AWS_ACCESS_KEY_ID", minioUser)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minioPassword)
	q := p
	q.AccessKey, q.SecretKey = "", ""
	if _, err := New(ctx, q); err != nil {
		t.Fatalf("New with credentials from the environment: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := New(ctx, q); err == nil || !strings.Contains(err.Error(), "access denied: no credentials") {
		t.Fatalf("New without any credentials: %v", err)
	} else {
		t.Logf("%v", err)
	}
}

// TestRedirectURL checks that presigned URLs download the object, also
// through a RedirectEndpoint naming the server differently.
func TestRedirectURL(t *testing.T) {
	ctx := t.Context()
	content := pattern(7, 300000)
	for _, redirect := range []bool{false, true} {
		d, p := newTestDriver(t, func(p *Params) {
			p.RootDirectory = "r"
			if redirect {
				p.RedirectEndpoint = strings.Replace(p.RegionEndpoint, "127.0.0.1", "localhost", 1)
			}
		})
		if err := storage.PutContent(ctx, d, "/blobs/x/data", content); err != nil {
			t.Fatal(err)
		}
		u, err := d.RedirectURL(ctx, http.MethodGet, "/blobs/x/data")
		if err != nil {
			t.Fatal(err)
		}
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		wantHost := strings.TrimPrefix(p.RegionEndpoint, "http://")
		if redirect {
			wantHost = strings.TrimPrefix(p.RedirectEndpoint, "http://")
		}
		if pu.Host != wantHost || !strings.Contains(pu.Path, "/r/blobs/x/data") {
			t.Fatalf("redirect URL %s: want host %s and the object's key", u, wantHost)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
			t.Fatalf("GET %s: %s, %d bytes", u, resp.Status, len(got))
		}
		hu, err := d.RedirectURL(ctx, http.MethodHead, "/blobs/x/data")
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.Head(hu)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(content)) {
			t.Fatalf("HEAD %s: %s, length %d", hu, resp.Status, resp.ContentLength)
		}
		if _, err := d.RedirectURL(ctx, http.MethodPut, "/blobs/x/data"); err == nil {
			t.Fatal("RedirectURL(PUT) succeeded")
		}
	}
}

// faulty fails some requests the way a busy S3 does: 503 SlowDown answers
// and broken connections, before they reach the server.
type faulty struct {
	base  http.RoundTripper
	n     atomic.Int64
	slow  atomic.Int64
	reset atomic.Int64
}

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	switch f.n.Add(1) % 4 {
	case 1:
		f.slow.Add(1)
		if r.Body != nil {
			r.Body.Close()
		}
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`
		return &http.Response{
			StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/xml"}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       r,
		}, nil
	case 3:
		f.reset.Add(1)
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: connection reset by peer")
	}
	return f.base.RoundTrip(r)
}

// TestRetries checks that 503 SlowDown answers and broken connections are
// retried: with every other request failing, everything works.
func TestRetries(t *testing.T) {
	ctx := t.Context()
	f := &faulty{base: newCounter(t).base}
	d, _ := newTestDriver(t, func(p *Params) { p.Transport = f })
	big := pattern(8, 2*MinChunkSize+3)
	w, err := d.Writer(ctx, "/big", false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mustContent(t, d, "/big", big)
	appendCommit(t, d, "/up", big[:1000])
	appendCommit(t, d, "/up", big[1000:])
	if err := d.Move(ctx, "/up", "/moved"); err != nil {
		t.Fatal(err)
	}
	mustContent(t, d, "/moved", big)
	if err := d.Delete(ctx, "/moved"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "/moved"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if f.slow.Load() == 0 || f.reset.Load() == 0 {
		t.Fatal("no fault injected")
	}
	t.Logf("%d requests, %d answered 503 SlowDown, %d connection resets: all retried", f.n.Load(), f.slow.Load(), f.reset.Load())
}

// cutting breaks the body of the first GET of an object after 1 MiB.
type cutting struct {
	base http.RoundTripper
	once sync.Once
	cut  atomic.Bool
}

type cutBody struct {
	io.ReadCloser
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= n
	return n, err
}

func (c *cutting) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && !r.URL.Query().Has("list-type") && resp.StatusCode/100 == 2 {
		c.once.Do(func() {
			c.cut.Store(true)
			resp.Body = &cutBody{ReadCloser: resp.Body, left: 1 << 20}
		})
	}
	return resp, err
}

// TestReaderResumes checks that a Reader whose connection breaks goes on
// from where it stopped.
func TestReaderResumes(t *testing.T) {
	ctx := t.Context()
	c := &cutting{base: newCounter(t).base}
	d, _ := newTestDriver(t, func(p *Params) { p.Transport = c })
	content := pattern(9, 3<<20)
	if err := storage.PutContent(ctx, d, "/f", content); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Reader(ctx, "/f", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, content[100:]) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if !c.cut.Load() {
		t.Fatal("the connection was not cut")
	}
}

// TestWriterCancel checks that a cancelled or abandoned multipart upload
// leaves nothing behind, not even an incomplete upload.
func TestWriterCancel(t *testing.T) {
	ctx := t.Context()
	d, p := newTestDriver(t, nil)
	s := needMinio(t)
	for _, cancel := range []bool{true, false} {
		w, err := d.Writer(ctx, "/f", false)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pattern(1, 2*MinChunkSize+1))
		if cancel {
			if err := w.Cancel(ctx); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		if _, err := d.Stat(ctx, "/f"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat after cancel: %v", err)
		}
		for u := range s.admin.ListIncompleteUploads(context.Background(), p.Bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			t.Fatalf("incomplete upload left: %s %s", u.Key, u.UploadID)
		}
	}
	if keys := bucketKeys(t, p.Bucket); len(keys) != 0 {
		t.Fatalf("keys left: %q", keys)
	}
}
