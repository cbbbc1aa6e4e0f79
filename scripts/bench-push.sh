#!/usr/bin/env bash
# Push benchmark: `pull-run push` against `docker push` of the benchmark image of
# scripts/bench-pull.sh (3 gzip layers, ~430 MB of tar, ~160 MB gzip; built once per machine
# and cached under .cache/bench-image/, by running bench-pull.sh with no tools when missing)
# to an EMPTY Berth registry, on this machine.
#
# Set-up (not timed): bin/registry serves the source registry on a free 127.0.0.1 port and
# crane pushes the image to it (as bench-pull.sh does); `pull-run pull` puts it in a fresh
# pull-run root, `docker pull` into dockerd. A second pull-run root gets the same image by
# `pull-run save | pull-run load`, so that its compressed layers are kept locally.
#
# Then BENCH_PUSH_ROUNDS rounds, the tools interleaved; per measurement a new empty Berth
# registry (fresh directory, free port; stopped and deleted afterwards), the image tagged
# into it, `sync; echo 3 > /proc/sys/vm/drop_caches`, and the push timed end to end:
#   pull-run push           the pulled image: its layers are fetched again from the source
#                           registry and streamed into the target (digests kept)
#   pull-run push (kept)    the loaded image: its layers are read from the local content store
#   docker push             the image docker pulled from the source: dockerd compresses its
#                           layers again from its overlay2 diffs (another registry: nothing
#                           to mount)
#
# Environment knobs (defaults in brackets):
#   BENCH_PUSH_TOOLS     space-separated subset of [pull-run pull-run-kept docker]
#   BENCH_PUSH_ROUNDS    rounds; the table shows the median and the range [3]
#   BENCH_PUSH_TMPDIR    registries and pull-run roots [/var/tmp]
#   BENCH_PUSH_OUTDIR    logs [.cache/bench/<UTC time>-push]
#   BENCH_IMAGE_DIR      the cached layers [.cache/bench-image]
#   BENCH_PULLRUN_BIN    a pull-run binary to measure instead of building ./cmd/pull-run
#
# Needs root (page cache drops, dockerd). Exits non-zero only if a tool cannot push at all (or
# the harness cannot run); a missed target is reported, not failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_SELF=bench-push
TOOLS=${TOOLS:-$ROOT/.cache/tools/bin}
REGBENCH=$ROOT/bin/regbench
PULLRUN=${BENCH_PULLRUN_BIN:-$ROOT/bin/pull-run}
REGISTRY=$ROOT/bin/registry

PUSH_TOOLS=${BENCH_PUSH_TOOLS-pull-run pull-run-kept docker}
ROUNDS=${BENCH_PUSH_ROUNDS:-3}
TMPBASE=${BENCH_PUSH_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_PUSH_OUTDIR:-$ROOT/.cache/bench/$(date -u +%Y%m%dT%H%M%SZ)-push}
IMGDIR=${BENCH_IMAGE_DIR:-$ROOT/.cache/bench-image}

# Target of the issue: docker push / pull-run push.
TARGET_VS_DOCKER=1.5

# log, die, median_secs, minimum, maximum, fcalc, mb, cold, timed, the build and registry
# helpers: scripts/lib/bench.sh; stop_pid, start_dockerd, stop_dockerd: scripts/lib/procs.sh
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"

need_root "drop_caches, dockerd"
mkdir -p "$OUTDIR"

# ---------------------------------------------------------------------------------------------
# processes and clean-up

dockerd_pid=""
source_pid=""
target_pid=""
target_dir=""
base=""
declare -a docker_refs=()

