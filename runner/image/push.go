package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/registry/client"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// DefaultPushConcurrency is the number of blobs pushed at once when PushOptions.Concurrency
// is 0 (Docker's --max-concurrent-uploads default).
const DefaultPushConcurrency = 5

// The layer states of a push, worded as `docker push` prints them (plus StatusWaiting and
// StatusFailed, shared with pulls, and MountedFrom).
const (
	StatusPreparing   Status = "Preparing"
	StatusPushing     Status = "Pushing"
	StatusPushed      Status = "Pushed"
	StatusLayerExists Status = "Layer already exists"
)

// MountedFrom is the state of a layer mounted from another repository of the registry
// ("Mounted from library/busybox").
func MountedFrom(repo string) Status { return Status("Mounted from " + repo) }

// PushOptions tune Push.
type PushOptions struct {
	// Concurrency bounds the blobs checked, mounted or uploaded at once; 0 means
	// DefaultPushConcurrency.
	Concurrency int
	// Progress receives the per-layer states (Index counts from the top layer, as docker
	// push lists them; ID is the short DiffID); nil reports nothing.
	Progress Reporter
	// Client is the registry client; nil makes one from Insecure and Credentials.
	Client *client.Client
	// Insecure lists registries reached over plain HTTP (client.Options.Insecure).
	Insecure []string
	// Credentials are used when Client is nil; nil means client.DefaultCredentials with
	// the store's AuthFile.
	Credentials client.CredentialStore
}

// PushResult is what a Push did.
type PushResult struct {
	// Reference is the reference pushed, normalised.
	Reference string
	// Tag is its tag.
	Tag string
	// Digest and Size are the pushed manifest's.
	Digest digest.Digest
	Size   int64
	// Uploaded, Mounted and Existing count the blobs (layers and config) by what
	// happened to them.
	Uploaded, Mounted, Existing int
}

// ErrNoSource: the compressed bytes of a pulled layer are not kept and none of the
// registries it was pulled from has them any more.
var ErrNoSource = errors.New("compressed layer not available")

// Push uploads the image ref names (a tag reference: "host:5000/repo:tag"; no tag means
// "latest") to the registry and repository of ref, then puts its manifest under the tag.
// For each blob (layers, then the config), at most Concurrency at a time: a HEAD on the
// target first (present: "Layer already exists"); if missing and the layer was pulled from
// another repository of the same registry, a cross-repository mount ("Mounted from …");
// else an upload, monolithic for blobs up to the client's chunk size and in PATCH chunks
// above it, resumed from the registry's offset after a broken connection.
//
// Where the bytes come from. Layers of created, loaded and imported images have their
// compressed blob in the content store and are uploaded from there. Pulled layers are
// unpacked and their compressed bytes dropped, so Push fetches them again from the
// repositories they were pulled from (Layer.Sources), verifying size and digest, and
// streams them straight into the upload with no temporary file. Recompressing the snapshot
// instead would give other bytes and another digest (gzip output and tar header details
// are not reproducible from an unpacked tree), so the pushed manifest would differ from
// the one pulled: signatures and references by digest would no longer match, and `docker
// pull` of "the same" image would get different layers. Re-fetching keeps every digest,
// costs only network I/O (no CPU for compression) and lets the target registry mount the
// blob when it is the same registry. When no source has the blob any more, the push fails
// with ErrNoSource naming the layer.
//
// On success the image also gets the reference repo@<manifest digest> (Docker's
// RepoDigests) and the target repository is added to its layers' Sources. On error
// nothing local changes; errors a refusing registry answers read as one-liners:
// "denied: requested access to the resource is denied", "unauthorized: …",
// "blob upload too large".
func (s *Store) Push(ctx context.Context, ref string, opts PushOptions) (*PushResult, error) {
	r, err := client.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if r.Digest != "" && r.Tag == "" {
		return nil, fmt.Errorf("cannot push a digest reference: %s", ref)
	}
	img, err := s.Lookup(r.Repo().WithTag(r.Tag).String())
	if err != nil {
		return nil, fmt.Errorf("tag does not exist: %s: %w", r.Familiar(), err)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultPushConcurrency
	}
	c := s.registryClient(opts.Client, opts.Credentials, opts.Insecure)
	progress := opts.Progress
	if progress == nil {
		progress = nopReporter{}
	}
	p := &pusher{s: s, c: c, target: r.Repo(), img: img, progress: progress, sem: make(chan struct{}, opts.Concurrency)}
	res, err := p.push(ctx, r.Tag)
	if err != nil {
		return nil, pushError(err)
	}
	return res, nil
}

