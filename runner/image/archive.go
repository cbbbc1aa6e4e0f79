package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/snapshot"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Annotations of the OCI image layout index that name an image (as containerd and Docker
// 25+ write them).
const (
	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = ocispec.AnnotationRefName
)

// MaxArchiveJSON bounds the JSON files (manifests, configs, index) Load reads into memory.
const MaxArchiveJSON = MaxConfigSize

// ErrBadArchive: a tar given to Load is not an image archive or is unsafe.
var ErrBadArchive = errors.New("invalid image archive")

// SaveOptions tune Save.
type SaveOptions struct {
	// Client, Insecure and Credentials reach the registries pulled layers are fetched
	// again from, as for Push.
	Client      *client.Client
	Insecure    []string
	Credentials client.CredentialStore
}

// dockerManifestEntry is one entry of a docker-archive manifest.json.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// saveItem is one image to save with the tags it is saved under.
type saveItem struct {
	img  *Image
	tags []client.Reference
}

// Save writes the images refs name (anything Lookup takes; a repository name without tag
// takes every tag of the repository, as docker save does) to w as one tar that is both a
// docker-archive (manifest.json, repositories) and an OCI image layout (oci-layout,
// index.json, blobs/sha256/…), like `docker save` of Docker 25+: `docker load` of any
// version and OCI tools read it.
//
// Every blob is stored once under blobs/sha256/<hex>, and the layers are the compressed
// blobs the image's manifest lists, so that the manifest itself is stored byte for byte
// and the manifest digest, the config digest (image ID) and the DiffIDs all stay what they
// were: docker load decompresses layers of a docker-archive. Layer tars regenerated from
// an unpacked snapshot would in general not match the DiffID (tar header details such as
// entry order, user and group names, PAX records and time precision are lost by
// unpacking), so they are not used. Compressed blobs kept in the content store (created,
// loaded and imported images) are copied from there; those of pulled layers are fetched
// again from the registries they were pulled from, as Push does, and verified.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, opts SaveOptions) error {
	items, err := s.saveItems(refs)
	if err != nil {
		return err
	}
	c := s.registryClient(opts.Client, opts.Credentials, opts.Insecure)
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0).UTC()
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("%s: %w: %d bytes, %d expected", name, client.ErrSizeMismatch, n, size)
		}
		return nil
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	written := map[digest.Digest]bool{}
	blob := func(d digest.Digest, b []byte) error {
		if written[d] {
			return nil
		}
		written[d] = true
		return file(blobName(d), int64(len(b)), bytes.NewReader(b))
	}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	index.SchemaVersion = 2
	var manifests []dockerManifestEntry
	repositories := map[string]map[string]string{}
	for _, it := range items {
		img := it.img
		cfgRaw, err := s.Content(img.Config.Digest)
		if err != nil {
			return fmt.Errorf("image %s: config: %w", img.ShortID(), err)
		}
		manRaw, err := s.Content(img.Manifest.Digest)
		if err != nil {
			return fmt.Errorf("image %s: manifest: %w", img.ShortID(), err)
		}
		if err := blob(img.Config.Digest, cfgRaw); err != nil {
			return err
		}
		entry := dockerManifestEntry{Config: blobName(img.Config.Digest), RepoTags: []string{}}
		p := &pusher{s: s, c: c, img: img}
		for _, l := range img.Layers {
			entry.Layers = append(entry.Layers, blobName(l.Digest))
			if written[l.Digest] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rc, err := p.open(ctx, l)
			if err != nil {
				return fmt.Errorf("image %s: layer %s: %w", img.ShortID(), l.Digest, err)
			}
			err = file(blobName(l.Digest), l.Size, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("image %s: layer %s: %w", img.ShortID(), l.Digest, err)
			}
			written[l.Digest] = true
		}
		if err := blob(img.Manifest.Digest, manRaw); err != nil {
			return err
		}
		desc := ocispec.Descriptor{MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size}
		if len(it.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range it.tags {
			d := desc
			d.Annotations = map[string]string{AnnotationImageName: t.String(), AnnotationRefName: t.Tag}
			index.Manifests = append(index.Manifests, d)
			entry.RepoTags = append(entry.RepoTags, t.Familiar())
			fam := strings.TrimSuffix(t.Familiar(), ":"+t.Tag)
			if repositories[fam] == nil {
				repositories[fam] = map[string]string{}
			}
			top := img.Layers[len(img.Layers)-1].ChainID.Encoded()
			repositories[fam][t.Tag] = top
		}
		manifests = append(manifests, entry)
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"index.json", index},
		{"manifest.json", manifests},
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
		{"repositories", repositories},
	} {
		if f.name == "repositories" && len(repositories) == 0 {
			continue
		}
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := file(f.name, int64(len(b)), bytes.NewReader(b)); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobName(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

// saveItems resolves the arguments of Save.
func (s *Store) saveItems(refs []string) ([]*saveItem, error) {
	if len(refs) == 0 {
		return nil, errors.New("no image to save")
	}
	var items []*saveItem
	byID := map[digest.Digest]*saveItem{}
	add := func(img *Image, tag *client.Reference) {
		it := byID[img.ID]
		if it == nil {
			it = &saveItem{img: img}
			byID[img.ID] = it
			items = append(items, it)
		}
		if tag != nil && !slices.Contains(it.tags, *tag) {
			it.tags = append(it.tags, *tag)
		}
	}
	err := s.withState(false, func(st *state) error {
		for _, ref := range refs {
			// A repository name alone: every tag of it.
			if named, err := reference.ParseNormalizedNamed(ref); err == nil && reference.IsNameOnly(named) {
				r, _ := client.ParseRepository(ref)
				var tags []string
				for k := range st.refs.Repositories[r.Name()] {
					if !strings.Contains(k, "@") {
						tags = append(tags, k)
					}
				}
				slices.Sort(tags)
				if len(tags) > 0 {
					for _, k := range tags {
						tr, err := client.ParseReference(k)
						if err != nil {
							return err
						}
						add(st.images[st.refs.Repositories[r.Name()][k]], &tr)
					}
					continue
				}
			}
			img, matched, err := st.lookup(ref)
			if err != nil {
				return err
			}
			var tag *client.Reference
			if matched != "" && !strings.Contains(matched, "@") {
				tr, err := client.ParseReference(matched)
				if err != nil {
					return err
				}
				tag = &tr
			}
			add(img, tag)
		}
		return nil
	})
	return items, err
}

// ---------------------------------------------------------------------------------------------
// load

// LoadedImage is one image Load stored.
type LoadedImage struct {
	// ID is the image ID.
	ID digest.Digest
	// Tags are the tag references it was loaded under (normalised); none for an image
	// saved by ID.
	Tags []string
}

// spooled is the archive unpacked into temporary files, by entry name.
type spooled struct {
	dir   string
	files map[string]string // entry name (cleaned) → temporary file
}

func (sp *spooled) cleanup() { os.RemoveAll(sp.dir) }

func (sp *spooled) open(name string) (*os.File, error) {
	p, ok := sp.files[cleanEntry(name)]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not in the archive", ErrBadArchive, name)
	}
	return os.Open(p)
}

func (sp *spooled) has(name string) bool { _, ok := sp.files[cleanEntry(name)]; return ok }

func (sp *spooled) readJSON(name string, v any) ([]byte, error) {
	f, err := sp.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxArchiveJSON+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxArchiveJSON {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadArchive, name, MaxArchiveJSON)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
		}
	}
	return b, nil
}

