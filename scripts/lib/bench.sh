# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here for the sourcing scripts (rc, elapsed, docker_ok, …)
# Helpers shared by the bench scripts (sourced, after lib/procs.sh). Before sourcing, a
# script sets BENCH_SELF (its name in log lines, e.g. bench-run), ROOT, TOOLS, REGISTRY,
# REGBENCH, PULLRUN and OUTDIR; CRANE and CRANE_VERSION are set here.

CRANE=$TOOLS/crane
CRANE_VERSION=v0.22.1 # as scripts/install-deps.sh

# ---------------------------------------------------------------------------------------------
# logging

# log MSG...: "BENCH_SELF: MSG" on stderr.
log() { printf '%s: %s\n' "$BENCH_SELF" "$*" >&2; }

# die MSG...: log MSG and exit 1.
die() {
	log "$*"
	exit 1
}

# need_root WHY: die unless running as root.
need_root() { [[ $(id -u) == 0 ]] || die "must run as root ($1)"; }

# ---------------------------------------------------------------------------------------------
# numbers

# now_us: wall clock in microseconds (no fork).
now_us() { echo "${EPOCHREALTIME/./}"; }

# fcalc EXPR [FMT]: floating-point arithmetic (awk), printed with FMT [%.2f].
fcalc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

# median_fmt FMT NUMBERS...: the median; the mean of the middle two printed with FMT.
median_fmt() {
	local fmt=$1
	shift
	printf '%s\n' "$@" | sort -g | awk -v f="$fmt\n" '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf f, (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# median NUMBERS...: the median of integers (microseconds, requests/s), rounded.
median() { median_fmt '%.0f' "$@"; }

# median_secs NUMBERS...: the median of seconds with 3 decimals.
median_secs() { median_fmt '%.3f' "$@"; }

# quantile Q NUMBERS...: the Q-quantile (nearest rank) of the numbers.
quantile() {
	local q=$1
	shift
	printf '%s\n' "$@" | sort -g | awk -v q="$q" '{ a[NR] = $1 } END { r = int(q * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; print a[r] }'
}

# minimum/maximum NUMBERS...
minimum() { printf '%s\n' "$@" | sort -g | head -n1; }
maximum() { printf '%s\n' "$@" | sort -g | tail -n1; }

# stats_secs BASE SECONDS...: sets m (median_secs), r ("MIN-MAX") and ratio (m / BASE as
# "X.XXx", or "-" when BASE is empty) for a table row.
stats_secs() {
	local b=$1
	shift
	m=$(median_secs "$@")
	r="$(minimum "$@")-$(maximum "$@")"
	ratio="-"
	[[ -z $b ]] || ratio="$(fcalc "$m / $b")x"
}

# failed_row WIDTH LABEL TOOL: the row "LABEL FAILED: why" (LABEL padded to WIDTH) when TOOL
# is in unavailable[] or failed[] (the latter also sets status=1), and 0; else 1.
failed_row() {
	local why=${unavailable[$3]:-}
	if [[ -z $why && -n ${failed[$3]:-} ]]; then
		why=${failed[$3]}
		status=1
	fi
	[[ -n $why ]] || return 1
	printf "%-${1}s FAILED: %s\n" "$2" "$why"
}

# ms US: microseconds as milliseconds with 1 decimal.
ms() { fcalc "$1 / 1000" '%.1f'; }

# secs US: microseconds as seconds with 3 decimals.
secs() { printf '%d.%03d' $(($1 / 1000000)) $((($1 % 1000000) / 1000)); }

# mb BYTES: bytes as MB (1e6) with 1 decimal.
mb() { fcalc "$1 / 1e6" '%.1f'; }

# verdict 1|0: "met" or "MISSED".
verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "MISSED"; fi; }

# loadavg1: the 1-minute load average.
loadavg1() { cut -d' ' -f1 /proc/loadavg; }

# warn_if_loaded START END: a warning line when the load average at START or END shows
# other processes competing for the cores.
warn_if_loaded() {
	if awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN { exit !(a > n / 2 || b > n) }'; then
		echo "WARNING: other processes competed for the cores (load above): the figures are noisy"
	fi
}

# ---------------------------------------------------------------------------------------------
# cold measurements (bench-pull.sh, bench-push.sh)

# cold: sync and drop the page cache; the first failure is logged and clears drop_caches_ok.
drop_caches_ok=1
cold() {
	sync
	if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		((drop_caches_ok == 0)) || log "cannot write /proc/sys/vm/drop_caches: measurements run with a WARM page cache"
		drop_caches_ok=0
	fi
}

# stamp T0_US: copy stdin to stdout, each line prefixed with the seconds since T0_US.
stamp() {
	local t0=$1 line
	while IFS= read -r line; do
		printf '%8s  %s\n' "$(secs $(($(now_us) - t0)))" "$line"
	done
}

