#!/usr/bin/env bash
# Benchmark Berth against its anchors, one registry after the other, in one run.
#
# Filesystem storage (the core benchmark):
#   berth               bin/registry (go build ./cmd/registry)
#   distribution-v3     distribution v3.1.1 (go install from the Go module proxy)
#   docker-registry-2.8 Debian's docker-registry package (/usr/bin/docker-registry)
# S3 storage: one MinIO server (scripts/minio.sh, .cache/tools/bin/minio) on
# 127.0.0.1 over a temp directory, started once; Berth and distribution v3.1.1
# each on their own bucket of it, with the same load.
#
# Each registry gets its own temp directory, port and config; bench/regbench
# drives the same workloads against each and prints one JSON line, and the
# lines are formatted as one table per storage with Berth's ratios to each
# anchor.
#
# Environment knobs (defaults in brackets):
#   BENCH_REGISTRIES    space-separated subset to run on the filesystem
#                       [berth distribution-v3 docker-registry-2.8]; set and
#                       empty: skip the filesystem part
#   BENCH_S3            0 skips the S3 part [1]
#   BENCH_S3_REGISTRIES space-separated subset to run on MinIO [berth distribution-v3]
#                       (docker-registry-2.8 may be added); set and empty: skip
#   BENCH_BLOBS         large blobs per push variant [16]
#   BENCH_BLOB_MIB      size of each large blob in MiB [64]
#   BENCH_DURATION      measured duration of HEAD / manifest GET workloads [5s]
#   BENCH_ROUNDS        rounds over all registries, interleaved; the tables
#                       show medians [1] (a round takes about three minutes)
#   BENCH_RESULTS       filesystem results (JSON lines) [.cache/bench/<time>/results.jsonl]
#   BENCH_RESULTS_S3    S3 results (JSON lines) [.cache/bench/<time>/results-s3.jsonl]
#   BENCH_TMPDIR        where the registries' and MinIO's temp directories go [$TMPDIR or /tmp]
#   MINIO_BIN           MinIO server binary [$TOOLS/minio, installed by scripts/minio.sh]
#   BENCH_PULL          0 skips the pull benchmark run at the end [1]: scripts/bench-pull.sh,
#                       pull-run pull against docker pull and podman pull (its own knobs,
#                       BENCH_PULL_*, are described there)
#   BENCH_PUSH          0 skips the push benchmark [1]: scripts/bench-push.sh, pull-run push
#                       against docker push (knobs BENCH_PUSH_*, described there)
#   BENCH_COMMIT        0 skips the commit benchmark [1]: scripts/bench-commit.sh, pull-run
#                       commit of 10,000 changed files against docker commit
#   BENCH_NET           0 skips the network benchmark [1]: scripts/bench-net.sh, run -d on a
#                       bridge against --network none, and HTTP throughput through a
#                       published port against the container's address (knobs BENCH_NET_*)
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
MKBUCKET=$ROOT/bin/mkbucket
MINIO=${MINIO_BIN:-$TOOLS/minio}

REGISTRIES=${BENCH_REGISTRIES-berth distribution-v3 docker-registry-2.8}
S3_REGISTRIES=${BENCH_S3_REGISTRIES-berth distribution-v3}
if [[ ${BENCH_S3:-1} == 0 ]]; then
	S3_REGISTRIES=""
fi
BLOBS=${BENCH_BLOBS:-16}
BLOB_MIB=${BENCH_BLOB_MIB:-64}
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=$ROOT/.cache/bench/$STAMP # server logs, build log, results
RESULTS=${BENCH_RESULTS:-$OUTDIR/results.jsonl}
RESULTS_S3=${BENCH_RESULTS_S3:-$OUTDIR/results-s3.jsonl}
TMPBASE=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

# Throwaway credentials of the loopback MinIO; the registries get them in
# their config files (in their 0700 temp directories).
MINIO_USER=berth-bench
MINIO_PASSWORD=berth-bench-secret
MINIO_REGION=us-east-1

