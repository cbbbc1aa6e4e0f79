#!/usr/bin/env bash
# Benchmark Berth against two anchors, one after the other, in one run:
#   berth               bin/registry (go build ./cmd/registry)
#   distribution-v3     distribution v3.1.1 (go install from the Go module proxy)
#   docker-registry-2.8 Debian's docker-registry package (/usr/bin/docker-registry)
# Each registry gets its own temp directory, port and config; bench/regbench
# drives the same workloads against each and prints one JSON line, and the
# lines are formatted as a table with Berth's ratios to each anchor.
#
# Environment knobs (defaults in brackets):
#   BENCH_REGISTRIES  space-separated subset to run [berth distribution-v3 docker-registry-2.8]
#   BENCH_BLOBS       large blobs per push variant [16]
#   BENCH_BLOB_MIB    size of each large blob in MiB [64]
#   BENCH_DURATION    measured duration of HEAD / manifest GET workloads [5s]
#   BENCH_ROUNDS      rounds over all registries, interleaved; the table shows
#                     medians [1] (each round of three takes about a minute)
#   BENCH_RESULTS     results file (JSON lines) [.cache/bench/<time>/results.jsonl]
#   BENCH_TMPDIR      where the registries' temp directories go [$TMPDIR or /tmp]
#
# Exits non-zero if any registry failed to build, start or run cleanly;
# the rows of the others are still printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TOOLS=${TOOLS:-$ROOT/.cache/tools/bin} # the Makefile exports TOOLS
DIST_VERSION=v3.1.1
DIST_PKG=github.com/distribution/distribution/v3/cmd/registry
DIST_BIN=$TOOLS/distribution-v3
DOCKER_REGISTRY_BIN=/usr/bin/docker-registry
REGBENCH=$ROOT/bin/regbench

REGISTRIES=${BENCH_REGISTRIES:-berth distribution-v3 docker-registry-2.8}
BLOBS=${BENCH_BLOBS:-16}
BLOB_MIB=${BENCH_BLOB_MIB:-64}
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=$ROOT/.cache/bench/$STAMP # server logs, build log, results
RESULTS=${BENCH_RESULTS:-$OUTDIR/results.jsonl}
TMPBASE=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

mkdir -p "$TOOLS" "$OUTDIR" "$(dirname "$RESULTS")"
: >"$RESULTS"

log() { printf 'bench: %s\n' "$*" >&2; }

status=0
declare -A unavailable=() # registry name -> reason it cannot be run

# mark_failed NAME REASON: record a FAILED row for NAME.
mark_failed() {
	status=1
	log "$1: FAILED: $2"
	local reason=${2//\\/\\\\}
	reason=${reason//\"/\\\"}
	printf '{"name":"%s","failed":"%s"}\n' "$1" "$reason" >>"$RESULTS"
}

wants() { [[ " $REGISTRIES " == *" $1 "* ]]; }

# --- tools -------------------------------------------------------------------

log "building bench/regbench"
go build -o "$REGBENCH" ./bench/regbench

if wants docker-registry-2.8 && [[ ! -x $DOCKER_REGISTRY_BIN ]]; then
	log "installing docker-registry (apt-get)"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry; } >&2; then
		unavailable[docker-registry-2.8]="apt-get install docker-registry failed"
	fi
	# The package may start its own service on :5000; it is not ours to use.
fi

if wants distribution-v3 && ! { [[ -x $DIST_BIN ]] && "$DIST_BIN" --version 2>/dev/null | grep -q " $DIST_VERSION"; }; then
	log "installing distribution $DIST_VERSION (go install $DIST_PKG@$DIST_VERSION)"
	gobin=$(mktemp -d)
	if GOBIN=$gobin go install "$DIST_PKG@$DIST_VERSION" >&2 && mv "$gobin/registry" "$DIST_BIN"; then
		:
	else
		unavailable[distribution-v3]="go install $DIST_PKG@$DIST_VERSION failed"
	fi
	rm -rf "$gobin"
fi

if wants berth; then
	log "building bin/registry (berth)"
	if ! go build -o bin/registry ./cmd/registry >"$OUTDIR/berth-build.log" 2>&1; then
		cat "$OUTDIR/berth-build.log" >&2
		unavailable[berth]="go build ./cmd/registry failed (see $OUTDIR/berth-build.log)"
	fi
fi

registry_bin() {
	case $1 in
	berth) echo "$ROOT/bin/registry" ;;
	distribution-v3) echo "$DIST_BIN" ;;
	docker-registry-2.8) echo "$DOCKER_REGISTRY_BIN" ;;
	*) return 1 ;;
	esac
}

