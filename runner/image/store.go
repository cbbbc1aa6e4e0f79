package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-registry/berth/registry/client"
	"github.com/berth-registry/berth/runner/internal/atomicfile"
	"github.com/berth-registry/berth/runner/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"
)

// Errors of the store (wrapped; test with errors.Is).
var (
	// ErrNotFound: no image matches the reference or ID ("No such image: …").
	ErrNotFound = errors.New("no such image")
	// ErrAmbiguous: a short ID matches several images.
	ErrAmbiguous = errors.New("ambiguous image ID")
	// ErrConflict: the image cannot be removed without force (used by a container, or
	// referenced in several repositories when removed by ID).
	ErrConflict = errors.New("conflict")
	// ErrNoMatchingPlatform: an index has no manifest for the requested platform.
	ErrNoMatchingPlatform = errors.New("no matching manifest for platform")
	// ErrNotImage: the manifest is not a container image (unknown config type, bad rootfs).
	ErrNotImage = errors.New("not a container image")
	// ErrDiffIDMismatch: an unpacked layer does not match the DiffID of the image config.
	ErrDiffIDMismatch = errors.New("layer DiffID mismatch")
)

// Options configure a Store.
type Options struct {
	// InUse reports whether a container uses the image; such an image is not removed
	// without force, and never pruned. nil: no container uses any image.
	InUse func(imageID digest.Digest) (bool, error)
	// Snapshots is the snapshot store layers are unpacked into; nil opens
	// <state root>/snapshots (and Close closes it).
	Snapshots *snapshot.Store
	// SnapshotOptions are used when the store opens the snapshot store itself.
	SnapshotOptions snapshot.StoreOptions
}

// Store is the local image store of one state root. It is safe for concurrent use by
// goroutines and by processes.
type Store struct {
	stateRoot string
	root      string
	snaps     *snapshot.Store
	ownSnaps  bool
	opts      Options
	flight    singleflight.Group
}

