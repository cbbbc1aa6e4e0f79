#!/usr/bin/env bash
# Pull benchmark: `pull-run pull` against `docker pull` and `podman pull` of one realistic
# image from a local Berth registry, each from an empty store with a cold page cache, plus
# the anchors `tar -xzf` of the layers one after another and one gzip stream alone.
#
# The image (built once per machine, cached under .cache/bench-image/), 3 gzip layers:
#   1. a Debian bookworm minbase rootfs (debootstrap --variant=minbase, from the apt mirror
#      configured on the host), /dev emptied and apt's binary caches removed (the downloaded
#      .debs stay in /var/cache/apt/archives, like the already-compressed payload of real
#      images);
#   2. the Go toolchain tree (/usr/local/go, or `go env GOROOT`) without its test/ directory;
#   3. a few small files (/etc/bench-image, /etc/profile.d, /usr/local/bin).
# About 430 MB of tar and 155-160 MB of gzip (gzip -6). Where debootstrap cannot run, layer
# 1 falls back to ~200 MB of host files (/etc, /usr/bin, /usr/sbin, /usr/lib/x86_64-linux-gnu,
# /usr/share), and the output says so.
#
# Each run: bin/registry serves a temp filesystem root on a free 127.0.0.1 port and crane
# pushes one image per round (crane append: Docker media types, the cached blobs as they are;
# crane mutate: linux/amd64, PATH, cmd). The images differ only by one small file appended to
# layer 1 (etc/bench-image-variant), which gives every layer a new chain ID: docker then needs
# no `docker rmi` between its rounds. Then BENCH_PULL_ROUNDS rounds, the tools interleaved,
# all pulling that round's image; per measurement: an empty store (pull-run and podman: a
# fresh --root in a fresh directory under BENCH_PULL_TMPDIR; docker: an image none of whose
# layers it has), `sync; echo 3 > /proc/sys/vm/drop_caches`, then the pull command timed end
# to end. The anchors (`tar -xzf` of the round's 3 layers one after another, each into a fresh
# directory; `gzip -dc` of its largest layer) run the same way, after the pulls of the round.
#
# Nothing is deleted until every measurement is done, and the first measurement waits until
# no mass deletion by this script (the last run's clean-up, the image build) is younger than
# 6 minutes: ext4's inode allocator skips inodes freed in the last 60 s (360 s when their
# inode-table block is dirty, as it is during a pull), one by one from the start of the group
# for every new inode, so file creation right after deleting a tree of ~20,000 files costs
# up to twice the sys time (measured here: pull-run 1.9-2.8 s instead of 1.4 s, a third of
# its samples in find_inode_bit -> recently_deleted). Deletions by other processes on the
# filesystem have the same effect and cannot be seen from here.
#
# Environment knobs (defaults in brackets):
#   BENCH_PULL_TOOLS     space-separated subset of [pull-run docker podman]
#   BENCH_PULL_ROUNDS    rounds; the table shows the median and the range [3]
#   BENCH_PULL_TMPDIR    where the stores, the registry and the anchors' trees go; the same
#                        filesystem for all [/var/tmp]
#   BENCH_PULL_OUTDIR    logs [.cache/bench/<UTC time>-pull]
#   BENCH_IMAGE_DIR      the cached layers [.cache/bench-image]
#   BENCH_DEBIAN_MIRROR  debootstrap mirror [the host's apt mirror, else http://deb.debian.org/debian]
#   BENCH_PODMAN_DRIVER  podman storage driver [overlay; vfs is used if overlay fails]
#   BENCH_PULLRUN_BIN    a pull-run binary to measure instead of building ./cmd/pull-run
#   BENCH_PULL_SETTLE    1: wait out the ext4 penalty of this script's last mass deletion
#                        (up to 6 min); 0: do not wait, and flag the figures [1]
#
# The pull-run store is on the same filesystem as podman's; dockerd's is /var/lib/docker
# (dockerd is started as the e2e tests do when `docker info` fails, and stopped at the end
# only then). Needs root (page cache drops, debootstrap, dockerd).
#
# Exits non-zero only if a tool cannot pull the image at all (or the harness cannot run);
# missed targets are reported, not failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_SELF=bench-pull
TOOLS=${TOOLS:-$ROOT/.cache/tools/bin}
REGBENCH=$ROOT/bin/regbench
PULLRUN=${BENCH_PULLRUN_BIN:-$ROOT/bin/pull-run}
REGISTRY=$ROOT/bin/registry