// cleanEntry normalises an entry name of the archive ("./a//b" → "a/b").
func cleanEntry(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// checkEntryName refuses names that are absolute or climb with "..".
func checkEntryName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: unsafe entry name %q", ErrBadArchive, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return fmt.Errorf("%w: unsafe entry name %q", ErrBadArchive, name)
		}
	}
	return nil
}

// spool reads the whole archive into temporary files (no entry name is ever used as a
// path), checking each blobs/<alg>/<hex> entry against its digest on the way.
func (s *Store) spool(ctx context.Context, r io.Reader) (*spooled, error) {
	tmp, err := s.tmpDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "load-*")
	if err != nil {
		return nil, err
	}
	sp := &spooled{dir: dir, files: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			sp.cleanup()
		}
	}()
	tr := tar.NewReader(ctxReader{ctx, r})
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadArchive, err)
		}
		if err := checkEntryName(hdr.Name); err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		case tar.TypeSymlink, tar.TypeLink:
			return nil, fmt.Errorf("%w: %s is a link (to %q): links are refused", ErrBadArchive, hdr.Name, hdr.Linkname)
		default:
			return nil, fmt.Errorf("%w: %s: unsupported entry type %q", ErrBadArchive, hdr.Name, hdr.Typeflag)
		}
		name := cleanEntry(hdr.Name)
		if _, dup := sp.files[name]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrBadArchive, name)
		}
		f, err := os.Create(path.Join(dir, strconv.Itoa(n)))
		if err != nil {
			return nil, err
		}
		sp.files[name] = f.Name()
		var h hash.Hash
		var want digest.Digest
		if parts := strings.Split(name, "/"); len(parts) == 3 && parts[0] == "blobs" {
			want = digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
			if err := want.Validate(); err != nil {
				f.Close()
				return nil, fmt.Errorf("%w: %s: not a digest: %v", ErrBadArchive, name, err)
			}
			h = want.Algorithm().Hash()
		}
		var out io.Writer = f
		if h != nil {
			out = io.MultiWriter(f, h)
		}
		_, err = io.Copy(out, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if h != nil {
			if got := digest.NewDigest(want.Algorithm(), h); got != want {
				return nil, fmt.Errorf("%w: %s: %w: the content has digest %s", ErrBadArchive, name, client.ErrDigestMismatch, got)
			}
		}
	}
	ok = true
	return sp, nil
}

