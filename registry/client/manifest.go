package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize is the largest manifest the client reads or pushes (4 MiB,
// as registries enforce).
const MaxManifestSize = 4 << 20

// Docker media types for manifests (the OCI ones are in ocispec).
const (
	// MediaTypeDockerManifest is a Docker image manifest, schema 2.
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// MediaTypeDockerManifestList is a Docker manifest list (multi-platform).
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// ManifestMediaTypes are the manifest media types the client accepts, in
// the order of the Accept header.
var ManifestMediaTypes = []string{
	ocispec.MediaTypeImageIndex,
	MediaTypeDockerManifestList,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifest,
}

var acceptManifests = strings.Join(ManifestMediaTypes, ", ")

// IsIndex reports whether mediaType is a multi-platform index (OCI index or
// Docker manifest list).
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifest reports whether mediaType is a single-platform image manifest
// (OCI or Docker schema 2).
func IsManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerManifest
}

func manifestPath(ref Reference) string {
	return "/v2/" + ref.Repository + "/manifests/" + ref.Identifier()
}

// GetManifest fetches the manifest named by ref (by digest when ref has one,
// else by tag) and returns its descriptor (media type, digest, size) and
// body. It asks for the four manifest media types of ManifestMediaTypes and
// refuses anything else; it checks that the body is JSON and not larger than
// MaxManifestSize; it verifies the body against ref.Digest, or computes the
// digest of a tag's manifest and checks it against the Docker-Content-Digest
// header when present. Errors name ref and say what the registry returned.
func (c *Client) GetManifest(ctx context.Context, ref Reference) (ocispec.Descriptor, []byte, error) {
	if err := ref.validate(); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	const op = "fetching manifest"
	name := ref.String()
	resp, err := c.do(ctx, &request{
		method: http.MethodGet, registry: ref.Registry, target: manifestPath(ref),
		header: http.Header{"Accept": {acceptManifests}},
		scopes: []string{repoScope(ref.Repository, false)}, op: op, ref: name,
	})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if err := expectStatus(resp, op, name, http.StatusOK); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s %s: %w: the manifest is %d bytes, more than the limit of %d bytes (4 MiB)",
			op, name, ErrTooLarge, resp.ContentLength, MaxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s %s: reading body: %w", op, name, err)
	}
	if len(body) > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s %s: %w: the manifest is more than the limit of %d bytes (4 MiB)",
			op, name, ErrTooLarge, MaxManifestSize)
	}
	mt, err := manifestMediaType(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	d, err := manifestDigest(ref, body, resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}, body, nil
}

// ResolveManifest resolves ref to its manifest: it is GetManifest (one GET,
// which both resolves a tag to a digest and fetches the body to verify).
func (c *Client) ResolveManifest(ctx context.Context, ref Reference) (ocispec.Descriptor, []byte, error) {
	return c.GetManifest(ctx, ref)
}

// manifestDigest verifies body against ref.Digest, or computes its digest
// and checks the registry's Docker-Content-Digest header.
func manifestDigest(ref Reference, body []byte, header string) (digest.Digest, error) {
	if ref.Digest != "" {
		alg := ref.Digest.Algorithm()
		if !alg.Available() {
			return "", fmt.Errorf("%w: digest algorithm %q is not supported", ErrDigestMismatch, alg)
		}
		if got := alg.FromBytes(body); got != ref.Digest {
			return "", fmt.Errorf("%w: the registry returned a manifest with digest %s, expected %s", ErrDigestMismatch, got, ref.Digest)
		}
		return ref.Digest, nil
	}
	d := digest.SHA256.FromBytes(body)
	if header = strings.TrimSpace(header); header != "" {
		hd, err := digest.Parse(header)
		if err != nil {
			return "", fmt.Errorf("%w: invalid Docker-Content-Digest header %q", ErrInvalidResponse, sanitize(header, 100))
		}
		if hd.Algorithm() != digest.SHA256 && hd.Algorithm().Available() {
			d = hd.Algorithm().FromBytes(body)
		}
		if hd != d {
			return "", fmt.Errorf("%w: the manifest's digest is %s but the registry's Docker-Content-Digest says %s", ErrDigestMismatch, d, hd)
		}
	}
	return d, nil
}

