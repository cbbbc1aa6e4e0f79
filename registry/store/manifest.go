package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry accepts.
const (
	MediaTypeOCIManifest        = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex           = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// MaxManifestSize is the largest manifest accepted (4 MiB, as registry:2 and
// the OCI spec's recommendation).
const MaxManifestSize = 4 << 20

// ParsedManifest is what the registry needs to know of a manifest.
type ParsedManifest struct {
	MediaType    string
	ArtifactType string
	Config       *ocispec.Descriptor
	Layers       []ocispec.Descriptor
	Manifests    []ocispec.Descriptor
	Subject      *ocispec.Descriptor
	Annotations  map[string]string
}

// IsIndex reports whether the manifest lists other manifests.
func (m *ParsedManifest) IsIndex() bool {
	return m.MediaType == MediaTypeOCIIndex || m.MediaType == MediaTypeDockerManifestList
}

// Descriptor returns the descriptor the referrers API lists for this manifest.
func (m *ParsedManifest) Descriptor(d digest.Digest, size int64) ocispec.Descriptor {
	at := m.ArtifactType
	if at == "" && m.Config != nil && !m.IsIndex() {
		at = m.Config.MediaType
	}
	return ocispec.Descriptor{MediaType: m.MediaType, ArtifactType: at, Digest: d, Size: size, Annotations: m.Annotations}
}

type rawManifest struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
	FSLayers      json.RawMessage      `json:"fsLayers"`
}

func knownManifestType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return true
	}
	return false
}

// ParseManifest validates a manifest body sent with Content-Type contentType
// (may be empty) and returns its parsed form. It checks the JSON, the schema
// version, the media type (body and header must agree) and every descriptor's
// digest and size; it does not look at storage.
func ParseManifest(contentType string, body []byte) (*ParsedManifest, error) {
	if len(body) > MaxManifestSize {
		return nil, detailf(ErrTooLarge, len(body), "manifest is %d bytes, limit is %d", len(body), MaxManifestSize)
	}
	var raw rawManifest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, detailf(ErrManifestInvalid, nil, "invalid JSON: %v", err)
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return nil, detailf(ErrManifestInvalid, nil, "trailing data after JSON object")
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		if raw.FSLayers != nil {
			return nil, detailf(ErrManifestInvalid, nil, "Docker schema 1 manifests are not supported")
		}
		return nil, detailf(ErrManifestInvalid, nil, "schemaVersion must be 2")
	}
	ct := contentType
	if i := bytes.IndexByte([]byte(ct), ';'); i >= 0 {
		ct = ct[:i]
	}
	mt := raw.MediaType
	switch {
	case mt != "" && ct != "" && knownManifestType(ct) && mt != ct:
		return nil, detailf(ErrManifestInvalid, nil, "mediaType %q does not match Content-Type %q", mt, ct)
	case mt == "" && knownManifestType(ct):
		mt = ct
	case mt == "" && raw.Manifests != nil:
		mt = MediaTypeOCIIndex
	case mt == "":
		mt = MediaTypeOCIManifest
	}
	if !knownManifestType(mt) {
		return nil, detailf(ErrManifestInvalid, mt, "unsupported manifest media type %q", mt)
	}
	m := &ParsedManifest{MediaType: mt, ArtifactType: raw.ArtifactType, Subject: raw.Subject, Annotations: raw.Annotations}
	if m.IsIndex() {
		if raw.Config != nil || raw.Layers != nil {
			return nil, detailf(ErrManifestInvalid, nil, "an index has no config or layers")
		}
		m.Manifests = raw.Manifests
		for i := range m.Manifests {
			if err := checkDescriptor(&m.Manifests[i], "manifests"); err != nil {
				return nil, err
			}
		}
	} else {
		if raw.Manifests != nil {
			return nil, detailf(ErrManifestInvalid, nil, "an image manifest has no manifests list")
		}
		if raw.Config == nil {
			return nil, detailf(ErrManifestInvalid, nil, "config descriptor missing")
		}
		if err := checkDescriptor(raw.Config, "config"); err != nil {
			return nil, err
		}
		m.Config = raw.Config
		m.Layers = raw.Layers
		for i := range m.Layers {
			if err := checkDescriptor(&m.Layers[i], "layers"); err != nil {
				return nil, err
			}
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(m.Subject, "subject"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func checkDescriptor(d *ocispec.Descriptor, field string) error {
	if err := d.Digest.Validate(); err != nil {
		return detailf(ErrManifestInvalid, d.Digest, "%s: invalid digest %q: %v", field, d.Digest, err)
	}
	if d.Size < 0 {
		return detailf(ErrManifestInvalid, d.Size, "%s: negative size", field)
	}
	return nil
}

// String describes the manifest for logs.
func (m *ParsedManifest) String() string {
	return fmt.Sprintf("%s (%d layers, %d manifests)", m.MediaType, len(m.Layers), len(m.Manifests))
}