// TagsOf returns the tag references ("registry/repo:tag", normalised) the store has in
// repository repo ("busybox", "host:5000/a/b"), sorted: what `push --all-tags` pushes.
func (s *Store) TagsOf(repo string) ([]string, error) {
	r, err := client.ParseRepository(repo)
	if err != nil {
		return nil, err
	}
	var out []string
	err = s.withState(false, func(st *state) error {
		for ref := range st.refs.Repositories[r.Name()] {
			if !strings.Contains(ref, "@") {
				out = append(out, ref)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

type pusher struct {
	s        *Store
	c        *client.Client
	target   client.Reference
	img      *Image
	progress Reporter
	sem      chan struct{}

	mu                          sync.Mutex
	uploaded, mounted, existing int
}

func (p *pusher) push(ctx context.Context, tag string) (*PushResult, error) {
	manRaw, err := p.s.Content(p.img.Manifest.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", p.img.ShortID(), err)
	}
	cfgRaw, err := p.s.Content(p.img.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", p.img.ShortID(), err)
	}
	n := len(p.img.Layers)
	// Several layers may be the same blob: push each once.
	seen := map[digest.Digest]bool{}
	for i := n - 1; i >= 0; i-- {
		l := p.img.Layers[i]
		if !seen[l.Digest] {
			p.report(i, l, StatusPreparing, 0)
		}
		seen[l.Digest] = true
	}
	g, gctx := errgroup.WithContext(ctx)
	clear(seen)
	for i, l := range p.img.Layers {
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		g.Go(func() error { return p.layer(gctx, i, l) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The config, after the layers, like docker push.
	if err := p.acquire(ctx, nil); err != nil {
		return nil, err
	}
	err = func() error {
		defer p.release()
		exists, err := p.c.BlobExists(ctx, p.target, p.img.Config)
		if err != nil {
			return err
		}
		if exists {
			p.count(&p.existing)
			return nil
		}
		if err := p.c.PushBlob(ctx, p.target, p.img.Config, bytes.NewReader(cfgRaw)); err != nil {
			return err
		}
		p.count(&p.uploaded)
		return nil
	}()
	if err != nil {
		return nil, err
	}
	ref := p.target.WithTag(tag)
	desc, err := p.c.PutManifest(ctx, ref, p.img.Manifest.MediaType, manRaw)
	if err != nil {
		return nil, err
	}
	if err := p.recordPush(desc.Digest); err != nil {
		return nil, err
	}
	return &PushResult{Reference: ref.String(), Tag: tag, Digest: desc.Digest, Size: desc.Size,
		Uploaded: p.uploaded, Mounted: p.mounted, Existing: p.existing}, nil
}

func (p *pusher) count(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
}

// report sends a layer event; the index counts from the top layer.
func (p *pusher) report(i int, l Layer, st Status, cur int64) {
	p.progress.Report(Progress{Index: len(p.img.Layers) - 1 - i, ID: ShortDigest(l.DiffID), Digest: l.Digest, Status: st, Current: cur, Total: l.Size})
}

// acquire takes an upload slot, reporting Waiting for layer l when none is free at once.
func (p *pusher) acquire(ctx context.Context, waiting func()) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	default:
	}
	if waiting != nil {
		waiting()
	}
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pusher) release() { <-p.sem }

// layer pushes one layer blob: HEAD, mount, or upload.
func (p *pusher) layer(ctx context.Context, i int, l Layer) (err error) {
	if err := p.acquire(ctx, func() { p.report(i, l, StatusWaiting, 0) }); err != nil {
		return err
	}
	defer p.release()
	defer func() {
		if err != nil && ctx.Err() == nil {
			p.report(i, l, StatusFailed, 0)
		}
	}()
	exists, err := p.c.BlobExists(ctx, p.target, l.Descriptor)
	if err != nil {
		return err
	}
	if exists {
		p.count(&p.existing)
		p.report(i, l, StatusLayerExists, l.Size)
		return nil
	}
	for _, src := range p.sources(l, true) {
		mounted, err := p.c.MountBlob(ctx, p.target, src.Repository, l.Descriptor)
		if err != nil {
			if refusal(err) {
				return err
			}
			continue // a registry that does not mount: upload
		}
		if mounted {
			p.count(&p.mounted)
			p.report(i, l, MountedFrom(src.Repository), l.Size)
			return nil
		}
	}
	rc, err := p.open(ctx, l)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	p.report(i, l, StatusPushing, 0)
	pr := &pushProgress{r: rc, report: func(n int64) { p.report(i, l, StatusPushing, n) }}
	if err := p.c.PushBlob(ctx, p.target, l.Descriptor, pr); err != nil {
		return err
	}
	p.count(&p.uploaded)
	p.report(i, l, StatusPushed, l.Size)
	return nil
}

// sources returns the repositories a layer was pulled from, parsed; with sameRegistry only
// the other repositories of the target's registry (mount candidates).
func (p *pusher) sources(l Layer, sameRegistry bool) []client.Reference {
	var out []client.Reference
	for _, s := range l.Sources {
		r, err := client.ParseRepository(s)
		if err != nil {
			continue
		}
		same := r.Registry == p.target.Registry
		if sameRegistry && (!same || r.Repository == p.target.Repository) {
			continue
		}
		out = append(out, r)
	}
	if !sameRegistry {
		// Prefer the target's registry (same host), then the others in the order known.
		slices.SortStableFunc(out, func(a, b client.Reference) int {
			ai, bi := a.Registry != p.target.Registry, b.Registry != p.target.Registry
			switch {
			case ai == bi:
				return 0
			case !ai:
				return -1
			default:
				return 1
			}
		})
	}
	return out
}

// open returns the layer's compressed bytes: from content when kept, else fetched again
// from a registry it was pulled from (see Push), digest-checked as it is read.
func (p *pusher) open(ctx context.Context, l Layer) (io.ReadCloser, error) {
	if p.s.HasBlob(l.Digest) {
		f, err := p.s.OpenBlob(l.Digest)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{client.NewVerifyingReader(f, l.Descriptor), f}, nil
	}
	srcs := p.sources(l, false)
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%w: its compressed bytes were not kept and it has no source registry to fetch them from", ErrNoSource)
	}
	var errs []error
	for _, src := range srcs {
		rc, err := p.c.FetchBlob(ctx, src, l.Descriptor, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return struct {
			io.Reader
			io.Closer
		}{client.NewVerifyingReader(rc, l.Descriptor), rc}, nil
	}
	return nil, fmt.Errorf("%w: none of the registries it was pulled from has it: %w", ErrNoSource, errors.Join(errs...))
}

// recordPush adds target@dgst to the image's references and the target repository to its
// layers' sources.
func (p *pusher) recordPush(dgst digest.Digest) error {
	return p.s.withState(true, func(st *state) error {
		img := st.images[p.img.ID]
		if img == nil {
			return nil // removed meanwhile
		}
		ref := p.target.WithDigest(dgst)
		changed := st.setRef(ref, ref.String(), img.ID)
		if dgst == img.Manifest.Digest {
			for i := range img.Layers {
				if !slices.Contains(img.Layers[i].Sources, p.target.Name()) {
					img.Layers[i].Sources = append(img.Layers[i].Sources, p.target.Name())
					changed = true
				}
			}
		}
		if !changed {
			return nil
		}
		if err := p.s.writeRecord(img); err != nil {
			return err
		}
		return p.s.writeRefs(st)
	})
}

// pushProgress reports the bytes read for an upload, at most 10 times a second.
type pushProgress struct {
	r      io.Reader
	n      int64
	last   time.Time
	report func(int64)
}

func (pp *pushProgress) Read(b []byte) (int, error) {
	n, err := pp.r.Read(b)
	pp.n += int64(n)
	if now := time.Now(); now.Sub(pp.last) >= 100*time.Millisecond {
		pp.last = now
		pp.report(pp.n)
	}
	return n, err
}

// refusal reports whether err is the registry refusing the push (no point trying another
// way).
func refusal(err error) bool {
	var e *client.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden ||
		e.StatusCode == http.StatusRequestEntityTooLarge
}

// pushErr is a refusal of the registry, worded as docker push prints it.
type pushErr struct {
	msg string
	err error
}

func (e *pushErr) Error() string { return e.msg }
func (e *pushErr) Unwrap() error { return e.err }

// pushError turns a registry's refusal into docker push's one-line messages.
func pushError(err error) error {
	var e *client.Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.StatusCode == http.StatusRequestEntityTooLarge:
		return &pushErr{msg: "blob upload too large", err: err}
	case errors.Is(e, client.ErrDenied):
		return &pushErr{msg: "denied: requested access to the resource is denied", err: err}
	case errors.Is(e, client.ErrUnauthorized):
		msg := e.Message
		if len(e.Errors) > 0 && e.Errors[0].Message != "" {
			msg = e.Errors[0].Message // the registry's own words, without the client's hints
		}
		if msg == "" || strings.EqualFold(msg, "unauthorized") {
			msg = "authentication required"
		}
		return &pushErr{msg: "unauthorized: " + msg, err: err}
	}
	return err
}
