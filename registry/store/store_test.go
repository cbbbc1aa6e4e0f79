package store

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/filesystem"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var allOpts = Options{DeleteEnabled: true}

// errReader returns some bytes, then an error, as a client that goes away.
type errReader struct {
	b   []byte
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestUploadChunks(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		data := []byte("0123456789abcdefghij")
		d := digest.FromBytes(data)
		up, err := e.s.StartUpload(e.ctx, "repo")
		if err != nil {
			t.Fatal(err)
		}
		status := func(want int64) {
			t.Helper()
			st, err := e.s.UploadStatus(e.ctx, "repo", up.ID)
			if err != nil || st.Size != want || st.ID != up.ID {
				t.Fatalf("UploadStatus = %+v, %v; want size %d", st, err, want)
			}
		}
		status(0)

		steps := []struct {
			name   string
			start  int64
			r      io.Reader
			length int64
			want   int64 // size afterwards
			err    error
		}{
			{"first chunk at 0", 0, bytes.NewReader(data[:5]), 5, 5, nil},
			{"chunk beyond the end", 10, bytes.NewReader(data[10:15]), 5, 5, ErrRangeInvalid},
			{"chunk overlapping", 3, bytes.NewReader(data[3:8]), 5, 5, ErrRangeInvalid},
			{"chunk at the end", 5, bytes.NewReader(data[5:8]), 3, 8, nil},
			{"chunk without start, unknown length", -1, bytes.NewReader(data[8:10]), -1, 10, nil},
			{"short body", 10, bytes.NewReader(data[10:12]), 5, 10, ErrSizeInvalid},
			{"body error", 10, &errReader{b: data[10:13], err: errors.New("connection reset")}, 5, 10, ErrUploadInvalid},
			{"empty chunk", 10, bytes.NewReader(nil), 0, 10, nil},
			{"chunk after failures", 10, bytes.NewReader(data[10:15]), 5, 15, nil},
		}
		for _, st := range steps {
			n, err := e.s.AppendUpload(e.ctx, "repo", up.ID, st.start, st.r, st.length)
			if st.err != nil {
				if !errors.Is(err, st.err) {
					t.Fatalf("%s: error %v, want %v", st.name, err, st.err)
				}
			} else if err != nil || n != st.want {
				t.Fatalf("%s: AppendUpload = %d, %v; want %d", st.name, n, err, st.want)
			}
			status(st.want)
			// The stored bytes are always exactly the accepted prefix.
			if got := e.content(v2("repositories/repo/_uploads/" + up.ID + "/data")); !bytes.Equal(got, data[:st.want]) {
				t.Fatalf("%s: upload data %q, want %q", st.name, got, data[:st.want])
			}
		}
		// The last chunk arrives with the digest, out of order first.
		if _, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, d, 12, bytes.NewReader(data[15:]), 5); !errors.Is(err, ErrRangeInvalid) {
			t.Fatalf("CompleteUpload out of order: %v", err)
		}
		status(15)
		n, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, d, 15, bytes.NewReader(data[15:]), 5)
		if err != nil || n != int64(len(data)) {
			t.Fatalf("CompleteUpload = %d, %v", n, err)
		}
		if size, err := e.s.StatBlob(e.ctx, "repo", d); err != nil || size != int64(len(data)) {
			t.Fatalf("StatBlob = %d, %v", size, err)
		}
		if got := e.content(v2("blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data")); !bytes.Equal(got, data) {
			t.Fatalf("blob %q", got)
		}
		// The session is gone, in storage and in memory.
		_, err = e.s.UploadStatus(e.ctx, "repo", up.ID)
		wantErr(t, err, ErrUploadUnknown)
		if n := e.s.sessionCount(); n != 0 {
			t.Errorf("%d sessions left in memory", n)
		}
		for _, f := range e.files() {
			if strings.Contains(f, "_uploads") {
				t.Errorf("upload file left behind: %s", f)
			}
		}
	})
}

func TestUploadCompleteWithoutFinalChunk(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		data := []byte("whole blob in one patch")
		up, _ := e.s.StartUpload(e.ctx, "repo")
		if _, err := e.s.AppendUpload(e.ctx, "repo", up.ID, -1, bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, digest.FromBytes(data), -1, nil, -1); err != nil {
			t.Fatal(err)
		}
		// An empty blob, completed without any chunk.
		up, _ = e.s.StartUpload(e.ctx, "repo")
		empty := digest.FromBytes(nil)
		if n, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, empty, -1, nil, 0); err != nil || n != 0 {
			t.Fatalf("empty blob: %d, %v", n, err)
		}
		if n, err := e.s.StatBlob(e.ctx, "repo", empty); err != nil || n != 0 {
			t.Fatalf("StatBlob(empty) = %d, %v", n, err)
		}
	})
}

func TestUploadSHA512(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		data := bytes.Repeat([]byte("sha512 "), 1000)
		d := digest.SHA512.FromBytes(data)
		up, _ := e.s.StartUpload(e.ctx, "repo")
		if _, err := e.s.AppendUpload(e.ctx, "repo", up.ID, 0, bytes.NewReader(data[:3000]), 3000); err != nil {
			t.Fatal(err)
		}
		// Resumed by another store.
		if _, err := e.newStore().CompleteUpload(e.ctx, "repo", up.ID, d, 3000, bytes.NewReader(data[3000:]), -1); err != nil {
			t.Fatal(err)
		}
		e.mustExist(v2("blobs/sha512/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"))
		e.mustExist(v2("repositories/repo/_layers/sha512/" + d.Encoded() + "/link"))
		// A wrong sha512 digest is refused.
		up, _ = e.s.StartUpload(e.ctx, "repo")
		bad := digest.SHA512.FromString("other")
		_, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, bad, 0, bytes.NewReader(data), -1)
		wantErr(t, err, ErrDigestInvalid)
		e.mustNotExist(v2("blobs/sha512/" + bad.Encoded()[:2] + "/" + bad.Encoded() + "/data"))
	})
}