PULL_TOOLS=${BENCH_PULL_TOOLS-pull-run docker podman}
ROUNDS=${BENCH_PULL_ROUNDS:-3}
TMPBASE=${BENCH_PULL_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_PULL_OUTDIR:-$ROOT/.cache/bench/$(date -u +%Y%m%dT%H%M%SZ)-pull}
IMGDIR=${BENCH_IMAGE_DIR:-$ROOT/.cache/bench-image}
PODMAN_DRIVER=${BENCH_PODMAN_DRIVER:-overlay}
SETTLE=${BENCH_PULL_SETTLE:-1}
SETTLE_SECONDS=360
DELETED_STAMP=$TMPBASE/.berth-bench-pull-deleted # time of this script's last mass deletion
IMAGE_RECIPE=v2 # bump when the image recipe changes: the cached layers are rebuilt

# Targets of the issue.
TARGET_SECONDS=2.0
TARGET_VS_PODMAN=2.8
TARGET_VS_GZIP=1.5
TARGET_DISK=1.05

# log, die, median_secs, minimum, maximum, fcalc, secs, mb, cold, timed, apt_install, the
# build and registry helpers: scripts/lib/bench.sh; stop_pid, start_dockerd, stop_dockerd:
# scripts/lib/procs.sh
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"

need_root "drop_caches, debootstrap, dockerd"
mkdir -p "$OUTDIR" "$TOOLS"

# ---------------------------------------------------------------------------------------------
# helpers

# du_bytes DIR: disk used by DIR in bytes (allocated blocks, hard links once).
du_bytes() { du -s --block-size=1 "$1" | cut -f1; }

