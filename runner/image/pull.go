package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// DefaultConcurrency is the number of layers downloaded at once when
// PullOptions.Concurrency is 0 (Docker's --max-concurrent-downloads default).
const DefaultConcurrency = 6

// MaxConfigSize bounds the image config a pull accepts.
const MaxConfigSize = 8 << 20

// Docker's image config media type (the OCI one is ocispec.MediaTypeImageConfig).
const MediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"

// PullOptions tune Pull.
type PullOptions struct {
	// Platform is the platform to pick from an index; nil means the host's
	// (DefaultPlatform). When set, a single-platform image of another platform is an error.
	Platform *ocispec.Platform
	// Concurrency bounds the layers downloaded (and unpacked) at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Progress receives the per-layer states; nil reports nothing.
	Progress Reporter
	// Client is the registry client; nil makes one from Insecure and Credentials.
	Client *client.Client
	// Insecure lists registries reached over plain HTTP (client.Options.Insecure).
	Insecure []string
	// Credentials are used when Client is nil; nil means client.DefaultCredentials with
	// the store's AuthFile (pull-run login's file, then Docker's config.json).
	Credentials client.CredentialStore
	// AllowDevices lets layers create character and block device nodes (Docker allows
	// them as root). Off by default: a device node in a layer is refused.
	AllowDevices bool
	// MaxLayerBytes, if positive, bounds each layer's uncompressed size (a bound on tar
	// bombs).
	MaxLayerBytes int64
}

// puller is one Pull in progress.
type puller struct {
	s        *Store
	c        *client.Client
	ref      client.Reference
	refStr   string
	opts     PullOptions
	progress Reporter
	sem      chan struct{}
}

// Pull fetches the image ref ("busybox", "host:5000/a/b:tag", "name@sha256:…") into the
// store (see the package documentation) and records it under ref, and under
// name@<digest> when ref is a tag. Errors name the reference; layer errors name the layer's
// digest and what was wrong. On error nothing half-stored is visible: layers already
// committed stay as snapshots (a later pull uses them; Remove and Prune free them when no
// image uses them) but no image record nor reference is written.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	r, err := client.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	p := &puller{s: s, c: s.registryClient(opts.Client, opts.Credentials, opts.Insecure), ref: r, refStr: r.String(), opts: opts, progress: opts.Progress,
		sem: make(chan struct{}, opts.Concurrency)}
	if p.progress == nil {
		p.progress = nopReporter{}
	}
	img, err := p.pull(ctx)
	if err != nil {
		return nil, p.wrap(err)
	}
	return img, nil
}

// wrap makes sure err names the reference.
func (p *puller) wrap(err error) error {
	if strings.Contains(err.Error(), p.refStr) {
		return err
	}
	return fmt.Errorf("pulling %s: %w", p.refStr, err)
}

// resolved is what the manifest resolution found.
type resolved struct {
	top      ocispec.Descriptor  // what the reference points at
	index    *ocispec.Descriptor // the index, when top is one
	indexRaw []byte
	manifest ocispec.Descriptor
	raw      []byte
	m        ocispec.Manifest
}