// TestUploadResumeFromStorage continues an upload on a store that never saw
// it (another replica, or this one restarted): the running hash is read from
// the state saved in storage, or rebuilt from the data when that is missing
// or unreadable.
func TestUploadResumeFromStorage(t *testing.T) {
	data := bytes.Repeat([]byte("resumable upload "), 500) // several hash blocks
	tests := []struct {
		name   string
		mangle func(e *env, stateDir string) // applied to the saved state before resuming
	}{
		{"saved state", nil},
		{"state missing", func(e *env, dir string) {
			if err := e.d.Delete(e.ctx, dir); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"state corrupt", func(e *env, dir string) {
			if err := storage.PutContent(e.ctx, e.d, dir+"/5000", []byte("not a hash state")); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eachDriver(t, allOpts, func(t *testing.T, e *env) {
				first := e.newStore()
				up, err := first.StartUpload(e.ctx, "a/b")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := first.AppendUpload(e.ctx, "a/b", up.ID, 0, bytes.NewReader(data[:3333]), 3333); err != nil {
					t.Fatal(err)
				}
				if _, err := first.AppendUpload(e.ctx, "a/b", up.ID, 3333, bytes.NewReader(data[3333:5000]), 1667); err != nil {
					t.Fatal(err)
				}
				stateDir := v2("repositories/a/b/_uploads/" + up.ID + "/_berth/hashstate/sha256")
				// Only the newest state is kept, and it is sha256's state
				// after exactly the bytes uploaded so far.
				states, err := e.d.List(e.ctx, stateDir)
				if err != nil || len(states) != 1 || states[0] != stateDir+"/5000" {
					t.Fatalf("hash states %v, %v", states, err)
				}
				h := sha256.New()
				h.Write(data[:5000])
				want, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
				if got := e.content(stateDir + "/5000"); !bytes.Equal(got, want) {
					t.Fatalf("saved hash state does not match sha256 of the first 5000 bytes")
				}
				e.mustExist(v2("repositories/a/b/_uploads/" + up.ID + "/startedat"))
				if tc.mangle != nil {
					tc.mangle(e, stateDir)
				}

				second := e.newStore() // knows nothing of the session
				if st, err := second.UploadStatus(e.ctx, "a/b", up.ID); err != nil || st.Size != 5000 {
					t.Fatalf("UploadStatus on second store = %+v, %v", st, err)
				}
				if _, err := second.AppendUpload(e.ctx, "a/b", up.ID, 4000, bytes.NewReader(data[4000:6000]), 2000); !errors.Is(err, ErrRangeInvalid) {
					t.Fatalf("out-of-order chunk on second store: %v", err)
				}
				if _, err := second.AppendUpload(e.ctx, "a/b", up.ID, 5000, bytes.NewReader(data[5000:7000]), 2000); err != nil {
					t.Fatal(err)
				}
				// And back to the first store, whose in-memory hash is stale.
				d := digest.FromBytes(data)
				if _, err := first.CompleteUpload(e.ctx, "a/b", up.ID, d, 7000, bytes.NewReader(data[7000:]), int64(len(data)-7000)); err != nil {
					t.Fatalf("CompleteUpload on first store: %v", err)
				}
				if got := e.content(v2("blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data")); !bytes.Equal(got, data) {
					t.Fatal("stored blob differs from the upload")
				}
			})
		})
	}
}

func TestUploadDigestMismatch(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		data := []byte("some bytes")
		wrong := digest.FromString("other bytes")
		up, _ := e.s.StartUpload(e.ctx, "repo")
		if _, err := e.s.AppendUpload(e.ctx, "repo", up.ID, 0, bytes.NewReader(data[:4]), 4); err != nil {
			t.Fatal(err)
		}
		before := e.files()
		_, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, wrong, 4, bytes.NewReader(data[4:]), int64(len(data)-4))
		wantErr(t, err, ErrDigestInvalid)
		if n := e.s.sessionCount(); n != 0 {
			t.Errorf("%d sessions left in memory", n)
		}
		for _, d := range []digest.Digest{wrong, digest.FromBytes(data)} {
			_, err = e.s.StatBlob(e.ctx, "repo", d)
			wantErr(t, err, ErrBlobUnknown)
			_, err = e.s.MountBlob(e.ctx, "other", "", d)
			wantErr(t, err, ErrBlobUnknown)
		}
		_, err = e.s.UploadStatus(e.ctx, "repo", up.ID)
		wantErr(t, err, ErrUploadUnknown)
		_, err = e.s.AppendUpload(e.ctx, "repo", up.ID, -1, bytes.NewReader(data), -1)
		wantErr(t, err, ErrUploadUnknown)
		var left []string
		for _, f := range e.files() {
			if !strings.Contains(f, "/_uploads/") {
				left = append(left, f)
			}
		}
		if len(left) != 0 {
			t.Errorf("files visible after a digest mismatch: %v (before: %v)", left, before)
		}
	})
}

// TestUploadUnknownLeavesNoSession: requests naming upload sessions that do
// not exist (any well-formed UUID will do) must not grow the store's
// in-memory session table, or a client can exhaust memory with them.
func TestUploadUnknownLeavesNoSession(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		d := digest.FromString("x")
		for i := range 100 {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			_, err := e.s.AppendUpload(e.ctx, "repo", id, -1, strings.NewReader("x"), 1)
			wantErr(t, err, ErrUploadUnknown)
			_, err = e.s.CompleteUpload(e.ctx, "repo", id, d, -1, strings.NewReader("x"), 1)
			wantErr(t, err, ErrUploadUnknown)
			_, err = e.s.UploadStatus(e.ctx, "repo", id)
			wantErr(t, err, ErrUploadUnknown)
		}
		if n := e.s.sessionCount(); n != 0 {
			t.Errorf("%d in-memory sessions after requests for unknown uploads, want 0", n)
		}
		if f := e.files(); len(f) != 0 {
			t.Errorf("files written for unknown uploads: %v", f)
		}
	})
}

