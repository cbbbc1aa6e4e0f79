#!/usr/bin/env bash
# Network benchmark (issue 6): what pull-run's network layer costs.
#
#   1. Setup cost: `pull-run run -d --network bridge IMAGE sleep 600` against the same with
#      `--network none`, BENCH_NET_N runs of each, interleaved, after two warm-ups each (each
#      container removed, untimed, after its run); median and 90th percentile, and the
#      difference of the medians = the network setup cost (bridge, veth, IPAM, the monitor's
#      DNS server and proxy).
#   2. Throughput of a published port: `wrk -t2 -c32 -d10s` to a container started with
#      `-p HOSTPORT:PORT`, through the published port at 127.0.0.1:HOSTPORT and directly at
#      the container's address on the bridge (`pull-run inspect -f
#      '{{.NetworkSettings.IPAddress}}'`, or `.NetworkSettings.Networks.bridge.IPAddress`),
#      requests/s of both and their ratio, for two servers serving a 1 KiB file. The
#      published port is served by the kernel (pull-run's DNAT rules, runner/network
#      publish.go: the default where iptables or nft is found) or else by the userland
#      proxy; the table says which ("via DNAT" when a nat rule for HOSTPORT exists, "via
#      proxy" otherwise):
#        - busybox httpd (`httpd -f -p 80 -h /www`), which closes every connection after its
#          response: a proxy's cost is mostly that of a connect (accept + dial);
#        - bench/httpstatic, a keep-alive static server (net/http, CGO_ENABLED=0): the
#          cost per request on long-lived connections.
#      Each server is checked with curl both ways first. BENCH_NET_ROUNDS rounds of direct
#      and published (in alternating order) per server; the table gives the medians.
#
# The image: busybox-static (/usr/bin/busybox) and its applets, /www/page.html (1 KiB) and
# /bin/httpstatic in one layer, built as scripts/bench-run.sh builds its image (busybox_rootfs
# and push_busybox_image, scripts/lib/bench.sh), pushed by crane to bin/registry serving a
# temp directory on a free 127.0.0.1 port, and pulled by pull-run into a fresh
# --root/--runroot under BENCH_NET_TMPDIR.
#
# Environment knobs (defaults in brackets):
#   BENCH_NET_N          runs of each network mode in part 1 [20]
#   BENCH_NET_DURATION   wrk duration of each measurement [10s]
#   BENCH_NET_THREADS    wrk threads [2]
#   BENCH_NET_CONNS      wrk connections [32]
#   BENCH_NET_ROUNDS     wrk rounds per server, each measuring direct and published, in
#                        alternating order [3]
#   BENCH_NET_PARTS      space-separated subset of [setup throughput]
#   BENCH_NET_TMPDIR     where the state roots and the registry go [/var/tmp]
#   BENCH_NET_OUTDIR     logs [.cache/bench/<UTC time>-net]
#   BENCH_PULLRUN_BIN    a pull-run binary to measure instead of building bin/pull-run (a
#                        release build: -trimpath -ldflags "-s -w")
#
# Target (of the issue): the published port costs under 20% of the direct throughput. A missed target
# is reported, not failed; the script exits non-zero only when the harness or pull-run cannot
# run at all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_SELF=bench-net
TOOLS=${TOOLS:-$ROOT/.cache/tools/bin}
REGBENCH=$ROOT/bin/regbench
REGISTRY=$ROOT/bin/registry
HTTPSTATIC=$ROOT/bin/httpstatic
PULLRUN=${BENCH_PULLRUN_BIN:-$ROOT/bin/pull-run}

N=${BENCH_NET_N:-20}
DURATION=${BENCH_NET_DURATION:-10s}
THREADS=${BENCH_NET_THREADS:-2}
CONNS=${BENCH_NET_CONNS:-32}
ROUNDS=${BENCH_NET_ROUNDS:-3}
PARTS=${BENCH_NET_PARTS-setup throughput}
TMPBASE=${BENCH_NET_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_NET_OUTDIR:-$ROOT/.cache/bench/$(date -u +%Y%m%dT%H%M%SZ)-net}

