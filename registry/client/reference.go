package client

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// DockerHub is the registry name of Docker Hub in references.
const DockerHub = "docker.io"

// dockerHubAPIHost is the host serving Docker Hub's distribution API.
const dockerHubAPIHost = "registry-1.docker.io"

// Reference names an image (or just a repository) in a registry.
type Reference struct {
	// Registry is the registry host, with an optional port: "docker.io",
	// "ghcr.io", "127.0.0.1:5000".
	Registry string
	// Repository is the repository path inside the registry, e.g.
	// "library/busybox".
	Repository string
	// Tag is the tag, empty when the reference has only a digest or is a
	// bare repository.
	Tag string
	// Digest is the manifest digest, empty when the reference is by tag.
	// When both Tag and Digest are set, the digest is what is fetched.
	Digest digest.Digest
}

// ParseReference parses an image reference as Docker does
// (reference.ParseDockerRef semantics): the registry defaults to docker.io,
// single-component Docker Hub names get the "library/" prefix, and a
// reference with neither tag nor digest gets the tag "latest":
//
//	busybox                      → docker.io/library/busybox:latest
//	127.0.0.1:5000/a/b:tag       → 127.0.0.1:5000/a/b:tag
//	host/x@sha256:…              → host/x@sha256:…
//
// Unlike ParseDockerRef, a reference with both a tag and a digest keeps the
// tag (for display and local naming); the digest is what is fetched.
func ParseReference(s string) (Reference, error) {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(s))
	if err != nil {
		return Reference{}, fmt.Errorf("invalid reference %q: %w", s, err)
	}
	named = reference.TagNameOnly(named)
	r := Reference{Registry: reference.Domain(named), Repository: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
	}
	return r, nil
}

// ParseRepository parses a repository name without tag or digest, with the
// same normalisation as ParseReference ("busybox" → docker.io/library/busybox).
// It is what Tags, FetchBlob and PushBlob need.
func ParseRepository(s string) (Reference, error) {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(s))
	if err != nil {
		return Reference{}, fmt.Errorf("invalid repository %q: %w", s, err)
	}
	if !reference.IsNameOnly(named) {
		return Reference{}, fmt.Errorf("invalid repository %q: has a tag or digest", s)
	}
	return Reference{Registry: reference.Domain(named), Repository: reference.Path(named)}, nil
}

// Name returns registry/repository, e.g. "docker.io/library/busybox".
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String returns the full reference: registry/repository[:tag][@digest].
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar returns the short form Docker shows ("busybox:latest" for
// docker.io/library/busybox:latest); other registries are kept.
func (r Reference) Familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}

// Identifier returns what names the manifest in the API path: the digest
// when set, else the tag ("latest" when neither is set).
func (r Reference) Identifier() string {
	switch {
	case r.Digest != "":
		return r.Digest.String()
	case r.Tag != "":
		return r.Tag
	default:
		return "latest"
	}
}

// WithDigest returns a copy of r pinned to d (the tag is kept).
func (r Reference) WithDigest(d digest.Digest) Reference {
	r.Digest = d
	return r
}

// WithTag returns a copy of r with tag t and no digest.
func (r Reference) WithTag(t string) Reference {
	r.Tag, r.Digest = t, ""
	return r
}

// Repo returns r without tag and digest.
func (r Reference) Repo() Reference { return Reference{Registry: r.Registry, Repository: r.Repository} }

// validate checks r before it is used to build a URL.
func (r Reference) validate() error {
	if r.Registry == "" || r.Repository == "" {
		return fmt.Errorf("invalid reference %q: registry and repository are required", r.String())
	}
	named, err := reference.WithName(r.Registry + "/" + r.Repository)
	if err != nil {
		return fmt.Errorf("invalid reference %q: %w", r.String(), err)
	}
	if reference.Domain(named) != r.Registry {
		return fmt.Errorf("invalid reference %q: registry %q is not a host name", r.String(), r.Registry)
	}
	if r.Tag != "" {
		if _, err := reference.WithTag(named, r.Tag); err != nil {
			return fmt.Errorf("invalid reference %q: %w", r.String(), err)
		}
	}
	if r.Digest != "" {
		if err := r.Digest.Validate(); err != nil {
			return fmt.Errorf("invalid reference %q: %w", r.String(), err)
		}
	}
	return nil
}

// NormalizeRegistry turns what a user may type for a registry ("docker.io",
// "index.docker.io", "https://index.docker.io/v1/", "HOST:5000/") into the
// registry name used in references and credential stores.
func NormalizeRegistry(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	s = strings.ToLower(s)
	switch s {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return DockerHub
	}
	return s
}

// apiHost maps a registry name to the host that serves its API.
func apiHost(registry string) string {
	if registry == DockerHub {
		return dockerHubAPIHost
	}
	return registry
}