# mark_deleted: record that many files were just deleted on the filesystem.
mark_deleted() { date +%s >"$DELETED_STAMP" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# the image (cached)

# debian_mirror: the host's Debian mirror (the first URI serving a bookworm suite that is
# not the security archive), else deb.debian.org.
debian_mirror() {
	local m=""
	if [[ -n ${BENCH_DEBIAN_MIRROR:-} ]]; then
		echo "$BENCH_DEBIAN_MIRROR"
		return
	fi
	shopt -s nullglob
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
		[[ -n $m ]] && break
	done
	if [[ -z $m ]]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f")
			[[ -n $m ]] && break
		done
	fi
	shopt -u nullglob
	echo "${m:-http://deb.debian.org/debian}"
}

# layer1_debootstrap WORK TAR: Debian minbase rootfs as a tar. Fails if debootstrap fails.
layer1_debootstrap() {
	local work=$1 tar=$2 mirror
	if ! command -v debootstrap >/dev/null; then
		log "installing debootstrap (apt-get)"
		apt_install debootstrap || return 1
	fi
	mirror=$(debian_mirror)
	log "image: debootstrap --variant=minbase bookworm from $mirror (log $OUTDIR/debootstrap.log)"
	rm -rf "$work/rootfs"
	debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$OUTDIR/debootstrap.log" 2>&1 || return 1
	# As Docker's debian images: no device nodes, no apt binary caches (rebuilt on use).
	rm -rf "$work/rootfs/dev/"* "$work/rootfs/proc/"* "$work/rootfs/sys/"* "$work/rootfs/var/cache/apt/"*.bin
	tar --numeric-owner --sort=name -C "$work/rootfs" -cf "$tar" .
	echo "Debian bookworm minbase (debootstrap, $mirror)" >"$work/layer1.what"
}

# layer1_fallback WORK TAR: ~200 MB of host files, when debootstrap cannot run.
layer1_fallback() {
	local work=$1 tar=$2 budget=$((200 * 1000 * 1000))
	log "image: FALLBACK layer 1 = ~200 MB of host files (debootstrap did not work)"
	# Directories and files in name order until the budget; tar with --no-recursion so the
	# list is the exact content.
	(cd / && find etc usr/bin usr/sbin usr/lib/x86_64-linux-gnu usr/share \( -type d -o -type f -o -type l \) -printf '%y %s %p\n' 2>/dev/null) |
		sort -k3 | awk -v b="$budget" '{ if ($1 == "f") s += $2; if (s > b) exit; print $3 }' >"$work/fallback.list"
	tar --numeric-owner -C / --no-recursion -cf "$tar" -T "$work/fallback.list"
	echo "FALLBACK: ~200 MB of host files (/etc, /usr/bin, /usr/sbin, /usr/lib/x86_64-linux-gnu, /usr/share), debootstrap failed" >"$work/layer1.what"
}

build_image() {
	local work=$IMGDIR/work goroot
	rm -rf "$work"
	mkdir -p "$work"
	log "image: building into $IMGDIR (once per machine)"

	if ! layer1_debootstrap "$work" "$work/layer1.tar"; then
		log "image: debootstrap failed (see $OUTDIR/debootstrap.log)"
		layer1_fallback "$work" "$work/layer1.tar"
	fi

	goroot=/usr/local/go
	[[ -d $goroot ]] || goroot=$(go env GOROOT)
	log "image: layer 2 = $goroot (without test/)"
	if [[ $goroot == /usr/local/go ]]; then
		tar --numeric-owner --sort=name -C / -cf "$work/layer2.tar" --exclude=usr/local/go/test \
			--no-recursion usr usr/local --recursion usr/local/go
	else
		mkdir -p "$work/l2/usr/local"
		cp -a "$goroot" "$work/l2/usr/local/go"
		rm -rf "$work/l2/usr/local/go/test"
		tar --numeric-owner --sort=name -C "$work/l2" -cf "$work/layer2.tar" usr
	fi
	echo "Go toolchain $("$goroot/bin/go" version | awk '{ print $3 }') ($goroot, without test/)" >"$work/layer2.what"

	local l3=$work/l3
	mkdir -p "$l3/etc/bench-image" "$l3/etc/profile.d" "$l3/usr/local/bin"
	printf 'berth bench image %s\nbuilt %s on %s\n' "$IMAGE_RECIPE" "$(date -u +%FT%TZ)" "$(uname -srm)" >"$l3/etc/bench-image/build-info"
	# shellcheck disable=SC2016 # $PATH is for the image's shell
	echo 'export PATH=/usr/local/go/bin:"$PATH"' >"$l3/etc/profile.d/go.sh"
	printf 'GOTOOLCHAIN=local\nGOFLAGS=-mod=mod\n' >"$l3/etc/bench-image/go.env"
	printf '#!/bin/sh\necho "hello from the berth bench image"\nexec go version\n' >"$l3/usr/local/bin/hello"
	chmod 0755 "$l3/usr/local/bin/hello"
	ln -s ../../etc/bench-image/build-info "$l3/usr/local/bin/build-info"
	tar --numeric-owner --owner=0 --group=0 --sort=name -C "$l3" -cf "$work/layer3.tar" etc usr
	echo "a few config files" >"$work/layer3.what"

	# gzip -6 (the default level, as docker push); -n: no name and time in the header, so
	# the same tars give the same blobs. Layer 1 is compressed per variant (ensure_variant).
	gzip -6 -n -c "$work/layer2.tar" >"$work/layer2.tar.gz" &
	local pid=$!
	gzip -6 -n -c "$work/layer3.tar" >"$work/layer3.tar.gz" || die "gzip failed"
	wait "$pid" || die "gzip failed"

	{
		echo "IMAGE_RECIPE=$IMAGE_RECIPE"
		for i in 1 2 3; do
			echo "LAYER${i}_TAR_BYTES=$(stat -c %s "$work/layer$i.tar")"
			echo "LAYER${i}_FILES=$(tar -tf "$work/layer$i.tar" | wc -l)"
			printf 'LAYER%s_WHAT=%q\n' "$i" "$(cat "$work/layer$i.what")"
		done
		for i in 2 3; do
			echo "LAYER${i}_GZ_BYTES=$(stat -c %s "$work/layer$i.tar.gz")"
		done
	} >"$work/image.env"
	rm -f "$IMGDIR"/layer1.tar.gz "$IMGDIR"/layer1-v*.tar.gz "$IMGDIR"/layer1-v*.env
	mv "$work/layer1.tar" "$IMGDIR/layer1-base.tar"
	mv "$work/layer2.tar.gz" "$work/layer3.tar.gz" "$IMGDIR/"
	mv "$work/image.env" "$IMGDIR/image.env" # last: marks the cache complete
	rm -rf "$work"
	mark_deleted
}

# ensure_variant K: layer1-vK.tar.gz, the base rootfs tar with etc/bench-image-variant
# appended (a new DiffID, so new chain IDs for every layer above it), and its sizes.
ensure_variant() {
	local k=$1 v=$IMGDIR/layer1-v$1 vdir
	[[ -f $v.env && -f $v.tar.gz ]] && return 0
	vdir=$(mktemp -d "$IMGDIR/variant.XXXXXX")
	mkdir -p "$vdir/etc"
	printf 'berth bench image %s, variant %s\n' "$IMAGE_RECIPE" "$k" >"$vdir/etc/bench-image-variant"
	cp "$IMGDIR/layer1-base.tar" "$vdir/layer1.tar"
	tar --numeric-owner --owner=0 --group=0 --mtime=@1700000000 -C "$vdir" -rf "$vdir/layer1.tar" etc/bench-image-variant
	gzip -6 -n -c "$vdir/layer1.tar" >"$vdir/layer1.tar.gz"
	printf 'LAYER1_TAR_BYTES=%s\nLAYER1_GZ_BYTES=%s\n' "$(stat -c %s "$vdir/layer1.tar")" "$(stat -c %s "$vdir/layer1.tar.gz")" >"$vdir/env"
	mv "$vdir/layer1.tar.gz" "$v.tar.gz"
	mv "$vdir/env" "$v.env"
	rm -rf "$vdir"
}

image_ok() {
	[[ -f $IMGDIR/image.env ]] && grep -qx "IMAGE_RECIPE=$IMAGE_RECIPE" "$IMGDIR/image.env" &&
		[[ -f $IMGDIR/layer1-base.tar && -f $IMGDIR/layer2.tar.gz && -f $IMGDIR/layer3.tar.gz ]]
}

# ---------------------------------------------------------------------------------------------
# processes and cleanup

registry_pid=""
dockerd_pid=""
docker_ok="" # set once dockerd answers: the clean-up removes the images from it
base=""

# umount_under DIR: unmount whatever podman left mounted below DIR (deepest first).
umount_under() {
	local m
	awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	stop_pid "$registry_pid"
	registry_pid=""
	if [[ -n $docker_ok ]]; then
		docker_clear_all
	fi
	stop_dockerd
	if [[ -n $base && -d $base ]]; then
		umount_under "$base"
		rm -rf "$base"
		mark_deleted
	fi
	base=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# build

build_pullrun_or_note # pullrun_broken says why pull-run cannot run
build_registry_bins
ensure_crane
command -v jq >/dev/null || die "jq not found (scripts/install-deps.sh installs it)"

mkdir -p "$IMGDIR" "$TMPBASE"
if ! image_ok; then
	build_image
fi
# One variant of layer 1 per round, compressed two at a time (about 5 s each, once).
pids=()
for round in $(seq "$ROUNDS"); do
	if [[ ! -f $IMGDIR/layer1-v$round.env ]]; then
		((${#pids[@]} > 0)) || log "image: compressing the layer 1 variants for $ROUNDS rounds (once)"
		ensure_variant "$round" &
		pids+=($!)
		if ((${#pids[@]} == 2)); then
			wait "${pids[0]}" || die "building layer 1 variant failed"
			pids=("${pids[1]}")
		fi
	fi
done
for pid in "${pids[@]}"; do
	wait "$pid" || die "building layer 1 variant failed"
done

# shellcheck source=/dev/null
source "$IMGDIR/image.env"
# shellcheck source=/dev/null
source "$IMGDIR/layer1-v1.env" # sizes in the report: variant 1's (the others differ by bytes)
TAR_BYTES=$((LAYER1_TAR_BYTES + LAYER2_TAR_BYTES + LAYER3_TAR_BYTES))
GZ_BYTES=$((LAYER1_GZ_BYTES + LAYER2_GZ_BYTES + LAYER3_GZ_BYTES))
LAYER1_FILES=$((LAYER1_FILES + 1))
# layers K: the three layer files of round K's image.
layers() { echo "$IMGDIR/layer1-v$1.tar.gz" "$IMGDIR/layer2.tar.gz" "$IMGDIR/layer3.tar.gz"; }
largest=1
for i in 2 3; do
	v=LAYER${i}_GZ_BYTES
	w=LAYER${largest}_GZ_BYTES
	((${!v} > ${!w})) && largest=$i
done
# largest_layer K: round K's largest layer file.
# shellcheck disable=SC2317 # invoked through timed
largest_layer() {
	local l
	read -ra l <<<"$(layers "$1")"
	echo "${l[largest - 1]}"
}

# Room for every store and tree at once (nothing is deleted before the end).
ntools=$(wc -w <<<"$PULL_TOOLS")
need=$((ROUNDS * (ntools + 1) * TAR_BYTES * 6 / 5 + 2 * GZ_BYTES))
avail=$(df --output=avail -B1 "$TMPBASE" | tail -n1)
((avail > need)) || die "$TMPBASE has $(mb "$avail") MB free; the run needs about $(mb "$need") MB"

# ---------------------------------------------------------------------------------------------
# registry and push

base=$(mktemp -d "$TMPBASE/berth-bench-pull.XXXXXX")
start_registry "$base/registry" "$OUTDIR/registry.log"
registry_pid=$started_pid
log "registry: $REGISTRY serve on $started_addr (data $base/registry/data, log $OUTDIR/registry.log)"

REPO=$started_addr/bench/debian-go
declare -A REFS=()    # round -> reference
declare -A CONFIGS=() # round -> config digest (docker's image ID)
declare -A CHAINS=()  # round -> the layers' chain IDs (docker's layerdb keys)
t0=$(now_us)
for round in $(seq "$ROUNDS"); do
	ref=$REPO:v$round
	read -ra ls <<<"$(layers "$round")"
	crane_push "$OUTDIR/push.log" "$ref" /bin/bash "$GO_IMAGE_PATH" "${ls[@]}"
	manifest=$("$CRANE" manifest --insecure "$ref")
	for l in "${ls[@]}"; do
		d=sha256:$(sha256sum "$l" | cut -d' ' -f1)
		[[ $manifest == *"$d"* ]] || die "the pushed manifest does not carry $l as is ($d): $manifest"
	done
	config=$("$CRANE" config --insecure "$ref")
	CONFIGS[$round]=sha256:$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
	chain=""
	prev=""
	for d in $(jq -r '.rootfs.diff_ids[]' <<<"$config"); do
		if [[ -z $prev ]]; then
			prev=$d
		else
			prev=sha256:$(printf '%s %s' "$prev" "$d" | sha256sum | cut -d' ' -f1)
		fi
		chain+="$prev "
	done
	CHAINS[$round]=$chain
	REFS[$round]=$ref
done
log "pushed $ROUNDS images ($(mb "$GZ_BYTES") MB gzip, $(mb "$TAR_BYTES") MB tar each; layers 2-3 shared) in $(secs $(($(now_us) - t0))) s"

# ---------------------------------------------------------------------------------------------
# tools

declare -A unavailable=() # tool -> why it cannot run
declare -A times=()       # tool -> space-separated seconds
declare -A failed=()      # tool -> first failure
status=0

docker_driver=""
docker_layerdb=""
docker_root=""
# docker_clear ROUND: remove round's image from dockerd (marking a mass deletion if it was
# there); fails if a layer of it is still stored.
docker_clear() {
	local ref=${REFS[$1]} c had=""
	if docker image inspect "$ref" >/dev/null 2>&1 || docker image inspect "${CONFIGS[$1]}" >/dev/null 2>&1; then
		had=1
		docker rmi -f "$ref" >/dev/null 2>&1 || true
		docker rmi -f "${CONFIGS[$1]}" >/dev/null 2>&1 || true
		mark_deleted
	fi
	if docker image inspect "$ref" >/dev/null 2>&1; then
		echo "image $ref still present after docker rmi -f"
		return 1
	fi
	if [[ -n $docker_layerdb ]]; then
		for c in ${CHAINS[$1]}; do
			if [[ -e $docker_layerdb/${c#sha256:} ]]; then
				echo "layer $c of $ref still in $docker_layerdb after docker rmi -f (another image uses it?)"
				return 1
			fi
		done
	fi
	[[ -z $had ]] || log "docker: removed $ref, left by an earlier run"
}

# shellcheck disable=SC2317 # invoked by cleanup
docker_clear_all() {
	local r
	for r in "${!REFS[@]}"; do
		docker_clear "$r" >/dev/null 2>&1 || true
	done
}

for tool in $PULL_TOOLS; do
	case $tool in
	pull-run)
		[[ -z $pullrun_broken ]] || unavailable[pull-run]=$pullrun_broken
		;;
	docker)
		if ! docker_up; then
			unavailable[docker]=$docker_why
		else
			docker_ok=1
			docker_driver=$(docker info --format '{{.Driver}}' 2>/dev/null || true)
			docker_root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
			if [[ -d $docker_root/image/$docker_driver/layerdb/sha256 ]]; then
				docker_layerdb=$docker_root/image/$docker_driver/layerdb/sha256
			fi
			for round in $(seq "$ROUNDS"); do
				if ! why=$(docker_clear "$round"); then
					unavailable[docker]="cannot empty the daemon of the image: $why"
					break
				fi
			done
		fi
		;;
	podman)
		command -v podman >/dev/null || unavailable[podman]="podman not installed"
		;;
	*) unavailable[$tool]="unknown tool (known: pull-run docker podman)" ;;
	esac
	if [[ -n ${unavailable[$tool]:-} ]]; then
		log "$tool: FAILED: ${unavailable[$tool]}"
		status=1
	fi
done

pullrun_disk="" # du of the snapshot dir after the first pull
pullrun_root_disk=""
podman_disk=""
declare -A pullrun_cpu=()  # round -> "user sys"
declare -A pullrun_time=() # round -> seconds

# pull_once TOOL ROUND: one cold pull of round's image into an empty store.
pull_once() {
	local tool=$1 round=$2 dir=$base/r$2-$1 logf=$OUTDIR/$1-$2.log ref=${REFS[$2]}
	mkdir -p "$dir"
	case $tool in
	pull-run)
		cold
		timed -s "$logf" /usr/bin/time -f 'cpu %U %S' -o "$dir/cpu" \
			"$PULLRUN" --root "$dir/root" --runroot "$dir/run" pull "$ref"
		;;
	docker)
		cold
		timed -s "$logf" docker pull "$ref"
		;;
	podman)
		local drv=$PODMAN_DRIVER
		cold
		timed -s "$logf" podman --root "$dir/root" --runroot "$dir/run" --storage-driver "$drv" \
			pull --tls-verify=false "$ref"
		if ((rc != 0)) && [[ $drv == overlay ]]; then
			log "podman: overlay pull failed (log $logf); falling back to vfs"
			mv "$logf" "$OUTDIR/podman-overlay-failed.log"
			umount_under "$dir"
			dir=$base/r$2-podman-vfs
			mkdir -p "$dir"
			PODMAN_DRIVER=vfs
			drv=vfs
			cold
			timed -s "$logf" podman --root "$dir/root" --runroot "$dir/run" --storage-driver "$drv" \
				pull --tls-verify=false "$ref"
		fi
		;;
	esac
	if ((rc != 0)); then
		log "$tool round $round: FAILED (exit $rc, log $logf)"
		tail -n 5 "$logf" >&2 || true
		failed[$tool]=${failed[$tool]:-exit $rc, log $logf}
		return
	fi
	times[$tool]+="$elapsed "
	log "$tool round $round: $elapsed s"
	case $tool in
	pull-run)
		pullrun_time[$round]=$elapsed
		pullrun_cpu[$round]=$(awk '$1 == "cpu" { print $2, $3 }' "$dir/cpu")
		if [[ -z $pullrun_disk ]]; then
			pullrun_disk=$(du_bytes "$dir/root/snapshots")
			pullrun_root_disk=$(du_bytes "$dir/root")
		fi
		;;
	podman)
		[[ -n $podman_disk ]] || podman_disk=$(du_bytes "$dir/root")
		umount_under "$dir"
		;;
	esac
}

# untar_layers ROUND DIR: tar -xzf of round's layers into DIR/1, DIR/2, DIR/3, one after another.
# shellcheck disable=SC2317 # invoked through timed
untar_layers() {
	local i l
	read -ra l <<<"$(layers "$1")"
	for i in 1 2 3; do
		tar -xzf "${l[i - 1]}" -C "$2/$i" || return 1
	done
}
# shellcheck disable=SC2317 # invoked through timed
gunzip_largest() { gzip -dc "$(largest_layer "$1")" >/dev/null; }

declare -A anchor=()
tar_disk=""
# anchors_once ROUND
anchors_once() {
	local round=$1 dir=$base/r$1-tar
	mkdir -p "$dir/1" "$dir/2" "$dir/3"
	cold
	timed -s "$OUTDIR/tar-$round.log" untar_layers "$round" "$dir"
	((rc == 0)) || die "tar -xzf failed (log $OUTDIR/tar-$round.log)"
	anchor[tar]+="$elapsed "
	local tar_s=$elapsed
	[[ -n $tar_disk ]] || tar_disk=$(du_bytes "$dir")
	cold
	timed -s "$OUTDIR/gzip-$round.log" gunzip_largest "$round"
	((rc == 0)) || die "gzip -dc failed (log $OUTDIR/gzip-$round.log)"
	anchor[gzip]+="$elapsed "
	log "anchors round $round: tar -xzf $tar_s s, gzip -dc $elapsed s"
}

# Let ext4 forget the inodes this script deleted last (see the top of this file).
settled=1
if [[ -f $DELETED_STAMP ]]; then
	ago=$(($(date +%s) - $(cat "$DELETED_STAMP")))
	if ((ago < SETTLE_SECONDS)); then
		if [[ $SETTLE == 1 ]]; then
			log "waiting $((SETTLE_SECONDS - ago)) s: many files were deleted on this filesystem $ago s ago," \
				"and ext4 creates files slowly for 6 min after that (BENCH_PULL_SETTLE=0 skips the wait)"
			sleep $((SETTLE_SECONDS - ago))
		else
			settled=0
			log "WARNING: many files were deleted on this filesystem $ago s ago: file creation is slower for 6 min after that"
		fi
	fi
fi

load_start=$(loadavg1)
for round in $(seq "$ROUNDS"); do
	for tool in $PULL_TOOLS; do
		[[ -z ${unavailable[$tool]:-} && -z ${failed[$tool]:-} ]] || continue
		pull_once "$tool" "$round"
	done
	anchors_once "$round"
done
load_end=$(loadavg1)

# ---------------------------------------------------------------------------------------------
# report

echo
echo "Pull: $REPO:v1..v$ROUNDS (one per round), 3 gzip layers, $(mb "$GZ_BYTES") MB compressed, $(mb "$TAR_BYTES") MB of tar"
for i in 1 2 3; do
	g=LAYER${i}_GZ_BYTES t=LAYER${i}_TAR_BYTES f=LAYER${i}_FILES w=LAYER${i}_WHAT
	printf '  layer %s: %7s MB gzip %7s MB tar %6s entries  %s\n' "$i" "$(mb "${!g}")" "$(mb "${!t}")" "${!f}" "${!w}"
done
fs_of() { df --output=source,fstype "$1" 2>/dev/null | tail -n1 | tr -s ' ' | sed 's/ / (/; s/$/)/'; }
echo "  pull-run, podman, anchors: fresh directories under $TMPBASE, on $(fs_of "$TMPBASE")"
if [[ -n $docker_ok ]]; then
	echo "  docker: $docker_driver in $docker_root, on $(fs_of "$docker_root"); podman: --storage-driver $PODMAN_DRIVER"
fi
echo

base_s=""
if [[ -n ${times[pull-run]:-} && -z ${failed[pull-run]:-} ]]; then
	# shellcheck disable=SC2086
	base_s=$(median_secs ${times[pull-run]})
fi
printf '%-28s %9s %17s %12s\n' "tool" "median s" "min-max s" "vs pull-run"
for tool in $PULL_TOOLS; do
	failed_row 28 "$tool" "$tool" && continue
	# shellcheck disable=SC2086
	stats_secs "$base_s" ${times[$tool]}
	case $tool in
	pull-run) label="pull-run pull" ;;
	docker) label="docker pull" ;;
	podman) label="podman pull ($PODMAN_DRIVER)" ;;
	esac
	printf '%-28s %9s %17s %12s\n' "$label" "$m" "$r" "$ratio"
	eval "median_${tool//-/_}=$m"
