package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/berth-registry/berth/storage"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is a stored manifest: its exact bytes and what was parsed from them.
type Manifest struct {
	Digest  digest.Digest
	Content []byte
	*ParsedManifest
}

// manifestCache keeps recently served manifests by digest, bounded in bytes.
type manifestCache struct {
	mu    sync.RWMutex
	m     map[digest.Digest]*Manifest
	bytes int
}

const manifestCacheBytes = 64 << 20

func (c *manifestCache) get(d digest.Digest) *Manifest {
	c.mu.RLock()
	m := c.m[d]
	c.mu.RUnlock()
	return m
}

func (c *manifestCache) put(m *Manifest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.bytes+len(m.Content) > manifestCacheBytes {
		c.m = make(map[digest.Digest]*Manifest)
		c.bytes = 0
	}
	if _, ok := c.m[m.Digest]; !ok {
		c.m[m.Digest] = m
		c.bytes += len(m.Content)
	}
}

// ValidateName checks a repository name against the reference grammar.
func ValidateName(name string) error {
	if len(name) > reference.RepositoryNameTotalLengthMax || !anchoredName.MatchString(name) {
		return detailf(ErrNameInvalid, name, "invalid repository name %q", truncate(name))
	}
	return nil
}

// ValidateTag checks a tag against the reference grammar.
func ValidateTag(tag string) error {
	if !anchoredTag.MatchString(tag) {
		return detailf(ErrTagInvalid, tag, "invalid tag %q", truncate(tag))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// readLink reads a link file holding a digest.
func (s *Store) readLink(ctx context.Context, p string) (digest.Digest, error) {
	b, err := storage.GetContent(ctx, s.d, p)
	if err != nil {
		return "", err
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("corrupt link %s: %w", p, err)
	}
	return d, nil
}

func (s *Store) writeLink(ctx context.Context, p string, d digest.Digest) error {
	return storage.PutContent(ctx, s.d, p, []byte(d.String()))
}

// Resolve turns a tag or digest reference into the digest of a manifest
// present in repository name.
func (s *Store) Resolve(ctx context.Context, name, ref string) (digest.Digest, error) {
	if d, err := digest.Parse(ref); err == nil {
		if _, err := storage.StatFile(ctx, s.d, revisionLinkPath(name, d)); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return "", detailf(ErrManifestUnknown, ref, "%s", ref)
			}
			return "", err
		}
		return d, nil
	} else if strings.Contains(ref, ":") {
		return "", detailf(ErrDigestInvalid, ref, "invalid digest %q: %v", truncate(ref), err)
	}
	if err := ValidateTag(ref); err != nil {
		return "", err
	}
	d, err := s.readLink(ctx, tagCurrentLinkPath(name, ref))
	if errors.Is(err, storage.ErrNotFound) {
		return "", detailf(ErrManifestUnknown, ref, "manifest tagged %q not found", ref)
	}
	return d, err
}

// GetManifest returns the manifest ref (tag or digest) of repository name.
func (s *Store) GetManifest(ctx context.Context, name, ref string) (*Manifest, error) {
	d, err := s.Resolve(ctx, name, ref)
	if err != nil {
		return nil, err
	}
	return s.loadManifest(ctx, d)
}

func (s *Store) loadManifest(ctx context.Context, d digest.Digest) (*Manifest, error) {
	if m := s.manifests.get(d); m != nil {
		return m, nil
	}
	content, err := storage.GetContent(ctx, s.d, blobDataPath(d))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, detailf(ErrManifestUnknown, d, "%s: content missing", d)
	}
	if err != nil {
		return nil, err
	}
	if got := d.Algorithm().FromBytes(content); got != d {
		return nil, fmt.Errorf("stored manifest %s is corrupt (has digest %s)", d, got)
	}
	pm, err := ParseManifest("", content)
	if err != nil {
		return nil, fmt.Errorf("stored manifest %s: %w", d, err)
	}
	m := &Manifest{Digest: d, Content: content, ParsedManifest: pm}
	s.manifests.put(m)
	return m, nil
}

// PutResult tells what PutManifest stored.
type PutResult struct {
	Digest  digest.Digest
	Subject *ocispec.Descriptor
	Tags    []string
}

// PutManifest validates and stores a manifest in repository name under ref
// (a tag, or the digest the content must have) and under every tag in tags.
func (s *Store) PutManifest(ctx context.Context, name, ref, contentType string, body []byte, tags []string) (*PutResult, error) {
	var d digest.Digest
	if pd, err := digest.Parse(ref); err == nil {
		if got := pd.Algorithm().FromBytes(body); got != pd {
			return nil, detailf(ErrDigestInvalid, ref, "manifest has digest %s, not %s", got, pd)
		}
		d = pd
	} else if strings.Contains(ref, ":") {
		return nil, detailf(ErrDigestInvalid, ref, "invalid digest %q: %v", truncate(ref), err)
	} else {
		if err := ValidateTag(ref); err != nil {
			return nil, err
		}
		tags = append([]string{ref}, tags...)
		d = digest.SHA256.FromBytes(body)
	}
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
	}
	pm, err := ParseManifest(contentType, body)
	if err != nil {
		return nil, err
	}
	if err := s.checkReferences(ctx, name, pm); err != nil {
		return nil, err
	}
	// Content first, then the links that make it visible.
	if _, err := s.blobSize(ctx, d); errors.Is(err, ErrBlobUnknown) {
		if err := storage.PutContent(ctx, s.d, blobDataPath(d), body); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	s.sizes.put(d, int64(len(body)))
	s.manifests.put(&Manifest{Digest: d, Content: body, ParsedManifest: pm})
	if pm.Subject != nil {
		if err := s.writeLink(ctx, referrerLinkPath(name, pm.Subject.Digest, d), d); err != nil {
			return nil, err
		}
	}
	if err := s.writeLink(ctx, revisionLinkPath(name, d), d); err != nil {
		return nil, err
	}
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	for _, t := range tags {
		if err := s.writeLink(ctx, tagIndexLinkPath(name, t, d), d); err != nil {
			return nil, err
		}
		if err := s.writeLink(ctx, tagCurrentLinkPath(name, t), d); err != nil {
			return nil, err
		}
	}
	return &PutResult{Digest: d, Subject: pm.Subject, Tags: tags}, nil
}