// Load reads a `docker save` tar — docker-archive (manifest.json), OCI image layout
// (index.json and blobs), or both in one tar as Docker 25+ writes — and stores its images
// (see Create). Entries with "..", absolute names, symlinks or hardlinks are refused; every
// blob is checked against the digest that names it (blobs/sha256/<hex>) and the descriptors
// of the manifests, every layer against the config's DiffIDs; the config is kept byte for
// byte, so the image ID does not change. Compressed layers of an OCI manifest are kept as
// they are (and the manifest with them); uncompressed ones are gzip-compressed. Nothing is
// stored before the whole archive has been read and checked.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]LoadedImage, error) {
	sp, err := s.spool(ctx, r)
	if err != nil {
		return nil, err
	}
	defer sp.cleanup()
	specs, err := s.loadSpecs(sp)
	if err != nil {
		return nil, err
	}
	var out []LoadedImage
	for _, ls := range specs {
		img, err := s.create(ctx, ls.spec)
		for _, c := range ls.closers {
			c.Close()
		}
		if err != nil {
			return out, fmt.Errorf("loading image %s: %w", ls.name, err)
		}
		li := LoadedImage{ID: img.ID}
		for _, r := range ls.spec.refs {
			pr, _ := client.ParseReference(r)
			li.Tags = append(li.Tags, pr.String())
		}
		out = append(out, li)
	}
	return out, nil
}

type loadSpec struct {
	name    string
	spec    *createSpec
	closers []io.Closer
}

