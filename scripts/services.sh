#!/usr/bin/env bash
# Starts the local services that Kiln's development, tests and CI need, and leaves them running:
#   - dockerd (Debian's docker.io, 20.10) on the unix socket /var/run/docker.sock only
#   - the Docker Registry 2.0 (Debian's docker-registry, Distribution 2.8) on 127.0.0.1:5000 only
#   - Redis 7 on 127.0.0.1:6379 only (BullMQ's queues, the run store)
#   - test base images built locally (no image can be pulled here): busybox, alpine, bash, docker,
#     and node:20-bookworm-slim (the base of the Kiln service image, see Dockerfile), tagged under
#     their public names and pushed to 127.0.0.1:5000
#
# Idempotent: a service that already answers is left alone, an image that exists is not rebuilt,
# so a second run takes about a second and changes nothing. Quiet unless something is wrong;
# stdout is one summary line. Exits non-zero with the failing daemon's log tail otherwise.
#
# Usage: scripts/services.sh            start whatever is not running
#        scripts/services.sh stop       stop the daemons this script started (scripts/services/stop.sh)
# Environment:
#   KILN_SERVICES_DIR=/var/lib/kiln-services   data, configs, logs (log/) and pid files (run/)
#   KILN_REBUILD_IMAGES=1                      rebuild and re-push the test images
#   KILN_SERVICES_VERBOSE=1                    say what is being done, on stderr
#
# Runs as root (installs packages, starts dockerd). No systemd here: the daemons are started
# detached (setsid, nohup) by this script, and their pids are kept in $KILN_SERVICES_DIR/run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=services/common.sh
. "$HERE/services/common.sh"

if [ "${1:-}" = stop ]; then exec bash "$HERE/services/stop.sh"; fi
[ "$#" -eq 0 ] || die "usage: $0 [stop]"
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts dockerd)"

# Always talk to the local daemon on the default socket, whatever the caller's environment says.
export DOCKER_HOST=unix:///var/run/docker.sock
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
# sbin may be missing from a non-login root PATH; the caller's own directories come first.
export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

IMAGE_FILES="$HERE/services/image-files"
IMAGE_PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORK_TMP=""
POLICY_RC_ADDED=0