// genericContentTypes are content types that do not name a manifest type;
// with them the body's own mediaType or its shape decides.
var genericContentTypes = []string{"", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream"}

// manifestMediaType decides the media type of a manifest body and refuses
// what is not one of ManifestMediaTypes (or not JSON at all).
func manifestMediaType(contentType string, body []byte) (string, error) {
	ct, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		ct = strings.ToLower(strings.TrimSpace(contentType))
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		d := describeBody(contentType, body)
		if d == "" {
			d = "an empty body"
		}
		return "", fmt.Errorf("%w: expected a JSON manifest, got %s", ErrInvalidResponse, d)
	}
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		Layers        json.RawMessage `json:"layers"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return "", fmt.Errorf("%w: the manifest is not a JSON object: %v", ErrInvalidResponse, err)
	}
	known := func(s string) bool { return slices.Contains(ManifestMediaTypes, s) }
	unsupported := func(s string) error {
		return fmt.Errorf("%w: the registry returned a manifest of type %q; supported are %s",
			ErrUnsupportedMediaType, sanitize(s, 100), strings.Join(ManifestMediaTypes, ", "))
	}
	switch {
	case probe.MediaType != "":
		if !known(probe.MediaType) {
			return "", unsupported(probe.MediaType)
		}
		return probe.MediaType, nil
	case known(ct):
		return ct, nil
	case probe.SchemaVersion == 1 || probe.FSLayers != nil:
		return "", fmt.Errorf("%w: the registry returned a Docker schema 1 manifest (%s), which is not supported",
			ErrUnsupportedMediaType, sanitize(ct, 100))
	case !slices.Contains(genericContentTypes, ct):
		return "", unsupported(ct)
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case probe.Config != nil && probe.Layers != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("%w: the registry returned JSON of type %q that is not a manifest", ErrUnsupportedMediaType, sanitize(ct, 100))
}

// HeadManifest resolves ref with a HEAD request: media type, digest and size
// without the body. When the registry's answer lacks the digest, a known
// media type or the size, it falls back to GetManifest.
func (c *Client) HeadManifest(ctx context.Context, ref Reference) (ocispec.Descriptor, error) {
	if err := ref.validate(); err != nil {
		return ocispec.Descriptor{}, err
	}
	const op = "resolving manifest"
	name := ref.String()
	resp, err := c.do(ctx, &request{
		method: http.MethodHead, registry: ref.Registry, target: manifestPath(ref),
		header: http.Header{"Accept": {acceptManifests}},
		scopes: []string{repoScope(ref.Repository, false)}, op: op, ref: name,
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := expectStatus(resp, op, name, http.StatusOK); err != nil {
		return ocispec.Descriptor{}, err
	}
	resp.Body.Close()
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	size := resp.ContentLength
	if size < 0 {
		if s, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
			size = s
		}
	}
	var d digest.Digest
	if h := strings.TrimSpace(resp.Header.Get("Docker-Content-Digest")); h != "" {
		hd, err := digest.Parse(h)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w: invalid Docker-Content-Digest header %q", op, name, ErrInvalidResponse, sanitize(h, 100))
		}
		d = hd
	}
	if ref.Digest != "" {
		if d != "" && d != ref.Digest && d.Algorithm() == ref.Digest.Algorithm() {
			return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w: the registry says the manifest's digest is %s", op, name, ErrDigestMismatch, d)
		}
		d = ref.Digest
	}
	if d == "" || size < 0 || !slices.Contains(ManifestMediaTypes, ct) {
		desc, _, err := c.GetManifest(ctx, ref)
		return desc, err
	}
	if size > MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w: the manifest is %d bytes, more than the limit of %d bytes (4 MiB)",
			op, name, ErrTooLarge, size, MaxManifestSize)
	}
	return ocispec.Descriptor{MediaType: ct, Digest: d, Size: size}, nil
}

// PutManifest pushes a manifest of mediaType under ref (its tag, or its
// digest which must match body) and returns its descriptor. The blobs and
// manifests it refers to must already be in the repository.
func (c *Client) PutManifest(ctx context.Context, ref Reference, mediaType string, body []byte) (ocispec.Descriptor, error) {
	if err := ref.validate(); err != nil {
		return ocispec.Descriptor{}, err
	}
	const op = "pushing manifest"
	name := ref.String()
	if len(body) > MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w: the manifest is %d bytes, more than the limit of %d bytes (4 MiB)",
			op, name, ErrTooLarge, len(body), MaxManifestSize)
	}
	if mediaType == "" {
		return ocispec.Descriptor{}, fmt.Errorf("%s %s: media type required", op, name)
	}
	d := digest.SHA256.FromBytes(body)
	if ref.Digest != "" {
		var err error
		if d, err = manifestDigest(ref, body, ""); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w", op, name, err)
		}
	}
	resp, err := c.do(ctx, &request{
		method: http.MethodPut, registry: ref.Registry, target: manifestPath(ref),
		header: http.Header{"Content-Type": {mediaType}}, body: body,
		scopes: []string{repoScope(ref.Repository, true)}, op: op, ref: name,
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := expectStatus(resp, op, name, http.StatusCreated, http.StatusOK, http.StatusAccepted, http.StatusNoContent); err != nil {
		return ocispec.Descriptor{}, err
	}
	drain(resp)
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		if hd, err := digest.Parse(h); err == nil && hd.Algorithm() == d.Algorithm() && hd != d {
			return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w: the registry stored digest %s, the manifest's is %s", op, name, ErrDigestMismatch, hd, d)
		}
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body))}, nil
}