// loadSpecs reads the archive's manifests into create specs (files opened for the layers).
func (s *Store) loadSpecs(sp *spooled) (specs []*loadSpec, err error) {
	defer func() {
		if err != nil {
			for _, ls := range specs {
				for _, c := range ls.closers {
					c.Close()
				}
			}
		}
	}()
	// The OCI layout's manifests, by config digest.
	var ociArchiveImages []*ociArchiveImage
	byConfig := map[digest.Digest]*ociArchiveImage{}
	if sp.has("index.json") {
		var idx ocispec.Index
		if _, err := sp.readJSON("index.json", &idx); err != nil {
			return nil, err
		}
		for _, d := range idx.Manifests {
			if !client.IsManifest(d.MediaType) {
				if client.IsIndex(d.MediaType) {
					return nil, fmt.Errorf("%w: nested index %s: multi-platform archives are not supported", ErrBadArchive, d.Digest)
				}
				continue
			}
			if err := d.Digest.Validate(); err != nil {
				return nil, fmt.Errorf("%w: index.json: %v", ErrBadArchive, err)
			}
			raw, err := sp.readJSON(blobName(d.Digest), nil)
			if err != nil {
				return nil, err
			}
			if int64(len(raw)) != d.Size {
				return nil, fmt.Errorf("%w: manifest %s: %w: %d bytes, index.json says %d", ErrBadArchive, d.Digest, client.ErrSizeMismatch, len(raw), d.Size)
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadArchive, d.Digest, err)
			}
			oi := byConfig[m.Config.Digest]
			if oi == nil {
				oi = &ociArchiveImage{raw: raw, desc: d, m: m}
				byConfig[m.Config.Digest] = oi
				ociArchiveImages = append(ociArchiveImages, oi)
			}
			if name := d.Annotations[AnnotationImageName]; name != "" {
				oi.tags = append(oi.tags, name)
			} else if rn := d.Annotations[AnnotationRefName]; rn != "" {
				// A full reference, or just a tag (then there is no name to give).
				if _, err := reference.ParseNormalizedNamed(rn); err == nil && strings.ContainsAny(rn, ":/") {
					oi.tags = append(oi.tags, rn)
				}
			}
		}
	}
	var entries []dockerManifestEntry
	if sp.has("manifest.json") {
		if _, err := sp.readJSON("manifest.json", &entries); err != nil {
			return nil, err
		}
	}
	if len(entries) == 0 && len(ociArchiveImages) == 0 {
		return nil, fmt.Errorf("%w: no manifest.json nor index.json with images", ErrBadArchive)
	}
	// docker-archive entries first (they have the familiar tags); OCI images the
	// docker-archive does not list after.
	used := map[*ociArchiveImage]bool{}
	for _, e := range entries {
		cfgRaw, err := sp.readJSON(e.Config, nil)
		if err != nil {
			return nil, err
		}
		id := digest.FromBytes(cfgRaw)
		// The config's name is its digest (blobs/sha256/<hex>, checked when spooled, or the
		// older <hex>.json).
		if hex := strings.TrimSuffix(path.Base(e.Config), ".json"); len(hex) == 64 && isHex(hex) && hex != id.Encoded() {
			return nil, fmt.Errorf("%w: config %s has digest %s", ErrBadArchive, e.Config, id)
		}
		oi := byConfig[id]
		if oi != nil {
			used[oi] = true
		}
		ls, err := s.loadSpec(sp, cfgRaw, e.Layers, oi, e.RepoTags)
		if err != nil {
			return nil, err
		}
		specs = append(specs, ls)
	}
	for _, oi := range ociArchiveImages {
		if used[oi] {
			continue
		}
		cfgRaw, err := sp.readJSON(blobName(oi.m.Config.Digest), nil)
		if err != nil {
			return nil, err
		}
		if int64(len(cfgRaw)) != oi.m.Config.Size {
			return nil, fmt.Errorf("%w: config %s: %w", ErrBadArchive, oi.m.Config.Digest, client.ErrSizeMismatch)
		}
		ls, err := s.loadSpec(sp, cfgRaw, nil, oi, oi.tags)
		if err != nil {
			return nil, err
		}
		specs = append(specs, ls)
	}
	return specs, nil
}

// ociArchiveImage is an image of the archive's OCI layout.
type ociArchiveImage struct {
	raw  []byte
	desc ocispec.Descriptor
	m    ocispec.Manifest
	tags []string
}

