# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared by scripts/services.sh and scripts/services/stop.sh: where things live and small helpers.
# Sourced, never run. Callers have `set -euo pipefail` on.

# One root for everything the services keep (data, configs, logs, pid files), so that a
# developer can inspect or wipe it in one place. Docker's own data stays in /var/lib/docker.
KILN_SERVICES_DIR="${KILN_SERVICES_DIR:-/var/lib/kiln-services}"
SVC_RUN="$KILN_SERVICES_DIR/run"    # pid files and the lock
SVC_LOG="$KILN_SERVICES_DIR/log"    # one log per daemon
SVC_ETC="$KILN_SERVICES_DIR/etc"    # config files this script writes

DOCKERD_PIDFILE="$SVC_RUN/dockerd.pid"
DOCKERD_CONFIG="$SVC_ETC/daemon.json"   # dockerd --config-file (live-restore)
REGISTRY_PIDFILE="$SVC_RUN/registry.pid"
REDIS_PIDFILE="$SVC_RUN/redis.pid"
REDIS_PASSFILE="$SVC_ETC/redis.pass"   # requirepass, made once

REGISTRY_ADDR="127.0.0.1:5000"
REDIS_HOST="127.0.0.1"
REDIS_PORT="6379"

# Messages go to stderr so that stdout carries only the summary line.
say() { if [ "${KILN_SERVICES_VERBOSE:-0}" = 1 ]; then echo "services: $*" >&2; fi; }
warn() { echo "services: warning: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

# Print the last lines of a log file, indented, for a failure message.
log_tail() {
  local file="$1" lines="${2:-40}"
  if [ -s "$file" ]; then
    echo "---- last $lines lines of $file ----" >&2
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
    echo "----" >&2
  fi
}

# True while the process runs: kill -0 also succeeds for a zombie (a dead child not yet
# reaped, or an orphan here, where PID 1 does not reap), so read its state instead.
pid_running() {
  local state
  state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The pid in a pid file, if that process is alive and runs the expected executable
# (so that a recycled pid is never mistaken for our daemon). Prints nothing otherwise.
live_pid() {
  local pidfile="$1" exe_name="$2" pid exe
  [ -r "$pidfile" ] || return 0
  pid="$(tr -dc '0-9' <"$pidfile")"
  [ -n "$pid" ] || return 0
  pid_running "$pid" || return 0
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  if [ "$(basename -- "$exe")" = "$exe_name" ]; then echo "$pid"; fi
}