func (p *puller) pull(ctx context.Context) (*Image, error) {
	res, err := p.resolve(ctx)
	if err != nil {
		return nil, err
	}
	cfgRaw, cfg, err := p.fetchConfig(ctx, res)
	if err != nil {
		return nil, err
	}
	diffIDs := cfg.RootFS.DiffIDs
	chainIDs := snapshot.ChainIDs(diffIDs)
	content := []digest.Digest{res.manifest.Digest, res.m.Config.Digest}
	if res.index != nil {
		content = append(content, res.index.Digest)
	}
	// The lease keeps garbage collection (rmi/prune of other images in other processes)
	// away from the snapshots this pull uses until its image is recorded.
	l, err := p.s.newLease(chainIDs, content)
	if err != nil {
		return nil, err
	}
	defer l.release()

	layers := make([]Layer, len(res.m.Layers))
	downloaded := make([]bool, len(layers))
	for i, d := range res.m.Layers {
		layers[i] = Layer{Descriptor: d, DiffID: diffIDs[i], ChainID: chainIDs[i], Sources: []string{p.ref.Name()}}
		layers[i].Descriptor.Annotations = nil
		layers[i].Descriptor.URLs = nil
		layers[i].Descriptor.Platform = nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range layers {
		g.Go(func() error {
			size, fetched, err := p.layer(gctx, i, layers[i])
			if err != nil {
				return err
			}
			layers[i].UnpackedSize, downloaded[i] = size, fetched
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return p.record(res, cfgRaw, cfg, layers, downloaded)
}

// resolve fetches the manifest the reference names and, for an index, the platform's one.
func (p *puller) resolve(ctx context.Context) (*resolved, error) {
	top, raw, err := p.c.GetManifest(ctx, p.ref)
	if err != nil {
		return nil, err
	}
	res := &resolved{top: top}
	want := DefaultPlatform()
	if p.opts.Platform != nil {
		want = *p.opts.Platform
	}
	if client.IsIndex(top.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, fmt.Errorf("%s: invalid index %s: %w", p.refStr, top.Digest, err)
		}
		desc, ok := selectManifest(idx, want)
		if !ok {
			avail := availablePlatforms(idx)
			list := "none"
			if len(avail) > 0 {
				list = strings.Join(avail, ", ")
			}
			return nil, &kindError{kind: ErrNoMatchingPlatform, msg: fmt.Sprintf("%s: no matching manifest for %s in the manifest list entries (available: %s)",
				p.refStr, FormatPlatform(want), list)}
		}
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%s: index %s: invalid manifest digest %q: %w", p.refStr, top.Digest, desc.Digest, err)
		}
		t := top
		res.index, res.indexRaw = &t, raw
		mref := p.ref.Repo().WithDigest(desc.Digest)
		res.manifest, res.raw, err = p.c.GetManifest(ctx, mref)
		if err != nil {
			return nil, err
		}
		if desc.Size > 0 && res.manifest.Size != desc.Size {
			return nil, fmt.Errorf("%s: manifest %s: %w: %d bytes, the index says %d", p.refStr, desc.Digest, client.ErrSizeMismatch, res.manifest.Size, desc.Size)
		}
		if !client.IsManifest(res.manifest.MediaType) {
			return nil, fmt.Errorf("%s: the index entry for %s is a %s, not an image manifest", p.refStr, FormatPlatform(want), res.manifest.MediaType)
		}
	} else {
		res.manifest, res.raw = top, raw
	}
	if err := json.Unmarshal(res.raw, &res.m); err != nil {
		return nil, fmt.Errorf("%s: invalid manifest %s: %w", p.refStr, res.manifest.Digest, err)
	}
	if err := p.checkManifest(res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkManifest refuses what is not a pullable image before anything is downloaded.
func (p *puller) checkManifest(res *resolved) error {
	m := res.m
	where := fmt.Sprintf("%s: manifest %s", p.refStr, res.manifest.Digest)
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return fmt.Errorf("%s: %w: unsupported config media type %q", where, ErrNotImage, m.Config.MediaType)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: invalid config digest %q: %w", where, m.Config.Digest, err)
	}
	if m.Config.Size < 0 || m.Config.Size > MaxConfigSize {
		return fmt.Errorf("%s: config size %d out of range (limit %d bytes)", where, m.Config.Size, MaxConfigSize)
	}
	for _, l := range m.Layers {
		if _, err := snapshot.LayerCompression(l.MediaType); err != nil {
			return fmt.Errorf("%s: layer %s: %w", where, l.Digest, err)
		}
		if err := l.Digest.Validate(); err != nil {
			return fmt.Errorf("%s: invalid layer digest %q: %w", where, l.Digest, err)
		}
		if l.Size < 0 {
			return fmt.Errorf("%s: layer %s: negative size %d", where, l.Digest, l.Size)
		}
	}
	return nil
}

// fetchConfig fetches and checks the image config.
func (p *puller) fetchConfig(ctx context.Context, res *resolved) ([]byte, *ocispec.Image, error) {
	raw, err := p.c.ReadBlob(ctx, p.ref.Repo(), res.m.Config, MaxConfigSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: config %s: %w", p.refStr, res.m.Config.Digest, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, nil, fmt.Errorf("%s: %w: config %s is not valid JSON: %v", p.refStr, ErrNotImage, res.m.Config.Digest, err)
	}
	where := fmt.Sprintf("%s: config %s", p.refStr, res.m.Config.Digest)
	if cfg.RootFS.Type != "layers" {
		return nil, nil, fmt.Errorf("%s: %w: rootfs type %q, want \"layers\"", where, ErrNotImage, cfg.RootFS.Type)
	}
	if len(cfg.RootFS.DiffIDs) != len(res.m.Layers) {
		return nil, nil, fmt.Errorf("%s: %w: %d diff_ids for %d layers in manifest %s", where, ErrNotImage,
			len(cfg.RootFS.DiffIDs), len(res.m.Layers), res.manifest.Digest)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%s: invalid diff_id %q: %w", where, d, err)
		}
	}
	if p.opts.Platform != nil && res.index == nil && cfg.OS != "" {
		have := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if platformRank(*p.opts.Platform, have) == 0 {
			return nil, nil, &kindError{kind: ErrNoMatchingPlatform, msg: fmt.Sprintf("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s",
				p.refStr, FormatPlatform(*p.opts.Platform), FormatPlatform(have))}
		}
	}
	return raw, &cfg, nil
}

func (p *puller) report(i int, l Layer, st Status, cur int64) {
	p.progress.Report(Progress{Index: i, ID: ShortDigest(l.Digest), Digest: l.Digest, Status: st, Current: cur, Total: l.Size})
}

// layer makes sure layer i's snapshot exists: its unpacked size, and whether this pull
// fetched it.
func (p *puller) layer(ctx context.Context, i int, l Layer) (int64, bool, error) {
	snaps := p.s.snaps
	if snaps.Exists(l.ChainID) {
		p.report(i, l, StatusAlreadyExists, 0)
		return -1, false, nil
	}
	p.report(i, l, StatusPullingFSLayer, 0)
	for attempt := 0; ; attempt++ {
		leader := false
		v, err, _ := p.s.flight.Do(l.ChainID.String(), func() (any, error) {
			leader = true
			return p.fetchLayer(ctx, i, l)
		})
		if err != nil {
			// Another pull's failure (its context ended, say) is not ours: try again.
			if !leader && ctx.Err() == nil && attempt < 3 {
				continue
			}
			p.report(i, l, StatusFailed, 0)
			return 0, false, err
		}
		out := v.(layerOutcome)
		if !leader || out.existed {
			p.report(i, l, StatusAlreadyExists, 0)
			return -1, false, nil
		}
		p.report(i, l, StatusPullComplete, l.Size)
		return out.size, true, nil
	}
}

type layerOutcome struct {
	size    int64
	existed bool
}

// fetchLayer downloads and unpacks one layer into a new snapshot (the singleflight leader).
func (p *puller) fetchLayer(ctx context.Context, i int, l Layer) (layerOutcome, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		p.report(i, l, StatusWaiting, 0)
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return layerOutcome{}, ctx.Err()
		}
	}
	defer func() { <-p.sem }()

	// Prepare locks the chain ID across processes and checks again that it is missing.
	dir, commit, abort, err := p.s.snaps.Prepare(ctx, l.ChainID)
	if errors.Is(err, snapshot.ErrExists) {
		return layerOutcome{existed: true}, nil
	}
	if err != nil {
		return layerOutcome{}, fmt.Errorf("%s: layer %s: %w", p.refStr, l.Digest, err)
	}
	defer abort()
	size, err := p.unpack(ctx, i, l, dir)
	if err != nil {
		return layerOutcome{}, fmt.Errorf("%s: layer %s: %w", p.refStr, l.Digest, err)
	}
	if err := commit(); err != nil {
		if errors.Is(err, snapshot.ErrExists) {
			return layerOutcome{existed: true}, nil
		}
		return layerOutcome{}, fmt.Errorf("%s: layer %s: %w", p.refStr, l.Digest, err)
	}
	return layerOutcome{size: size}, nil
}