# timed [-s] LOG CMD...: run CMD with its output into LOG (-s: each line time-stamped, see
# stamp); sets `elapsed` (seconds, 3 decimals) and `rc`.
elapsed=0
rc=0
timed() {
	local stamped="" logf t0 t1
	if [[ $1 == -s ]]; then
		stamped=1
		shift
	fi
	logf=$1
	shift
	t0=$(now_us)
	set +e
	if [[ -n $stamped ]]; then
		"$@" 2>&1 | stamp "$t0" >"$logf"
		rc=${PIPESTATUS[0]}
	else
		"$@" >"$logf" 2>&1
		rc=$?
	fi
	set -e
	t1=$(now_us)
	elapsed=$(secs $((t1 - t0)))
}

# ---------------------------------------------------------------------------------------------
# tools and builds

# apt_install PKG...: apt-get install PKGS (no recommends), its output on stderr.
apt_install() {
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >&2
}

# ensure_commands CMD...: apt-get install the commands (packages of the same name) that are
# missing, as on a fresh machine; dies if that fails.
ensure_commands() {
	local c missing=()
	for c in "$@"; do
		command -v "$c" >/dev/null || missing+=("$c")
	done
	((${#missing[@]} > 0)) || return 0
	log "apt-get install ${missing[*]}"
	apt_install "${missing[@]}" || die "could not install ${missing[*]} (apt-get install ${missing[*]})"
}

# ensure_crane: go install crane CRANE_VERSION into TOOLS when missing (with the version
# stamp scripts/install-deps.sh checks).
ensure_crane() {
	[[ ! -x $CRANE ]] || return 0
	log "installing crane $CRANE_VERSION into $TOOLS"
	mkdir -p "$TOOLS"
	GOBIN=$TOOLS go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" >&2
	echo "$CRANE_VERSION" >"$TOOLS/.crane.version"
}

# build_pullrun_release: check BENCH_PULLRUN_BIN, or build bin/pull-run as a release build
# (-trimpath -ldflags "-s -w"), as the anchors' binaries are (Debian's runc and Docker are
# stripped): the binary is re-executed as each container's monitor and, from a sealed memfd
# copy, as its init, so its size counts in every start. Dies if neither works.
build_pullrun_release() {
	if [[ -n ${BENCH_PULLRUN_BIN:-} ]]; then
		[[ -x $PULLRUN ]] || die "BENCH_PULLRUN_BIN=$PULLRUN is not executable"
	else
		log "building bin/pull-run (go build -trimpath -ldflags '-s -w')"
		go build -trimpath -ldflags "-s -w" -o "$PULLRUN" ./cmd/pull-run
	fi
}

# build_pullrun_or_note: check BENCH_PULLRUN_BIN, or build bin/pull-run (a plain build);
# when neither works, pullrun_broken says why (the other tools still run).
pullrun_broken=""
build_pullrun_or_note() {
	if [[ -n ${BENCH_PULLRUN_BIN:-} ]]; then
		[[ -x $PULLRUN ]] || pullrun_broken="BENCH_PULLRUN_BIN=$PULLRUN is not executable"
	else
		log "building bin/pull-run"
		if ! go build -o "$PULLRUN" ./cmd/pull-run >"$OUTDIR/pull-run-build.log" 2>&1; then
			cat "$OUTDIR/pull-run-build.log" >&2
			pullrun_broken="go build ./cmd/pull-run failed (log $OUTDIR/pull-run-build.log)"
		fi
	fi
}

# build_registry_bins [MORE]: build bin/registry and bin/regbench; MORE (e.g. bin/httpstatic,
# built by the caller) is named in the log line too.
# shellcheck disable=SC2120 # MORE is optional
build_registry_bins() {
	log "building bin/registry, bin/regbench${1:+, $1}"
	go build -o "$REGISTRY" ./cmd/registry
	go build -o "$REGBENCH" ./bench/regbench
}

# ---------------------------------------------------------------------------------------------
# registry and images

# start_registry DIR [LOG]: serve DIR/data with bin/registry (deletes enabled) on a free
# 127.0.0.1 port, its config in DIR/registry.yml and its output appended to LOG
# [OUTDIR/registry-<basename DIR>.log]; waits up to 20 s for it, else dies. Sets started_pid
# and started_addr (HOST:PORT); the caller stops it (stop_pid).
started_pid=""
started_addr=""
start_registry() {
	local dir=$1 logf=${2:-$OUTDIR/registry-${1##*/}.log} port
	mkdir -p "$dir"
	port=$("$REGBENCH" -free-port)
	cat >"$dir/registry.yml" <<EOC
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOC
	"$REGISTRY" serve "$dir/registry.yml" >>"$logf" 2>&1 &
	started_pid=$!
	started_addr=127.0.0.1:$port
	"$REGBENCH" -wait "$started_addr" -timeout 20s -pid "$started_pid" || die "bin/registry did not start (log $logf)"
}

# busybox_rootfs DIR APPLET...: a minimal root filesystem in DIR: busybox-static
# (/usr/bin/busybox) as /bin/busybox, a link to it per APPLET, /etc/passwd and /etc/group
# with root and nobody, an empty /tmp (1777), /proc, /sys, /dev, /root. Dies without busybox.
busybox_rootfs() {
	local dir=$1 a
	shift
	[[ -x /usr/bin/busybox ]] || die "/usr/bin/busybox (busybox-static) is needed for the image"
	mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root}
	chmod 1777 "$dir/tmp"
	cp /usr/bin/busybox "$dir/bin/busybox"
	for a in "$@"; do
		ln -s busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# layer_tar DIR TAR: DIR's content as an uncompressed layer (numeric owners, sorted names).
layer_tar() { tar --numeric-owner --sort=name -C "$1" -cf "$2" .; }

# crane_push LOG IMAGE CMD PATH LAYER...: push an image of LAYERs (files, as they are: Docker
# media types) with crane to IMAGE (REPO:TAG; REPO:layers-TAG holds the layers alone), for
# linux/amd64 with the given CMD and PATH; crane's output is appended to LOG. Dies on failure.
crane_push() {
	local logf=$1 image=$2 cmd=$3 path=$4 l
	shift 4
	local tmp=${image%:*}:layers-${image##*:} files=()
	for l in "$@"; do
		files+=(-f "$l")
	done
	"$CRANE" append --insecure "${files[@]}" -t "$tmp" >>"$logf" 2>&1 ||
		die "crane append failed (log $logf)"
	"$CRANE" mutate --insecure "$tmp" --set-platform linux/amd64 -e "PATH=$path" --cmd "$cmd" -t "$image" >>"$logf" 2>&1 ||
		die "crane mutate failed (log $logf)"
}

# push_busybox_image REPO WHAT: tar base/rootfs (busybox_rootfs, plus what the caller added)
# into base/layer.tar, start bin/registry over base/registry (log OUTDIR/registry.log) and
# push the layer there as REPO:latest (crane log OUTDIR/push.log; WHAT describes it in the
# log line). Sets registry_pid (the caller's trap stops it) and image (the reference).
push_busybox_image() {
	layer_tar "$base/rootfs" "$base/layer.tar"
	start_registry "$base/registry" "$OUTDIR/registry.log"
	registry_pid=$started_pid
	image=$started_addr/$1:latest
	log "pushing $image ($2)"
	crane_push "$OUTDIR/push.log" "$image" sh "$BUSYBOX_PATH" "$base/layer.tar"
}

# PATH of the images that only hold busybox, and of the Debian + Go image of bench-pull.sh.
BUSYBOX_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
GO_IMAGE_PATH=/usr/local/go/bin:$BUSYBOX_PATH

# ---------------------------------------------------------------------------------------------
# pull-run and docker

# pr_rm_all: remove every container of the bench's pull-run root (the array PR: pull-run
# with its --root/--runroot), if PR is set.
# shellcheck disable=SC2317 # invoked by the callers' traps
pr_rm_all() {
	((${#PR[@]})) || return 0
	local ids
	ids=$("${PR[@]}" ps -aq --no-trunc 2>/dev/null || true)
	if [[ -n $ids ]]; then
		# shellcheck disable=SC2086
		"${PR[@]}" rm -f $ids >/dev/null 2>&1 || true
	fi
}

# cleanup_common: the end of the clean-up of the busybox benches: stop the dockerd started
# here (if any) and the registry (registry_pid), and remove base.
# shellcheck disable=SC2317 # invoked by the callers' traps
cleanup_common() {
	stop_dockerd
	stop_pid "${registry_pid:-}"
	registry_pid=""
	if [[ -n ${base:-} && -d $base ]]; then
		rm -rf "$base"
	fi
	base=""
}

# pr_pull LOG: `pull-run pull -q IMAGE` into the bench's root (PR, image), its output in LOG;
# dies if it fails.
pr_pull() {
	"${PR[@]}" pull -q "$image" >"$1" 2>&1 || die "pull-run pull $image failed (log $1)"
}

# docker_up: 0 when docker can be used, starting dockerd (start_dockerd) when `docker info`
# fails; else 1, with the reason in docker_why.
docker_why=""
docker_up() {
	docker_why=""
	if ! command -v docker >/dev/null; then
		docker_why="docker not installed"
	elif ! docker info >/dev/null 2>&1 && ! start_dockerd; then
		docker_why="no Docker daemon (dockerd did not start; log $OUTDIR/dockerd.log)"
	fi
	[[ -z $docker_why ]]
}

# docker_pulled IMAGE: docker_up, then `docker pull -q IMAGE` (log OUTDIR/docker-pull.log);
# sets docker_ok once dockerd answers; 1 with docker_why when either fails.
docker_ok=""
docker_pulled() {
	docker_up || return 1
	docker_ok=1
	docker pull -q "$1" >"$OUTDIR/docker-pull.log" 2>&1 || {
		docker_why="docker pull failed (log $OUTDIR/docker-pull.log)"
		return 1
	}
}