// TestUploadSizes checks the sizes the store reports while uploading and for
// the finished blob (the size is remembered, so a wrong one is served as the
// blob's Content-Length).
func TestUploadSizes(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name   string
		chunks []int // sizes of the chunks sent with AppendUpload; the rest with CompleteUpload
	}{
		{"monolithic", nil},
		{"one chunk then the rest", []int{4}},
		{"all in chunks, empty final", []int{3, 3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eachDriver(t, allOpts, func(t *testing.T, e *env) {
				up, _ := e.s.StartUpload(e.ctx, "repo")
				off := 0
				for _, c := range tc.chunks {
					n, err := e.s.AppendUpload(e.ctx, "repo", up.ID, int64(off), bytes.NewReader(data[off:off+c]), int64(c))
					off += c
					if err != nil || n != int64(off) {
						t.Errorf("AppendUpload returned size %d, %v; want %d", n, err, off)
					}
				}
				d := digest.FromBytes(data)
				n, err := e.s.CompleteUpload(e.ctx, "repo", up.ID, d, int64(off), bytes.NewReader(data[off:]), int64(len(data)-off))
				if err != nil || n != int64(len(data)) {
					t.Errorf("CompleteUpload returned size %d, %v; want %d", n, err, len(data))
				}
				if n, err := e.s.StatBlob(e.ctx, "repo", d); err != nil || n != int64(len(data)) {
					t.Errorf("StatBlob on the uploading store = %d, %v; want %d", n, err, len(data))
				}
				if n, err := e.newStore().StatBlob(e.ctx, "repo", d); err != nil || n != int64(len(data)) {
					t.Errorf("StatBlob on a fresh store = %d, %v; want %d", n, err, len(data))
				}
			})
		})
	}
}

func TestUploadWrongRepository(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		up, _ := e.s.StartUpload(e.ctx, "a")
		_, err := e.s.AppendUpload(e.ctx, "b", up.ID, -1, strings.NewReader("x"), 1)
		wantErr(t, err, ErrUploadUnknown)
		_, err = e.s.UploadStatus(e.ctx, "b", up.ID)
		wantErr(t, err, ErrUploadUnknown)
		if st, err := e.s.UploadStatus(e.ctx, "a", up.ID); err != nil || st.Size != 0 {
			t.Fatalf("UploadStatus(a) = %+v, %v", st, err)
		}
	})
}

func TestCancelUpload(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		up, _ := e.s.StartUpload(e.ctx, "repo")
		if _, err := e.s.AppendUpload(e.ctx, "repo", up.ID, 0, strings.NewReader("abc"), 3); err != nil {
			t.Fatal(err)
		}
		if err := e.s.CancelUpload(e.ctx, "repo", up.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.s.UploadStatus(e.ctx, "repo", up.ID)
		wantErr(t, err, ErrUploadUnknown)
		wantErr(t, e.s.CancelUpload(e.ctx, "repo", up.ID), ErrUploadUnknown)
		if f := e.files(); len(f) != 0 {
			t.Errorf("files left after cancel: %v", f)
		}
	})
}

func TestParseUploadID(t *testing.T) {
	good := "3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b"
	if id, err := ParseUploadID(good); err != nil || id != good {
		t.Fatalf("ParseUploadID(%q) = %q, %v", good, id, err)
	}
	for _, id := range []string{
		"", "x", "../../x", "..", strings.ToUpper(good), "{" + good + "}", "urn:uuid:" + good,
		strings.ReplaceAll(good, "-", ""), good + "/..", "../" + good, good[:35],
	} {
		if _, err := ParseUploadID(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("ParseUploadID(%q) = %v, want ErrUploadUnknown", id, err)
		}
	}
}

