#!/bin/sh
# Entrypoint of the locally built `docker` test image; behaves like the one in the public
# `docker` image (without its TLS / DOCKER_HOST guessing): a first argument that is an
# option or a docker subcommand runs through the docker CLI (`docker run docker ps`),
# anything else runs as a command (`sh`, the default).
set -eu
if [ "$#" -gt 0 ] && [ "${1#-}" != "$1" ]; then
  set -- docker "$@"
elif [ "$#" -gt 0 ] && docker help "$1" >/dev/null 2>&1; then
  set -- docker "$@"
fi
exec "$@"