cleanup() {
  if [ -n "$WORK_TMP" ]; then rm -rf -- "$WORK_TMP"; fi
  if [ "$POLICY_RC_ADDED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Small helpers

have() { command -v "$1" >/dev/null 2>&1; }

# True when the file is an executable that needs no shared libraries (ldd says so).
is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }

# wait_for SECONDS CHECK ALIVE: run CHECK every 0.2 s until it succeeds (return 0), or ALIVE
# fails, i.e. the daemon died (return 1), or time runs out (return 1).
wait_for() {
  local deadline=$((SECONDS + $1)) check="$2" alive="$3"
  while :; do
    if "$check"; then return 0; fi
    if ! "$alive"; then "$check"; return; fi
    if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
    sleep 0.2
  done
}

# Start a long-running foreground daemon detached from this script: its own session (so a ^C
# in the caller's terminal or the end of the caller's process group does not reach it), no
# stdin, output appended to its log, and without our lock's file descriptor (9).
# Sets LAUNCHED_PID. In a non-interactive bash a background job is not a process-group leader,
# so setsid does not fork and $! is the daemon's own pid.
LAUNCHED_PID=""
launch() {
  local logfile="$1"; shift
  (cd / && exec setsid nohup "$@" </dev/null >>"$logfile" 2>&1 9>&-) &
  LAUNCHED_PID=$!
}
launched_alive() { pid_running "$LAUNCHED_PID"; }

# Keep the previous log as NAME.log.1 so each start's log shows only that start.
rotate_log() { if [ -s "$1" ]; then mv -f -- "$1" "$1.1"; fi; : >"$1"; }

# Write a file only when its content changes (no needless mtime churn on repeat runs).
# Sets CHANGED=1 when it wrote the file.
CHANGED=0
write_if_changed() {
  local target="$1" content="$2"
  CHANGED=0
  if [ ! -f "$target" ] || [ "$(cat -- "$target")" != "$content" ]; then
    printf '%s\n' "$content" >"$target.tmp" && mv -f -- "$target.tmp" "$target"
    CHANGED=1
  fi
}

# A running daemon does not reread its config: say so, rather than restart it under a caller.
warn_if_stale_config() {
  if [ "$CHANGED" = 1 ]; then
    warn "$1 changed but the running $2 still uses the old one; run scripts/services.sh stop, then scripts/services.sh"
  fi
}

# ---------------------------------------------------------------------------------------------
# 1. Debian packages

# Binaries we need, and the package that brings each. busybox must be the static one: it is
# copied alone into the images' root filesystems.
ensure_packages() {
  local missing=()
  have dockerd || missing+=(docker.io)
  have docker-registry || missing+=(docker-registry)
  { have redis-server && have redis-cli; } || missing+=(redis-server)
  { have busybox && is_static "$(command -v busybox)"; } || missing+=(busybox-static)
  have curl || missing+=(curl)
  have iptables || missing+=(iptables)
  have chromium || missing+=(chromium)   # the web console's end-to-end tests (headless)
  [ "${#missing[@]}" -gt 0 ] || return 0

  say "installing ${missing[*]}"
  # The packages' maintainer scripts would start Debian's own docker and redis through their
  # init scripts (with other settings); a policy-rc.d that answers 101 stops that.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_ADDED=1
  fi
  local log="$SVC_LOG/apt.log"
  : >"$log"
  apt-get update -q >>"$log" 2>&1 || { log_tail "$log"; die "apt-get update failed"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$log" 2>&1 ||
    { log_tail "$log"; die "apt-get install ${missing[*]} failed"; }
  if [ "$POLICY_RC_ADDED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_ADDED=0; fi
  hash -r
  if ! { have dockerd && have docker-registry && have redis-server && have busybox; }; then
    die "packages installed but a binary is still missing (see $log)"
  fi
}

# ---------------------------------------------------------------------------------------------
# 2. dockerd

docker_ok() { docker info >/dev/null 2>&1; }

# dockerd on the unix socket only (no TCP). overlay2 first; vfs if overlay2 does not work in
# this sandbox. The driver that worked is remembered, because images stored under one driver
# are invisible under the other. iptables is left on (NAT and the embedded DNS of user-defined
# networks need it); only if dockerd cannot start because of iptables is it turned off.
start_dockerd() {
  if docker_ok; then return 0; fi
  local log="$SVC_LOG/dockerd.log" driver_file="$SVC_ETC/dockerd.storage-driver"
  local pid
  pid="$(live_pid "$DOCKERD_PIDFILE" dockerd)"
  if [ -n "$pid" ]; then
    # Ours, still starting (or hung): wait for it rather than start a second one.
    say "waiting for dockerd (pid $pid)"
    LAUNCHED_PID="$pid"
    wait_for 60 docker_ok launched_alive && return 0
    log_tail "$log"
    die "dockerd (pid $pid) is running but 'docker info' does not answer; stop it with scripts/services/stop.sh"
  fi

  # A pid file left by a dockerd that died (killed, machine restarted) stops a new one from
  # starting if its pid has been reused by another process.
  rm -f "$DOCKERD_PIDFILE"
  # Likewise the pid file of the containerd that dockerd runs as its child: PID 1 in this
  # sandbox does not reap orphans, so after a dockerd crash that containerd lingers as a zombie
  # that dockerd mistakes for a live containerd, and then waits for its socket in vain.
  local containerd_pidfile=/var/run/docker/containerd/containerd.pid
  if [ -z "$(live_pid "$containerd_pidfile" containerd)" ]; then rm -f "$containerd_pidfile"; fi
  local driver iptables=true attempt
  driver="$(cat "$driver_file" 2>/dev/null || echo overlay2)"
  # live-restore: containers outlive a restart of dockerd, and Kiln's workers re-attach to them
  # (RELIABILITY R9). It can be changed without a restart: edit the file and send dockerd SIGHUP
  # (the fault suite turns it off that way for R8). The cgroupfs driver (the default where no
  # systemd runs, as here) lets a build's process limit work, on cgroup v1 (RELIABILITY S7).
  write_if_changed "$DOCKERD_CONFIG" '{ "live-restore": true, "exec-opts": ["native.cgroupdriver=cgroupfs"] }'
  for attempt in 1 2 3; do
    say "starting dockerd (storage driver $driver, iptables $iptables, attempt $attempt)"
    rotate_log "$log"
    launch "$log" dockerd \
      --host unix:///var/run/docker.sock \
      --pidfile "$DOCKERD_PIDFILE" \
      --config-file "$DOCKERD_CONFIG" \
      --storage-driver "$driver" \
      --log-driver local \
      --iptables="$iptables"
    if wait_for 60 docker_ok launched_alive; then
      write_if_changed "$driver_file" "$driver"
      return 0
    fi
    if launched_alive; then
      log_tail "$log"
      die "dockerd (pid $LAUNCHED_PID) started but 'docker info' did not answer within 60 s"
    fi
    # dockerd exited: retry without what its fatal message complains about
    # (e.g. "failed to start daemon: error initializing graphdriver: driver not supported").
    if [ "$driver" = overlay2 ] && grep -qiE 'failed to start daemon.*(graphdriver|overlay)' "$log"; then
      warn "dockerd cannot use overlay2 here; falling back to the vfs storage driver (slow, uses more disk)"
      driver=vfs
    elif [ "$iptables" = true ] && grep -qiE 'failed to start daemon.*iptables' "$log"; then
      warn "dockerd cannot use iptables here; starting it with --iptables=false (no NAT to the outside)"
      iptables=false
    else
      break
    fi
  done
  log_tail "$log"
  die "dockerd failed to start"
}

# ---------------------------------------------------------------------------------------------
# 3. Registry

registry_ok() { curl -fsS -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }

# Distribution 2.8 with filesystem storage under the services dir, on 127.0.0.1 only, deletes
# enabled (tests delete manifests). Request logs are off: at "info" it logs every request.
write_registry_config() {
  write_if_changed "$SVC_ETC/registry.yml" "# Written by scripts/services.sh; edits are overwritten.
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $KILN_SERVICES_DIR/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  # One registry process: a fixed secret only spares the log a warning about a random one.
  secret: kiln-local-registry
  headers:
    X-Content-Type-Options: [nosniff]"
}

start_registry() {
  write_registry_config
  if registry_ok; then warn_if_stale_config "$SVC_ETC/registry.yml" registry; return 0; fi
  local log="$SVC_LOG/registry.log"
  mkdir -p "$KILN_SERVICES_DIR/registry"
  if [ -n "$(live_pid "$REGISTRY_PIDFILE" docker-registry)" ]; then
    die "docker-registry (pid $(cat "$REGISTRY_PIDFILE")) is running but http://$REGISTRY_ADDR/v2/ does not answer; stop it with scripts/services/stop.sh"
  fi
  say "starting the registry on $REGISTRY_ADDR"
  rotate_log "$log"
  launch "$log" docker-registry serve "$SVC_ETC/registry.yml"
  echo "$LAUNCHED_PID" >"$REGISTRY_PIDFILE"
  if ! wait_for 20 registry_ok launched_alive; then
    log_tail "$log"
    die "the registry did not answer on http://$REGISTRY_ADDR/v2/ (is the port taken?)"
  fi
}

# ---------------------------------------------------------------------------------------------
# 4. Redis

# redis-cli with the password (REDISCLI_AUTH keeps it off the command line).
rcli() { REDISCLI_AUTH="$(cat "$REDIS_PASSFILE")" redis-cli --no-auth-warning -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
redis_ok() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }

# A password made once and kept (RELIABILITY rule 3: loopback and requirepass), and the URL for
# Kiln's REDIS_URL next to it: export REDIS_URL="$(cat $KILN_SERVICES_DIR/etc/redis.url)".
# The tests read the password from the same file (bench/shared.ts, localRedisOptions).
make_redis_password() {
  if [ ! -s "$REDIS_PASSFILE" ]; then
    head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$REDIS_PASSFILE.tmp"
    mv -f -- "$REDIS_PASSFILE.tmp" "$REDIS_PASSFILE"
  fi
  write_if_changed "$SVC_ETC/redis.url" "redis://:$(cat "$REDIS_PASSFILE")@$REDIS_HOST:$REDIS_PORT"
}

# The settings BullMQ asks for: AOF persistence, and no eviction (an evicted job key corrupts
# a queue). Bound to 127.0.0.1 with protected mode on and a password.
write_redis_config() {
  mkdir -p "$KILN_SERVICES_DIR/redis"
  local mask
  mask="$(umask)"
  umask 077   # the files below hold the password
  make_redis_password
  write_if_changed "$SVC_ETC/redis.conf" "# Written by scripts/services.sh; edits are overwritten.
bind $REDIS_HOST
port $REDIS_PORT
protected-mode yes
requirepass $(cat "$REDIS_PASSFILE")
daemonize yes
pidfile $REDIS_PIDFILE
logfile $SVC_LOG/redis.log
dir $KILN_SERVICES_DIR/redis
appendonly yes
appendfsync everysec
maxmemory-policy noeviction"
  umask "$mask"
}

# Alive until the daemonized server has written its pid file and that process is gone.
redis_alive() { [ ! -s "$REDIS_PIDFILE" ] || [ -n "$(live_pid "$REDIS_PIDFILE" "$REDIS_EXE")" ]; }

start_redis() {
  write_redis_config
  if redis_ok; then warn_if_stale_config "$SVC_ETC/redis.conf" redis; return 0; fi
  local log="$SVC_LOG/redis.log"
  REDIS_EXE="$(basename -- "$(readlink -f "$(command -v redis-server)")")"
  if [ -n "$(live_pid "$REDIS_PIDFILE" "$REDIS_EXE")" ]; then
    die "redis-server (pid $(cat "$REDIS_PIDFILE")) is running but does not answer PING; stop it with scripts/services/stop.sh"
  fi
  rm -f "$REDIS_PIDFILE"
  say "starting redis on $REDIS_HOST:$REDIS_PORT"
  rotate_log "$log"
  # daemonize yes: redis-server forks and the parent returns at once.
  (cd / && exec setsid redis-server "$SVC_ETC/redis.conf" </dev/null >>"$log" 2>&1 9>&-) ||
    { log_tail "$log"; die "redis-server failed to start"; }
  if ! wait_for 20 redis_ok redis_alive; then
    log_tail "$log"
    die "redis did not answer PING on $REDIS_HOST:$REDIS_PORT (is the port taken?)"
  fi
}

# ---------------------------------------------------------------------------------------------
# 5. Test base images (built here: nothing can be pulled)

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

in_registry() {
  local name="${1%:*}" tag="${1##*:}"
  curl -fsS -o /dev/null --max-time 5 -I \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY_ADDR/v2/$name/manifests/$tag" 2>/dev/null
}

# The root filesystem every test image starts from, laid out like the public busybox image:
# a static busybox with a symlink in /bin per applet, /tmp, and root + nobody users.
make_base_rootfs() {
  local root="$1" busybox applet
  busybox="$(command -v busybox)"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home,tmp,var/tmp,proc,sys,dev}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  cp -- "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  ln -sf /bin/env "$root/usr/bin/env" # for '#!/usr/bin/env sh' scripts
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
}

# alpine: the same busybox root, told apart by its release files (and so by its digest).
add_alpine_files() {
  local root="$1"
  echo "3.19.0" >"$root/etc/alpine-release"
  printf '%s\n' 'NAME="Alpine Linux"' 'ID=alpine' 'VERSION_ID=3.19.0' \
    'PRETTY_NAME="Alpine Linux v3.19 (kiln test image, busybox only)"' >"$root/etc/os-release"
}

# bash: busybox has no bash applet, so `bash` runs busybox sh; the entrypoint mimics the public
# image's (`bash echo hello world` runs `echo hello world`).
add_bash_files() {
  local root="$1"
  install -m 755 "$IMAGE_FILES/bash" "$root/usr/local/bin/bash"
  install -m 755 "$IMAGE_FILES/bash-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
}

# docker: the docker CLI for `cmd: docker ...` steps. The machines' /usr/local/bin/docker is
# statically linked and goes in alone; a dynamic one (Debian's) goes in with its libraries.
add_docker_files() {
  local root="$1" cli="" candidate lib
  for candidate in /usr/local/bin/docker "$(command -v docker)"; do
    if is_static "$candidate"; then cli="$candidate"; break; fi
  done
  if [ -n "$cli" ]; then
    install -m 755 "$cli" "$root/usr/local/bin/docker"
  else
    cli="$(command -v docker)"
    warn "no statically linked docker CLI; copying $cli with its shared libraries into the docker image"
    install -m 755 "$cli" "$root/usr/local/bin/docker"
    for lib in $(ldd "$cli" | grep -oE '/[^ ]+'); do
      mkdir -p "$root$(dirname -- "$lib")"
      cp -L -- "$lib" "$root$lib"
    done
  fi
  install -m 755 "$IMAGE_FILES/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
}

# node: a stand-in for node:20-bookworm-slim, the Kiln service image's base. The host's own
# /usr/bin/node goes in with the shared libraries `ldd` lists (same paths, the dynamic loader
# among them), npm with its /usr/bin links, the host's CA certificates and a `node` user
# (uid 1000, home /home/node) like the public image's; /tmp (1777) comes with the base root.
NODE_BIN=/usr/bin/node
NODE_MODULES_DIR=/usr/lib/node_modules
add_node_files() {
  local root="$1" lib version
  [ -x "$NODE_BIN" ] || die "$NODE_BIN is missing: the node image is built from the host's Node 20"
  [ -f "$NODE_MODULES_DIR/npm/bin/npm-cli.js" ] || die "$NODE_MODULES_DIR/npm is missing: the node image takes the host's npm"
  version="$("$NODE_BIN" --version)"
  case "$version" in v20.*) ;; *) warn "the host's node is $version, not 20.x; it goes into node:20-bookworm-slim anyway" ;; esac
  install -m 755 "$NODE_BIN" "$root/usr/bin/node"
  # node's own libraries, and the rest of the C library as the public image has it (libc6's
  # shared objects: librt, libresolv, the NSS modules...), which native addons load (e.g. the
  # bundler of the web console).
  for lib in $(ldd "$NODE_BIN" | grep -oE '/[^ ]+') $(dpkg -L libc6 | grep -E '^/(usr/)?lib[^ ]*\.so(\.[0-9]+)*$'); do
    mkdir -p "$root$(dirname -- "$lib")"
    cp -L -- "$lib" "$root$lib"
  done
  mkdir -p "$root$NODE_MODULES_DIR"
  cp -R -- "$NODE_MODULES_DIR/npm" "$root$NODE_MODULES_DIR/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
  # The certificates themselves, not links into /usr/share/ca-certificates. npm is told to use
  # the system bundle (as the host's npm is, by its global npmrc): Node's built-in list lacks
  # local CAs, such as the one of a TLS-inspecting proxy between this machine and the registry.
  mkdir -p "$root/etc/ssl"
  cp -RL -- /etc/ssl/certs "$root/etc/ssl/certs"
  mkdir -p "$root/usr/etc"
  echo 'cafile=/etc/ssl/certs/ca-certificates.crt' >"$root/usr/etc/npmrc"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$root/etc/passwd"
  echo 'node:x:1000:' >>"$root/etc/group"
  mkdir -p "$root/home/node"
  chown 1000:1000 "$root/home/node"
}