func TestPutBlob(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		data := []byte("monolithic")
		d := digest.FromBytes(data)
		blobFile := v2("blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data")

		// Refused: nothing becomes visible.
		bad := []struct {
			name   string
			d      digest.Digest
			r      io.Reader
			length int64
			err    error
		}{
			{"wrong digest", digest.FromString("x"), bytes.NewReader(data), int64(len(data)), ErrDigestInvalid},
			{"short body", d, bytes.NewReader(data[:5]), int64(len(data)), ErrSizeInvalid},
			{"truncated by length", d, bytes.NewReader(data), 5, ErrDigestInvalid},
			{"body error", d, &errReader{b: data[:3], err: io.ErrUnexpectedEOF}, -1, ErrUploadInvalid},
			{"unavailable algorithm", digest.Digest("md5:" + strings.Repeat("0", 32)), bytes.NewReader(data), -1, ErrDigestInvalid},
		}
		for _, tc := range bad {
			_, err := e.s.PutBlob(e.ctx, "repo", tc.d, tc.r, tc.length)
			if !errors.Is(err, tc.err) {
				t.Fatalf("%s: PutBlob error %v, want %v", tc.name, err, tc.err)
			}
			if f := e.files(); len(f) != 0 {
				t.Fatalf("%s: files after a refused PutBlob: %v", tc.name, f)
			}
		}

		if n, err := e.s.PutBlob(e.ctx, "repo", d, bytes.NewReader(data), -1); err != nil || n != int64(len(data)) {
			t.Fatalf("PutBlob = %d, %v", n, err)
		}
		e.mustExist(blobFile)
		if n, err := e.s.StatBlob(e.ctx, "repo", d); err != nil || n != int64(len(data)) {
			t.Fatalf("StatBlob = %d, %v", n, err)
		}
		rc, err := e.s.OpenBlobAt(e.ctx, d, 3)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data[3:]) {
			t.Fatalf("OpenBlobAt(3) = %q", got)
		}

		// Known blob pushed to another repository with wrong content:
		// refused, stored copy untouched, no link.
		_, err = e.s.PutBlob(e.ctx, "other", d, strings.NewReader("MONOLITHIC"), int64(len(data)))
		wantErr(t, err, ErrDigestInvalid)
		_, err = e.s.StatBlob(e.ctx, "other", d)
		wantErr(t, err, ErrBlobUnknown)
		if !bytes.Equal(e.content(blobFile), data) {
			t.Fatal("stored blob changed")
		}
		// And with the right content: linked, stored once.
		if _, err := e.s.PutBlob(e.ctx, "other", d, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if _, err := e.newStore().StatBlob(e.ctx, "other", d); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMountBlob(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		d := e.putBlob("src", []byte("shared layer"))
		e.putBlob("elsewhere", []byte("only elsewhere"))
		onlyElsewhere := digest.FromString("only elsewhere")
		unknown := digest.FromString("never pushed")
		tests := []struct {
			name, to, from string
			d              digest.Digest
			err            error
		}{
			{"with from", "dst1", "src", d, nil},
			{"without from, known blob", "dst2", "", d, nil},
			{"from a repository without the blob", "dst3", "src", onlyElsewhere, ErrBlobUnknown},
			{"from an unknown repository", "dst4", "nosuchrepo", d, ErrBlobUnknown},
			{"with from, unknown blob", "dst5", "src", unknown, ErrBlobUnknown},
			{"without from, unknown blob", "dst6", "", unknown, ErrBlobUnknown},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				n, err := e.s.MountBlob(e.ctx, tc.to, tc.from, tc.d)
				if tc.err != nil {
					wantErr(t, err, tc.err)
					_, err := e.s.StatBlob(e.ctx, tc.to, tc.d)
					wantErr(t, err, ErrBlobUnknown)
					e.mustNotExist(v2("repositories/" + tc.to + "/_layers/sha256/" + tc.d.Encoded() + "/link"))
					return
				}
				if err != nil || n != int64(len("shared layer")) {
					t.Fatalf("MountBlob = %d, %v", n, err)
				}
				if n, err := e.newStore().StatBlob(e.ctx, tc.to, tc.d); err != nil || n != int64(len("shared layer")) {
					t.Fatalf("StatBlob after mount = %d, %v", n, err)
				}
			})
		}
	})
}

func TestDeleteBlob(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		d := e.putBlob("a", []byte("blob"))
		e.putBlob("b", []byte("blob"))
		if err := e.s.DeleteBlob(e.ctx, "a", d); err != nil {
			t.Fatal(err)
		}
		_, err := e.s.StatBlob(e.ctx, "a", d)
		wantErr(t, err, ErrBlobUnknown)
		wantErr(t, e.s.DeleteBlob(e.ctx, "a", d), ErrBlobUnknown)
		// Still linked elsewhere; the bytes stay for garbage collection.
		if _, err := e.s.StatBlob(e.ctx, "b", d); err != nil {
			t.Fatal(err)
		}
		e.mustExist(v2("blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"))
	})
}

func TestPutManifestReferences(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		cfg := e.putBlob("repo", []byte("{}"))
		layer := e.putBlob("repo", []byte("layer"))
		inOther := e.putBlob("other", []byte("layer in another repository"))
		missing := digest.FromString("missing")
		img := func(cfgD digest.Digest, layers ...any) []byte {
			return m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
				"config": desc(ocispec.MediaTypeImageConfig, cfgD, 2), "layers": layers})
		}
		okImage := img(cfg, desc(ocispec.MediaTypeImageLayer, layer, 5))
		tests := []struct {
			name string
			body []byte
			err  error
		}{
			{"all blobs present", okImage, nil},
			{"missing layer", img(cfg, desc(ocispec.MediaTypeImageLayer, missing, 5)), ErrManifestBlobUnknown},
			{"missing config", img(missing, desc(ocispec.MediaTypeImageLayer, layer, 5)), ErrManifestBlobUnknown},
			{"layer only in another repository", img(cfg, desc(ocispec.MediaTypeImageLayer, inOther, 5)), ErrManifestBlobUnknown},
			{"non-distributable layer with urls", img(cfg, map[string]any{
				"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
				"digest":    missing, "size": 7, "urls": []string{"https://example.com/l"}}), nil},
			{"subject missing", m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
				"config": desc(ocispec.MediaTypeImageConfig, cfg, 2), "layers": []any{},
				"subject": desc(MediaTypeOCIManifest, missing, 100)}), nil},
			{"index with a missing manifest", m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex,
				"manifests": []any{desc(MediaTypeOCIManifest, missing, 10)}}), ErrManifestBlobUnknown},
			{"index whose child is a blob, not a manifest", m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex,
				"manifests": []any{desc(MediaTypeOCIManifest, layer, 5)}}), nil},
			{"index of a stored manifest", m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex,
				"manifests": []any{desc(MediaTypeOCIManifest, digest.FromBytes(okImage), int64(len(okImage)))}}), nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				d := digest.FromBytes(tc.body)
				res, err := e.s.PutManifest(e.ctx, "repo", d.String(), "", tc.body, nil)
				if tc.err != nil {
					wantErr(t, err, tc.err)
					_, err := e.s.GetManifest(e.ctx, "repo", d.String())
					wantErr(t, err, ErrManifestUnknown)
					e.mustNotExist(v2("blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"))
					return
				}
				if err != nil || res.Digest != d {
					t.Fatalf("PutManifest = %+v, %v", res, err)
				}
				got, err := e.newStore().GetManifest(e.ctx, "repo", d.String())
				if err != nil || !bytes.Equal(got.Content, tc.body) {
					t.Fatalf("GetManifest = %v, %v", got, err)
				}
			})
		}
	})
}