TARGET_PROXY_COST_PCT=20

# log, die, median, quantile, ms, fcalc, verdict, the build, registry and image helpers:
# scripts/lib/bench.sh; stop_pid: scripts/lib/procs.sh
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
# shellcheck source-path=SCRIPTDIR source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"

need_root "containers, bridges, veths"
mkdir -p "$OUTDIR" "$TOOLS" "$TMPBASE"

# ---------------------------------------------------------------------------------------------
# processes and clean-up

registry_pid=""
base=""
PR=() # pull-run with the bench's state root

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	pr_rm_all
	if ((${#PR[@]})); then
		# The default bridge and anything else the bench's root made.
		"${PR[@]}" network prune -f >/dev/null 2>&1 || true
	fi
	cleanup_common
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# build, image, registry

ensure_commands curl wrk # a fresh machine: install them, as the other bench scripts do
build_pullrun_release    # a release build, as bench-run.sh measures
build_registry_bins bin/httpstatic
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$HTTPSTATIC" ./bench/httpstatic
ensure_crane

base=$(mktemp -d "$TMPBASE/berth-bench-net.XXXXXX")
busybox_rootfs "$base/rootfs" sh true echo cat ls sleep env id hostname ps httpd wget nslookup ip
mkdir -p "$base/rootfs/www"
cp "$HTTPSTATIC" "$base/rootfs/bin/httpstatic"
# A 1 KiB page (not index.html, which net/http's file server redirects to /).
{
	printf '<!doctype html><title>berth bench</title><pre>\n'
	for i in $(seq 32); do printf 'line %02d of the benchmark page, padding it to 1 KiB ..\n' "$i"; done
} | head -c 1024 >"$base/rootfs/www/page.html"
page_size=$(stat -c %s "$base/rootfs/www/page.html")
push_busybox_image bench/busybox-net "busybox-static, httpstatic, /www; one layer"

PR=("$PULLRUN" --root "$base/pull-run/root" --runroot "$base/pull-run/run")
pr_pull "$OUTDIR/pull.log"

declare -A failed=()

# ---------------------------------------------------------------------------------------------
# 1. network setup cost: run -d --network bridge vs none

declare -A times=()
modes=(none bridge)
if [[ " $PARTS " == *" setup "* ]]; then
	# once MODE: one timed run -d in MODE (its time appended to times[MODE]), then an
	# untimed rm -f. Fails if either does.
	once() {
		local mode=$1 t0 t1 id
		t0=$(now_us)
		id=$("${PR[@]}" run -d --network "$mode" "$image" sleep 600 2>>"$OUTDIR/setup-$mode.log") || return 1
		t1=$(now_us)
		"${PR[@]}" rm -f "$id" >>"$OUTDIR/setup-$mode.log" 2>&1 || return 1
		times[$mode]+="$((t1 - t0)) "
	}
	log "warming up (2 runs each of --network ${modes[*]})"
	for _ in 1 2; do
		for mode in "${modes[@]}"; do
			once "$mode" || failed[setup-$mode]="warm-up run failed (log $OUTDIR/setup-$mode.log)"
		done
	done
	times=()
	log "timing run -d --network ${modes[*]}: $N runs each, interleaved"
	for i in $(seq "$N"); do
		for mode in "${modes[@]}"; do
			[[ -z ${failed[setup-$mode]:-} ]] || continue
			once "$mode" || failed[setup-$mode]="run $i failed (log $OUTDIR/setup-$mode.log)"
		done
	done
fi

# ---------------------------------------------------------------------------------------------
# 2. throughput of a published port (DNAT or proxy) vs direct

# published_path PORT: "DNAT" when a nat rule of the host forwards PORT, else "proxy".
published_path() {
	if iptables-save -t nat 2>/dev/null | grep -Eq -- "--dport $1 .*-j DNAT"; then
		echo DNAT
	elif nft list table ip berth 2>/dev/null | grep -Eq "dport $1 dnat"; then
		echo DNAT
	else
		echo proxy
	fi
}
declare -A path=()

# container_ip NAME: the container's address on its network.
container_ip() {
	local ip
	ip=$("${PR[@]}" inspect -f '{{.NetworkSettings.IPAddress}}' "$1" 2>/dev/null || true)
	if [[ -z $ip || $ip == "<no value>" ]]; then
		ip=$("${PR[@]}" inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' "$1" 2>/dev/null || true)
	fi
	[[ -n $ip && $ip != "<no value>" ]] || return 1
	echo "$ip"
}

# wait_page URL: wait up to 10 s for URL to serve the page.
wait_page() {
	for _ in $(seq 100); do
		if curl -fsS --max-time 2 "$1" -o "$base/got.html" 2>/dev/null && cmp -s "$base/got.html" "$base/rootfs/www/page.html"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# wrk_rps NAME URL: one wrk run against URL (its output in wrk-NAME.log); prints the
# requests per second, and records errors in wrk_errors[NAME].
declare -A wrk_errors=()
wrk_rps() {
	local name=$1 url=$2 out rps errs
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$url" 2>&1) || {
		echo "$out" >>"$OUTDIR/wrk-$name.log"
		return 1
	}
	printf '%s\n\n' "$out" >>"$OUTDIR/wrk-$name.log"
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	[[ -n $rps ]] || return 1
	errs=$(sed -n -e 's/^ *Socket errors: //p' -e 's/^ *Non-2xx or 3xx responses: \(.*\)/non-2xx \1/p' <<<"$out" | paste -sd ';' -)
	if [[ -n $errs ]]; then
		wrk_errors[$name]=$errs
	fi
	echo "$rps"
}

servers=(busybox-httpd httpstatic)
declare -A server_cmd=(
	[busybox-httpd]="httpd -f -p 80 -h /www"
	[httpstatic]="httpstatic -addr :80 -root /www"
)
declare -A server_note=(
	[busybox-httpd]="a connection per request"
	[httpstatic]="keep-alive"
)
declare -A rps=()
if [[ " $PARTS " == *" throughput "* ]]; then
	for srv in "${servers[@]}"; do
		name=bench-net-$srv
		hp=$("$REGBENCH" -free-port)
		log "$srv: run -d -p $hp:80 (${server_cmd[$srv]})"
		# shellcheck disable=SC2086 # the server's command line
		if ! "${PR[@]}" run -d --name "$name" -p "$hp:80" "$image" ${server_cmd[$srv]} >"$OUTDIR/$srv.log" 2>&1; then
			failed[$srv]="run -d -p $hp:80 failed (log $OUTDIR/$srv.log)"
			continue
		fi
		if ! ip=$(container_ip "$name"); then
			failed[$srv]="no IP address in pull-run inspect $name"
			continue
		fi
		"${PR[@]}" port "$name" >>"$OUTDIR/$srv.log" 2>&1 || true
		proxy_url=http://127.0.0.1:$hp/page.html
		direct_url=http://$ip:80/page.html
		if ! wait_page "$direct_url"; then
			failed[$srv]="$direct_url does not serve the page (log $OUTDIR/$srv.log)"
			{
				echo "--- pull-run ps -a"
				"${PR[@]}" ps -a
				echo "--- pull-run logs $name"
				"${PR[@]}" logs "$name"
			} >>"$OUTDIR/$srv.log" 2>&1 || true
			continue
		fi
		if ! wait_page "$proxy_url"; then
			failed[$srv]="$proxy_url (the published port) does not serve the page"
			continue
		fi
		path[$srv]=$(published_path "$hp")
		log "$srv: wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS round(s) of direct ($direct_url) and published ($proxy_url, via ${path[$srv]})"
		for round in $(seq "$ROUNDS"); do
			order=(direct published)
			((round % 2)) || order=(published direct) # alternate, against drifts of the load
			for how in "${order[@]}"; do
				url=$direct_url
				[[ $how == direct ]] || url=$proxy_url
				if r=$(wrk_rps "$srv-$how" "$url"); then
					rps[$srv-$how]+="$r "
				else
					failed[$srv]="wrk $how failed (log $OUTDIR/wrk-$srv-$how.log)"
				fi
			done
		done
		"${PR[@]}" rm -f "$name" >>"$OUTDIR/$srv.log" 2>&1 || true
	done
fi

# ---------------------------------------------------------------------------------------------
# tables

echo
net_cost_ms=""
if [[ " $PARTS " == *" setup "* ]]; then
	printf '%-62s  %10s  %10s  %12s\n' "pull-run run -d IMAGE sleep 600" "median ms" "p90 ms" "vs none"
	none_med=""
	if [[ -n ${times[none]:-} ]]; then
		# shellcheck disable=SC2086
		none_med=$(median ${times[none]})
	fi
	for mode in "${modes[@]}"; do
		label="--network $mode"
		if [[ -z ${times[$mode]:-} ]]; then
			printf '%-62s  %s\n' "$label" "FAILED: ${failed[setup-$mode]:-no runs}"
			continue
		fi
		# shellcheck disable=SC2086
		med=$(median ${times[$mode]})
		# shellcheck disable=SC2086
		p90=$(quantile 0.9 ${times[$mode]})
		diff=""
		if [[ -n $none_med ]]; then
			diff=$(fcalc "($med - $none_med) / 1000" '%+.1f ms')
		fi
		note=""
		[[ -z ${failed[setup-$mode]:-} ]] || note="  (${failed[setup-$mode]})"
		printf '%-62s  %10s  %10s  %12s%s\n' "$label" "$(ms "$med")" "$(ms "$p90")" "$diff" "$note"
		if [[ $mode == bridge && -n $none_med ]]; then
			net_cost_ms=$(fcalc "($med - $none_med) / 1000" '%.1f')
		fi
	done
	echo
fi

proxy_costs=()
if [[ " $PARTS " == *" throughput "* ]]; then
	printf '%-52s  %12s  %16s  %16s  %10s\n' "wrk -t$THREADS -c$CONNS -d$DURATION, ${page_size} B page" "direct req/s" "published req/s" "published/direct" "cost"
	for srv in "${servers[@]}"; do
		label="$srv (${server_note[$srv]}), via ${path[$srv]:-?}"
		if [[ -z ${rps[$srv-direct]:-} || -z ${rps[$srv-published]:-} ]]; then
			printf '%-52s  %s\n' "$label" "FAILED: ${failed[$srv]:-no measurement}"
			continue
		fi
		# shellcheck disable=SC2086
		d=$(median ${rps[$srv-direct]})
		# shellcheck disable=SC2086
		p=$(median ${rps[$srv-published]})
		ratio=$(fcalc "$p / $d" '%.2f')
		cost=$(fcalc "(1 - $p / $d) * 100" '%.1f')
		proxy_costs+=("$srv via ${path[$srv]}:$cost")
		note=""
		for how in direct published; do
			[[ -z ${wrk_errors[$srv-$how]:-} ]] || note+="  ($how: ${wrk_errors[$srv-$how]})"
		done
		[[ -z ${failed[$srv]:-} ]] || note+="  (${failed[$srv]})"
		printf '%-52s  %12.0f  %16.0f  %16s  %9s%%%s\n' "$label" "$d" "$p" "$ratio" "$cost" "$note"
	done
	echo
fi

if [[ -n $net_cost_ms ]]; then
	echo "network setup cost (median run -d, bridge - none): $net_cost_ms ms"
fi
for pc in "${proxy_costs[@]}"; do
	srv=${pc%%:*} cost=${pc#*:}
	echo "target: the published port costs < ${TARGET_PROXY_COST_PCT}% of direct throughput ($srv): $cost%, $(verdict "$(fcalc "$cost < $TARGET_PROXY_COST_PCT" '%d')")"
done
echo "N=$N interleaved runs each after 2 warm-ups; wrk $ROUNDS round(s) per server;" \
	"$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg). Logs: $OUTDIR"
if ((${#failed[@]})); then
	exit 1
fi
