#!/usr/bin/env bash
# Commit benchmark: the time of `commit` of a running container that changed 10,000 files,
# against its anchor in one run:
#
#   pull-run   pull-run commit CONTAINER     (paused during the diff, as by default)
#   docker     docker commit CONTAINER       (same image, same workload)
#
# Each round starts a container of the busybox image that writes BENCH_COMMIT_FILES small
# files under /data (`echo $i > /data/f$i`) and then sleeps; when it is done (it touches
# /done), the commit is timed. The containers and the new images stay until the end:
# deleting tens of thousands of files right before a timed commit makes ext4's inode
# allocation slow (it skips recently freed inodes) for whichever tool comes next. Rounds
# are interleaved (pull-run, docker, pull-run, …) after one warm-up each; the table gives
# the median and the ratio of docker's median to pull-run's.
#
# The image: busybox-static (/usr/bin/busybox) and its applets in one layer, built here,
# pushed by crane to bin/registry serving a temp directory on a free 127.0.0.1 port, then
# pulled by pull-run (into a fresh --root/--runroot under BENCH_COMMIT_TMPDIR) and docker.
# dockerd is started as the e2e tests do when `docker info` fails (and stopped at the end
# only then).
#
# Environment knobs (defaults in brackets):
#   BENCH_COMMIT_N       rounds of each tool [5]
#   BENCH_COMMIT_FILES   files the container writes [10000]
#   BENCH_COMMIT_TOOLS   space-separated subset of [pull-run docker]
#   BENCH_COMMIT_TMPDIR  where the state root and the registry go [/var/tmp]
#   BENCH_COMMIT_OUTDIR  logs [.cache/bench/<UTC time>-commit]
#   BENCH_PULLRUN_BIN    a pull-run binary to measure instead of building bin/pull-run
#
# The script exits non-zero only when the harness or pull-run cannot run at all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_SELF=bench-commit
TOOLS=${TOOLS:-$ROOT/.cache/tools/bin}
REGBENCH=$ROOT/bin/regbench
REGISTRY=$ROOT/bin/registry
PULLRUN=${BENCH_PULLRUN_BIN:-$ROOT/bin/pull-run}

N=${BENCH_COMMIT_N:-5}
FILES=${BENCH_COMMIT_FILES:-10000}
COMMIT_TOOLS=${BENCH_COMMIT_TOOLS-pull-run docker}
TMPBASE=${BENCH_COMMIT_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_COMMIT_OUTDIR:-$ROOT/.cache/bench/$(date -u +%Y%m%dT%H%M%SZ)-commit}

# log, die, median, ms, fcalc, the build, registry and image helpers: scripts/lib/bench.sh;
# stop_pid, start_dockerd, stop_dockerd: scripts/lib/procs.sh
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"

need_root "containers, dockerd"
mkdir -p "$OUTDIR" "$TOOLS" "$TMPBASE"

# ---------------------------------------------------------------------------------------------
# processes and clean-up

registry_pid=""
dockerd_pid=""
base=""
image=""
PR=() # pull-run with the bench's state root

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	pr_rm_all
	if [[ -n $docker_ok ]]; then
		if [[ -n $base && -s $base/docker-containers ]]; then
			# shellcheck disable=SC2046
			docker rm -f $(cat "$base/docker-containers") >/dev/null 2>&1 || true
		fi
		if [[ -n $base && -s $base/docker-images ]]; then
			# shellcheck disable=SC2046
			docker rmi -f $(cat "$base/docker-images") >/dev/null 2>&1 || true
		fi
		[[ -z $image ]] || docker rmi -f "$image" >/dev/null 2>&1 || true
	fi
	cleanup_common
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# build, image, registry

build_pullrun_release
build_registry_bins
ensure_crane

base=$(mktemp -d "$TMPBASE/berth-bench-commit.XXXXXX")
busybox_rootfs "$base/rootfs" sh true echo cat ls sleep test touch mkdir rm
push_busybox_image bench/busybox "busybox-static, one layer"

# ---------------------------------------------------------------------------------------------
# the tools

declare -A unavailable=()
PR=("$PULLRUN" --root "$base/pull-run/root" --runroot "$base/pull-run/run")
for tool in $COMMIT_TOOLS; do
	case $tool in
	pull-run)
		pr_pull "$OUTDIR/pull-run-pull.log"
		;;
	docker)
		docker_pulled "$image" || unavailable[docker]=$docker_why
		;;
	*) die "unknown tool $tool (known: pull-run docker)" ;;
	esac