// loadSpec builds the create spec of one image: layers are the docker-archive's paths
// (layerPaths) or, when oi describes the same config, the OCI manifest's blobs.
func (s *Store) loadSpec(sp *spooled, cfgRaw []byte, layerPaths []string, oi *ociArchiveImage, tags []string) (ls *loadSpec, err error) {
	id := digest.FromBytes(cfgRaw)
	ls = &loadSpec{name: id.String(), spec: &createSpec{rawConfig: cfgRaw}}
	defer func() {
		if err != nil {
			for _, c := range ls.closers {
				c.Close()
			}
		}
	}()
	for _, t := range tags {
		r, err := client.ParseReference(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadArchive, err)
		}
		if r.Digest != "" {
			continue
		}
		ls.spec.refs = append(ls.spec.refs, r.String())
		if ls.name == id.String() {
			ls.name = r.Familiar()
		}
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		return nil, fmt.Errorf("%w: config %s: %v", ErrBadArchive, id, err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("%w: config %s: %w: rootfs type %q", ErrBadArchive, id, ErrNotImage, cfg.RootFS.Type)
	}
	open := func(name string) (*os.File, error) {
		f, err := sp.open(name)
		if err != nil {
			return nil, err
		}
		ls.closers = append(ls.closers, f)
		return f, nil
	}
	if oi != nil && len(oi.m.Layers) == len(diffIDs) {
		compressed := true
		for _, l := range oi.m.Layers {
			c, err := snapshot.LayerCompression(l.MediaType)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest %s: layer %s: %w", ErrBadArchive, oi.desc.Digest, l.Digest, err)
			}
			if err := l.Digest.Validate(); err != nil {
				return nil, fmt.Errorf("%w: manifest %s: %v", ErrBadArchive, oi.desc.Digest, err)
			}
			compressed = compressed && c != snapshot.Uncompressed
		}
		ls.spec.manifestType = MediaTypeDockerManifest
		if mt := oi.m.MediaType; mt == ocispec.MediaTypeImageManifest || mt == "" && oi.desc.MediaType == ocispec.MediaTypeImageManifest {
			ls.spec.manifestType = ocispec.MediaTypeImageManifest
		}
		if compressed {
			// Kept as they are, with the manifest: every digest stays.
			ls.spec.rawManifest = oi.raw
			ls.spec.manifestType = oi.desc.MediaType
		}
		for i, l := range oi.m.Layers {
			f, err := open(blobName(l.Digest))
			if err != nil {
				return nil, err
			}
			if st, err := f.Stat(); err != nil || st.Size() != l.Size {
				return nil, fmt.Errorf("%w: layer %s: %w: the manifest says %d bytes", ErrBadArchive, l.Digest, client.ErrSizeMismatch, l.Size)
			}
			if compressed {
				ls.spec.layers = append(ls.spec.layers, layerInput{blob: f, desc: l, diffID: diffIDs[i]})
			} else {
				ls.spec.layers = append(ls.spec.layers, layerInput{tar: f, diffID: diffIDs[i]})
			}
		}
		return ls, nil
	}
	if layerPaths == nil {
		return nil, fmt.Errorf("%w: manifest %s has %d layers, its config %d DiffIDs", ErrBadArchive, oi.desc.Digest, len(oi.m.Layers), len(diffIDs))
	}
	if len(layerPaths) != len(diffIDs) {
		return nil, fmt.Errorf("%w: manifest.json lists %d layers for config %s, which has %d DiffIDs", ErrBadArchive, len(layerPaths), id, len(diffIDs))
	}
	for i, p := range layerPaths {
		f, err := open(p)
		if err != nil {
			return nil, err
		}
		ls.spec.layers = append(ls.spec.layers, layerInput{tar: f, diffID: diffIDs[i]})
	}
	return ls, nil
}

// ---------------------------------------------------------------------------------------------
// import

// ImportOptions tune Import.
type ImportOptions struct {
	// Ref, when not "", tags the new image.
	Ref string
	// Changes are Dockerfile instructions applied to the config (ApplyChanges).
	Changes []string
	// Message is the history comment; "" gives "Imported from <Source>".
	Message string
	// Source names the input in the default message ("-" for stdin, a file name, a URL).
	Source string
	// Platform is the image's platform; nil means the host's.
	Platform *ocispec.Platform
}

// Import makes a one-layer image of a root filesystem tar (plain, gzip or zstd), as
// `docker import` does: the config has the host's platform, the changes applied, and one
// history entry.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	now := time.Now().UTC()
	plat := DefaultPlatform()
	if opts.Platform != nil {
		plat = *opts.Platform
	}
	cfg := ocispec.Image{Created: &now, Platform: ocispec.Platform{OS: plat.OS, Architecture: plat.Architecture, Variant: plat.Variant}}
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return nil, err
	}
	msg := opts.Message
	if msg == "" {
		src := opts.Source
		if src == "" {
			src = "-"
		}
		msg = "Imported from " + src
	}
	cfg.History = []ocispec.History{{Created: &now, Comment: msg}}
	spec := &createSpec{config: cfg, layers: []layerInput{{tar: r}}}
	if opts.Ref != "" {
		spec.refs = []string{opts.Ref}
	}
	return s.create(ctx, spec)
}