// Layer is one layer of an image.
type Layer struct {
	// Descriptor is the compressed blob as the manifest lists it.
	ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar (the config's rootfs.diff_ids[i]).
	DiffID digest.Digest `json:"diffID"`
	// ChainID keys the layer's snapshot (snapshot.ChainID of the DiffIDs up to this one).
	ChainID digest.Digest `json:"chainID"`
	// UnpackedSize is the size of the layer's file contents once unpacked.
	UnpackedSize int64 `json:"unpackedSize"`
	// Sources are the repositories ("registry/repository") the compressed blob was pulled
	// from, where a push can fetch it again.
	Sources []string `json:"sources,omitempty"`
}

// Image is an image record.
type Image struct {
	// ID is the image ID: the digest of its config.
	ID digest.Digest `json:"id"`
	// Manifest is the single-platform manifest the image was last pulled by.
	Manifest ocispec.Descriptor `json:"manifest"`
	// Index is the index (manifest list) the manifest was picked from, if any.
	Index *ocispec.Descriptor `json:"index,omitempty"`
	// Config is the config blob's descriptor.
	Config ocispec.Descriptor `json:"config"`
	// Platform is the image's platform (from its config).
	Platform ocispec.Platform `json:"platform"`
	// Created is the config's creation time (zero when it has none).
	Created time.Time `json:"created"`
	// Layers are the layers, bottom first.
	Layers []Layer `json:"layers"`
	// Size is the unpacked size of all layers.
	Size int64 `json:"size"`
	// LastTagTime is when a reference was last set to this image.
	LastTagTime time.Time `json:"lastTagTime"`

	// RepoTags are the image's tag references ("registry/repo:tag"), sorted. Not stored in
	// the record: derived from the references.
	RepoTags []string `json:"-"`
	// RepoDigests are the image's digest references ("registry/repo@sha256:…"), sorted.
	RepoDigests []string `json:"-"`
	// PullInfo is set on the image returned by Pull.
	PullInfo *PullInfo `json:"-"`
}

// PullInfo tells what a Pull did.
type PullInfo struct {
	// Reference is the reference pulled, normalised ("docker.io/library/busybox:latest").
	Reference string
	// Digest is the digest the reference resolved to (an index's when it names one).
	Digest digest.Digest
	// Downloaded is the number of layers fetched and unpacked by this pull.
	Downloaded int
	// Updated is true when layers were downloaded or a reference was added or moved:
	// Docker's "Downloaded newer image" rather than "Image is up to date".
	Updated bool
}

// ChainIDs returns the chain IDs of the image's layers, bottom first.
func (img *Image) ChainIDs() []digest.Digest {
	out := make([]digest.Digest, len(img.Layers))
	for i, l := range img.Layers {
		out[i] = l.ChainID
	}
	return out
}

// DiffIDs returns the DiffIDs of the image's layers, bottom first.
func (img *Image) DiffIDs() []digest.Digest {
	out := make([]digest.Digest, len(img.Layers))
	for i, l := range img.Layers {
		out[i] = l.DiffID
	}
	return out
}

// ShortID returns the first 12 hex digits of the image ID, as Docker shows it.
func (img *Image) ShortID() string { return ShortDigest(img.ID) }

// ShortDigest returns the first 12 hex digits of d's encoded part.
func ShortDigest(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// Open opens (creating it if needed) the image store of the state root stateRoot
// (<stateRoot>/image, with snapshots in <stateRoot>/snapshots).
func Open(stateRoot string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(stateRoot)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(abs, "image")
	for _, d := range []string{abs, root, filepath.Join(root, "imagedb", "sha256"), filepath.Join(root, "content", "sha256"), filepath.Join(root, "leases")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	s := &Store{stateRoot: abs, root: root, opts: opts, snaps: opts.Snapshots}
	if s.snaps == nil {
		s.snaps, err = snapshot.OpenStore(filepath.Join(abs, "snapshots"), opts.SnapshotOptions)
		if err != nil {
			return nil, err
		}
		s.ownSnaps = true
	}
	return s, nil
}

// Close releases the snapshot store when Open opened it.
func (s *Store) Close() error {
	if s.ownSnaps {
		return s.snaps.Close()
	}
	return nil
}

// Root returns the image store's directory (<state root>/image).
func (s *Store) Root() string { return s.root }

// StateRoot returns the state root.
func (s *Store) StateRoot() string { return s.stateRoot }

// Snapshots returns the snapshot store.
func (s *Store) Snapshots() *snapshot.Store { return s.snaps }

// AuthFile returns the credentials file of `pull-run login`: <state root>/auth.json.
func (s *Store) AuthFile() string { return filepath.Join(s.stateRoot, "auth.json") }

// registryClient is c, or without one a client with creds (nil: the state root's auth
// file, see AuthFile) that reaches the insecure registries over plain HTTP.
func (s *Store) registryClient(c *client.Client, creds client.CredentialStore, insecure []string) *client.Client {
	if c != nil {
		return c
	}
	if creds == nil {
		creds = client.DefaultCredentials(s.AuthFile())
	}
	return client.New(client.Options{Credentials: creds, Insecure: insecure})
}

// ---------------------------------------------------------------------------------------------
// locking and files

// lock takes the store lock, shared or exclusive, and returns its release. Each call opens
// its own descriptor, so the lock also excludes other goroutines of this process.
func (s *Store) lock(exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image store: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600, false)
}

// contentPath returns the path of a content blob.
func (s *Store) contentPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("invalid digest %q: %w", d, err)
	}
	return filepath.Join(s.root, "content", d.Algorithm().String(), d.Encoded()), nil
}

// putContent stores b under d after checking that it matches.
func (s *Store) putContent(d digest.Digest, b []byte) error {
	p, err := s.contentPath(d)
	if err != nil {
		return err
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return fmt.Errorf("content %s: %w: the bytes have digest %s", d, client.ErrDigestMismatch, got)
	}
	if st, err := os.Stat(p); err == nil && st.Size() == int64(len(b)) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, b, 0o600, false)
}

