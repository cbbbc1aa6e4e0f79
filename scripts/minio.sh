#!/usr/bin/env bash
# Installs the MinIO server (used by storage/s3 tests and the e2e tier) into
# $TOOLS/minio (default <repo>/.cache/tools/bin/minio), built from the Go module proxy with
# `go install` at a pinned version. Idempotent: when the binary is there and reports the pinned
# version nothing is rebuilt. A build takes about two minutes on 2 cores.
#
# MinIO's server has no semver tags on the module proxy (its tags are RELEASE.* names), so the
# pin is the pseudo-version the proxy resolved for @latest when this was written.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$REPO_ROOT/.cache/tools/bin}"
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_COMMIT="${MINIO_VERSION##*-}" # 7aac2a2c5b7c

log() { printf 'minio.sh: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
	log "go not found in PATH"
	exit 1
fi
mkdir -p "$TOOLS"

installed_version() {
	# `go version -m` reads the module version the binary was built from.
	go version -m "$TOOLS/minio" 2>/dev/null | awk '$1 == "mod" && $2 == "'"$MINIO_MODULE"'" { print $3 }'
}

if [[ -x "$TOOLS/minio" && "$(installed_version)" == "$MINIO_VERSION" ]]; then
	log "minio present: $TOOLS/minio ($MINIO_MODULE@$MINIO_VERSION)"
else
	log "go install $MINIO_MODULE@$MINIO_VERSION -> $TOOLS/minio (takes a few minutes)"
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	# Build into a temporary GOBIN, then install atomically: an interrupted build never leaves
	# a half-written binary at $TOOLS/minio.
	GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$MINIO_MODULE@$MINIO_VERSION"
	install -m 0755 "$tmp/minio" "$TOOLS/minio.new"
	mv -f "$TOOLS/minio.new" "$TOOLS/minio"
	log "installed $TOOLS/minio"
fi

printf 'minio %s (%s@%s, commit %s)\n' "$TOOLS/minio" "$MINIO_MODULE" "$(installed_version)" "$MINIO_COMMIT"
"$TOOLS/minio" --version 2>/dev/null | head -n 1 || true
