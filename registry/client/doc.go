// Package client is Berth's one HTTP client of the OCI distribution API. It
// is used by pull-run to pull and push images from and to any registry:
// Berth itself, registry:2, Docker Hub, GHCR, Quay, ECR and others.
//
// It provides:
//
//   - reference parsing with github.com/distribution/reference
//     (ParseReference, ParseRepository);
//   - scheme selection: HTTPS by default, plain HTTP for loopback hosts and
//     for registries listed in Options.Insecure;
//   - authentication: anonymous, Basic and Bearer token challenges (with
//     per-scope token caching), with credentials from a CredentialStore
//     (FileStore for pull-run's own file and Docker's config.json,
//     ChainStore to combine them);
//   - retries with exponential backoff and jitter for connection errors,
//     429 (honouring Retry-After) and 502/503/504;
//   - redirects to blob storage followed without forwarding credentials to
//     another host;
//   - manifests (OCI image manifest and index, Docker schema2 manifest and
//     manifest list) with size limits, media type and digest checks;
//   - blobs with ranged, resumable downloads, a VerifyingReader that checks
//     size and digest while streaming, monolithic and chunked uploads with
//     resume, and cross-repository mounts;
//   - tag and catalog listings with Link pagination.
//
// Errors returned by the registry are *Error values (use errors.As) that
// match ErrNotFound, ErrUnauthorized and ErrDenied with errors.Is; every error
// names the reference it is about.
package client