// ---------------------------------------------------------------------------------------------
// changes: the Dockerfile instructions of `docker commit -c` and `docker import -c`

// ApplyChanges applies Dockerfile instructions to an image config, as `docker commit
// --change` and `docker import --change` do (both commands use it). The changes are read
// as one Dockerfile: a value may hold several instructions, one a line, with `\` line
// continuations and # comments; instruction names are case-insensitive.
//
//   - CMD, ENTRYPOINT: JSON (exec) form, else shell form (["/bin/sh", "-c", rest]); an
//     ENTRYPOINT clears the Cmd unless a CMD came before it in the same changes.
//   - ENV, LABEL: `k=v k2="v 2"` pairs, or the legacy `k v` (the rest of the line).
//   - EXPOSE: ports, ranges and /tcp, /udp or /sctp ("80", "53/udp", "8000-8002").
//   - VOLUME: a JSON array or words. WORKDIR (relative to the current one), USER,
//     STOPSIGNAL (a signal name or number).
//
// Every instruction but CMD and ENTRYPOINT has its words processed as Docker's shell
// lexer does: '…' and "…" quoting, `\` escapes and $VAR, ${VAR}, ${VAR:-word},
// ${VAR:+word} (and -, +, ?, :? forms) expanded from the config's Env as it is before the
// instruction. ONBUILD and HEALTHCHECK are refused, since an OCI image config has no field
// for them; any other instruction is "not a valid change command", as Docker says.
func ApplyChanges(c *ocispec.ImageConfig, changes []string) error {
	cmdSet := false
	for _, line := range changeLines(changes) {
		instr, rest := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			instr, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		name := strings.ToUpper(instr)
		env := slices.Clone(c.Env) // expansion sees the Env from before the instruction
		if rest == "" {
			switch name {
			case "WORKDIR", "USER", "STOPSIGNAL":
				return fmt.Errorf("%s requires exactly one argument", name)
			case "CMD", "ENTRYPOINT", "ENV", "LABEL", "EXPOSE", "VOLUME":
				return fmt.Errorf("%s requires at least one argument", name)
			}
		}
		switch name {
		case "CMD":
			c.Cmd = commandLine(rest)
			cmdSet = true
		case "ENTRYPOINT":
			c.Entrypoint = commandLine(rest)
			if !cmdSet {
				c.Cmd = nil
			}
		case "ENV", "LABEL":
			pairs, err := nameValues(name, rest, env)
			if err != nil {
				return err
			}
			for _, kv := range pairs {
				if name == "ENV" {
					c.Env = setEnv(c.Env, kv[0], kv[1])
					continue
				}
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[kv[0]] = kv[1]
			}
		case "EXPOSE":
			// As Docker, the one instruction whose expansion may give several words.
			for _, f := range strings.Fields(rest) {
				words, err := shellWords(f, env, true)
				if err != nil {
					return err
				}
				for _, w := range words {
					ports, err := exposedPorts(w)
					if err != nil {
						return err
					}
					if c.ExposedPorts == nil {
						c.ExposedPorts = map[string]struct{}{}
					}
					for _, p := range ports {
						c.ExposedPorts[p] = struct{}{}
					}
				}
			}
		case "VOLUME":
			var vols []string
			if !strings.HasPrefix(rest, "[") || json.Unmarshal([]byte(rest), &vols) != nil {
				vols = strings.Fields(rest)
			}
			if len(vols) == 0 {
				return errors.New("VOLUME requires at least one argument")
			}
			for _, v := range vols {
				v, err := shellWord(v, env)
				if err != nil {
					return err
				}
				if v = strings.TrimSpace(v); v == "" {
					return errors.New("VOLUME specified can not be an empty string")
				}
				if c.Volumes == nil {
					c.Volumes = map[string]struct{}{}
				}
				c.Volumes[v] = struct{}{}
			}
		case "WORKDIR", "USER", "STOPSIGNAL":
			v, err := shellWord(rest, env)
			if err != nil {
				return err
			}
			if v == "" {
				return fmt.Errorf("%s requires exactly one argument", name)
			}
			switch name {
			case "WORKDIR":
				if !path.IsAbs(v) {
					v = path.Join("/", c.WorkingDir, v)
				}
				c.WorkingDir = path.Clean(v)
			case "USER":
				c.User = v
			case "STOPSIGNAL":
				if err := checkSignal(v); err != nil {
					return err
				}
				c.StopSignal = v
			}
		case "ONBUILD", "HEALTHCHECK":
			return fmt.Errorf("%s is not supported as a change: an OCI image config has no field for it", name)
		default:
			return fmt.Errorf("%s is not a valid change command", name)
		}
	}
	return nil
}