mkdir -p "$TOOLS" "$OUTDIR" "$(dirname "$RESULTS")"
: >"$RESULTS"
if [[ -n ${S3_REGISTRIES// /} ]]; then
	mkdir -p "$(dirname "$RESULTS_S3")"
	: >"$RESULTS_S3"
fi

log() { printf 'bench: %s\n' "$*" >&2; }

status=0
declare -A unavailable=() # registry name -> reason it cannot be run

# mark_failed NAME REASON [RESULTS_FILE]: record a FAILED row for NAME.
mark_failed() {
	status=1
	log "$1: FAILED: $2"
	local reason=${2//\\/\\\\}
	reason=${reason//\"/\\\"}
	printf '{"name":"%s","failed":"%s"}\n' "$1" "$reason" >>"${3:-$RESULTS}"
}

wants() { [[ " $REGISTRIES $S3_REGISTRIES " == *" $1 "* ]]; }

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

s3_unavailable="" # why the S3 part cannot run, if it cannot
if [[ -n ${S3_REGISTRIES// /} ]]; then
	log "building bench/mkbucket"
	if ! go build -o "$MKBUCKET" ./bench/mkbucket >"$OUTDIR/mkbucket-build.log" 2>&1; then
		cat "$OUTDIR/mkbucket-build.log" >&2
		s3_unavailable="go build ./bench/mkbucket failed (see $OUTDIR/mkbucket-build.log)"
	fi
	if [[ -n ${MINIO_BIN:-} ]]; then
		[[ -x $MINIO ]] || s3_unavailable="MINIO_BIN=$MINIO is not executable"
	else
		# Idempotent: quick when the pinned MinIO is there, a build of a
		# few minutes when it is not.
		log "checking MinIO (scripts/minio.sh)"
		if ! TOOLS=$TOOLS bash scripts/minio.sh >&2; then
			s3_unavailable="bash scripts/minio.sh failed"
		fi
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

# unset_args PREFIX...: `-u NAME` arguments for env(1) for every exported
# variable whose name starts with one of the prefixes.
unset_args() {
	local v p
	for v in $(compgen -e); do
		for p in "$@"; do
			if [[ $v == "$p"* ]]; then
				printf -- '-u\n%s\n' "$v"
			fi
		done
	done
}

# --- servers -----------------------------------------------------------------

server_pid=""
workdir=""
minio_pid=""
minio_dir=""
minio_addr=""

# stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL (scripts/lib/procs.sh).
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"

stop_server() {
	stop_pid "$server_pid"
	server_pid=""
}

stop_minio() {
	stop_pid "$minio_pid"
	minio_pid=""
	if [[ -n $minio_dir ]]; then
		rm -rf "$minio_dir"
	fi
	minio_dir=""
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	stop_server
	if [[ -n $workdir ]]; then
		rm -rf "$workdir"
	fi
	workdir=""
	stop_minio
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bucket_of NAME: the bucket registry NAME uses on MinIO.
bucket_of() { echo "bench-${1//[^a-z0-9-]/-}"; }

# mkbucket ARGS...: bench/mkbucket against our MinIO.
mkbucket() {
	MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD \
		"$MKBUCKET" -endpoint "$minio_addr" -region "$MINIO_REGION" -pid "$minio_pid" "$@"
}

# start_minio BUCKET...: start MinIO on a free loopback port over a temp
# directory and create the buckets (which also waits until it serves).
start_minio() {
	local port console attempt scrub
	mapfile -t scrub < <(unset_args MINIO_ AWS_)
	for attempt in 1 2 3; do # a free port may be taken in between
		minio_dir=$(mktemp -d "$TMPBASE/berth-bench-minio.XXXXXX")
		port=$("$REGBENCH" -free-port)
		console=$("$REGBENCH" -free-port)
		minio_addr=127.0.0.1:$port
		log "minio: starting $MINIO server on $minio_addr (data $minio_dir/data, log $OUTDIR/minio.log)"
		env "${scrub[@]}" MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD \
			MINIO_UPDATE=off MINIO_BROWSER=off MINIO_CI_CD=1 \
			"$MINIO" server "$minio_dir/data" --address "$minio_addr" \
			--console-address "127.0.0.1:$console" --quiet >>"$OUTDIR/minio.log" 2>&1 &
		minio_pid=$!
		if mkbucket -timeout 60s "$@" >&2; then
			return 0
		fi
		log "minio: not serving (attempt $attempt of 3); last lines of $OUTDIR/minio.log:"
		tail -n 10 "$OUTDIR/minio.log" >&2 || true
		stop_minio
	done
	return 1
}

# write_config NAME STORAGE PORT: the registry's config, distribution-style.
write_config() {
	local name=$1 storage=$2 port=$3
	echo "version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:"
	case $storage in
	fs)
		echo "  filesystem:
    rootdirectory: $workdir/data"
		;;
	s3)
		echo "  s3:
    accesskey: $MINIO_USER
    secretkey: $MINIO_PASSWORD
    region: $MINIO_REGION
    regionendpoint: http://$minio_addr
    bucket: $(bucket_of "$name")
    secure: false"
		# distribution 2.8 has no forcepathstyle: it uses path-style URLs
		# whenever regionendpoint is set.
		if [[ $name != docker-registry-2.8 ]]; then
			echo "    forcepathstyle: true"
		fi
		if [[ $name != berth ]]; then
			echo "    v4auth: true"
		fi
		echo "  redirect:
    disable: true"
		;;
	esac
	echo "  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port"
}

# bench_one NAME ROUND STORAGE: run regbench against NAME on STORAGE (fs or
# s3) and append its line to that storage's results.
bench_one() {
	local name=$1 round=$2 storage=$3 bin port cfg serverlog results=$RESULTS label=$1 scrub
	if [[ $storage == s3 ]]; then
		results=$RESULTS_S3
		label="$name (S3)"
	fi
	bin=$(registry_bin "$name")
	if [[ ! -x $bin ]]; then
		mark_failed "$name" "no executable at $bin" "$results"
		return
	fi
	if [[ $storage == s3 ]] && ! mkbucket "$(bucket_of "$name")" >&2; then
		mark_failed "$name" "cannot create bucket $(bucket_of "$name") on MinIO (log: $OUTDIR/minio.log)" "$results"
		return
	fi

	workdir=$(mktemp -d "$TMPBASE/berth-bench-$name.XXXXXX")
	port=$("$REGBENCH" -free-port)
	cfg=$workdir/config.yml
	serverlog=$OUTDIR/$name-$storage-$round.log
	write_config "$name" "$storage" "$port" >"$cfg"

	log "$label: starting $bin serve $cfg (port $port, log $serverlog)"
	# distribution v3 exports OpenTelemetry traces to localhost:4318 unless
	# told not to; its official image sets OTEL_TRACES_EXPORTER=none, so do
	# the same (the others ignore it). REGISTRY_* variables would override
	# the config and AWS_* ones feed the S3 drivers: none of ours.
	mapfile -t scrub < <(unset_args REGISTRY_ AWS_)
	env "${scrub[@]}" OTEL_TRACES_EXPORTER=none "$bin" serve "$cfg" >"$serverlog" 2>&1 &
	server_pid=$!

	if ! "$REGBENCH" -wait "127.0.0.1:$port" -timeout 20s -pid "$server_pid"; then
		if kill -0 "$server_pid" 2>/dev/null; then
			mark_failed "$name" "GET /v2/ did not answer within 20s (log: $serverlog)" "$results"
		else
			mark_failed "$name" "server exited at start-up (log: $serverlog)" "$results"
		fi
		tail -n 20 "$serverlog" >&2 || true
		stop_server
		rm -rf "$workdir"
		workdir=""
		return
	fi

	local line rc=0
	line=$("$REGBENCH" -addr "127.0.0.1:$port" -pid "$server_pid" -name "$name" \
		-blobs "$BLOBS" -blob-mib "$BLOB_MIB" -duration "$DURATION") || rc=$?
	if [[ -n $line ]]; then
		printf '%s\n' "$line" >>"$results"
	else
		mark_failed "$name" "regbench exited $rc without a result" "$results"
	fi
	if ((rc != 0)); then
		status=1
		log "$label: regbench exited $rc (errors are in the table)"
	fi
	if ! kill -0 "$server_pid" 2>/dev/null; then
		status=1
		log "$label: server died during the run (log: $serverlog)"
		tail -n 20 "$serverlog" >&2 || true
	fi

	stop_server
	rm -rf "$workdir"
	workdir=""
	# Every run starts on an empty bucket, and the disk does not fill up
	# over rounds.
	if [[ $storage == s3 ]] && ! mkbucket -delete "$(bucket_of "$name")" >&2; then
		log "$label: could not remove bucket $(bucket_of "$name") (it stays until MinIO stops)"
	fi
}

# runnable RESULTS_FILE NAMES...: set run_list to the names that can run;
# FAILED rows for the others.
run_list=""
runnable() {
	local results=$1 name
	shift
	run_list=""
	for name in "$@"; do
		if ! registry_bin "$name" >/dev/null; then
			unavailable[$name]="unknown registry (known: berth distribution-v3 docker-registry-2.8)"
		fi
		if [[ -n ${unavailable[$name]:-} ]]; then
			mark_failed "$name" "${unavailable[$name]}" "$results"
		else
			run_list+="$name "
		fi
	done
}

# --- filesystem --------------------------------------------------------------

load_start=$(cut -d' ' -f1 /proc/loadavg)
# shellcheck disable=SC2086 # word splitting of the lists is intended
runnable "$RESULTS" $REGISTRIES
fs_run=$run_list
for round in $(seq "$ROUNDS"); do
	[[ -n $fs_run ]] || break
	((ROUNDS == 1)) || log "filesystem: round $round of $ROUNDS"
	for name in $fs_run; do
		bench_one "$name" "$round" fs
	done
done
load_fs=$(cut -d' ' -f1 /proc/loadavg)

# --- S3 (MinIO) --------------------------------------------------------------

s3_run=""
minio_version=""
if [[ -n ${S3_REGISTRIES// /} ]]; then
	# shellcheck disable=SC2086
	runnable "$RESULTS_S3" $S3_REGISTRIES
	s3_run=$run_list
fi
if [[ -n $s3_run ]]; then
	buckets=()
	for name in $s3_run; do
		buckets+=("$(bucket_of "$name")")
	done
	if [[ -z $s3_unavailable ]]; then
		# A `go install`ed MinIO reports a DEVELOPMENT version; its module
		# version tells more.
		minio_version=$(go version -m "$MINIO" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/minio/minio" { print $2 "@" $3 }' || true)
		if ! start_minio "${buckets[@]}"; then
			s3_unavailable="MinIO did not start or did not accept buckets (log: $OUTDIR/minio.log)"
		fi
	fi
	if [[ -n $s3_unavailable ]]; then
		for name in $s3_run; do
			mark_failed "$name" "$s3_unavailable" "$RESULTS_S3"
		done
	else
		for round in $(seq "$ROUNDS"); do
			((ROUNDS == 1)) || log "S3: round $round of $ROUNDS"
			for name in $s3_run; do
				bench_one "$name" "$round" s3
			done
		done
		stop_minio
	fi
fi
load_end=$(cut -d' ' -f1 /proc/loadavg)

# --- tables ------------------------------------------------------------------

if [[ -n ${REGISTRIES// /} ]]; then
	echo
	echo "Filesystem"
	"$REGBENCH" -table "$RESULTS" -subject berth
	echo "raw results: $RESULTS"
fi
if [[ -n ${S3_REGISTRIES// /} ]]; then
	echo
	echo "S3 (MinIO)"
	"$REGBENCH" -table "$RESULTS_S3" -subject berth
	echo "One MinIO server (${minio_version:-version unknown}) on 127.0.0.1, single drive under $TMPBASE;" \
		"one bucket per registry, emptied after each run; redirects disabled; no blob descriptor cache."
	echo "MinIO runs on the same cores as the registry and regbench; peak RSS is the registry's only."
	echo "raw results: $RESULTS_S3"
fi
echo
echo "MB = 10^6 bytes; peak RSS is the server's VmHWM in MiB; p99 over ${DURATION} at concurrency 16."
echo "load average (1 min) at start $load_start, after the filesystem runs $load_fs, at end $load_end," \
	"on $(nproc) cores: anything well above 1-2 means other processes competed and the figures are noisy."

# --- pull-run pull (scripts/bench-pull.sh) -----------------------------------

if [[ ${BENCH_PULL:-1} != 0 ]]; then
	echo
	echo "Pull (scripts/bench-pull.sh; BENCH_PULL=0 skips it)"
	if ! BENCH_PULL_OUTDIR=$OUTDIR/pull bash scripts/bench-pull.sh; then
		status=1
	fi
fi
if [[ ${BENCH_RUN:-1} != 0 ]]; then # pull-run run: scripts/bench-run.sh (BENCH_RUN=0 skips it)
	printf '\nRun (scripts/bench-run.sh; BENCH_RUN=0 skips it)\n'; BENCH_RUN_OUTDIR=$OUTDIR/run bash scripts/bench-run.sh || status=1
fi
if [[ ${BENCH_PUSH:-1} != 0 ]]; then # pull-run push vs docker push: scripts/bench-push.sh (BENCH_PUSH=0 skips it)
	printf '\nPush (scripts/bench-push.sh; BENCH_PUSH=0 skips it)\n'
	BENCH_PUSH_OUTDIR=$OUTDIR/push bash scripts/bench-push.sh || status=1
fi
if [[ ${BENCH_COMMIT:-1} != 0 ]]; then # commit of 10,000 changed files vs docker commit: scripts/bench-commit.sh (BENCH_COMMIT=0 skips it)
	printf '\nCommit (scripts/bench-commit.sh; BENCH_COMMIT=0 skips it)\n'
	BENCH_COMMIT_OUTDIR=$OUTDIR/commit bash scripts/bench-commit.sh || status=1
fi
if [[ ${BENCH_NET:-1} != 0 ]]; then # bridge setup cost and published-port throughput: scripts/bench-net.sh (BENCH_NET=0 skips it)
	printf '\nNetwork (scripts/bench-net.sh; BENCH_NET=0 skips it)\n'
	BENCH_NET_OUTDIR=$OUTDIR/net bash scripts/bench-net.sh || status=1
fi
exit "$status"