stop_target() {
	stop_pid "$target_pid"
	target_pid=""
	[[ -z $target_dir ]] || rm -rf "$target_dir"
	target_dir=""
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	stop_target
	stop_pid "$source_pid"
	source_pid=""
	if [[ -n $docker_ok ]]; then
		local r
		for r in "${docker_refs[@]}"; do
			docker rmi -f "$r" >/dev/null 2>&1 || true
		done
	fi
	stop_dockerd
	[[ -z $base || ! -d $base ]] || rm -rf "$base"
	base=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# build and image

build_pullrun_or_note
build_registry_bins

if [[ ! -f $IMGDIR/image.env || ! -f $IMGDIR/layer1-v1.tar.gz || ! -f $IMGDIR/layer2.tar.gz || ! -f $IMGDIR/layer3.tar.gz ]]; then
	log "the benchmark image is not cached in $IMGDIR: building it with scripts/bench-pull.sh (no tools, 1 round)"
	BENCH_PULL_TOOLS="" BENCH_PULL_ROUNDS=1 BENCH_PULL_SETTLE=0 BENCH_IMAGE_DIR=$IMGDIR \
		BENCH_PULL_OUTDIR=$OUTDIR/image bash scripts/bench-pull.sh >"$OUTDIR/image-build.log" 2>&1 ||
		die "building the benchmark image failed (log $OUTDIR/image-build.log)"
fi
[[ -x $CRANE ]] || die "crane not found at $CRANE (scripts/install-deps.sh or scripts/bench-pull.sh installs it)"
command -v jq >/dev/null || die "jq not found"
# shellcheck source=/dev/null
source "$IMGDIR/image.env"
# shellcheck source=/dev/null
source "$IMGDIR/layer1-v1.env"
TAR_BYTES=$((LAYER1_TAR_BYTES + LAYER2_TAR_BYTES + LAYER3_TAR_BYTES))
GZ_BYTES=$((LAYER1_GZ_BYTES + LAYER2_GZ_BYTES + LAYER3_GZ_BYTES))
layers=("$IMGDIR/layer1-v1.tar.gz" "$IMGDIR/layer2.tar.gz" "$IMGDIR/layer3.tar.gz")

base=$(mktemp -d "$TMPBASE/berth-bench-push.XXXXXX")
start_registry "$base/source"
source_pid=$started_pid
SRC=$started_addr/bench/debian-go:v1
log "source registry on $started_addr; pushing the image with crane"
crane_push "$OUTDIR/setup.log" "$SRC" /bin/bash "$GO_IMAGE_PATH" "${layers[@]}"
SRC_DIGEST=sha256:$("$CRANE" manifest --insecure "$SRC" | sha256sum | cut -d' ' -f1)

# ---------------------------------------------------------------------------------------------
# tools

declare -A unavailable=()
declare -A times=()
declare -A failed=()
declare -A digests=() # tool -> pushed manifest digest (last round)
status=0

PR_PULLED=$base/pullrun-pulled
PR_KEPT=$base/pullrun-kept
pr() { # pr ROOT ARGS...
	local r=$1
	shift
	"$PULLRUN" --root "$r/root" --runroot "$r/run" "$@"
}

for tool in $PUSH_TOOLS; do
	case $tool in
	pull-run | pull-run-kept)
		if [[ -n $pullrun_broken ]]; then
			unavailable[$tool]=$pullrun_broken
		elif [[ ! -d $PR_PULLED ]]; then
			log "pull-run: pulling $SRC (not timed)"
			pr "$PR_PULLED" pull -q "$SRC" >>"$OUTDIR/setup.log" 2>&1 || unavailable[$tool]="pull-run pull failed (log $OUTDIR/setup.log)"
		fi
		if [[ $tool == pull-run-kept && -z ${unavailable[$tool]:-} ]]; then
			log "pull-run: save | load into a second root (not timed)"
			if ! pr "$PR_PULLED" save "$SRC" | pr "$PR_KEPT" load >>"$OUTDIR/setup.log" 2>&1; then
				unavailable[$tool]="pull-run save | load failed (log $OUTDIR/setup.log)"
			fi
		fi
		;;
	docker)
		if ! docker_up; then
			unavailable[docker]=$docker_why
		else
			docker_ok=1
			docker_refs+=("$SRC")
			log "docker: pulling $SRC (not timed)"
			docker pull "$SRC" >>"$OUTDIR/setup.log" 2>&1 || unavailable[docker]="docker pull failed (log $OUTDIR/setup.log)"
		fi
		;;
	*) unavailable[$tool]="unknown tool (known: pull-run pull-run-kept docker)" ;;
	esac
	if [[ -n ${unavailable[$tool]:-} ]]; then
		log "$tool: FAILED: ${unavailable[$tool]}"
		status=1
	fi
done

