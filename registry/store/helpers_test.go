package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/storage"
	"github.com/berth-registry/berth/storage/filesystem"
	"github.com/berth-registry/berth/storage/memory"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// env is one store over one driver, for tests that must hold on every driver.
type env struct {
	t    *testing.T
	ctx  context.Context
	d    storage.Driver
	dir  string // root directory of the filesystem driver, "" for memory
	s    *Store
	opts Options
}

// newStore returns another Store over the same driver: a second replica, or
// this process after a restart (nothing cached in memory).
func (e *env) newStore() *Store { return New(e.d, e.opts) }

// eachDriver runs fn as a sub-test on storage/memory and on storage/filesystem.
func eachDriver(t *testing.T, opts Options, fn func(t *testing.T, e *env)) {
	t.Helper()
	drivers := []struct {
		name string
		new  func(t *testing.T) (storage.Driver, string)
	}{
		{"memory", func(t *testing.T) (storage.Driver, string) { return memory.New(), "" }},
		{"filesystem", func(t *testing.T) (storage.Driver, string) {
			dir := t.TempDir()
			d, err := filesystem.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			return d, dir
		}},
	}
	for _, dr := range drivers {
		t.Run(dr.name, func(t *testing.T) {
			d, dir := dr.new(t)
			e := &env{t: t, ctx: t.Context(), d: d, dir: dir, opts: opts}
			e.s = New(d, opts)
			fn(t, e)
		})
	}
}

// v2 prefixes a path below the registry's storage root.
func v2(p string) string { return "/docker/registry/v2/" + strings.TrimPrefix(p, "/") }

// exists reports whether a file (not a directory) is stored at the storage path p.
func (e *env) exists(p string) bool {
	e.t.Helper()
	fi, err := e.d.Stat(e.ctx, p)
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatalf("stat %s: %v", p, err)
	}
	return !fi.IsDir
}

func (e *env) mustExist(p string) {
	e.t.Helper()
	if !e.exists(p) {
		e.t.Errorf("%s does not exist", p)
	}
}

func (e *env) mustNotExist(p string) {
	e.t.Helper()
	if e.exists(p) {
		e.t.Errorf("%s exists", p)
	}
}

// content returns the file at storage path p.
func (e *env) content(p string) []byte {
	e.t.Helper()
	b, err := storage.GetContent(e.ctx, e.d, p)
	if err != nil {
		e.t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// files lists every file below the storage root, as paths relative to
// /docker/registry/v2, sorted.
func (e *env) files() []string {
	e.t.Helper()
	var out []string
	err := storage.Walk(e.ctx, e.d, "/", func(fi storage.FileInfo) error {
		out = append(out, strings.TrimPrefix(fi.Path, "/docker/registry/v2/"))
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		e.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// osFiles lists every regular file below the filesystem driver's root on
// disk (temporary files included), relative to docker/registry/v2.
func (e *env) osFiles() []string {
	e.t.Helper()
	var out []string
	base := filepath.Join(e.dir, "docker", "registry", "v2")
	err := filepath.WalkDir(e.dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() {
			rel, _ := filepath.Rel(base, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// putBlob stores b in repository name in one go and returns its digest.
func (e *env) putBlob(name string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	n, err := e.s.PutBlob(e.ctx, name, d, bytes.NewReader(b), int64(len(b)))
	if err != nil || n != int64(len(b)) {
		e.t.Fatalf("PutBlob(%s, %s) = %d, %v", name, d, n, err)
	}
	return d
}

// uploadBlob stores b in repository name through an upload session, in
// chunks of chunk bytes, the last one sent with CompleteUpload.
func (e *env) uploadBlob(s *Store, name string, b []byte, chunk int) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	up, err := s.StartUpload(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	off := 0
	for len(b)-off > chunk {
		n, err := s.AppendUpload(e.ctx, name, up.ID, int64(off), bytes.NewReader(b[off:off+chunk]), int64(chunk))
		if err != nil || n != int64(off+chunk) {
			e.t.Fatalf("AppendUpload at %d = %d, %v", off, n, err)
		}
		off += chunk
	}
	n, err := s.CompleteUpload(e.ctx, name, up.ID, d, int64(off), bytes.NewReader(b[off:]), int64(len(b)-off))
	if err != nil || n != int64(len(b)) {
		e.t.Fatalf("CompleteUpload = %d, %v", n, err)
	}
	return d
}

// putManifest stores a manifest under ref and returns the result.
func (e *env) putManifest(name, ref, contentType string, body []byte, tags ...string) *PutResult {
	e.t.Helper()
	res, err := e.s.PutManifest(e.ctx, name, ref, contentType, body, tags)
	if err != nil {
		e.t.Fatalf("PutManifest(%s, %s): %v", name, ref, err)
	}
	return res
}

// image pushes a config and one layer to repository name and returns an OCI
// image manifest referencing them (not yet stored).
func (e *env) image(name, seed string) []byte {
	e.t.Helper()
	cfg := e.putBlob(name, []byte(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`))
	layer := e.putBlob(name, []byte("layer of "+seed))
	return manifestJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIManifest,
		"config":        desc(ocispec.MediaTypeImageConfig, cfg, int64(len(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`))),
		"layers":        []any{desc(ocispec.MediaTypeImageLayerGzip, layer, int64(len("layer of "+seed)))},
	})
}

// desc is a descriptor as a JSON object.
func desc(mediaType string, d digest.Digest, size int64) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": d.String(), "size": size}
}

func manifestJSON(v map[string]any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// wantErr fails unless err wraps want.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

// sessionCount is how many upload sessions the store keeps in memory.
func (s *Store) sessionCount() int {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return len(s.sessions)
}

// readDirNames lists a directory on disk.
func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}