done
# shellcheck disable=SC2086
gzip_s=$(median_secs ${anchor[gzip]})
for a in tar gzip; do
	# shellcheck disable=SC2086
	stats_secs "$base_s" ${anchor[$a]}
	case $a in
	tar) label="anchor: tar -xzf x3" ;;
	gzip) label="anchor: gzip -dc layer $largest" ;;
	esac
	printf '%-28s %9s %17s %12s\n' "$label" "$m" "$r" "$ratio"
done
echo "(vs pull-run: the row's median / pull-run's; above 1 = pull-run is faster)"

if [[ -n $base_s ]]; then
	echo
	echo "pull-run per round (wall, user+sys CPU):"
	for round in $(seq "$ROUNDS"); do
		[[ -n ${pullrun_time[$round]:-} ]] || continue
		read -r u s <<<"${pullrun_cpu[$round]}"
		printf '  round %s: %s s wall, %s s user, %s s sys\n' "$round" "${pullrun_time[$round]}" "$u" "$s"
	done
	# The median round: its time-stamped progress.
	for round in $(seq "$ROUNDS"); do
		if [[ ${pullrun_time[$round]:-} == "$base_s" ]]; then
			echo "pull-run round $round progress (seconds since start):"
			sed 's/^/  /' "$OUTDIR/pull-run-$round.log"
			break
		fi
	done