// Content returns a stored manifest, index or config, verified against its digest.
func (s *Store) Content(d digest.Digest) ([]byte, error) {
	p, err := s.contentPath(d)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("content %s: %w", d, fs.ErrNotExist)
		}
		return nil, err
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return nil, fmt.Errorf("content %s is corrupt on disk (digest %s)", d, got)
	}
	return b, nil
}

func (s *Store) recordPath(id digest.Digest) string {
	return filepath.Join(s.root, "imagedb", id.Algorithm().String(), id.Encoded()+".json")
}

func (s *Store) refsPath() string { return filepath.Join(s.root, "repositories.json") }

// ---------------------------------------------------------------------------------------------
// state

// refsFile is repositories.json, in Docker's shape.
type refsFile struct {
	Repositories map[string]map[string]digest.Digest `json:"Repositories"`
}

// state is everything read from disk under the lock.
type state struct {
	refs   refsFile
	images map[digest.Digest]*Image
}

// load reads the references and image records. References to missing records are dropped
// from the view (and from the file at the next write).
func (s *Store) load() (*state, error) {
	st := &state{refs: refsFile{Repositories: map[string]map[string]digest.Digest{}}, images: map[digest.Digest]*Image{}}
	b, err := os.ReadFile(s.refsPath())
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st.refs); err != nil {
			return nil, fmt.Errorf("image store: %s: %w", s.refsPath(), err)
		}
		if st.refs.Repositories == nil {
			st.refs.Repositories = map[string]map[string]digest.Digest{}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("image store: %w", err)
	}
	dir := filepath.Join(s.root, "imagedb", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, e := range ents {
		hex, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("image store: %w", err)
		}
		var img Image
		if err := json.Unmarshal(b, &img); err != nil || img.ID != digest.NewDigestFromEncoded(digest.SHA256, hex) {
			return nil, fmt.Errorf("image store: corrupt image record %s", filepath.Join(dir, e.Name()))
		}
		st.images[img.ID] = &img
	}
	for name, m := range st.refs.Repositories {
		for ref, id := range m {
			img, ok := st.images[id]
			if !ok {
				delete(m, ref)
				continue
			}
			if strings.Contains(ref, "@") {
				img.RepoDigests = append(img.RepoDigests, ref)
			} else {
				img.RepoTags = append(img.RepoTags, ref)
			}
		}
		if len(m) == 0 {
			delete(st.refs.Repositories, name)
		}
	}
	for _, img := range st.images {
		slices.Sort(img.RepoTags)
		slices.Sort(img.RepoDigests)
	}
	return st, nil
}

// refsOf returns every reference (tags and digests) of image id.
func (st *state) refsOf(id digest.Digest) []string {
	var out []string
	for _, m := range st.refs.Repositories {
		for ref, v := range m {
			if v == id {
				out = append(out, ref)
			}
		}
	}
	slices.Sort(out)
	return out
}

// setRef points ref (normalised) at id and reports whether that changed anything.
func (st *state) setRef(ref client.Reference, refString string, id digest.Digest) bool {
	name := ref.Name()
	m := st.refs.Repositories[name]
	if m == nil {
		m = map[string]digest.Digest{}
		st.refs.Repositories[name] = m
	}
	if m[refString] == id {
		return false
	}
	m[refString] = id
	return true
}

// deleteRef removes a reference; false when it did not exist.
func (st *state) deleteRef(ref string) bool {
	name := refName(ref)
	m := st.refs.Repositories[name]
	if _, ok := m[ref]; !ok {
		return false
	}
	delete(m, ref)
	if len(m) == 0 {
		delete(st.refs.Repositories, name)
	}
	return true
}