func TestPutManifestRefs(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		body := e.image("repo", "refs")
		d := digest.FromBytes(body)
		tests := []struct {
			name, ref string
			body      []byte
			tags      []string
			err       error
		}{
			{"wrong digest", digest.FromString("x").String(), body, nil, ErrDigestInvalid},
			{"sha512 digest of other bytes", digest.SHA512.FromString("x").String(), body, nil, ErrDigestInvalid},
			{"malformed digest", "sha256:xyz", body, nil, ErrDigestInvalid},
			{"unknown algorithm", "md5:" + strings.Repeat("a", 32), body, nil, ErrDigestInvalid},
			{"malformed tag", "-tag", body, nil, ErrTagInvalid},
			{"tag too long", strings.Repeat("t", 129), body, nil, ErrTagInvalid},
			{"malformed extra tag", d.String(), body, []string{"ok", "bad/tag"}, ErrTagInvalid},
			{"invalid manifest", "v1", []byte("{"), nil, ErrManifestInvalid},
		}
		for _, tc := range tests {
			_, err := e.s.PutManifest(e.ctx, "repo", tc.ref, "", tc.body, tc.tags)
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: PutManifest error %v, want %v", tc.name, err, tc.err)
			}
		}
		if _, err := e.s.Tags(e.ctx, "repo"); !errors.Is(err, ErrNameUnknown) {
			t.Fatalf("refused manifests left a repository behind: %v", err)
		}

		res := e.putManifest("repo", d.String(), MediaTypeOCIManifest, body, "b", "a", "b")
		if !slices.Equal(res.Tags, []string{"a", "b"}) || res.Digest != d || res.Subject != nil {
			t.Fatalf("PutResult %+v", res)
		}
		res = e.putManifest("repo", "c", "", body, "a")
		if !slices.Equal(res.Tags, []string{"a", "c"}) {
			t.Fatalf("PutResult tags %v", res.Tags)
		}
		sha512 := digest.SHA512.FromBytes(body)
		if res := e.putManifest("repo", sha512.String(), "", body); res.Digest != sha512 {
			t.Fatalf("sha512 put digest %s", res.Digest)
		}
		for _, ref := range []string{"a", "b", "c", d.String(), sha512.String()} {
			got, err := e.newStore().GetManifest(e.ctx, "repo", ref)
			if err != nil || !bytes.Equal(got.Content, body) || got.MediaType != MediaTypeOCIManifest {
				t.Fatalf("GetManifest(%s) = %v, %v", ref, got, err)
			}
		}
		if tags, err := e.s.Tags(e.ctx, "repo"); err != nil || !slices.Equal(tags, []string{"a", "b", "c"}) {
			t.Fatalf("Tags = %v, %v", tags, err)
		}
		for _, ref := range []string{"nosuchtag", digest.FromString("nothing").String()} {
			_, err := e.s.GetManifest(e.ctx, "repo", ref)
			wantErr(t, err, ErrManifestUnknown)
		}
		for ref, want := range map[string]error{"sha256:xyz": ErrDigestInvalid, "-x": ErrTagInvalid, "a/b": ErrTagInvalid, "..": ErrTagInvalid} {
			_, err := e.s.GetManifest(e.ctx, "repo", ref)
			wantErr(t, err, want)
		}
		// A manifest stored in one repository is not visible from another.
		_, err := e.s.GetManifest(e.ctx, "other", d.String())
		wantErr(t, err, ErrManifestUnknown)
	})
}

func TestRetag(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		one, two := e.image("repo", "one"), e.image("repo", "two")
		e.putManifest("repo", "latest", "", one)
		e.putManifest("repo", "latest", "", two)
		got, err := e.s.GetManifest(e.ctx, "repo", "latest")
		if err != nil || !bytes.Equal(got.Content, two) {
			t.Fatalf("latest = %v, %v", got, err)
		}
		// The tag's index remembers both, as distribution's does.
		for _, b := range [][]byte{one, two} {
			e.mustExist(v2("repositories/repo/_manifests/tags/latest/index/sha256/" + digest.FromBytes(b).Encoded() + "/link"))
		}
	})
}

