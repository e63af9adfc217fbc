#!/usr/bin/env bash
# Stops the daemons that scripts/services.sh started (registry, redis, dockerd), for local use.
# Only processes named in its pid files, and only if they still run the expected program, are
# signalled: a daemon started some other way is left alone. Data, configs, logs and images stay.
# Also run as: scripts/services.sh stop
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

# stop_daemon LABEL PIDFILE EXE_NAME TIMEOUT: SIGTERM, wait, then SIGKILL as a last resort.
stop_daemon() {
  local label="$1" pidfile="$2" exe_name="$3" timeout="$4" pid deadline
  pid="$(live_pid "$pidfile" "$exe_name")"
  if [ -z "$pid" ]; then
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid"
  deadline=$((SECONDS + timeout))
  while pid_running "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if pid_running "$pid"; then
    warn "$label (pid $pid) did not stop within ${timeout}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

redis_exe="$(basename -- "$(readlink -f "$(command -v redis-server || echo redis-server)")")"

stop_daemon registry "$REGISTRY_PIDFILE" docker-registry 10
# Redis writes its append-only file on SIGTERM.
stop_daemon redis "$REDIS_PIDFILE" "$redis_exe" 30
# dockerd stops its containers (10 s grace each, in parallel) and its containerd first.
stop_daemon dockerd "$DOCKERD_PIDFILE" dockerd 60