// unpack streams the layer from the registry into dir and verifies it.
func (p *puller) unpack(ctx context.Context, i int, l Layer, dir string) (int64, error) {
	rc, err := p.c.FetchBlob(ctx, p.ref.Repo(), l.Descriptor, 0)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	vr := client.NewVerifyingReader(rc, l.Descriptor)
	pr := &progressReader{r: vr, p: p, i: i, l: l}
	p.report(i, l, StatusDownloading, 0)
	g := &guardedReader{r: pr}
	dec, err := snapshot.Decompress(g, l.MediaType)
	if err != nil {
		// Tell a tampered blob from a mislabelled one.
		if ctx.Err() == nil {
			if _, derr := io.Copy(io.Discard, g.detach()); derr != nil {
				return 0, derr
			}
		}
		return 0, err
	}
	diffID, stats, aerr := snapshot.ApplyLayer(ctx, dir, dec, snapshot.ApplyOptions{
		AllowDevices:      p.opts.AllowDevices,
		IgnoreChownErrors: os.Geteuid() != 0,
		MaxBytes:          p.opts.MaxLayerBytes,
	})
	dec.Close()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	// Read the compressed stream to its end (bytes after the compressed data included)
	// so that its size and digest are checked. A bad blob is the root cause of whatever
	// the unpacker saw, so it is reported first.
	if _, derr := io.Copy(io.Discard, g.detach()); derr != nil {
		return 0, derr
	}
	if !vr.Verified() {
		return 0, fmt.Errorf("%w: the blob was not read to its end", client.ErrSizeMismatch)
	}
	if aerr != nil {
		return 0, aerr
	}
	if diffID != l.DiffID {
		return 0, fmt.Errorf("%w: the unpacked layer has DiffID %s, the image config says %s", ErrDiffIDMismatch, diffID, l.DiffID)
	}
	return stats.Bytes, nil
}