func TestReferrers(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		subject := e.image("repo", "subject")
		sd := digest.FromBytes(subject)
		empty := e.putBlob("repo", []byte("{}"))
		artifact := func(artifactType, cfgType string, subj digest.Digest, ann string) []byte {
			f := map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
				"config": desc(cfgType, empty, 2), "layers": []any{},
				"subject": desc(MediaTypeOCIManifest, subj, 123), "annotations": map[string]string{"n": ann}}
			if artifactType != "" {
				f["artifactType"] = artifactType
			}
			return m(f)
		}
		sig := artifact("application/vnd.example.sig", ocispec.MediaTypeEmptyJSON, sd, "sig")
		sbom := artifact("application/vnd.example.sbom", ocispec.MediaTypeEmptyJSON, sd, "sbom")
		byConfig := artifact("", "application/vnd.example.config", sd, "cfg")
		forOther := artifact("application/vnd.example.sig", ocispec.MediaTypeEmptyJSON, digest.FromString("other"), "other")
		// Referrers may arrive before their subject.
		for _, b := range [][]byte{sig, sbom} {
			res := e.putManifest("repo", digest.FromBytes(b).String(), "", b)
			if res.Subject == nil || res.Subject.Digest != sd {
				t.Fatalf("PutResult subject %v", res.Subject)
			}
		}
		e.putManifest("repo", "v1", "", subject)
		e.putManifest("repo", digest.FromBytes(byConfig).String(), "", byConfig)
		e.putManifest("repo", digest.FromBytes(forOther).String(), "", forOther)
		// The referrers index is Berth's own, beside distribution's tree.
		e.mustExist(v2("repositories/repo/_referrers/sha256/" + sd.Encoded() + "/sha256/" + digest.FromBytes(sig).Encoded() + "/link"))

		list := func(at string) map[digest.Digest]ocispec.Descriptor {
			t.Helper()
			descs, err := e.newStore().Referrers(e.ctx, "repo", sd, at)
			if err != nil {
				t.Fatal(err)
			}
			out := map[digest.Digest]ocispec.Descriptor{}
			for _, d := range descs {
				out[d.Digest] = d
			}
			if len(out) != len(descs) {
				t.Fatalf("duplicates in %v", descs)
			}
			return out
		}
		all := list("")
		if len(all) != 3 {
			t.Fatalf("referrers %v", all)
		}
		for b, at := range map[string]string{string(sig): "application/vnd.example.sig", string(sbom): "application/vnd.example.sbom", string(byConfig): "application/vnd.example.config"} {
			d := digest.FromString(b)
			got, ok := all[d]
			if !ok || got.ArtifactType != at || got.Size != int64(len(b)) || got.MediaType != MediaTypeOCIManifest || got.Annotations["n"] == "" {
				t.Errorf("referrer %s = %+v, want artifactType %s", d, got, at)
			}
		}
		if f := list("application/vnd.example.sbom"); len(f) != 1 || f[digest.FromBytes(sbom)].Digest == "" {
			t.Errorf("filtered referrers %v", f)
		}
		if f := list("application/vnd.example.none"); len(f) != 0 {
			t.Errorf("filtered referrers %v", f)
		}
		// No referrers: an empty list, not an error.
		for _, name := range []string{"repo", "norepo"} {
			descs, err := e.s.Referrers(e.ctx, name, digest.FromString("lonely"), "")
			if err != nil || descs == nil || len(descs) != 0 {
				t.Errorf("Referrers(%s, lonely) = %v, %v", name, descs, err)
			}
		}
		// Referrers are per repository.
		if descs, _ := e.s.Referrers(e.ctx, "other", sd, ""); len(descs) != 0 {
			t.Errorf("referrers leak across repositories: %v", descs)
		}
	})
}

func TestDeleteManifest(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		subject := e.image("repo", "subject")
		sd := digest.FromBytes(subject)
		e.putManifest("repo", "keep", "", subject)
		cfg := e.putBlob("repo", []byte("{}"))
		art := m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIManifest, "artifactType": "application/x.sig",
			"config": desc(ocispec.MediaTypeEmptyJSON, cfg, 2), "layers": []any{}, "subject": desc(MediaTypeOCIManifest, sd, int64(len(subject)))})
		ad := digest.FromBytes(art)
		e.putManifest("repo", "sig1", "", art, "sig2")

		// Tag delete: only the tag goes.
		if err := e.s.DeleteManifest(e.ctx, "repo", "sig2"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, e.s.DeleteManifest(e.ctx, "repo", "sig2"), ErrManifestUnknown)
		_, err := e.s.GetManifest(e.ctx, "repo", "sig2")
		wantErr(t, err, ErrManifestUnknown)
		if _, err := e.s.GetManifest(e.ctx, "repo", ad.String()); err != nil {
			t.Fatalf("manifest gone with its tag: %v", err)
		}
		if tags, _ := e.s.Tags(e.ctx, "repo"); !slices.Equal(tags, []string{"keep", "sig1"}) {
			t.Fatalf("tags %v", tags)
		}
		if r, _ := e.s.Referrers(e.ctx, "repo", sd, ""); len(r) != 1 {
			t.Fatalf("referrers %v", r)
		}

		// Manifest delete: its tags and its referrer entry go too.
		if err := e.s.DeleteManifest(e.ctx, "repo", ad.String()); err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{ad.String(), "sig1"} {
			_, err := e.newStore().GetManifest(e.ctx, "repo", ref)
			wantErr(t, err, ErrManifestUnknown)
		}
		if tags, _ := e.s.Tags(e.ctx, "repo"); !slices.Equal(tags, []string{"keep"}) {
			t.Fatalf("tags after manifest delete %v", tags)
		}
		if r, err := e.newStore().Referrers(e.ctx, "repo", sd, ""); err != nil || len(r) != 0 {
			t.Fatalf("referrers after delete %v, %v", r, err)
		}
		e.mustNotExist(v2("repositories/repo/_referrers/sha256/" + sd.Encoded() + "/sha256/" + ad.Encoded() + "/link"))
		e.mustNotExist(v2("repositories/repo/_manifests/revisions/sha256/" + ad.Encoded() + "/link"))
		wantErr(t, e.s.DeleteManifest(e.ctx, "repo", ad.String()), ErrManifestUnknown)
		if _, err := e.s.StatBlob(e.ctx, "repo", ad); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("deleted manifest still served as a blob: %v", err)
		}
		// The subject is untouched.
		if got, err := e.s.GetManifest(e.ctx, "repo", "keep"); err != nil || got.Digest != sd {
			t.Fatalf("subject: %v, %v", got, err)
		}
		for ref, want := range map[string]error{"sha256:xyz": ErrDigestInvalid, "-x": ErrTagInvalid, "nosuchtag": ErrManifestUnknown} {
			wantErr(t, e.s.DeleteManifest(e.ctx, "repo", ref), want)
		}
	})
}

func TestDeletesDisabled(t *testing.T) {
	eachDriver(t, Options{}, func(t *testing.T, e *env) {
		body := e.image("repo", "x")
		d := digest.FromBytes(body)
		e.putManifest("repo", "v1", "", body)
		layer := digest.FromString("layer of x")
		before := e.files()
		wantErr(t, e.s.DeleteBlob(e.ctx, "repo", layer), ErrUnsupported)
		wantErr(t, e.s.DeleteManifest(e.ctx, "repo", d.String()), ErrUnsupported)
		wantErr(t, e.s.DeleteManifest(e.ctx, "repo", "v1"), ErrUnsupported)
		if after := e.files(); !slices.Equal(before, after) {
			t.Fatalf("storage changed: %v -> %v", before, after)
		}
	})
}

