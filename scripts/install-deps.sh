#!/usr/bin/env bash
# Installs what the e2e tier (go test -tags e2e ./e2e/) needs on a Debian 12 machine, as root:
#   - Debian packages: docker.io podman skopeo docker-registry busybox-static runc jq, and for
#     the network tests iptables nftables iproute2 curl
#   - crane (go-containerregistry) and the OCI distribution-spec conformance suite, built from
#     the Go module proxy into $TOOLS (default <repo>/.cache/tools/bin).
# Idempotent: only what is missing is installed, so a second run takes well under a second.
# It never starts dockerd: the e2e tests start it themselves when `docker info` fails.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$REPO_ROOT/.cache/tools/bin}"

CRANE_VERSION="v0.22.1"
CONFORMANCE_MODULE="github.com/opencontainers/distribution-spec/conformance"
CONFORMANCE_VERSION="v0.0.0-20260831232431-97274622c111"

APT_PACKAGES=(docker.io podman skopeo docker-registry busybox-static runc jq iptables nftables iproute2 curl)

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
	log "must run as root (apt-get install)"
	exit 1
fi

# --- Debian packages -------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
	# (no `dpkg | grep -q`: with pipefail, grep closing the pipe early fails the pipeline)
	status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} > 0)); then
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# policy-rc.d 101: do not let the packages' maintainer scripts start dockerd & co.
	policy=/usr/sbin/policy-rc.d
	created_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		created_policy=1
	fi
	trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	if [[ $created_policy == 1 ]]; then rm -f "$policy"; fi
	trap - EXIT
	log "installed Debian packages: ${missing[*]}"
else
	log "Debian packages present: ${APT_PACKAGES[*]}"
fi

# --- Go tools --------------------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
	log "go not found in PATH"
	exit 1
fi
mkdir -p "$TOOLS"

# Each tool records the version it was built from, so that a changed pin rebuilds it.
stamp_ok() { [[ -x "$TOOLS/$1" && "$(cat "$TOOLS/.$1.version" 2>/dev/null)" == "$2" ]]; }

if ! stamp_ok crane "$CRANE_VERSION"; then
	log "go install github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION -> $TOOLS/crane"
	GOBIN="$TOOLS" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
	echo "$CRANE_VERSION" >"$TOOLS/.crane.version"
	log "installed $TOOLS/crane ($("$TOOLS/crane" version 2>/dev/null || echo '?'))"
else
	log "crane $CRANE_VERSION present: $TOOLS/crane"
fi

# The conformance suite is a main package at the root of its module. `go install pkg@version`
# builds it when the module allows it; otherwise fetch the module into the module cache through
# a throwaway module, copy its directory out (the cache is read-only) and build it there.
build_conformance_from_copy() {
	local tmp=$1 dir
	mkdir -p "$tmp/fetch"
	(
		cd "$tmp/fetch"
		go mod init example.com/fetch-conformance >/dev/null 2>&1
		go mod download -json "$CONFORMANCE_MODULE@$CONFORMANCE_VERSION" >"$tmp/download.json"
	)
	dir="$(jq -r .Dir "$tmp/download.json")"
	if [[ -z "$dir" || "$dir" == null || ! -d "$dir" ]]; then
		log "go mod download gave no directory: $(cat "$tmp/download.json")"
		return 1
	fi
	cp -r "$dir" "$tmp/src"
	chmod -R u+w "$tmp/src"
	(cd "$tmp/src" && go build -o "$tmp/bin/conformance" .)
}

if ! stamp_ok conformance "$CONFORMANCE_VERSION"; then
	log "building OCI conformance suite $CONFORMANCE_MODULE@$CONFORMANCE_VERSION -> $TOOLS/conformance"
	tmp="$(mktemp -d)"
	mkdir -p "$tmp/bin"
	if [[ "${INSTALL_DEPS_CONFORMANCE_FROM_COPY:-}" != 1 ]] &&
		GOBIN="$tmp/bin" go install "$CONFORMANCE_MODULE@$CONFORMANCE_VERSION" >"$tmp/install.log" 2>&1 &&
		[[ -x "$tmp/bin/conformance" ]]; then
		log "built with go install"
	else
		if [[ -s "$tmp/install.log" ]]; then
			log "go install failed: $(tail -n 3 "$tmp/install.log" | tr '\n' ' ')"
		fi
		log "building from a copy of the module"
		build_conformance_from_copy "$tmp"
	fi
	install -m 0755 "$tmp/bin/conformance" "$TOOLS/conformance"
	echo "$CONFORMANCE_VERSION" >"$TOOLS/.conformance.version"
	rm -rf "$tmp"
	log "installed $TOOLS/conformance"
else
	log "conformance $CONFORMANCE_VERSION present: $TOOLS/conformance"
fi

log "tools in $TOOLS: $(ls "$TOOLS" | tr '\n' ' ')"