# import_rootfs ROOT TAG [--change ...]: docker import of a folder, owned by root except for
# what belongs to uid/gid 1000 (the node user's home), which keeps its ids.
import_rootfs() {
  local root="$1" tag="$2"; shift 2
  local keep_ids="$WORK_TMP/keep-ids"
  echo '+1000 +1000' >"$keep_ids"
  tar -C "$root" --numeric-owner --owner=0 --group=0 --owner-map="$keep_ids" --group-map="$keep_ids" -cf - . |
    docker import --change "ENV $IMAGE_PATH_ENV" "$@" - "$tag" >>"$SVC_LOG/images.log" 2>&1 ||
    { log_tail "$SVC_LOG/images.log"; die "docker import of $tag failed"; }
}

# build_image NAME EXTRA_FILES_FN TAG... -- CHANGE...: build one image family when any of its
# tags is missing (or KILN_REBUILD_IMAGES=1), then tag it under all its names.
BUILT_TAGS=()
OLD_IMAGE_IDS=()
build_image() {
  local name="$1" add_files="$2"; shift 2
  local tags=() changes=() tag need=0
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do tags+=("$1"); shift; done
  shift
  changes=("$@")
  for tag in "${tags[@]}"; do image_exists "$tag" || need=1; done
  [ "${KILN_REBUILD_IMAGES:-0}" = 1 ] && need=1
  [ "$need" = 1 ] || return 0

  say "building image $name"
  for tag in "${tags[@]}" "${tags[@]/#/$REGISTRY_ADDR/}"; do
    OLD_IMAGE_IDS+=("$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)")
  done
  local root="$WORK_TMP/$name"
  make_base_rootfs "$root"
  if [ -n "$add_files" ]; then "$add_files" "$root"; fi
  import_rootfs "$root" "${tags[0]}" "${changes[@]}"
  for tag in "${tags[@]:1}"; do docker tag "${tags[0]}" "$tag"; done
  rm -rf -- "$root"
  BUILT_TAGS+=("${tags[@]}")
}