func TestTags(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		_, err := e.s.Tags(e.ctx, "repo")
		wantErr(t, err, ErrNameUnknown)
		body := e.image("repo", "t")
		// A repository with manifests but no tags has an empty list.
		e.putManifest("repo", digest.FromBytes(body).String(), "", body)
		if tags, err := e.s.Tags(e.ctx, "repo"); err != nil || tags == nil || len(tags) != 0 {
			t.Fatalf("Tags = %#v, %v", tags, err)
		}
		want := []string{"1.0", "10", "2", "A", "B_b", "a", "latest"}
		for _, tag := range []string{"latest", "a", "2", "10", "1.0", "B_b", "A"} {
			e.putManifest("repo", tag, "", body)
		}
		if tags, err := e.s.Tags(e.ctx, "repo"); err != nil || !slices.Equal(tags, want) {
			t.Fatalf("Tags = %v, %v; want %v", tags, err, want)
		}
	})
}

func TestCatalog(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		if repos, err := e.s.Catalog(e.ctx); err != nil || len(repos) != 0 {
			t.Fatalf("empty Catalog = %v, %v", repos, err)
		}
		for _, name := range []string{"c", "a/b", "a", "a/b/c", "x.y/z-w", "a_b"} {
			e.putManifest(name, "v1", "", e.image(name, name))
		}
		e.putBlob("blobsonly", []byte("b"))
		if _, err := e.s.StartUpload(e.ctx, "uploadonly"); err != nil {
			t.Fatal(err)
		}
		want := []string{"a", "a/b", "a/b/c", "a_b", "c", "x.y/z-w"}
		if repos, err := e.newStore().Catalog(e.ctx); err != nil || !slices.Equal(repos, want) {
			t.Fatalf("Catalog = %v, %v; want %v", repos, err, want)
		}
	})
}

func TestValidateNameAndTag(t *testing.T) {
	for _, name := range []string{"a", "library/alpine", "a-b/c_d/e.f", "a__b", "a--b", "0", strings.Repeat("a", 255),
		strings.Repeat("ab/", 84) + "abc"} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "A", "Library/alpine", "..", ".", "a/..", "../a", "a/../b", "a//b", "/a", "a/", "_x", "a/_x",
		"a_", "-a", "a-", "a.", ".a", "a___b", "a..b", "a b", "a\x00b", "a%2fb", "a:b", "a@b",
		strings.Repeat("a", 256), strings.Repeat("a", 300), "é"} {
		if err := ValidateName(name); !errors.Is(err, ErrNameInvalid) {
			t.Errorf("ValidateName(%q) = %v, want ErrNameInvalid", truncate(name), err)
		}
	}
	for _, tag := range []string{"latest", "v1.0", "1", "_x", "A-b_c.d", strings.Repeat("t", 128)} {
		if err := ValidateTag(tag); err != nil {
			t.Errorf("ValidateTag(%q) = %v", tag, err)
		}
	}
	for _, tag := range []string{"", ".", "..", "-x", ".x", "a/b", "a:b", "a b", "a@b", strings.Repeat("t", 129), "ü", "a\nb"} {
		if err := ValidateTag(tag); !errors.Is(err, ErrTagInvalid) {
			t.Errorf("ValidateTag(%q) = %v, want ErrTagInvalid", tag, err)
		}
	}
}

// TestLayout checks the exact tree written, so that registry:2 can serve a
// Berth data directory and the reverse.
func TestLayout(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		cfgBytes := []byte(`{"os":"linux"}`)
		layerBytes := []byte("layer bytes")
		cfg := e.putBlob("library/app", cfgBytes)
		layer := e.uploadBlob(e.s, "library/app", layerBytes, 4)
		body := m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
			"config": desc(ocispec.MediaTypeImageConfig, cfg, int64(len(cfgBytes))),
			"layers": []any{desc(ocispec.MediaTypeImageLayer, layer, int64(len(layerBytes)))}})
		md := digest.FromBytes(body)
		e.putManifest("library/app", "v1", MediaTypeOCIManifest, body)

		blob := func(d digest.Digest) string {
			return "blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
		}
		repo := "repositories/library/app/"
		want := []string{
			blob(cfg), blob(layer), blob(md),
			repo + "_layers/sha256/" + cfg.Encoded() + "/link",
			repo + "_layers/sha256/" + layer.Encoded() + "/link",
			repo + "_manifests/revisions/sha256/" + md.Encoded() + "/link",
			repo + "_manifests/tags/v1/current/link",
			repo + "_manifests/tags/v1/index/sha256/" + md.Encoded() + "/link",
		}
		slices.Sort(want)
		if got := e.files(); !slices.Equal(got, want) {
			t.Fatalf("files:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		contents := map[string]string{
			blob(cfg):   string(cfgBytes),
			blob(layer): string(layerBytes),
			blob(md):    string(body),
			repo + "_layers/sha256/" + cfg.Encoded() + "/link":                 cfg.String(),
			repo + "_layers/sha256/" + layer.Encoded() + "/link":               layer.String(),
			repo + "_manifests/revisions/sha256/" + md.Encoded() + "/link":     md.String(),
			repo + "_manifests/tags/v1/current/link":                           md.String(),
			repo + "_manifests/tags/v1/index/sha256/" + md.Encoded() + "/link": md.String(),
		}
		for p, c := range contents {
			if got := string(e.content(v2(p))); got != c {
				t.Errorf("%s holds %q, want %q", p, got, c)
			}
		}
		if e.dir != "" {
			// On disk: the same tree below <root>/docker/registry/v2 and
			// nothing else, no temporary files left behind.
			if got := e.osFiles(); !slices.Equal(got, want) {
				t.Errorf("files on disk:\n  %s", strings.Join(got, "\n  "))
			}
		}

		// While an upload is in progress: data and startedat, as registry:2.
		up, _ := e.s.StartUpload(e.ctx, "library/app")
		if _, err := e.s.AppendUpload(e.ctx, "library/app", up.ID, 0, strings.NewReader("part"), 4); err != nil {
			t.Fatal(err)
		}
		e.mustExist(v2(repo + "_uploads/" + up.ID + "/data"))
		started := string(e.content(v2(repo + "_uploads/" + up.ID + "/startedat")))
		if !strings.HasSuffix(started, "Z") || len(started) != len("2006-01-02T15:04:05Z") {
			t.Errorf("startedat %q is not RFC 3339 UTC", started)
		}
	})
}