// kindError is an error whose message reads on its own and that matches kind with
// errors.Is.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

// guardedReader lets the decompressor's read-ahead goroutine (which may still be in a Read
// after Close) and the final drain use one reader in turn: after detach, its Reads fail and
// the caller owns the underlying reader.
type guardedReader struct {
	mu       sync.Mutex
	r        io.Reader
	detached bool
}

var errDetached = errors.New("layer stream closed")

func (g *guardedReader) Read(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.detached {
		return 0, errDetached
	}
	return g.r.Read(b)
}

func (g *guardedReader) detach() io.Reader {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.detached = true
	return g.r
}

// progressReader reports the download of a layer.
type progressReader struct {
	r    *client.VerifyingReader
	p    *puller
	i    int
	l    Layer
	last time.Time
	done bool
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if pr.done {
		return n, err
	}
	if err == io.EOF {
		pr.done = true
		pr.p.report(pr.i, pr.l, StatusDownloading, pr.r.N())
		pr.p.report(pr.i, pr.l, StatusVerifying, pr.r.N())
		pr.p.report(pr.i, pr.l, StatusDownloadComplete, pr.r.N())
		pr.p.report(pr.i, pr.l, StatusExtracting, pr.r.N())
		return n, err
	}
	if now := time.Now(); now.Sub(pr.last) >= 100*time.Millisecond {
		pr.last = now
		pr.p.report(pr.i, pr.l, StatusDownloading, pr.r.N())
	}
	return n, err
}