# --- one registry at a time --------------------------------------------------

server_pid=""
workdir=""
cleanup() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	server_pid=""
	if [[ -n $workdir ]]; then
		rm -rf "$workdir"
	fi
	workdir=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_server: SIGTERM, wait up to 15 s, then SIGKILL.
stop_server() {
	[[ -n $server_pid ]] || return 0
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$server_pid" 2>/dev/null; then
		log "pid $server_pid did not stop on SIGTERM, killing it"
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

bench_one() {
	local name=$1 round=$2 bin port cfg serverlog
	bin=$(registry_bin "$name")
	if [[ ! -x $bin ]]; then
		mark_failed "$name" "no executable at $bin"
		return
	fi

	workdir=$(mktemp -d "$TMPBASE/berth-bench-$name.XXXXXX")
	port=$("$REGBENCH" -free-port)
	cfg=$workdir/config.yml
	serverlog=$OUTDIR/$name-$round.log
	cat >"$cfg" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $workdir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF

	log "$name: starting $bin serve $cfg (port $port, log $serverlog)"
	# distribution v3 exports OpenTelemetry traces to localhost:4318 unless
	# told not to; its official image sets OTEL_TRACES_EXPORTER=none, so do
	# the same (the others ignore it).
	OTEL_TRACES_EXPORTER=none "$bin" serve "$cfg" >"$serverlog" 2>&1 &
	server_pid=$!

	if ! "$REGBENCH" -wait "127.0.0.1:$port" -timeout 20s -pid "$server_pid"; then
		if kill -0 "$server_pid" 2>/dev/null; then
			mark_failed "$name" "GET /v2/ did not answer within 20s (log: $serverlog)"
		else
			mark_failed "$name" "server exited at start-up (log: $serverlog)"
		fi
		tail -n 20 "$serverlog" >&2 || true
		cleanup
		return
	fi

	local line rc=0
	line=$("$REGBENCH" -addr "127.0.0.1:$port" -pid "$server_pid" -name "$name" \
		-blobs "$BLOBS" -blob-mib "$BLOB_MIB" -duration "$DURATION") || rc=$?
	if [[ -n $line ]]; then
		printf '%s\n' "$line" >>"$RESULTS"
	else
		mark_failed "$name" "regbench exited $rc without a result"
	fi
	if ((rc != 0)); then
		status=1
		log "$name: regbench exited $rc (errors are in the table)"
	fi
	if ! kill -0 "$server_pid" 2>/dev/null; then
		status=1
		log "$name: server died during the run (log: $serverlog)"
		tail -n 20 "$serverlog" >&2 || true
	fi

	stop_server
	rm -rf "$workdir"
	workdir=""
}

load_start=$(cut -d' ' -f1 /proc/loadavg)
for name in $REGISTRIES; do
	if ! registry_bin "$name" >/dev/null; then
		unavailable[$name]="unknown registry (known: berth distribution-v3 docker-registry-2.8)"
	fi
	if [[ -n ${unavailable[$name]:-} ]]; then
		mark_failed "$name" "${unavailable[$name]}"
	fi
done
for round in $(seq "$ROUNDS"); do
	((ROUNDS == 1)) || log "round $round of $ROUNDS"
	for name in $REGISTRIES; do
		[[ -z ${unavailable[$name]:-} ]] || continue
		bench_one "$name" "$round"
	done
done
load_end=$(cut -d' ' -f1 /proc/loadavg)

echo
"$REGBENCH" -table "$RESULTS" -subject berth
echo
echo "MB = 10^6 bytes; peak RSS is the server's VmHWM in MiB; p99 over ${DURATION} at concurrency 16."
echo "load average (1 min) at start $load_start, at end $load_end, on $(nproc) cores:" \
	"anything well above 1-2 means other processes competed and the figures are noisy."
echo "raw results: $RESULTS"
exit "$status"