fi

echo
echo "Disk (du, allocated bytes):"
printf '  pull-run snapshots   %8s MB\n' "$(mb "${pullrun_disk:-0}")"
printf '  pull-run whole root  %8s MB\n' "$(mb "${pullrun_root_disk:-0}")"
[[ -z $podman_disk ]] || printf '  podman whole root    %8s MB\n' "$(mb "$podman_disk")"
printf '  tar -xzf trees       %8s MB (the unpacked size)\n' "$(mb "$tar_disk")"
printf '  layer tars, summed   %8s MB\n' "$(mb "$TAR_BYTES")"

echo
echo "Targets:"
check() { # check LABEL VALUE OP LIMIT
	local verdict
	verdict=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "ok" : "MISSED" }')
	printf '  %-44s %8s %s %-5s %s\n' "$1" "$2" "$3" "$4" "$verdict"
}
if [[ -n $base_s ]]; then
	check "pull-run pull, s" "$base_s" "<=" "$TARGET_SECONDS"
	if [[ -n ${median_podman:-} ]]; then
		check "podman / pull-run" "$(fcalc "$median_podman / $base_s")" ">=" "$TARGET_VS_PODMAN"
	fi
	check "pull-run / gzip -dc of the largest layer" "$(fcalc "$base_s / $gzip_s")" "<=" "$TARGET_VS_GZIP"
	check "pull-run snapshots / tar -xzf trees (du)" "$(fcalc "$pullrun_disk / $tar_disk" '%.3f')" "<=" "$TARGET_DISK"
	echo "  (pull-run snapshots / layer tars summed: $(fcalc "$pullrun_disk / $TAR_BYTES" '%.3f'))"
else
	echo "  pull-run did not run: no checks"
fi
((drop_caches_ok)) || echo "WARNING: the page cache could not be dropped; all figures are warm-cache"
((settled)) || echo "WARNING: files were mass-deleted on this filesystem less than 6 min before (BENCH_PULL_SETTLE=0): figures are pessimistic"
echo "Median of $ROUNDS rounds everywhere; each round: every tool, then the anchors, each after sync + drop_caches."
echo "load average (1 min) at start $load_start, at end $load_end, on $(nproc) cores; logs: $OUTDIR"
warn_if_loaded "$load_start" "$load_end"
exit "$status"