// TestReadsRegistry2Tree serves a tree written the way registry:2 writes it
// (links with a trailing newline would be tolerated too).
func TestReadsRegistry2Tree(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		cfgBytes := []byte(`{"os":"linux"}`)
		cfg := digest.FromBytes(cfgBytes)
		body := m(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeDockerManifest,
			"config": desc("application/vnd.docker.container.image.v1+json", cfg, int64(len(cfgBytes))), "layers": []any{}})
		md := digest.FromBytes(body)
		put := func(p string, b []byte) {
			if err := storage.PutContent(e.ctx, e.d, v2(p), b); err != nil {
				t.Fatal(err)
			}
		}
		put("blobs/sha256/"+cfg.Encoded()[:2]+"/"+cfg.Encoded()+"/data", cfgBytes)
		put("blobs/sha256/"+md.Encoded()[:2]+"/"+md.Encoded()+"/data", body)
		put("repositories/old/app/_layers/sha256/"+cfg.Encoded()+"/link", []byte(cfg.String()))
		put("repositories/old/app/_manifests/revisions/sha256/"+md.Encoded()+"/link", []byte(md.String()))
		put("repositories/old/app/_manifests/tags/prod/current/link", []byte(md.String()))
		put("repositories/old/app/_manifests/tags/prod/index/sha256/"+md.Encoded()+"/link", []byte(md.String()))

		got, err := e.s.GetManifest(e.ctx, "old/app", "prod")
		if err != nil || got.Digest != md || got.MediaType != MediaTypeDockerManifest {
			t.Fatalf("GetManifest = %v, %v", got, err)
		}
		if n, err := e.s.StatBlob(e.ctx, "old/app", cfg); err != nil || n != int64(len(cfgBytes)) {
			t.Fatalf("StatBlob = %d, %v", n, err)
		}
		if repos, _ := e.s.Catalog(e.ctx); !slices.Equal(repos, []string{"old/app"}) {
			t.Fatalf("Catalog = %v", repos)
		}
	})
}

// TestConcurrentSameBlob pushes one blob through two upload sessions at once:
// both succeed and the blob is stored exactly once.
func TestConcurrentSameBlob(t *testing.T) {
	dir := t.TempDir()
	d, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const rounds = 20
	for round := range rounds {
		// A new blob each round, so that both sessions race to store it.
		data := bytes.Repeat([]byte(fmt.Sprintf("concurrent %d ", round)), 50000)
		dg := digest.FromBytes(data)
		s := New(d, allOpts)
		repos := []string{fmt.Sprintf("r%d/a", round), fmt.Sprintf("r%d/b", round)}
		var ready, wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, len(repos))
		for i, repo := range repos {
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A separate Store per pusher, as two replicas would be.
				st := s
				if i == 1 {
					st = New(d, allOpts)
				}
				up, err := st.StartUpload(t.Context(), repo)
				if err == nil {
					_, err = st.AppendUpload(t.Context(), repo, up.ID, 0, bytes.NewReader(data[:len(data)/2]), int64(len(data)/2))
				}
				ready.Done()
				<-start
				if err == nil {
					_, err = st.CompleteUpload(t.Context(), repo, up.ID, dg, int64(len(data)/2), bytes.NewReader(data[len(data)/2:]), -1)
				}
				errs[i] = err
			}()
		}
		ready.Wait()
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: push to %s: %v", round, repos[i], err)
			}
			if n, err := New(d, allOpts).StatBlob(t.Context(), repos[i], dg); err != nil || n != int64(len(data)) {
				t.Fatalf("round %d: StatBlob(%s) = %d, %v", round, repos[i], n, err)
			}
		}
		blobDir := filepath.Join(dir, "docker/registry/v2/blobs/sha256", dg.Encoded()[:2], dg.Encoded())
		if names := readDirNames(t, blobDir); !slices.Equal(names, []string{"data"}) {
			t.Fatalf("round %d: blob directory holds %v", round, names)
		}
		got, err := storage.GetContent(t.Context(), d, v2("blobs/sha256/"+dg.Encoded()[:2]+"/"+dg.Encoded()+"/data"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round %d: stored blob differs (%v)", round, err)
		}
	}
}

// TestConcurrentPutBlob does the same with monolithic pushes.
func TestConcurrentPutBlob(t *testing.T) {
	eachDriver(t, allOpts, func(t *testing.T, e *env) {
		data := bytes.Repeat([]byte("monolithic concurrent "), 20000)
		dg := digest.FromBytes(data)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.newStore().PutBlob(e.ctx, fmt.Sprintf("r%d", i), dg, bytes.NewReader(data), int64(len(data)))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("push %d: %v", i, err)
			}
		}
		var blobs []string
		for _, f := range e.files() {
			if strings.HasPrefix(f, "blobs/") {
				blobs = append(blobs, f)
			}
		}
		if len(blobs) != 1 {
			t.Fatalf("blob files %v", blobs)
		}
		if e.dir != "" {
			if names := readDirNames(t, filepath.Join(e.dir, "docker/registry/v2/blobs/sha256", dg.Encoded()[:2], dg.Encoded())); !slices.Equal(names, []string{"data"}) {
				t.Fatalf("blob directory holds %v", names)
			}
		}
	})
}
