# shellcheck shell=bash
# Process helpers shared by the bench scripts (sourced). They expect a `log`
# function (lib/bench.sh) and OUTDIR; start_dockerd sets dockerd_pid when it starts
# one, and stop_dockerd stops that one only.

# stop_pid PID [SECS]: SIGTERM, then SIGKILL after SECS (default 15), and reap.
# shellcheck disable=SC2317 # also invoked by traps
stop_pid() {
	local pid=$1 secs=${2:-15}
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop on SIGTERM, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# start_dockerd: start a Docker daemon as the e2e tests do (when `docker info`
# fails) and wait up to a minute for it; the caller stops it (dockerd_pid).
start_dockerd() {
	command -v dockerd >/dev/null || return 1
	log "docker info fails: starting dockerd (log $OUTDIR/dockerd.log)"
	setsid dockerd --host unix:///var/run/docker.sock --data-root /var/lib/docker >"$OUTDIR/dockerd.log" 2>&1 &
	dockerd_pid=$!
	for _ in $(seq 240); do
		docker info >/dev/null 2>&1 && return 0
		kill -0 "$dockerd_pid" 2>/dev/null || {
			dockerd_pid=""
			tail -n 20 "$OUTDIR/dockerd.log" >&2
			return 1
		}
		sleep 0.25
	done
	return 1
}

# stop_dockerd: stop the dockerd start_dockerd started, if any (30 s grace).
# shellcheck disable=SC2317 # invoked by the callers' traps
stop_dockerd() {
	[[ -n ${dockerd_pid:-} ]] || return 0
	log "stopping the dockerd started here (pid $dockerd_pid)"
	stop_pid "$dockerd_pid" 30
	dockerd_pid=""
}