// record writes the content and the image record and sets the references.
func (p *puller) record(res *resolved, cfgRaw []byte, cfg *ocispec.Image, layers []Layer, downloaded []bool) (*Image, error) {
	unlock, err := p.s.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := p.s.load()
	if err != nil {
		return nil, err
	}
	id := res.m.Config.Digest
	// Sizes of layers that were already there: from another record, else measured.
	for i := range layers {
		if layers[i].UnpackedSize >= 0 {
			continue
		}
		layers[i].UnpackedSize = -1
		for _, other := range st.images {
			for _, ol := range other.Layers {
				if ol.ChainID == layers[i].ChainID && ol.UnpackedSize >= 0 {
					layers[i].UnpackedSize = ol.UnpackedSize
				}
			}
		}
		if layers[i].UnpackedSize < 0 {
			path, err := p.s.snaps.Path(layers[i].ChainID)
			if err != nil {
				return nil, fmt.Errorf("%s: layer %s: snapshot %s vanished during the pull: %w", p.refStr, layers[i].Digest, layers[i].ChainID, err)
			}
			if layers[i].UnpackedSize, err = contentSize(path); err != nil {
				return nil, err
			}
		}
	}
	for _, l := range layers {
		if !p.s.snaps.Exists(l.ChainID) {
			return nil, fmt.Errorf("%s: layer %s: snapshot %s vanished during the pull", p.refStr, l.Digest, l.ChainID)
		}
	}
	if res.index != nil {
		if err := p.s.putContent(res.index.Digest, res.indexRaw); err != nil {
			return nil, err
		}
	}
	if err := p.s.putContent(res.manifest.Digest, res.raw); err != nil {
		return nil, err
	}
	if err := p.s.putContent(id, cfgRaw); err != nil {
		return nil, err
	}

	img := &Image{ID: id, Manifest: res.manifest, Index: res.index, Config: res.m.Config, Layers: layers,
		Platform: ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}}
	img.Manifest.Annotations, img.Manifest.Platform, img.Config.Annotations = nil, nil, nil
	if img.Index != nil {
		idx := *img.Index
		idx.Annotations = nil
		img.Index = &idx
	}
	if cfg.Created != nil {
		img.Created = cfg.Created.UTC()
	}
	if old := st.images[id]; old != nil {
		// Same image pulled again (maybe from another repository): keep every source.
		img.LastTagTime = old.LastTagTime
		for i := range img.Layers {
			for _, ol := range old.Layers {
				if ol.Digest == img.Layers[i].Digest {
					for _, src := range ol.Sources {
						if !slices.Contains(img.Layers[i].Sources, src) {
							img.Layers[i].Sources = append(img.Layers[i].Sources, src)
						}
					}
				}
			}
		}
	}
	for _, l := range img.Layers {
		img.Size += l.UnpackedSize
	}

	changed := false
	if p.ref.Tag != "" {
		changed = st.setRef(p.ref, p.ref.Repo().WithTag(p.ref.Tag).String(), id) || changed
	}
	changed = st.setRef(p.ref, p.ref.Repo().WithDigest(res.top.Digest).String(), id) || changed
	if changed || img.LastTagTime.IsZero() {
		img.LastTagTime = time.Now().UTC()
	}
	if err := p.s.writeRecord(img); err != nil {
		return nil, fmt.Errorf("%s: writing image record: %w", p.refStr, err)
	}
	if changed {
		if err := p.s.writeRefs(st); err != nil {
			return nil, fmt.Errorf("%s: writing references: %w", p.refStr, err)
		}
	}
	n := 0
	for _, d := range downloaded {
		if d {
			n++
		}
	}
	img.RepoTags, img.RepoDigests = nil, nil
	for _, r := range st.refsOf(id) {
		if strings.Contains(r, "@") {
			img.RepoDigests = append(img.RepoDigests, r)
		} else {
			img.RepoTags = append(img.RepoTags, r)
		}
	}
	img.PullInfo = &PullInfo{Reference: p.refStr, Digest: res.top.Digest, Downloaded: n, Updated: n > 0 || changed}
	return img, nil
}