// checkReferences makes sure everything a manifest points to is in the
// repository: blobs for an image (except non-distributable layers with
// URLs), manifests for an index. The subject may be missing.
func (s *Store) checkReferences(ctx context.Context, name string, pm *ParsedManifest) error {
	var descs []ocispec.Descriptor
	if pm.IsIndex() {
		descs = pm.Manifests
	} else {
		descs = append([]ocispec.Descriptor{*pm.Config}, pm.Layers...)
	}
	for _, desc := range descs {
		if len(desc.URLs) > 0 {
			continue
		}
		ok, err := s.linked(ctx, name, desc.Digest)
		if err != nil {
			return err
		}
		if !ok {
			return detailf(ErrManifestBlobUnknown, desc.Digest, "%s", desc.Digest)
		}
	}
	return nil
}

// DeleteManifest removes a manifest by digest (with every tag pointing to
// it) or a tag alone.
func (s *Store) DeleteManifest(ctx context.Context, name, ref string) error {
	if !s.opts.DeleteEnabled {
		return fmt.Errorf("%w: deletes are disabled", ErrUnsupported)
	}
	d, err := digest.Parse(ref)
	if err != nil {
		if strings.Contains(ref, ":") {
			return detailf(ErrDigestInvalid, ref, "invalid digest %q", truncate(ref))
		}
		if err := ValidateTag(ref); err != nil {
			return err
		}
		if _, err := storage.StatFile(ctx, s.d, tagCurrentLinkPath(name, ref)); errors.Is(err, storage.ErrNotFound) {
			return detailf(ErrManifestUnknown, ref, "tag %q not found", ref)
		} else if err != nil {
			return err
		}
		return s.d.Delete(ctx, tagPath(name, ref))
	}
	if _, err := storage.StatFile(ctx, s.d, revisionLinkPath(name, d)); errors.Is(err, storage.ErrNotFound) {
		return detailf(ErrManifestUnknown, ref, "%s", ref)
	} else if err != nil {
		return err
	}
	if m, err := s.loadManifest(ctx, d); err == nil && m.Subject != nil {
		if err := s.d.Delete(ctx, path.Dir(referrerLinkPath(name, m.Subject.Digest, d))); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	tags, err := s.Tags(ctx, name)
	if err != nil && !errors.Is(err, ErrNameUnknown) {
		return err
	}
	for _, t := range tags {
		cur, err := s.readLink(ctx, tagCurrentLinkPath(name, t))
		if err == nil && cur == d {
			if err := s.d.Delete(ctx, tagPath(name, t)); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
	}
	if err := s.d.Delete(ctx, revisionLinkDir(name, d)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// Tags lists the tags of repository name, sorted.
func (s *Store) Tags(ctx context.Context, name string) ([]string, error) {
	paths, err := s.d.List(ctx, tagsPath(name))
	if errors.Is(err, storage.ErrNotFound) {
		if _, err := s.d.Stat(ctx, manifestsPath(name)); err == nil {
			return []string{}, nil
		}
		return nil, detailf(ErrNameUnknown, name, "repository %q not known", name)
	}
	if err != nil {
		return nil, err
	}
	tags := make([]string, 0, len(paths))
	for _, p := range paths {
		tags = append(tags, path.Base(p))
	}
	slices.Sort(tags)
	return tags, nil
}

// Referrers lists the manifests in repository name whose subject is d,
// keeping only those of artifactType when it is not empty.
func (s *Store) Referrers(ctx context.Context, name string, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	out := []ocispec.Descriptor{}
	dir := referrersDir(name, subject)
	algs, err := s.d.List(ctx, dir)
	if errors.Is(err, storage.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, alg := range algs {
		hexes, err := s.d.List(ctx, alg)
		if err != nil {
			continue
		}
		for _, h := range hexes {
			d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(alg)), path.Base(h))
			if d.Validate() != nil {
				continue
			}
			// A referrer deleted by a registry that does not know this
			// index leaves its link behind: check the revision too.
			if _, err := storage.StatFile(ctx, s.d, revisionLinkPath(name, d)); err != nil {
				continue
			}
			m, err := s.loadManifest(ctx, d)
			if err != nil {
				continue
			}
			desc := m.Descriptor(d, int64(len(m.Content)))
			if artifactType != "" && desc.ArtifactType != artifactType {
				continue
			}
			out = append(out, desc)
		}
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return out, nil
}

// Catalog lists every repository that has manifests, sorted.
func (s *Store) Catalog(ctx context.Context) ([]string, error) {
	var repos []string
	var walk func(dir, name string) error
	walk = func(dir, name string) error {
		children, err := s.d.List(ctx, dir)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		}
		for _, c := range children {
			base := path.Base(c)
			if base == "_manifests" && name != "" {
				repos = append(repos, name)
				continue
			}
			if strings.HasPrefix(base, "_") {
				continue
			}
			sub := base
			if name != "" {
				sub = name + "/" + base
			}
			if err := walk(c, sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(path.Join(rootPath, "repositories"), ""); err != nil {
		return nil, err
	}
	slices.Sort(repos)
	return repos, nil
}