# push_once TOOL ROUND: one push of the image to a new empty registry.
push_once() {
	local tool=$1 round=$2 logf=$OUTDIR/$1-$2.log target
	start_registry "$base/target-$tool-$round"
	target_pid=$started_pid
	target_dir=$base/target-$tool-$round
	target=$started_addr/bench/pushed:v$round
	case $tool in
	pull-run)
		pr "$PR_PULLED" tag "$SRC" "$target"
		cold
		timed "$logf" pr "$PR_PULLED" push "$target"
		;;
	pull-run-kept)
		pr "$PR_KEPT" tag "$SRC" "$target"
		cold
		timed "$logf" pr "$PR_KEPT" push "$target"
		;;
	docker)
		docker tag "$SRC" "$target"
		docker_refs+=("$target")
		cold
		timed "$logf" docker push "$target"
		docker rmi "$target" >/dev/null 2>&1 || true
		;;
	esac
	if ((rc != 0)); then
		log "$tool round $round: FAILED (exit $rc, log $logf)"
		tail -n 5 "$logf" >&2 || true
		failed[$tool]=${failed[$tool]:-exit $rc, log $logf}
	else
		times[$tool]+="$elapsed "
		digests[$tool]=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$logf" | tail -n1 | cut -d' ' -f2)
		log "$tool round $round: $elapsed s (${digests[$tool]})"
	fi
	case $tool in
	pull-run) pr "$PR_PULLED" rmi "$target" >/dev/null 2>&1 || true ;;
	pull-run-kept) pr "$PR_KEPT" rmi "$target" >/dev/null 2>&1 || true ;;
	esac
	stop_target
}

load_start=$(loadavg1)
for round in $(seq "$ROUNDS"); do
	for tool in $PUSH_TOOLS; do
		[[ -z ${unavailable[$tool]:-} && -z ${failed[$tool]:-} ]] || continue
		push_once "$tool" "$round"
	done
done
load_end=$(loadavg1)

# ---------------------------------------------------------------------------------------------
# report

echo
echo "Push: $SRC ($SRC_DIGEST), 3 gzip layers, $(mb "$GZ_BYTES") MB compressed, $(mb "$TAR_BYTES") MB of tar,"
echo "  each push into a new empty Berth registry (bin/registry, filesystem under $TMPBASE)"
echo
base_s=""
if [[ -n ${times[pull-run]:-} && -z ${failed[pull-run]:-} ]]; then
	# shellcheck disable=SC2086
	base_s=$(median_secs ${times[pull-run]})
fi
printf '%-30s %9s %17s %12s  %s\n' "tool" "median s" "min-max s" "vs pull-run" "manifest pushed"
for tool in $PUSH_TOOLS; do
	case $tool in
	pull-run) label="pull-run push (re-fetch)" ;;
	pull-run-kept) label="pull-run push (kept blobs)" ;;
	docker) label="docker push" ;;
	*) label=$tool ;;
	esac
	failed_row 30 "$label" "$tool" && continue
	# shellcheck disable=SC2086
	stats_secs "$base_s" ${times[$tool]}
	same="same as the source"
	[[ ${digests[$tool]:-} == "$SRC_DIGEST" ]] || same="${digests[$tool]:-?} (new)"
	printf '%-30s %9s %17s %12s  %s\n' "$label" "$m" "$r" "$ratio" "$same"
	eval "median_${tool//-/_}=$m"
done
echo "(vs pull-run: the row's median / pull-run push's; above 1 = pull-run is faster)"
echo
echo "Targets:"
if [[ -n $base_s && -n ${median_docker:-} ]]; then
	ratio=$(fcalc "$median_docker / $base_s")
	verdict=$(awk -v v="$ratio" -v l="$TARGET_VS_DOCKER" 'BEGIN { print (v >= l) ? "ok" : "MISSED" }')
	printf '  %-44s %8s >= %-5s %s\n' "docker push / pull-run push" "$ratio" "$TARGET_VS_DOCKER" "$verdict"
else
	echo "  pull-run or docker did not run: no checks"
fi
((drop_caches_ok)) || echo "WARNING: the page cache could not be dropped; all figures are warm-cache"
echo "Median of $ROUNDS rounds; each round: every tool, each into a fresh empty registry after sync + drop_caches."
echo "load average (1 min) at start $load_start, at end $load_end, on $(nproc) cores; logs: $OUTDIR"
warn_if_loaded "$load_start" "$load_end"
exit "$status"
