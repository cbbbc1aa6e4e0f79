package image

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/snapshot"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Docker schema2 media types of the manifests and layers Create writes (the OCI ones are in
// ocispec).
const (
	MediaTypeDockerManifest  = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// LayerGzipLevel is the fixed gzip level of the layers Create compresses: with no name and
// no modification time in the gzip header, the same layer tar always gives the same blob.
const LayerGzipLevel = gzip.DefaultCompression

// CreateOptions describe a new image made locally (commit, import, load).
type CreateOptions struct {
	// Base is the image the new layers go on top of; nil for none (import).
	Base *Image
	// Config is the new image's config. Create sets Config.RootFS (type "layers", the
	// Base's DiffIDs followed by the new layers'); the caller sets everything else, History
	// included (one entry per new layer, plus empty_layer entries if it wants).
	Config ocispec.Image
	// Layers are the new layers, bottom first, each an uncompressed tar stream with OCI
	// whiteouts (.wh.NAME, .wh..wh..opq).
	Layers []io.Reader
	// Ref, when not "", is a reference to point at the new image ("repo:tag", normalised
	// like pull's: "foo" → docker.io/library/foo:latest).
	Ref string
	// AllowDevices lets the layers create device nodes (as Pull's option).
	AllowDevices bool
}

// layerInput is one new layer given to create: either an uncompressed tar that create
// compresses, or a blob (compressed or not) kept byte for byte, as load does to keep the
// digests of what it loads.
type layerInput struct {
	tar  io.Reader          // uncompressed tar (or gzip/zstd, detected), compressed by create
	blob io.Reader          // a blob kept as it is, described by desc
	desc ocispec.Descriptor // blob's descriptor (media type, digest, size)
	// diffID, when set, is the DiffID the layer must have.
	diffID digest.Digest
}

// createSpec is the full form of a Create (Create, Load, Import build one).
type createSpec struct {
	base   *Image
	config ocispec.Image
	// rawConfig, when set, is the config byte for byte (its rootfs is checked, not set).
	rawConfig []byte
	// rawManifest, when set, is the manifest byte for byte (its config and layers are
	// checked against what create made).
	rawManifest []byte
	// manifestType forces the manifest media type ("" decides from base).
	manifestType string
	layers       []layerInput
	refs         []string
	allowDevices bool
}

// Create compresses each layer (gzip, reproducible: no name/mtime in the header, fixed level
// LayerGzipLevel), computing its digest, size and DiffID in one pass, KEEPS the compressed
// blob in the content store (unlike pulled layers: a push or save uploads it from there),
// unpacks it into a snapshot keyed by its chain ID (skipped when the chain ID exists),
// writes the config and a manifest (Docker schema2 media types when Base's manifest is
// Docker's or Base is nil, OCI when Base's is OCI) into content, and records the image (its
// Layers keep the Base's descriptors and Sources). On error nothing half-made stays: the
// snapshots and blobs it added that no image uses are removed again.
//
// The layers are compressed in parallel (up to 4 at a time) and read to their end unless
// Create fails; Create does not close them (a caller feeding one through an io.Pipe closes
// the pipe's reader with CloseWithError when Create returns).
func (s *Store) Create(ctx context.Context, o CreateOptions) (*Image, error) {
	spec := &createSpec{base: o.Base, config: o.Config, allowDevices: o.AllowDevices}
	for _, l := range o.Layers {
		spec.layers = append(spec.layers, layerInput{tar: l})
	}
	if o.Ref != "" {
		spec.refs = []string{o.Ref}
	}
	return s.create(ctx, spec)
}

// staged is a layer compressed (or copied) into a temporary file.
type staged struct {
	tmp    string
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// staleTmp is the age after which a staged file or load directory in <root>/tmp is taken
// for the leftover of a killed process.
const staleTmp = 24 * time.Hour

// cleanTmp removes stale leftovers of killed creates and loads (garbage collection).
func (s *Store) cleanTmp() {
	dir := filepath.Join(s.root, "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTmp {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// tmpDir is where blobs are staged before they move into content.
func (s *Store) tmpDir() (string, error) {
	d := filepath.Join(s.root, "tmp")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("image store: %w", err)
	}
	return d, nil
}

func (s *Store) create(ctx context.Context, spec *createSpec) (img *Image, err error) {
	var parsedRefs []client.Reference
	for _, r := range spec.refs {
		ref, perr := client.ParseReference(r)
		if perr != nil {
			return nil, perr
		}
		if ref.Digest != "" {
			return nil, fmt.Errorf("refusing to create a tag with a digest reference: %s", r)
		}
		parsedRefs = append(parsedRefs, ref)
	}
	manifestType := spec.manifestType
	if manifestType == "" {
		manifestType = MediaTypeDockerManifest
		if spec.base != nil && spec.base.Manifest.MediaType == ocispec.MediaTypeImageManifest {
			manifestType = ocispec.MediaTypeImageManifest
		}
	}
	layerType, configType := MediaTypeDockerLayerGzip, MediaTypeDockerConfig
	if manifestType == ocispec.MediaTypeImageManifest {
		layerType, configType = ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig
	}
	tmp, err := s.tmpDir()
	if err != nil {
		return nil, err
	}

	// 1. Stage every layer: compress (or copy) into a temporary file, with its digests.
	st := make([]staged, len(spec.layers))
	defer func() {
		for _, x := range st {
			if x.tmp != "" {
				os.Remove(x.tmp)
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, min(runtime.NumCPU(), 4)))
	for i, in := range spec.layers {
		g.Go(func() error {
			x, err := stageLayer(gctx, tmp, in, layerType)
			if err != nil {
				return fmt.Errorf("layer %d: %w", i+1, err)
			}
			st[i] = x
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	var baseLayers []Layer
	var diffIDs []digest.Digest
	if spec.base != nil {
		baseLayers = slices.Clone(spec.base.Layers)
		diffIDs = spec.base.DiffIDs()
	}
	for _, x := range st {
		diffIDs = append(diffIDs, x.diffID)
	}
	chainIDs := snapshot.ChainIDs(diffIDs)

	// 2. The config and manifest, so that the lease can name all the content.
	cfgRaw := spec.rawConfig
	var cfg ocispec.Image
	if cfgRaw == nil {
		cfg = spec.config
		cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}
		if cfgRaw, err = json.Marshal(cfg); err != nil {
			return nil, err
		}
	} else {
		if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
			return nil, fmt.Errorf("%w: config is not valid JSON: %v", ErrNotImage, err)
		}
		if cfg.RootFS.Type != "layers" || !slices.Equal(cfg.RootFS.DiffIDs, diffIDs) {
			return nil, fmt.Errorf("%w: the config's rootfs.diff_ids %v do not match the layers' DiffIDs %v", ErrDiffIDMismatch, cfg.RootFS.DiffIDs, diffIDs)
		}
	}
	cfgDesc := ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	layers := baseLayers
	for i, x := range st {
		n := len(baseLayers) + i
		layers = append(layers, Layer{Descriptor: x.desc, DiffID: x.diffID, ChainID: chainIDs[n], UnpackedSize: -1})
	}
	manRaw := spec.rawManifest
	var manDesc ocispec.Descriptor
	if manRaw == nil {
		m := ocispec.Manifest{MediaType: manifestType, Config: cfgDesc}
		m.SchemaVersion = 2
		for _, l := range layers {
			m.Layers = append(m.Layers, l.Descriptor)
		}
		if manRaw, err = json.MarshalIndent(m, "", "   "); err != nil {
			return nil, err
		}
		manDesc = ocispec.Descriptor{MediaType: manifestType, Digest: digest.FromBytes(manRaw), Size: int64(len(manRaw))}
	} else {
		var m ocispec.Manifest
		if err := json.Unmarshal(manRaw, &m); err != nil {
			return nil, fmt.Errorf("%w: manifest is not valid JSON: %v", ErrNotImage, err)
		}
		if m.Config.Digest != cfgDesc.Digest || len(m.Layers) != len(layers) {
			return nil, fmt.Errorf("%w: the manifest does not describe the config and layers given", ErrNotImage)
		}
		for i, l := range m.Layers {
			if l.Digest != layers[i].Digest || l.Size != layers[i].Size {
				return nil, fmt.Errorf("%w: manifest layer %d is %s, the blob is %s", client.ErrDigestMismatch, i+1, l.Digest, layers[i].Digest)
			}
		}
		cfgDesc.MediaType = m.Config.MediaType
		mt := m.MediaType
		if mt == "" {
			mt = manifestType
		}
		manDesc = ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(manRaw), Size: int64(len(manRaw))}
	}

	content := []digest.Digest{cfgDesc.Digest, manDesc.Digest}
	for _, x := range st {
		content = append(content, x.desc.Digest)
	}
	l, err := s.newLease(chainIDs, content)
	if err != nil {
		return nil, err
	}
	defer l.release()

	// From here on, what this call adds is removed again on error.
	var addedContent, addedChains []digest.Digest
	defer func() {
		if err != nil {
			l.release()
			s.discard(addedChains, addedContent)
		}
	}()

	// 3. Blobs into content, layers into snapshots.
	for i := range st {
		added, err := s.moveContent(st[i].desc.Digest, st[i].tmp)
		if err != nil {
			return nil, err
		}
		st[i].tmp = ""
		if added {
			addedContent = append(addedContent, st[i].desc.Digest)
		}
	}
	for i := range st {
		n := len(baseLayers) + i
		size, made, err := s.unpackBlob(ctx, layers[n], spec.allowDevices)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", layers[n].Digest, err)
		}
		if made {
			addedChains = append(addedChains, layers[n].ChainID)
		}
		layers[n].UnpackedSize = size
	}
	for _, c := range []struct {
		d digest.Digest
		b []byte
	}{{cfgDesc.Digest, cfgRaw}, {manDesc.Digest, manRaw}} {
		if _, err := s.Content(c.d); err != nil {
			addedContent = append(addedContent, c.d)
		}
		if err := s.putContent(c.d, c.b); err != nil {
			return nil, err
		}
	}

	// 4. The record and references.
	img = &Image{ID: cfgDesc.Digest, Manifest: manDesc, Config: cfgDesc, Layers: layers,
		Platform: ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}}
	if cfg.Created != nil {
		img.Created = cfg.Created.UTC()
	}
	err = s.withState(true, func(stt *state) error {
		for i := range img.Layers {
			if img.Layers[i].UnpackedSize >= 0 {
				continue
			}
			img.Layers[i].UnpackedSize = knownSize(stt, img.Layers[i].ChainID)
			if img.Layers[i].UnpackedSize < 0 {
				path, err := s.snaps.Path(img.Layers[i].ChainID)
				if err != nil {
					return fmt.Errorf("layer %s: snapshot %s: %w", img.Layers[i].Digest, img.Layers[i].ChainID, err)
				}
				if img.Layers[i].UnpackedSize, err = contentSize(path); err != nil {
					return err
				}
			}
		}
		for _, ly := range img.Layers {
			if !s.snaps.Exists(ly.ChainID) {
				return fmt.Errorf("layer %s: snapshot %s vanished", ly.Digest, ly.ChainID)
			}
		}
		for _, ly := range img.Layers {
			img.Size += ly.UnpackedSize
		}
		if old := stt.images[img.ID]; old != nil {
			mergeSources(img, old)
			if old.Index != nil && old.Manifest.Digest == img.Manifest.Digest {
				img.Index = old.Index
			}
		}
		changed := false
		for _, r := range parsedRefs {
			changed = stt.setRef(r, r.String(), img.ID) || changed
		}
		img.LastTagTime = time.Now().UTC()
		if err := s.writeRecord(img); err != nil {
			return fmt.Errorf("writing image record: %w", err)
		}
		if changed {
			if err := s.writeRefs(stt); err != nil {
				return fmt.Errorf("writing references: %w", err)
			}
		}
		img.RepoTags, img.RepoDigests = nil, nil
		for _, r := range stt.refsOf(img.ID) {
			if strings.Contains(r, "@") {
				img.RepoDigests = append(img.RepoDigests, r)
			} else {
				img.RepoTags = append(img.RepoTags, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return img, nil
}

// mergeSources keeps the Sources old knew for img's layers.
func mergeSources(img, old *Image) {
	for i := range img.Layers {
		for _, ol := range old.Layers {
			if ol.Digest != img.Layers[i].Digest {
				continue
			}
			for _, src := range ol.Sources {
				if !slices.Contains(img.Layers[i].Sources, src) {
					img.Layers[i].Sources = append(img.Layers[i].Sources, src)
				}
			}
		}
	}
}

// knownSize is the unpacked size another record knows for chain, or -1.
func knownSize(st *state, chain digest.Digest) int64 {
	for _, other := range st.images {
		for _, ol := range other.Layers {
			if ol.ChainID == chain && ol.UnpackedSize >= 0 {
				return ol.UnpackedSize
			}
		}
	}
	return -1
}

// countWriter counts bytes.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// stageLayer writes one layer's blob into a temporary file under dir.
func stageLayer(ctx context.Context, dir string, in layerInput, layerType string) (x staged, err error) {
	f, err := os.CreateTemp(dir, "layer-*")
	if err != nil {
		return x, fmt.Errorf("image store: %w", err)
	}
	x.tmp = f.Name()
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(x.tmp)
			x.tmp = ""
		}
	}()
	blobHash, cw := sha256.New(), &countWriter{}
	out := io.MultiWriter(f, blobHash, cw)
	if in.blob != nil {
		if _, err := io.Copy(out, ctxReader{ctx, in.blob}); err != nil {
			return x, err
		}
		got := digest.NewDigest(digest.SHA256, blobHash)
		if in.desc.Digest != "" && got != in.desc.Digest {
			return x, fmt.Errorf("%w: the blob has digest %s, %s expected", client.ErrDigestMismatch, got, in.desc.Digest)
		}
		if in.desc.Size >= 0 && in.desc.Digest != "" && cw.n != in.desc.Size {
			return x, fmt.Errorf("%w: the blob is %d bytes, %d expected", client.ErrSizeMismatch, cw.n, in.desc.Size)
		}
		x.desc = ocispec.Descriptor{MediaType: in.desc.MediaType, Digest: got, Size: cw.n}
		// The DiffID: the blob decompressed (a second, local read).
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return x, err
		}
		dec, err := snapshot.Decompress(f, in.desc.MediaType)
		if err != nil {
			return x, err
		}
		h := sha256.New()
		_, err = io.Copy(h, ctxReader{ctx, dec})
		dec.Close()
		if err != nil {
			return x, fmt.Errorf("decompressing: %w", err)
		}
		x.diffID = digest.NewDigest(digest.SHA256, h)
	} else {
		// Decompress also passes an uncompressed tar through (and undoes a gzip or zstd
		// one: import takes either).
		dec, err := snapshot.Decompress(ctxReader{ctx, in.tar}, snapshot.MediaTypeDockerLayer)
		if err != nil {
			return x, err
		}
		defer dec.Close()
		zw, err := gzip.NewWriterLevel(out, LayerGzipLevel)
		if err != nil {
			return x, err
		}
		diff := sha256.New()
		if _, err := io.Copy(zw, io.TeeReader(dec, diff)); err != nil {
			return x, err
		}
		if err := zw.Close(); err != nil {
			return x, err
		}
		x.diffID = digest.NewDigest(digest.SHA256, diff)
		x.desc = ocispec.Descriptor{MediaType: layerType, Digest: digest.NewDigest(digest.SHA256, blobHash), Size: cw.n}
	}
	if in.diffID != "" && in.diffID != x.diffID {
		return x, fmt.Errorf("%w: the layer has DiffID %s, the config says %s", ErrDiffIDMismatch, x.diffID, in.diffID)
	}
	return x, nil
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// moveContent renames the staged file tmp into content as d; added is false when d was
// already there (tmp is then removed).
func (s *Store) moveContent(d digest.Digest, tmp string) (added bool, err error) {
	p, err := s.contentPath(d)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(p); err == nil {
		os.Remove(tmp)
		return false, nil
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("image store: %w", err)
	}
	return true, nil
}

// HasBlob reports whether the compressed blob d (a layer of a created, loaded or imported
// image) is kept in the content store.
func (s *Store) HasBlob(d digest.Digest) bool {
	p, err := s.contentPath(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// OpenBlob opens a blob of the content store. The caller verifies it (client.NewVerifyingReader)
// when it matters.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	p, err := s.contentPath(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", d, fs.ErrNotExist)
		}
		return nil, err
	}
	return f, nil
}

// unpackBlob makes the snapshot of layer l from its blob in content; made is false when
// the snapshot existed already. size is -1 when it existed.
func (s *Store) unpackBlob(ctx context.Context, l Layer, allowDevices bool) (size int64, made bool, err error) {
	if s.snaps.Exists(l.ChainID) {
		return -1, false, nil
	}
	dir, commit, abort, err := s.snaps.Prepare(ctx, l.ChainID)
	if errors.Is(err, snapshot.ErrExists) {
		return -1, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer abort()
	f, err := s.OpenBlob(l.Digest)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	dec, err := snapshot.Decompress(f, l.MediaType)
	if err != nil {
		return 0, false, err
	}
	_, stats, err := snapshot.ApplyLayer(ctx, dir, dec, snapshot.ApplyOptions{
		AllowDevices:      allowDevices,
		IgnoreChownErrors: os.Geteuid() != 0,
		ExpectDiffID:      l.DiffID,
	})
	dec.Close()
	if err != nil {
		return 0, false, err
	}
	if err := commit(); err != nil {
		if errors.Is(err, snapshot.ErrExists) {
			return -1, false, nil
		}
		return 0, false, err
	}
	return stats.Bytes, true, nil
}

// usage is what the image records and live leases use.
type usage struct {
	chains  map[digest.Digest]bool
	content map[digest.Digest]bool
}

// used computes what is in use. Call under the exclusive store lock.
func (s *Store) used(st *state) (usage, error) {
	u := usage{chains: map[digest.Digest]bool{}, content: map[digest.Digest]bool{}}
	for _, img := range st.images {
		for _, l := range img.Layers {
			u.chains[l.ChainID] = true
			u.content[l.Digest] = true // a kept compressed blob
		}
		u.content[img.Config.Digest] = true
		u.content[img.Manifest.Digest] = true
		if img.Index != nil {
			u.content[img.Index.Digest] = true
		}
	}
	leases, err := s.liveLeases()
	if err != nil {
		return u, err
	}
	for _, l := range leases {
		for _, c := range l.ChainIDs {
			u.chains[c] = true
		}
		for _, c := range l.Content {
			u.content[c] = true
		}
	}
	return u, nil
}

// discard removes the snapshots and content a failed create added, unless something else
// uses them by now. Best effort: what it cannot remove, Prune frees later.
func (s *Store) discard(chains, content []digest.Digest) {
	if len(chains) == 0 && len(content) == 0 {
		return
	}
	_ = s.withState(true, func(st *state) error {
		u, err := s.used(st)
		if err != nil {
			return err
		}
		for i := len(chains) - 1; i >= 0; i-- {
			if !u.chains[chains[i]] {
				s.snaps.Remove(chains[i])
			}
		}
		for _, d := range content {
			if !u.content[d] {
				if p, err := s.contentPath(d); err == nil {
					os.Remove(p)
				}
			}
		}
		return nil
	})
}