// refName returns the repository part of a normalised reference string.
func refName(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

func (s *Store) writeRefs(st *state) error {
	return writeJSONAtomic(s.refsPath(), st.refs)
}

func (s *Store) writeRecord(img *Image) error {
	return writeJSONAtomic(s.recordPath(img.ID), img)
}

// withState runs f with the loaded state under the lock.
func (s *Store) withState(exclusive bool, f func(*state) error) error {
	unlock, err := s.lock(exclusive)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.load()
	if err != nil {
		return err
	}
	return f(st)
}

// ---------------------------------------------------------------------------------------------
// queries

// Images returns every image, the most recently created first.
func (s *Store) Images() ([]*Image, error) {
	var out []*Image
	err := s.withState(false, func(st *state) error {
		for _, img := range st.images {
			out = append(out, img)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *Image) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(string(a.ID), string(b.ID))
	})
	return out, err
}

// Lookup finds an image by reference ("busybox", "host:5000/a/b:tag", "name@sha256:…"), by
// image ID ("sha256:<hex>", "<hex>") or by a unique prefix of its ID (Docker's short IDs).
// Errors wrap ErrNotFound or ErrAmbiguous.
func (s *Store) Lookup(ref string) (*Image, error) {
	var img *Image
	err := s.withState(false, func(st *state) error {
		var err error
		img, _, err = st.lookup(ref)
		return err
	})
	return img, err
}

// lookup resolves ref; matched is the normalised reference string when ref named the image
// by reference, "" when by ID.
func (st *state) lookup(ref string) (img *Image, matched string, err error) {
	ref = strings.TrimSpace(ref)
	notFound := fmt.Errorf("%w: %s", ErrNotFound, ref)
	if ref == "" {
		return nil, "", notFound
	}
	if hex, ok := strings.CutPrefix(ref, "sha256:"); ok {
		return st.lookupID(ref, hex)
	}
	if r, perr := client.ParseReference(ref); perr == nil {
		key := r.String()
		if id, ok := st.refs.Repositories[r.Name()][key]; ok {
			if img := st.images[id]; img != nil {
				return img, key, nil
			}
		}
	}
	if isHex(ref) {
		return st.lookupID(ref, ref)
	}
	return nil, "", notFound
}

func (st *state) lookupID(ref, hex string) (*Image, string, error) {
	if !isHex(hex) || hex == "" {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	var found *Image
	for id, img := range st.images {
		if strings.HasPrefix(id.Encoded(), hex) {
			if found != nil {
				return nil, "", fmt.Errorf("%w: multiple IDs found with provided prefix: %s", ErrAmbiguous, ref)
			}
			found = img
		}
	}
	if found == nil {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return found, "", nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// ConfigOf returns the image's config (parsed) and its bytes, from the content store.
func (s *Store) ConfigOf(img *Image) (*ocispec.Image, []byte, error) {
	b, err := s.Content(img.Config.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: config: %w", img.ShortID(), err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, nil, fmt.Errorf("image %s: config: %w", img.ShortID(), err)
	}
	return &cfg, b, nil
}

// LowerPaths returns the image's snapshot directories top layer first, as
// snapshot.MountOverlay takes them.
func (s *Store) LowerPaths(img *Image) ([]string, error) {
	return s.snaps.LowerPaths(img.ChainIDs())
}

// Tag adds the tag reference target ("name[:tag]", normalised as ParseReference does) to
// the image source (anything Lookup takes), moving the tag if it named another image.
func (s *Store) Tag(source, target string) error {
	r, err := client.ParseReference(target)
	if err != nil {
		return err
	}
	if r.Digest != "" {
		return fmt.Errorf("refusing to create a tag with a digest reference: %s", target)
	}
	return s.withState(true, func(st *state) error {
		img, _, err := st.lookup(source)
		if err != nil {
			return err
		}
		if !st.setRef(r, r.String(), img.ID) {
			return nil
		}
		if err := s.writeRefs(st); err != nil {
			return err
		}
		img.LastTagTime = time.Now().UTC()
		return s.writeRecord(img)
	})
}