# Push each tag to the local registry as 127.0.0.1:5000/NAME:TAG, when it was just built or
# the registry lacks it. A tag already in the registry is left alone (a test may have put it
# there on purpose).
was_built() {
  local built
  for built in "${BUILT_TAGS[@]}"; do [ "$built" != "$1" ] || return 0; done
  return 1
}

push_image() {
  local tag="$1"
  if was_built "$tag" || ! in_registry "$tag"; then
    say "pushing $REGISTRY_ADDR/$tag"
    docker tag "$tag" "$REGISTRY_ADDR/$tag"
    docker push "$REGISTRY_ADDR/$tag" >>"$SVC_LOG/images.log" 2>&1 ||
      { log_tail "$SVC_LOG/images.log"; die "docker push $REGISTRY_ADDR/$tag failed"; }
  fi
}

ALL_TAGS=(busybox:latest alpine:latest alpine:3.19 bash:latest docker:latest node:20-bookworm-slim)

ensure_images() {
  WORK_TMP="$(mktemp -d "$KILN_SERVICES_DIR/tmp.XXXXXX")"
  build_image busybox "" busybox:latest -- --change 'CMD ["sh"]'
  build_image alpine add_alpine_files alpine:latest alpine:3.19 -- --change 'CMD ["/bin/sh"]'
  build_image bash add_bash_files bash:latest -- \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' --change 'CMD ["bash"]'
  build_image docker add_docker_files docker:latest -- \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' --change 'CMD ["sh"]'
  build_image node add_node_files node:20-bookworm-slim -- --change 'CMD ["node"]'
  local tag id
  for tag in "${ALL_TAGS[@]}"; do push_image "$tag"; done
  # After a rebuild, drop the images the new ones replaced, unless something still uses or
  # tags them (then `docker image rm` refuses, and they stay).
  for id in "${OLD_IMAGE_IDS[@]}"; do
    if [ -n "$id" ]; then docker image rm "$id" >/dev/null 2>&1 || true; fi
  done
}

# ---------------------------------------------------------------------------------------------
# 6. Summary

summary() {
  local docker_version driver redis_version
  docker_version="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
  driver="$(docker info --format '{{.Driver}}' 2>/dev/null || echo '?')"
  redis_version="$(rcli info server 2>/dev/null |
    sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')"
  echo "services: dockerd $docker_version ($driver), registry $REGISTRY_ADDR, redis ${redis_version:-?} $REDIS_HOST:$REDIS_PORT, images busybox alpine bash docker node"
}

main() {
  mkdir -p "$KILN_SERVICES_DIR" "$SVC_RUN" "$SVC_LOG" "$SVC_ETC"
  # One run at a time (parallel CI jobs or shells): the second waits for the first.
  exec 9>"$SVC_RUN/services.lock"
  flock -w 600 9 || die "another scripts/services.sh has held $SVC_RUN/services.lock for 10 minutes"

  ensure_packages
  start_dockerd
  start_registry
  start_redis
  ensure_images
  summary
}

main