// changeLines joins the changes into one Dockerfile and returns its instructions: blank
// lines and # comments dropped, lines ending in `\` joined with the next.
func changeLines(changes []string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(strings.Join(changes, "\n"), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(t, `\`); ok {
			cur.WriteString(s)
			continue
		}
		cur.WriteString(t)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}

// commandLine is CMD's or ENTRYPOINT's argument: a JSON array of strings (exec form), else
// the text for /bin/sh -c (shell form), unexpanded.
func commandLine(s string) []string {
	var argv []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &argv) == nil {
		return argv
	}
	return []string{"/bin/sh", "-c", s}
}

// nameValues parses ENV's or LABEL's argument: "k=v k2='v 2'" or the legacy "k v w" (the
// value is the rest of the line), keys and values expanded from env.
func nameValues(instr, s string, env []string) ([][2]string, error) {
	words := rawWords(s)
	var raw [][2]string
	if !strings.Contains(words[0], "=") {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return nil, fmt.Errorf("%s must have two arguments", instr)
		}
		raw = [][2]string{{s[:i], strings.TrimSpace(s[i+1:])}}
	} else {
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("Syntax error - can't find = in %q. Must be of the form: name=value", w)
			}
			raw = append(raw, [2]string{k, v})
		}
	}
	out := make([][2]string, 0, len(raw))
	for _, kv := range raw {
		k, err := shellWord(kv[0], env)
		if err != nil {
			return nil, err
		}
		if k == "" {
			return nil, fmt.Errorf("%s names can not be blank", instr)
		}
		v, err := shellWord(kv[1], env)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// rawWords splits s on blanks outside quotes, keeping quotes and escapes in the words (the
// Dockerfile parser's first pass over ENV and LABEL).
func rawWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == 0 && (ch == ' ' || ch == '\t'):
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		case ch == '\\' && i+1 < len(s):
			cur.WriteByte(ch)
			i++
			ch = s[i]
		case ch == quote:
			quote = 0
		case quote == 0 && (ch == '\'' || ch == '"'):
			quote = ch
		}
		cur.WriteByte(ch)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// shellWord processes one Dockerfile word: quotes removed, escapes applied, variables
// expanded from env; blanks are kept.
func shellWord(s string, env []string) (string, error) {
	w, err := shellWords(s, env, false)
	if err != nil || len(w) == 0 {
		return "", err
	}
	return w[0], nil
}

// shellWords is Docker's shell lexer with `\` as escape: '…' is literal, "…" expands
// variables and takes `\` before ", $ and \ only, outside quotes `\` escapes any
// character. With split, the result is split into words on blanks outside quotes
// (including blanks an unquoted expansion brings); without, it is one word.
func shellWords(s string, env []string, split bool) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	isBlank := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case split && isBlank(ch):
			flush()
			i++
		case ch == '\\':
			if i+1 < len(s) {
				cur.WriteByte(s[i+1])
				inWord = true
			}
			i += 2
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unexpected end of statement while looking for matching single-quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case ch == '"':
			i++
			closed := false
			for i < len(s) && !closed {
				switch c := s[i]; {
				case c == '"':
					closed = true
					i++
				case c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '$' || s[i+1] == '\\'):
					cur.WriteByte(s[i+1])
					i += 2
				case c == '$':
					v, n, err := expandVar(s[i:], env)
					if err != nil {
						return nil, err
					}
					cur.WriteString(v)
					i += n
				default:
					cur.WriteByte(c)
					i++
				}
			}
			if !closed {
				return nil, errors.New("unexpected end of statement while looking for matching double-quote")
			}
			inWord = true
		case ch == '$':
			v, n, err := expandVar(s[i:], env)
			if err != nil {
				return nil, err
			}
			i += n
			for j := 0; j < len(v); j++ {
				if split && isBlank(v[j]) {
					flush()
					continue
				}
				cur.WriteByte(v[j])
				inWord = true
			}
		default:
			cur.WriteByte(ch)
			inWord = true
			i++
		}
	}
	if !split {
		return []string{cur.String()}, nil
	}
	flush()
	return words, nil
}

// expandVar expands the variable reference at the start of s (s[0] is '$') and returns its
// value and the length of the reference; a '$' not followed by a name is literal.
func expandVar(s string, env []string) (string, int, error) {
	isName := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if len(s) < 2 {
		return "$", 1, nil
	}
	if s[1] != '{' {
		n := 1
		if s[1] >= '0' && s[1] <= '9' { // $1: digits only, as Docker
			for n < len(s) && s[n] >= '0' && s[n] <= '9' {
				n++
			}
		} else {
			for n < len(s) && isName(s[n]) {
				n++
			}
		}
		if n == 1 {
			return "$", 1, nil
		}
		v, _ := lookupEnv(env, s[1:n])
		return v, n, nil
	}
	// ${…}: find the matching brace, nested ${…} included.
	end, depth := -1, 1
	for j := 2; j < len(s) && end < 0; j++ {
		switch {
		case s[j] == '\\':
			j++
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case s[j] == '}':
			if depth--; depth == 0 {
				end = j
			}
		}
	}
	if end < 0 {
		return "", 0, errors.New("missing '}'")
	}
	body := s[2:end]
	n := 0
	for n < len(body) && isName(body[n]) {
		n++
	}
	name, mod := body[:n], body[n:]
	if name == "" {
		return "", 0, fmt.Errorf("bad substitution: ${%s}", body)
	}
	val, set := lookupEnv(env, name)
	if mod == "" {
		return val, end + 1, nil
	}
	colon := strings.HasPrefix(mod, ":")
	op := strings.TrimPrefix(mod, ":")
	if op == "" {
		return "", 0, fmt.Errorf("bad substitution: ${%s}", body)
	}
	word, err := shellWord(op[1:], env)
	if err != nil {
		return "", 0, err
	}
	present := set && (!colon || val != "")
	switch op[0] {
	case '-':
		if !present {
			val = word
		}
	case '+':
		val = ""
		if present {
			val = word
		}
	case '?':
		if !present {
			if word == "" {
				word = "is not allowed to be unset"
				if colon {
					word = "is not allowed to be empty"
				}
			}
			return "", 0, fmt.Errorf("%s: %s", name, word)
		}
	default:
		return "", 0, fmt.Errorf("unsupported modifier (%s) in substitution", mod)
	}
	return val, end + 1, nil
}

// lookupEnv finds name in a KEY=value list.
func lookupEnv(env []string, name string) (string, bool) {
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// setEnv sets k=v in env, in place if k is there (as Docker's ENV), else at the end.
func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if key, _, _ := strings.Cut(e, "="); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// exposedPorts parses an EXPOSE word: "80", "80/udp", "8000-8002/tcp".
func exposedPorts(w string) ([]string, error) {
	port, proto, ok := strings.Cut(w, "/")
	if !ok || proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || start == 0 {
		return nil, fmt.Errorf("invalid containerPort: %s", port)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("invalid range specified for container port: %s", port)
		}
	}
	out := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
	}
	return out, nil
}

// checkSignal accepts a signal number or name ("SIGTERM", "TERM", "15"), as Docker's
// STOPSIGNAL does.
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return fmt.Errorf("Invalid signal: %s", s)
		}
		return nil
	}
	if unix.SignalNum("SIG"+strings.TrimPrefix(strings.ToUpper(s), "SIG")) == 0 {
		return fmt.Errorf("Invalid signal: %s", s)
	}
	return nil
}