done

# The container's work: FILES small files, then /done.
workload="mkdir /data; i=0; while [ \$i -lt $FILES ]; do i=\$((i+1)); echo \$i > /data/f\$i; done; touch /done; sleep 1000"

# cli TOOL ARGS...: pull-run (with the bench's root) or docker.
cli() {
	local tool=$1
	shift
	case $tool in
	pull-run) "${PR[@]}" "$@" ;;
	docker) docker "$@" ;;
	esac
}

# round TOOL: start the workload, wait for it, time the commit. Prints the commit's wall
# time in microseconds. The container and the image are removed at the end (cleanup).
round() {
	local tool=$1 id new t0 t1 waited=0
	id=$(cli "$tool" run -d --network none "$image" sh -c "$workload") || return 1
	[[ $tool != docker ]] || echo "$id" >>"$base/docker-containers"
	until cli "$tool" exec "$id" test -e /done 2>/dev/null; do
		sleep 0.2
		waited=$((waited + 1))
		((waited < 1500)) || {
			log "$tool: the workload did not finish in 5 minutes"
			return 1
		}
	done
	t0=$(now_us)
	new=$(cli "$tool" commit "$id") || return 1
	t1=$(now_us)
	[[ $tool != docker ]] || echo "$new" >>"$base/docker-images"
	cli "$tool" stop -t 1 "$id" >/dev/null || return 1
	echo $((t1 - t0))
}

declare -A times=()
declare -A failed=()
tools=()
for tool in $COMMIT_TOOLS; do
	[[ -z ${unavailable[$tool]:-} ]] && tools+=("$tool")
done
if ((${#tools[@]})); then
	log "warming up (1 round each)"
	for tool in "${tools[@]}"; do
		round "$tool" >>"$OUTDIR/$tool.log" 2>&1 || true
	done
	log "timing ${tools[*]}: $N rounds each of a container that wrote $FILES files, interleaved"
	for i in $(seq "$N"); do
		for tool in "${tools[@]}"; do
			[[ -z ${failed[$tool]:-} ]] || continue
			if us=$(round "$tool" 2>>"$OUTDIR/$tool.log"); then
				times[$tool]+="$us "
			else
				failed[$tool]="round $i failed (log $OUTDIR/$tool.log)"
			fi
		done
	done
fi

# ---------------------------------------------------------------------------------------------
# table

echo
printf '%-10s  %-34s  %10s  %10s  %10s  %12s\n' "tool" "command" "median ms" "min ms" "max ms" "vs pull-run"
pr_median=""
if [[ -n ${times[pull-run]:-} ]]; then
	# shellcheck disable=SC2086
	pr_median=$(median ${times[pull-run]})
fi
for tool in $COMMIT_TOOLS; do
	cmd="$tool commit (${FILES} files changed)"
	if [[ -n ${unavailable[$tool]:-} ]]; then
		printf '%-10s  %-34s  %s\n' "$tool" "$cmd" "UNAVAILABLE: ${unavailable[$tool]}"
		continue
	fi
	if [[ -z ${times[$tool]:-} ]]; then
		printf '%-10s  %-34s  %s\n' "$tool" "$cmd" "FAILED: ${failed[$tool]:-no result}"
		continue
	fi
	# shellcheck disable=SC2086
	med=$(median ${times[$tool]})
	# shellcheck disable=SC2086
	lo=$(minimum ${times[$tool]})
	# shellcheck disable=SC2086
	hi=$(maximum ${times[$tool]})
	ratio="1.00x"
	if [[ $tool != pull-run && -n $pr_median ]]; then
		ratio=$(fcalc "$med / $pr_median" '%.2fx')
	fi
	note=""
	[[ -z ${failed[$tool]:-} ]] || note="  (${failed[$tool]})"
	printf '%-10s  %-34s  %10s  %10s  %10s  %12s%s\n' "$tool" "$cmd" "$(ms "$med")" "$(ms "$lo")" "$(ms "$hi")" "$ratio" "$note"
done
echo
echo "N=$N interleaved rounds each after 1 warm-up; wall clock of the commit command (the" \
	"container running, paused during the diff); 'vs pull-run' is the anchor's median over" \
	"pull-run's. $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg). Logs: $OUTDIR"
if [[ -n ${failed[pull-run]:-} || -z ${times[pull-run]:-} && " $COMMIT_TOOLS " == *" pull-run "* ]]; then
	exit 1
fi
